//! Fetch by metadata: filter, limit, and a full pagination walk.
mod common;
use common::*;
use pinecone_gateway::pb::pinecone as p;
use std::collections::BTreeSet;

#[tokio::test]
async fn filter_and_limit_select_records() {
    let env = Env::start().await;
    env.seed("ns", "r", 10).await;
    let r = env
        .vectors()
        .fetch_by_metadata(req(p::FetchByMetadataRequest {
            namespace: "ns".into(),
            filter: Some(filter_op("n", "$gte", json_num(6.0))),
            limit: Some(100),
            pagination_token: None,
        }))
        .await
        .unwrap()
        .into_inner();
    let ids: BTreeSet<_> = r.vectors.keys().cloned().collect();
    assert_eq!(
        ids,
        ["r-0006", "r-0007", "r-0008", "r-0009"]
            .map(String::from)
            .into()
    );
    assert!(r.pagination.is_none());
    assert_eq!(r.namespace, "ns");
    let r = env
        .vectors()
        .fetch_by_metadata(req(p::FetchByMetadataRequest {
            namespace: "ns".into(),
            filter: Some(meta(&[("parity", json_str("even"))])),
            limit: Some(2),
            pagination_token: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.vectors.len(), 2);
    assert!(r.pagination.is_some());
}

#[tokio::test]
async fn pagination_walks_every_match_once() {
    let env = Env::start().await;
    env.seed("ns", "r", 120).await;
    let mut seen = BTreeSet::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let r = env
            .vectors()
            .fetch_by_metadata(req(p::FetchByMetadataRequest {
                namespace: "ns".into(),
                filter: Some(meta(&[("parity", json_str("odd"))])),
                limit: Some(7),
                pagination_token: token.take(),
            }))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        for id in r.vectors.keys() {
            assert!(seen.insert(id.clone()), "{id} seen twice");
        }
        match r.pagination {
            Some(p) => token = Some(p.next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 60);
    assert_eq!(pages, 9);
    assert!(
        seen.iter()
            .all(|id| id[2..].parse::<u32>().unwrap() % 2 == 1)
    );
}
