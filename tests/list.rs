//! List IDs: prefix, limit, a full walk over more than 250 IDs, and the streaming walk.
mod common;
use common::*;
use pinecone_gateway::pb::gateway as g;
use pinecone_gateway::pb::pinecone as p;

#[tokio::test]
async fn prefix_and_limit() {
    let env = Env::start().await;
    env.seed("ns", "alpha", 5).await;
    env.seed("ns", "beta", 5).await;
    let r = env
        .vectors()
        .list(req(p::ListRequest {
            prefix: Some("beta".into()),
            limit: Some(3),
            pagination_token: None,
            namespace: "ns".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = r.vectors.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["beta-0000", "beta-0001", "beta-0002"]);
    assert!(r.pagination.is_some());
    assert_eq!(r.namespace, "ns");
}

#[tokio::test]
async fn manual_walk_over_more_than_250_ids() {
    let env = Env::start().await;
    env.seed("ns", "id", 260).await;
    let mut ids = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let r = env
            .vectors()
            .list(req(p::ListRequest {
                prefix: None,
                limit: None,
                pagination_token: token.take(),
                namespace: "ns".into(),
            }))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        ids.extend(r.vectors.into_iter().map(|v| v.id));
        match r.pagination {
            Some(p) => token = Some(p.next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = (0..260).map(|i| format!("id-{i:04}")).collect();
    assert_eq!(ids, want);
}

#[tokio::test]
async fn streaming_walk_returns_every_id_in_order() {
    let env = Env::start().await;
    env.seed("ns", "id", 260).await;
    env.seed("ns", "other", 3).await;
    let calls_before = env.emulator.count(INDEX, "list");
    let mut stream = env
        .lists()
        .list_all(req(g::ListAllRequest {
            namespace: "ns".into(),
            prefix: Some("id".into()),
            page_size: Some(100),
        }))
        .await
        .unwrap()
        .into_inner();
    let mut ids = Vec::new();
    let mut messages = 0;
    while let Some(page) = stream.message().await.unwrap() {
        messages += 1;
        ids.extend(page.ids);
    }
    let want: Vec<String> = (0..260).map(|i| format!("id-{i:04}")).collect();
    assert_eq!(ids, want);
    assert_eq!(messages, 3);
    assert_eq!(env.emulator.count(INDEX, "list") - calls_before, 3);
}

#[tokio::test]
async fn streaming_walk_of_an_empty_namespace_ends_cleanly() {
    let env = Env::start().await;
    let mut stream = env
        .lists()
        .list_all(req(g::ListAllRequest {
            namespace: "nothing".into(),
            prefix: None,
            page_size: None,
        }))
        .await
        .unwrap()
        .into_inner();
    let page = stream.message().await.unwrap().unwrap();
    assert!(page.ids.is_empty());
    assert!(stream.message().await.unwrap().is_none());
}
