//! Each operation class's default rate against the emulator's own enforcement of Pinecone's documented limits: a
//! burst of a few more calls than one second's limit, through a gateway with the default rates (coalescing off, so
//! that every call is its own request), all succeed by waiting their turn; the emulator answers none with 429 and
//! its arrivals never exceed the limit in any one-second window (the tests' strict counter).
mod common;
use common::*;
use pinecone_gateway::pb::pinecone as p;
use std::future::Future;
use std::pin::Pin;

type Call = Pin<Box<dyn Future<Output = Result<(), tonic::Status>> + Send>>;

/// Sends `n` calls made by `make` at once and checks the outcome against `limit` requests per second of `op`.
async fn burst(class: &str, op: &str, limit: usize, make: impl Fn(&Env, usize) -> Call) {
    let env = Env::start_with(EnvOptions {
        enforce_limits: true,
        config: Some("[coalescing]\nfetch = false\ndelete = false\n".into()),
        ..Default::default()
    })
    .await;
    // A record and a namespace for the operations that need one (upserts count in their own class).
    env.seed("ns", "x", 1).await;
    let before = env.emulator.arrivals(INDEX, op).len();
    let n = limit + 5;
    let calls: Vec<_> = (0..n).map(|i| tokio::spawn(make(&env, i))).collect();
    for c in calls {
        c.await.unwrap().unwrap_or_else(|e| {
            panic!("{class}: a call failed instead of waiting its turn: {e:?}")
        });
    }
    assert_eq!(
        env.emulator.arrivals(INDEX, op).len() - before,
        n,
        "{class}: one request per call"
    );
    assert_eq!(
        env.emulator.throttled(INDEX),
        0,
        "{class}: Pinecone answered 429"
    );
    assert_within_limit(&env.emulator, op, limit);
}

fn filter() -> Option<pbjson_types::Struct> {
    Some(meta(&[("n", json_num(1.0))]))
}

fn call<T: Send + 'static>(
    fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>> + Send + 'static,
) -> Call {
    Box::pin(async move { fut.await.map(|_| ()) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_class_keeps_to_pinecones_limit_by_default() {
    burst("upsert", "upsert", 100, |env, i| {
        let mut v = env.vectors();
        call(async move {
            v.upsert(req(p::UpsertRequest {
                vectors: vec![p::Vector {
                    id: format!("u{i}"),
                    values: vec![1.0, 0.0, 0.0, 0.0],
                    ..Default::default()
                }],
                namespace: "ns".into(),
            }))
            .await
        })
    })
    .await;
    burst("query", "query", 100, |env, _| {
        let mut v = env.vectors();
        call(async move {
            v.query(req(p::QueryRequest {
                top_k: 1,
                id: "x-0000".into(),
                namespace: "ns".into(),
                ..Default::default()
            }))
            .await
        })
    })
    .await;
    burst("fetch", "fetch", 100, |env, i| {
        let mut v = env.vectors();
        call(async move {
            v.fetch(req(p::FetchRequest {
                ids: vec![format!("f{i}")],
                namespace: "ns".into(),
            }))
            .await
        })
    })
    .await;
    burst("fetch_by_metadata", "fetch_by_metadata", 5, |env, _| {
        let mut v = env.vectors();
        call(async move {
            v.fetch_by_metadata(req(p::FetchByMetadataRequest {
                namespace: "ns".into(),
                filter: filter(),
                ..Default::default()
            }))
            .await
        })
    })
    .await;
    burst("list", "list", 200, |env, _| {
        let mut v = env.vectors();
        call(async move {
            v.list(req(p::ListRequest {
                namespace: "ns".into(),
                ..Default::default()
            }))
            .await
        })
    })
    .await;
    burst(
        "describe_index_stats",
        "describe_index_stats",
        100,
        |env, _| {
            let mut v = env.vectors();
            call(async move {
                v.describe_index_stats(req(p::DescribeIndexStatsRequest::default()))
                    .await
            })
        },
    )
    .await;
    burst("update", "update", 100, |env, _| {
        let mut v = env.vectors();
        call(async move {
            v.update(req(p::UpdateRequest {
                id: "x-0000".into(),
                set_metadata: Some(meta(&[("n", json_num(2.0))])),
                namespace: "ns".into(),
                ..Default::default()
            }))
            .await
        })
    })
    .await;
    burst("update_by_metadata", "update", 5, |env, _| {
        let mut v = env.vectors();
        call(async move {
            v.update(req(p::UpdateRequest {
                filter: filter(),
                set_metadata: Some(meta(&[("m", json_num(2.0))])),
                namespace: "ns".into(),
                ..Default::default()
            }))
            .await
        })
    })
    .await;
    burst("delete", "delete", 100, |env, i| {
        let mut v = env.vectors();
        call(async move {
            v.delete(req(p::DeleteRequest {
                ids: vec![format!("d{i}")],
                namespace: "ns".into(),
                ..Default::default()
            }))
            .await
        })
    })
    .await;
    burst("delete_by_metadata", "delete", 5, |env, _| {
        let mut v = env.vectors();
        call(async move {
            v.delete(req(p::DeleteRequest {
                filter: filter(),
                namespace: "ns".into(),
                ..Default::default()
            }))
            .await
        })
    })
    .await;
    burst("delete_all", "delete", 100, |env, _| {
        let mut v = env.vectors();
        call(async move {
            v.delete(req(p::DeleteRequest {
                delete_all: true,
                namespace: "ns".into(),
                ..Default::default()
            }))
            .await
        })
    })
    .await;
    burst("namespaces", "list_namespaces", 100, |env, _| {
        let mut v = env.vectors();
        call(async move {
            v.list_namespaces(req(p::ListNamespacesRequest::default()))
                .await
        })
    })
    .await;
}
