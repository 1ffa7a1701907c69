//! SIGHUP reloads `[limits]`, `[coalescing]`, `[callers]` and `[indexes.*]` without a restart, raising and lowering
//! alike; an
//! invalid file is refused and the configuration in force stays (not the defaults); a change of `limits.mode` is
//! not applied, and the log says so.
mod common;
use common::*;
use pinecone_gateway::emulator::{Emulator, EmulatorOptions};
use pinecone_gateway::pb::pinecone as p;
use pinecone_gateway::pb::pinecone::vector_service_client::VectorServiceClient;

/// A configuration; `limits` goes into `[limits]` (tables may follow it).
fn config(emulator: &Emulator, queue_ms: u64, limits: &str) -> String {
    format!(
        "[upstream]\ncontrol_plane_url = \"{}\"\ndefault_index = \"{INDEX}\"\n\
         [limits]\nmax_queue_wait_ms = {queue_ms}\n{limits}",
        emulator.url()
    )
}

fn stats_rate(per_second: u64) -> String {
    format!("[limits.rates.describe_index_stats]\nindex_requests_per_second = {per_second}\n")
}

struct Setup {
    emulator: Emulator,
    gw: GatewayProcess,
    file: std::path::PathBuf,
    client: VectorServiceClient<tonic::transport::Channel>,
}

async fn setup(queue_ms: u64, limits: &str) -> Setup {
    let emulator = Emulator::start("127.0.0.1:0".parse().unwrap(), EmulatorOptions::default())
        .await
        .unwrap();
    for index in [INDEX, "second", "third", "fourth"] {
        emulator.create_index(index, 4, "cosine").await.unwrap();
    }
    let file = pki::temp_dir("reload").join("gateway.toml");
    std::fs::write(&file, config(&emulator, queue_ms, limits)).unwrap();
    let gw = spawn_gateway(
        &["--config", file.to_str().unwrap()],
        &[("RUST_LOG", "info")],
    );
    let client = VectorServiceClient::connect(format!("http://{}", gw.addr))
        .await
        .unwrap();
    Setup {
        emulator,
        gw,
        file,
        client,
    }
}

impl Setup {
    fn reload(&self, text: &str, log: &str) {
        std::fs::write(&self.file, text).unwrap();
        self.gw.signal("-HUP");
        self.gw.wait_for_log(log);
    }

    /// Whether two calls in a row to `index` both pass (at 1 per second with 100 ms of queue, the second is
    /// refused). Each phase uses an index of its own, so that no phase waits for an earlier one's window.
    async fn two_in_a_row_pass(&mut self, index: &str) -> bool {
        let stats = || req_for(index, p::DescribeIndexStatsRequest::default());
        self.client.describe_index_stats(stats()).await.unwrap();
        match self.client.describe_index_stats(stats()).await {
            Ok(_) => true,
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
                assert!(
                    e.message()
                        .contains("describe_index_stats allows 1 requests/s"),
                    "{}",
                    e.message()
                );
                false
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_new_limits_and_an_invalid_file_keeps_the_ones_in_force() {
    let mut s = setup(100, &stats_rate(1)).await;
    assert!(!s.two_in_a_row_pass(INDEX).await, "1 per second");

    s.reload(
        &config(&s.emulator, 100, &stats_rate(1000)),
        "configuration reloaded",
    );
    assert!(
        s.two_in_a_row_pass("second").await,
        "raised to 1,000 per second"
    );

    s.reload(
        &config(&s.emulator, 100, &stats_rate(1)),
        "configuration reloaded",
    );
    assert!(
        !s.two_in_a_row_pass("third").await,
        "lowered to 1 per second again"
    );

    // An invalid file changes nothing: still 1 per second (the default, 100 per second, would pass both).
    s.reload("[limits]\nmax_queue_wait = 1\n", "configuration refused");
    assert!(
        !s.two_in_a_row_pass("fourth").await,
        "the limits in force stay"
    );

    // limits.mode is not changed by a reload: the log says so.
    let redis = "mode = \"redis\"\nreplicas = 2\n[limits.redis]\nurl = \"redis://127.0.0.1:1/\"\n";
    s.reload(
        &(config(&s.emulator, 100, redis) + &stats_rate(1)),
        "take effect at the next restart",
    );

    s.gw.signal("-TERM");
    assert_eq!(s.gw.exit().await.0, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_switches_coalescing() {
    // 10 fetches per second, so that 30 concurrent one-ID fetches coalesce when coalescing is on.
    let rates = "[limits.rates.fetch]\nindex_requests_per_second = 10\n";
    let s = setup(10_000, rates).await;
    let burst = |client: &VectorServiceClient<tonic::transport::Channel>| {
        let calls: Vec<_> = (0..30)
            .map(|i| {
                let mut c = client.clone();
                tokio::spawn(async move {
                    let mut r = tonic::Request::new(p::FetchRequest {
                        ids: vec![format!("id-{i}")],
                        namespace: "ns".into(),
                    });
                    r.set_timeout(std::time::Duration::from_secs(20));
                    c.fetch(r).await.unwrap();
                })
            })
            .collect();
        async move {
            for c in calls {
                c.await.unwrap();
            }
        }
    };
    let before = s.emulator.count(INDEX, "fetch");
    burst(&s.client).await;
    let coalesced = s.emulator.count(INDEX, "fetch") - before;
    assert!(
        coalesced < 30,
        "{coalesced} upstream fetches for 30 callers"
    );

    s.reload(
        &(config(&s.emulator, 10_000, rates) + "[coalescing]\nfetch = false\n"),
        "configuration reloaded",
    );
    let before = s.emulator.count(INDEX, "fetch");
    burst(&s.client).await;
    assert_eq!(
        s.emulator.count(INDEX, "fetch") - before,
        30,
        "one each, once switched off"
    );
    s.gw.signal("-TERM");
    assert_eq!(s.gw.exit().await.0, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_callers_priorities_and_quotas() {
    let mut s = setup(100, "").await;
    let stats = |caller: &str| {
        let mut r = req_for(INDEX, p::DescribeIndexStatsRequest::default());
        r.metadata_mut().insert("x-caller", caller.parse().unwrap());
        r
    };
    for _ in 0..3 {
        s.client
            .describe_index_stats(stats("search"))
            .await
            .unwrap();
    }
    let callers =
        "[callers.search]\npriority = \"interactive\"\nrequests_per_second = 1\nburst = 1\n";
    s.reload(
        &(config(&s.emulator, 100, "") + callers),
        "configuration reloaded",
    );
    s.client
        .describe_index_stats(stats("search"))
        .await
        .unwrap();
    let e = s
        .client
        .describe_index_stats(stats("search"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert!(e.message().contains("callers.search"), "{}", e.message());
    let metrics = scrape(&s.gw.admin).await;
    assert_eq!(
        metric(
            &metrics,
            "pinecone_gateway_caller_calls_total{caller=\"other\",priority=\"default\"}"
        ),
        3.0
    );
    assert_eq!(
        metric(
            &metrics,
            "pinecone_gateway_caller_calls_total{caller=\"search\",priority=\"interactive\"}"
        ),
        2.0,
        "the reloaded caller's priority"
    );
    s.gw.signal("-TERM");
    assert_eq!(s.gw.exit().await.0, Some(0));
}

/// A reload names every key it changed: `limits.mode` and `limits.replicas` between local and static-share are
/// applied (here halving a limit of 2 per second) and logged; keys that only a restart can change (`[retry]`,
/// `[server]`) are kept and logged by name as needing one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_names_what_it_applied_and_what_needs_a_restart() {
    let mut s = setup(100, &stats_rate(2)).await;
    assert!(s.two_in_a_row_pass(INDEX).await, "2 per second");
    let shared = "mode = \"static-share\"\nreplicas = 2\n";
    s.reload(
        &(config(&s.emulator, 100, shared) + &stats_rate(2)),
        "\"applied\":\"limits.mode, limits.replicas\"",
    );
    assert!(
        !s.two_in_a_row_pass("second").await,
        "a share of 2 replicas: 1 per second each"
    );
    s.reload(
        &(config(&s.emulator, 100, shared)
            + &stats_rate(2)
            + "[retry]\nmax_attempts = 5\n[server]\ndefault_timeout_ms = 9000\n"),
        "\"keys\":\"retry.max_attempts, server.default_timeout_ms\"",
    );
    s.gw.signal("-TERM");
    assert_eq!(s.gw.exit().await.0, Some(0));
}
