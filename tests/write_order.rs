//! Writes to one ID keep the order the gateway accepted them in, through the real binary, while the first is held
//! back by a rate limit: an upsert waiting for its turn and then a delete of the same ID (the delete's class has
//! turns to spare and would otherwise overtake it) end with the record deleted; a waiting delete and then an upsert
//! end with it present. The order layer (src/stack/order) is what makes the second wait.
mod common;
use common::*;
use p::vector_service_client::VectorServiceClient;
use pinecone_gateway::emulator::{Emulator, EmulatorOptions};
use pinecone_gateway::pb::pinecone as p;
use std::time::Duration;
use tonic::transport::Channel;

async fn emulator() -> Emulator {
    let emulator = Emulator::start(
        "127.0.0.1:0".parse().unwrap(),
        EmulatorOptions {
            api_key: Some(KEY.into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    emulator.create_index(INDEX, 4, "cosine").await.unwrap();
    emulator
}

/// The gateway binary with one class limited to a call per second per namespace.
async fn gateway(
    emulator: &Emulator,
    limited: &str,
) -> (GatewayProcess, VectorServiceClient<Channel>) {
    let config =
        std::env::temp_dir().join(format!("pgw-order-{limited}-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        // Deletes are not coalesced here, so that a held-back delete waits in the limiter, where the test can see it
        // waiting (a coalesced one waits in its batch, below the order layer all the same).
        format!(
            "[limits.rates.{limited}]\nnamespace_requests_per_second = 1\n[coalescing]\ndelete = false\n"
        ),
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
        &[("PINECONE_API_KEY", KEY)],
    );
    let client = VectorServiceClient::connect(format!("http://{}", gw.addr))
        .await
        .unwrap();
    (gw, client)
}

fn upsert(id: &str, x: f32) -> tonic::Request<p::UpsertRequest> {
    timed(p::UpsertRequest {
        vectors: vec![p::Vector {
            id: id.into(),
            values: vec![x, 1.0, 0.0, 0.0],
            ..Default::default()
        }],
        namespace: "ns".into(),
    })
}

fn delete(id: &str) -> tonic::Request<p::DeleteRequest> {
    timed(p::DeleteRequest {
        ids: vec![id.into()],
        namespace: "ns".into(),
        ..Default::default()
    })
}

fn timed<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(Duration::from_secs(10));
    r
}

async fn fetched(c: &mut VectorServiceClient<Channel>, id: &str) -> Option<Vec<f32>> {
    let r = c
        .fetch(timed(p::FetchRequest {
            ids: vec![id.into()],
            namespace: "ns".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    r.vectors.get(id).map(|v| v.values.clone())
}

/// Waits until a call waits in the rate limiter's queue (the gauge goes up when it starts waiting).
async fn until_a_call_waits(gw: &GatewayProcess) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(&gw.admin).await;
        if metric(&text, "pinecone_gateway_rate_limit_waiting_calls") >= 1.0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no call waited in the limiter"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn order_waits(gw: &GatewayProcess) -> f64 {
    let text = scrape(&gw.admin).await;
    text.lines()
        .filter(|l| l.starts_with("pinecone_gateway_order_waits_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_after_a_held_back_upsert_of_the_same_id_ends_deleted() {
    let emulator = emulator().await;
    let (gw, mut c) = gateway(&emulator, "upsert").await;
    // The namespace's one upsert of this second: the next waits its turn, about a second.
    c.upsert(upsert("warm", 1.0)).await.unwrap();
    let mut held = c.clone();
    let first = tokio::spawn(async move { held.upsert(upsert("x", 2.0)).await });
    until_a_call_waits(&gw).await;
    c.delete(delete("x")).await.unwrap();
    first.await.unwrap().unwrap();
    assert_eq!(
        fetched(&mut c, "x").await,
        None,
        "the delete was accepted after the upsert, so the record ends deleted"
    );
    assert!(order_waits(&gw).await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_after_a_held_back_delete_of_the_same_id_ends_present() {
    let emulator = emulator().await;
    let (gw, mut c) = gateway(&emulator, "delete").await;
    c.upsert(upsert("x", 1.0)).await.unwrap();
    // The namespace's one delete of this second: the next waits its turn.
    c.delete(delete("warm")).await.unwrap();
    let mut held = c.clone();
    let first = tokio::spawn(async move { held.delete(delete("x")).await });
    until_a_call_waits(&gw).await;
    c.upsert(upsert("x", 3.0)).await.unwrap();
    first.await.unwrap().unwrap();
    assert_eq!(
        fetched(&mut c, "x").await,
        Some(vec![3.0, 1.0, 0.0, 0.0]),
        "the upsert was accepted after the delete, so the record ends present with its values"
    );
    assert!(order_waits(&gw).await >= 1.0);
}
