//! Graceful drain of the real binary. From the first moment after SIGTERM: `/readyz` answers 503, gRPC health is
//! NOT_SERVING, `/healthz` still 200 and `/metrics` still served, and a new call is refused with UNAVAILABLE; the
//! calls in progress finish with their answers; then the process exits 0.
mod common;
use common::*;
use pinecone_gateway::emulator::faults::Faults;
use pinecone_gateway::emulator::{Emulator, EmulatorOptions};
use pinecone_gateway::pb::pinecone as p;
use pinecone_gateway::pb::pinecone::vector_service_client::VectorServiceClient;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// An emulator with the test index, and the real binary before it (its default index that one), logging at info.
async fn emulator_and_gateway(extra: &[&str]) -> (Emulator, GatewayProcess) {
    let emulator = Emulator::start("127.0.0.1:0".parse().unwrap(), EmulatorOptions::default())
        .await
        .unwrap();
    emulator.create_index(INDEX, 4, "cosine").await.unwrap();
    let url = emulator.url();
    let mut args = vec!["--control-plane-url", &url, "--default-index", INDEX];
    args.extend_from_slice(extra);
    let gw = spawn_gateway(&args, &[("RUST_LOG", "info")]);
    (emulator, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_unready_at_once_lets_calls_in_progress_finish_then_exits_zero() {
    let (emulator, gw) = emulator_and_gateway(&[]).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", gw.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let admin = format!("http://{}", gw.admin);
    let get = |path: &str| {
        let url = format!("{admin}{path}");
        async move { reqwest::get(url).await.map(|r| r.status().as_u16()) }
    };
    assert_eq!(get("/readyz").await.unwrap(), 200);
    // Warm the host cache, then make every upstream request take 3 s, so calls are in progress at the signal.
    VectorServiceClient::new(channel.clone())
        .describe_index_stats(p::DescribeIndexStatsRequest::default())
        .await
        .unwrap();
    emulator.set_faults(Faults {
        delay_ms: 3000,
        ..Default::default()
    });
    let mut calls = Vec::new();
    for _ in 0..5 {
        let mut c = VectorServiceClient::new(channel.clone());
        calls.push(tokio::spawn(async move {
            c.describe_index_stats(p::DescribeIndexStatsRequest::default())
                .await
        }));
    }
    emulator
        .wait_until(|e| e.count(INDEX, "describe_index_stats") >= 6)
        .await;
    gw.signal("-TERM");
    gw.wait_for_log("draining: health NOT_SERVING");

    // During the drain, with the five calls still in progress.
    assert_eq!(
        get("/readyz").await.unwrap(),
        503,
        "readiness fails at once"
    );
    assert_eq!(get("/healthz").await.unwrap(), 200, "liveness holds");
    assert_eq!(get("/metrics").await.unwrap(), 200);
    let health = HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status(), ServingStatus::NotServing);
    let late = VectorServiceClient::new(channel.clone())
        .describe_index_stats(p::DescribeIndexStatsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(late.code(), tonic::Code::Unavailable, "{late:?}");
    assert!(late.message().contains("shutting down"), "{late:?}");
    assert!(
        calls.iter().all(|c| !c.is_finished()),
        "the calls in progress were still running during these checks"
    );

    for c in calls {
        let r = c.await.unwrap();
        assert!(r.is_ok(), "a call in progress was cut: {r:?}");
    }
    assert_eq!(gw.exit().await.0, Some(0));
}

/// Calls still in progress when `server.drain_grace_ms` runs out are cut (each ends with an error, long before its
/// upstream answer would have come), and the process still exits 0; Ctrl-C (SIGINT) drains the same as SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_drain_grace_are_cut_and_the_exit_is_clean_on_sigterm() {
    past_the_grace("-TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_drain_grace_are_cut_and_the_exit_is_clean_on_ctrl_c() {
    past_the_grace("-INT").await;
}

async fn past_the_grace(signal: &str) {
    let emulator = Emulator::start("127.0.0.1:0".parse().unwrap(), EmulatorOptions::default())
        .await
        .unwrap();
    emulator.create_index(INDEX, 4, "cosine").await.unwrap();
    let config = std::env::temp_dir().join(format!(
        "pgw-drain-{}-{}.toml",
        std::process::id(),
        signal.trim_start_matches('-')
    ));
    std::fs::write(
        &config,
        "[server]\ndrain_grace_ms = 300\ndefault_timeout_ms = 60000\n",
    )
    .unwrap();
    let gw = spawn_gateway(
        &[
            "--config",
            config.to_str().unwrap(),
            "--control-plane-url",
            &emulator.url(),
            "--default-index",
            INDEX,
        ],
        &[("RUST_LOG", "info")],
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", gw.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    VectorServiceClient::new(channel.clone())
        .describe_index_stats(p::DescribeIndexStatsRequest::default())
        .await
        .unwrap();
    // Every upstream request now takes 30 s: far past the grace.
    emulator.set_faults(Faults {
        delay_ms: 30_000,
        ..Default::default()
    });
    let mut calls = Vec::new();
    for _ in 0..3 {
        let mut c = VectorServiceClient::new(channel.clone());
        calls.push(tokio::spawn(async move {
            c.describe_index_stats(p::DescribeIndexStatsRequest::default())
                .await
        }));
    }
    emulator
        .wait_until(|e| e.count(INDEX, "describe_index_stats") >= 4)
        .await;
    let signalled = std::time::Instant::now();
    gw.signal(signal);
    for c in calls {
        let r = c.await.unwrap();
        assert!(r.is_err(), "a call past the grace was not cut: {r:?}");
    }
    let (code, _) = gw.exit().await;
    let _ = std::fs::remove_file(&config);
    assert_eq!(
        code,
        Some(0),
        "{signal}: a drain that cut calls still exits 0"
    );
    assert!(
        signalled.elapsed() < std::time::Duration::from_secs(15),
        "the exit waited for the upstream answers ({:?})",
        signalled.elapsed()
    );
}

/// The REST front door drains with the gRPC listener: from the first moment after SIGTERM a new REST call is 503 in
/// Pinecone's data-plane error shape, the REST calls in progress finish with their answers, then the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_calls_in_progress_finish_and_new_ones_are_refused_during_the_drain() {
    let (emulator, gw) = emulator_and_gateway(&["--rest-listen", "127.0.0.1:0"]).await;
    let stats = format!("http://{}/describe_index_stats", gw.rest);
    let http = reqwest::Client::new();
    assert_eq!(http.get(&stats).send().await.unwrap().status(), 200);
    emulator.set_faults(Faults {
        delay_ms: 3000,
        ..Default::default()
    });
    let mut calls = Vec::new();
    for _ in 0..3 {
        let (http, stats) = (http.clone(), stats.clone());
        calls.push(tokio::spawn(async move {
            let r = http.get(&stats).send().await?;
            Ok::<_, reqwest::Error>((r.status().as_u16(), r.text().await?))
        }));
    }
    emulator
        .wait_until(|e| e.count(INDEX, "describe_index_stats") >= 4)
        .await;
    gw.signal("-TERM");
    gw.wait_for_log("draining: health NOT_SERVING");
    let late = http.get(&stats).send().await.unwrap();
    assert_eq!(late.status(), 503);
    let body: serde_json::Value = late.json().await.unwrap();
    assert_eq!(body["code"], 14, "UNAVAILABLE: {body}");
    assert!(
        body["message"].as_str().unwrap().contains("shutting down"),
        "{body}"
    );
    assert!(calls.iter().all(|c| !c.is_finished()));
    for c in calls {
        let (status, body) = c.await.unwrap().unwrap();
        assert_eq!(status, 200, "a REST call in progress was cut: {body}");
    }
    assert_eq!(gw.exit().await.0, Some(0));
}
