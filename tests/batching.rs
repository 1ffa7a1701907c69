//! Calls larger than one Pinecone request are split into upstream batches and merged: fetch and delete of 2,500
//! IDs (a fetch split by the URL budget, and one of short IDs split by the 1,000-ID cap), an upsert of 2,500
//! vectors, and a split call whose batches partly fail.
mod common;
use common::*;
use pinecone_gateway::pb::pinecone as p;

#[tokio::test]
async fn a_2500_id_fetch_is_split_and_merged() {
    let env = Env::start().await;
    env.seed("ns", "b", 2000).await;
    let mut ids: Vec<String> = (0..2500).map(|i| format!("b-{i:04}")).collect();
    ids.extend(["b-0001".to_string(), "b-0002".to_string()]); // duplicates are sent once
    let before = env.emulator.count(INDEX, "fetch");
    let r = env
        .vectors()
        .fetch(req(p::FetchRequest {
            ids,
            namespace: "ns".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.vectors.len(),
        2000,
        "present IDs returned, missing ones omitted"
    );
    assert!(r.vectors.contains_key("b-1999") && !r.vectors.contains_key("b-2000"));
    assert_eq!(r.namespace, "ns");
    let batches = env.emulator.count(INDEX, "fetch") - before;
    // 2,500 IDs of 6 characters: "ids=b-0000&" is 11 bytes, 744 fit the default 8 KiB URL budget.
    assert_eq!(
        batches, 4,
        "split by the URL budget as well as by 1,000 IDs"
    );
    // The emulator charges Pinecone's 1 read unit per 10 records fetched, at least 1: the batches of 744, 744, 744
    // and 268 IDs found 744, 744, 512 and 0 records, so 75 + 75 + 52 + 1.
    assert_eq!(
        r.usage.unwrap().read_units,
        Some(75 + 75 + 52 + 1),
        "usage summed"
    );
}

/// IDs of two characters ("ids=Xy&" is 7 bytes: 1,170 would fit the 8 KiB URL budget), so Pinecone's 1,000-ID cap
/// is what splits the fetch: 1,000 + 1,000 + 500. The emulator refuses a fetch of more than 1,000 IDs, as Pinecone
/// does, so a gateway that let the URL budget alone decide would fail the call.
#[tokio::test]
async fn a_fetch_of_short_ids_is_split_by_the_1000_id_cap() {
    const CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let env = Env::start().await;
    let ids: Vec<String> = (0..2500)
        .map(|i| {
            let (a, b) = (CHARS[i / CHARS.len()], CHARS[i % CHARS.len()]);
            String::from_utf8(vec![a, b]).unwrap()
        })
        .collect();
    env.vectors()
        .upsert(req(p::UpsertRequest {
            vectors: ids
                .iter()
                .map(|id| p::Vector {
                    id: id.clone(),
                    values: vec![1.0, 0.0, 0.0, 0.0],
                    ..Default::default()
                })
                .collect(),
            namespace: "short".into(),
        }))
        .await
        .unwrap();
    let before = env.emulator.arrivals(INDEX, "fetch").len();
    let r = env
        .vectors()
        .fetch(req(p::FetchRequest {
            ids: ids.clone(),
            namespace: "short".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.vectors.len(), 2500);
    let batches = env.emulator.arrivals(INDEX, "fetch").len() - before;
    assert_eq!(batches, 3, "1,000 + 1,000 + 500 IDs");
}

#[tokio::test]
async fn a_2500_id_delete_is_split() {
    let env = Env::start().await;
    env.seed("ns", "d", 2500).await;
    let ids: Vec<String> = (0..2500).map(|i| format!("d-{i:04}")).collect();
    env.vectors()
        .delete(req(p::DeleteRequest {
            ids,
            namespace: "ns".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(env.emulator.count(INDEX, "delete"), 3);
    let stats = env
        .vectors()
        .describe_index_stats(req(p::DescribeIndexStatsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.namespaces.get("ns").map_or(0, |n| n.vector_count), 0);
}

#[tokio::test]
async fn a_2500_vector_upsert_is_split() {
    let env = Env::start().await;
    let vectors: Vec<p::Vector> = (0..2500)
        .map(|i| p::Vector {
            id: format!("u-{i}"),
            values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        })
        .collect();
    let r = env
        .vectors()
        .upsert(req(p::UpsertRequest {
            vectors,
            namespace: "ns".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.upserted_count, 2500);
    assert_eq!(env.emulator.count(INDEX, "upsert"), 3);
}

#[tokio::test]
async fn a_partly_failed_split_call_says_what_was_done() {
    // Pinecone allows 100 fetches per second per index; the gateway is told not to limit or retry and to send 10 IDs
    // a request, so 250 batches go out at once and Pinecone refuses some of them.
    let env = Env::start_with(EnvOptions {
        enforce_limits: true,
        config: Some(
            "[limits.rates.fetch]\nindex_requests_per_second = 0\n[retry]\nmax_attempts = 1\n\
             [batching]\nmax_ids = 10\nfetch_url_budget_bytes = 100000\n[coalescing]\nfetch = false\n"
                .into(),
        ),
        ..Default::default()
    })
    .await;
    let ids: Vec<String> = (0..2500).map(|i| format!("p-{i:04}")).collect();
    let e = env
        .vectors()
        .fetch(req(p::FetchRequest {
            ids,
            namespace: "".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    let m = e.message();
    assert!(m.contains(" of 2500 IDs done"), "{m}");
    assert!(m.contains("repeating the call is safe"), "{m}");
    assert!(m.contains("p-"), "names failed IDs: {m}");
    assert!(e.metadata().get("grpc-retry-pushback-ms").is_some());
    assert!(env.emulator.throttled(INDEX) >= 1);
}
