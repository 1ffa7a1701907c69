//! Coalescing end to end: many callers fetching one record each, against an emulator that enforces Pinecone's
//! limits, share upstream requests; each caller gets exactly its own record; Pinecone never answers 429. The gain
//! itself is measured by the benchmark (scenario d), not asserted here.
mod common;
use common::*;
use pinecone_gateway::pb::pinecone as p;
use std::time::Duration;

/// 200 concurrent callers, each fetching one record (every tenth one that does not exist); returns how many calls
/// succeeded.
async fn two_hundred_single_fetches(env: &Env) -> u64 {
    let mut calls = Vec::new();
    for c in 0..200 {
        let mut client = env.vectors();
        calls.push(tokio::spawn(async move {
            let id = if c % 10 == 0 {
                format!("absent-{c}")
            } else {
                format!("r-{c:04}")
            };
            let mut r = req(p::FetchRequest {
                ids: vec![id.clone()],
                namespace: "ns".into(),
            });
            r.set_timeout(Duration::from_secs(10));
            let resp = client.fetch(r).await.unwrap().into_inner();
            let got: Vec<&String> = resp.vectors.keys().collect();
            if c % 10 == 0 {
                assert!(got.is_empty(), "caller {c} got {got:?}");
            } else {
                assert_eq!(got, [&id], "caller {c} must get exactly its record");
                assert_eq!(resp.vectors[&id].values[1], c as f32);
            }
        }));
    }
    let mut served = 0;
    for c in calls {
        c.await.unwrap();
        served += 1;
    }
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_callers_share_upstream_fetches() {
    let env = Env::start_with(EnvOptions {
        enforce_limits: true,
        ..Default::default()
    })
    .await;
    env.seed("ns", "r", 200).await;
    let before = env.emulator.count(INDEX, "fetch");
    let served = two_hundred_single_fetches(&env).await;
    let upstream = env.emulator.count(INDEX, "fetch") - before;
    assert_eq!(served, 200);
    assert_eq!(env.emulator.throttled(INDEX), 0, "Pinecone answered 429");
    assert_within_limit(&env.emulator, "fetch", 100);
    // Without coalescing this is 200 requests (and two seconds of the 100/s limit); the burst sends up to ten alone
    // and the rest share requests.
    assert!(
        upstream < 100,
        "{upstream} upstream fetches for 200 callers"
    );

    // The metrics say how many callers and IDs each upstream request carried.
    let admin = env.gateway.as_ref().unwrap().admin_addr.unwrap();
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // One sample per upstream fetch (alone or shared); together they carried the 200 callers and their 200 IDs.
    let coalesced = metric(
        &text,
        "pinecone_gateway_coalesced_callers_count{operation=\"fetch\"}",
    );
    assert_eq!(coalesced, upstream as f64);
    let callers = metric(
        &text,
        "pinecone_gateway_coalesced_callers_sum{operation=\"fetch\"}",
    );
    let ids = metric(
        &text,
        "pinecone_gateway_coalesced_ids_sum{operation=\"fetch\"}",
    );
    assert_eq!(callers, 200.0);
    assert_eq!(ids, 200.0, "one distinct ID per caller");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switched_off_for_an_index_every_call_is_its_own_request() {
    let env = Env::start_with(EnvOptions {
        config: Some(format!("[indexes.{INDEX}.coalescing]\nfetch = false\n")),
        ..Default::default()
    })
    .await;
    env.seed("ns", "r", 200).await;
    let before = env.emulator.count(INDEX, "fetch");
    two_hundred_single_fetches(&env).await;
    assert_eq!(env.emulator.count(INDEX, "fetch") - before, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesced_deletes_delete_every_callers_ids() {
    let env = Env::start_with(EnvOptions {
        enforce_limits: true,
        ..Default::default()
    })
    .await;
    env.seed("ns", "r", 200).await;
    let before = env.emulator.count(INDEX, "delete");
    let mut calls = Vec::new();
    for c in 0..100 {
        let mut client = env.vectors();
        calls.push(tokio::spawn(async move {
            let mut r = req(p::DeleteRequest {
                ids: vec![format!("r-{:04}", 2 * c), format!("r-{:04}", 2 * c + 1)],
                namespace: "ns".into(),
                ..Default::default()
            });
            r.set_timeout(Duration::from_secs(10));
            client.delete(r).await.unwrap();
        }));
    }
    for c in calls {
        c.await.unwrap();
    }
    assert!(env.emulator.count(INDEX, "delete") - before < 100);
    assert_eq!(env.emulator.throttled(INDEX), 0, "Pinecone answered 429");
    assert_within_limit(&env.emulator, "delete", 100);
    let left = env
        .vectors()
        .describe_index_stats(req(p::DescribeIndexStatsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(left.total_vector_count, 0);
}
