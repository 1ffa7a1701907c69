//! Graceful drain of the real binary: on SIGTERM, calls in progress finish with a status, new calls are refused,
//! and the process exits 0.
mod common;
use common::*;
use pinecone_gateway::emulator::faults::Faults;
use pinecone_gateway::emulator::{Emulator, EmulatorOptions};
use pinecone_gateway::pb::pinecone as p;
use pinecone_gateway::pb::pinecone::vector_service_client::VectorServiceClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_calls_in_progress_finish_then_exits_zero() {
    // Every upstream request takes 1.5 s, so calls are in progress when the signal comes.
    let emulator = Emulator::start(
        "127.0.0.1:0".parse().unwrap(),
        EmulatorOptions {
            faults: Faults {
                delay_ms: 1500,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    emulator.create_index(INDEX, 4, "cosine").await.unwrap();
    let gw = spawn_gateway(
        &[
            "--control-plane-url",
            &emulator.url(),
            "--default-index",
            INDEX,
        ],
        &[("RUST_LOG", "info")],
    );
    let addr = gw.addr.clone();
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    // Warm the host cache so the calls below are in their upstream request when the signal comes.
    VectorServiceClient::new(channel.clone())
        .describe_index_stats(p::DescribeIndexStatsRequest::default())
        .await
        .unwrap();
    let mut calls = Vec::new();
    for _ in 0..5 {
        let mut c = VectorServiceClient::new(channel.clone());
        calls.push(tokio::spawn(async move {
            c.describe_index_stats(p::DescribeIndexStatsRequest::default())
                .await
        }));
    }
    // Wait until all five reached Pinecone.
    emulator
        .wait_until(|e| e.count(INDEX, "describe_index_stats") >= 6)
        .await;
    gw.signal("-TERM");
    for c in calls {
        let r = c.await.unwrap();
        assert!(r.is_ok(), "a call in progress was cut: {r:?}");
    }
    // New calls are refused once draining (the listener is closed, or the call is refused).
    let late = VectorServiceClient::new(channel.clone())
        .describe_index_stats(p::DescribeIndexStatsRequest::default())
        .await;
    assert!(late.is_err(), "a call after SIGTERM was served");
    assert_eq!(gw.exit().await.0, Some(0));
}
