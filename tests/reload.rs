//! SIGHUP reloads the limits and per-index settings without a restart; an invalid file is refused and the old
//! configuration stays in force.
mod common;
use common::*;
use pinecone_gateway::emulator::{Emulator, EmulatorOptions};
use pinecone_gateway::pb::pinecone as p;
use pinecone_gateway::pb::pinecone::vector_service_client::VectorServiceClient;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn config(emulator: &Emulator, stats_per_second: u64) -> String {
    format!(
        "[upstream]\ncontrol_plane_url = \"{}\"\ndefault_index = \"{INDEX}\"\n\
         [limits]\nmax_queue_wait_ms = 100\n\
         [limits.rates.describe_index_stats]\nindex_requests_per_second = {stats_per_second}\n",
        emulator.url()
    )
}

/// Waits for a log line containing `text` (the gateway logs what it did with the signal).
fn wait_for_log(lines: &mpsc::Receiver<String>, text: &str) {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no log line with {text:?}"));
        if line.contains(text) {
            return;
        }
    }
}

fn signal(pid: u32, sig: &str) {
    assert!(
        Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_pinecone-gateway"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .arg("--config")
        .arg(&file)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let addr = loop {
        let line = lines.recv_timeout(Duration::from_secs(20)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if let Some(a) = v["addr"].as_str() {
            break a.to_string();
        }
    };
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
    signal(child.id(), "-HUP");
    wait_for_log(&lines, "configuration reloaded");
    for _ in 0..3 {
        client.describe_index_stats(stats()).await.unwrap();
    }

    // An invalid file changes nothing.
    std::fs::write(&file, "[limits]\nmax_queue_wait = 1\n").unwrap();
    signal(child.id(), "-HUP");
    wait_for_log(&lines, "configuration refused");
    for _ in 0..3 {
        client.describe_index_stats(stats()).await.unwrap();
    }

    signal(child.id(), "-TERM");
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
