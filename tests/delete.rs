//! Delete by IDs, by filter, every record of a namespace, and a whole namespace.
mod common;
use common::*;
use pinecone_gateway::pb::pinecone as p;

async fn count(env: &Env, ns: &str) -> u32 {
    let stats = env
        .vectors()
        .describe_index_stats(req(p::DescribeIndexStatsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    stats
        .namespaces
        .get(ns)
        .map(|s| s.vector_count)
        .unwrap_or(0)
}

#[tokio::test]
async fn delete_by_ids() {
    let env = Env::start().await;
    env.seed("ns", "d", 5).await;
    env.vectors()
        .delete(req(p::DeleteRequest {
            ids: vec!["d-0000".into(), "d-0003".into()],
            namespace: "ns".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(count(&env, "ns").await, 3);
    let r = env
        .vectors()
        .fetch(req(p::FetchRequest {
            ids: vec!["d-0000".into(), "d-0001".into()],
            namespace: "ns".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.vectors.keys().collect::<Vec<_>>(), vec!["d-0001"]);
}

#[tokio::test]
async fn delete_by_filter() {
    let env = Env::start().await;
    env.seed("ns", "d", 10).await;
    env.vectors()
        .delete(req(p::DeleteRequest {
            filter: Some(meta(&[("parity", json_str("even"))])),
            namespace: "ns".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(count(&env, "ns").await, 5);
}

#[tokio::test]
async fn delete_all_empties_one_namespace_only() {
    let env = Env::start().await;
    env.seed("a", "d", 4).await;
    env.seed("b", "d", 2).await;
    env.vectors()
        .delete(req(p::DeleteRequest {
            delete_all: true,
            namespace: "a".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(count(&env, "a").await, 0);
    assert_eq!(count(&env, "b").await, 2);
}

#[tokio::test]
async fn delete_namespace_removes_it() {
    let env = Env::start().await;
    env.seed("gone", "d", 3).await;
    env.vectors()
        .delete_namespace(req(p::DeleteNamespaceRequest {
            namespace: "gone".into(),
        }))
        .await
        .unwrap();
    let e = env
        .vectors()
        .describe_namespace(req(p::DescribeNamespaceRequest {
            namespace: "gone".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    assert_eq!(env.emulator.count(INDEX, "delete_namespace"), 1);
}
