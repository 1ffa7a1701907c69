//! SIGHUP reloads the limits and per-index settings without a restart; an invalid file is refused and the old
//! configuration stays in force.
mod common;
use common::*;
use pinecone_gateway::emulator::{Emulator, EmulatorOptions};
use pinecone_gateway::pb::pinecone as p;
use pinecone_gateway::pb::pinecone::vector_service_client::VectorServiceClient;

fn config(emulator: &Emulator, stats_per_second: u64) -> String {
    format!(
        "[upstream]\ncontrol_plane_url = \"{}\"\ndefault_index = \"{INDEX}\"\n\
         [limits]\nmax_queue_wait_ms = 100\n\
         [limits.rates.describe_index_stats]\nindex_requests_per_second = {stats_per_second}\n",
        emulator.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_new_limits_and_refuses_an_invalid_file() {
    let emulator = Emulator::start("127.0.0.1:0".parse().unwrap(), EmulatorOptions::default())
        .await
        .unwrap();
    emulator.create_index(INDEX, 4, "cosine").await.unwrap();
    let dir = std::env::temp_dir().join(format!("pgw-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gateway.toml");
    std::fs::write(&file, config(&emulator, 1)).unwrap();
    let gw = spawn_gateway(
        &["--config", file.to_str().unwrap()],
        &[("RUST_LOG", "info")],
    );
    let addr = gw.addr.clone();
    let mut client = VectorServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let stats = || p::DescribeIndexStatsRequest::default();

    // One per second, 100 ms of queue: the second call in a row is refused.
    client.describe_index_stats(stats()).await.unwrap();
    let e = client.describe_index_stats(stats()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert!(
        e.message()
            .contains("describe_index_stats allows 1 requests/s"),
        "{}",
        e.message()
    );

    // Raised to 1,000 per second, live.
    std::fs::write(&file, config(&emulator, 1000)).unwrap();
    gw.signal("-HUP");
    gw.wait_for_log("configuration reloaded");
    for _ in 0..3 {
        client.describe_index_stats(stats()).await.unwrap();
    }

    // An invalid file changes nothing.
    std::fs::write(&file, "[limits]\nmax_queue_wait = 1\n").unwrap();
    gw.signal("-HUP");
    gw.wait_for_log("configuration refused");
    for _ in 0..3 {
        client.describe_index_stats(stats()).await.unwrap();
    }

    gw.signal("-TERM");
    assert_eq!(gw.exit().await.0, Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
