//! Upsert, query (dense, by id, sparse-aware, filtered), update by id and by filter, and index stats.
mod common;
use common::*;
use pinecone_gateway::pb::pinecone as p;

fn v(id: &str, values: [f32; 4], genre: &str) -> p::Vector {
    p::Vector {
        id: id.into(),
        values: values.to_vec(),
        sparse_values: None,
        metadata: Some(meta(&[("genre", json_str(genre))])),
    }
}

async fn seed(env: &Env) {
    let vectors = vec![
        v("a", [1.0, 0.0, 0.0, 0.0], "drama"),
        v("b", [0.9, 0.1, 0.0, 0.0], "comedy"),
        v("c", [0.0, 1.0, 0.0, 0.0], "drama"),
    ];
    let r = env
        .vectors()
        .upsert(req(p::UpsertRequest {
            vectors,
            namespace: "q".into(),
        }))
        .await
        .unwrap();
    assert_eq!(r.into_inner().upserted_count, 3);
}

#[tokio::test]
async fn query_ranks_by_cosine_and_honours_filter_and_includes() {
    let env = Env::start().await;
    seed(&env).await;
    let r = env
        .vectors()
        .query(req(p::QueryRequest {
            namespace: "q".into(),
            top_k: 2,
            vector: vec![1.0, 0.0, 0.0, 0.0],
            include_metadata: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = r.matches.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert!((r.matches[0].score - 1.0).abs() < 1e-6);
    assert!(r.matches[0].values.is_empty());
    assert_eq!(
        r.matches[0].metadata.as_ref().unwrap().fields["genre"],
        json_str("drama")
    );
    assert_eq!(r.namespace, "q");
    assert!(r.usage.unwrap().read_units.is_some());

    let r = env
        .vectors()
        .query(req(p::QueryRequest {
            namespace: "q".into(),
            top_k: 5,
            id: "a".into(),
            filter: Some(meta(&[("genre", json_str("drama"))])),
            include_values: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = r.matches.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["a", "c"]);
    assert_eq!(r.matches[1].values, vec![0.0, 1.0, 0.0, 0.0]);
    assert!(r.matches[1].metadata.is_none());
}

#[tokio::test]
async fn update_by_id_and_by_filter() {
    let env = Env::start().await;
    seed(&env).await;
    let r = env
        .vectors()
        .update(req(p::UpdateRequest {
            id: "c".into(),
            values: vec![0.0, 0.0, 1.0, 0.0],
            set_metadata: Some(meta(&[("seen", json_num(1.0))])),
            namespace: "q".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.matched_records, Some(1));
    let f = env
        .vectors()
        .fetch(req(p::FetchRequest {
            ids: vec!["c".into()],
            namespace: "q".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let c = &f.vectors["c"];
    assert_eq!(c.values, vec![0.0, 0.0, 1.0, 0.0]);
    let m = &c.metadata.as_ref().unwrap().fields;
    assert_eq!(m["seen"], json_num(1.0));
    assert_eq!(m["genre"], json_str("drama"));

    let dry = env
        .vectors()
        .update(req(p::UpdateRequest {
            filter: Some(meta(&[("genre", json_str("drama"))])),
            set_metadata: Some(meta(&[("flag", json_str("x"))])),
            dry_run: Some(true),
            namespace: "q".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dry.matched_records, Some(2));
    let r = env
        .vectors()
        .update(req(p::UpdateRequest {
            filter: Some(meta(&[("genre", json_str("drama"))])),
            set_metadata: Some(meta(&[("flag", json_str("x"))])),
            namespace: "q".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.matched_records, Some(2));
    let flagged = env
        .vectors()
        .fetch_by_metadata(req(p::FetchByMetadataRequest {
            namespace: "q".into(),
            filter: Some(meta(&[("flag", json_str("x"))])),
            limit: None,
            pagination_token: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(flagged.vectors.len(), 2);
}

#[tokio::test]
async fn stats_report_every_namespace() {
    let env = Env::start().await;
    seed(&env).await;
    env.seed("", "d", 2).await;
    let s = env
        .vectors()
        .describe_index_stats(req(p::DescribeIndexStatsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.total_vector_count, 5);
    assert_eq!(s.dimension, Some(4));
    assert_eq!(s.metric.as_deref(), Some("cosine"));
    assert_eq!(s.namespaces["q"].vector_count, 3);
    assert_eq!(s.namespaces[""].vector_count, 2);
    let filtered = env
        .vectors()
        .describe_index_stats(req(p::DescribeIndexStatsRequest {
            filter: Some(meta(&[("genre", json_str("comedy"))])),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(filtered.total_vector_count, 1);
}

#[tokio::test]
async fn upsert_overwrites_and_empty_metadata_means_none() {
    let env = Env::start().await;
    let with_empty = p::Vector {
        id: "x".into(),
        values: vec![1.0, 2.0, 3.0, 4.0],
        sparse_values: None,
        metadata: Some(pbjson_types::Struct::default()),
    };
    env.vectors()
        .upsert(req(p::UpsertRequest {
            vectors: vec![with_empty.clone()],
            namespace: "".into(),
        }))
        .await
        .unwrap();
    env.vectors()
        .upsert(req(p::UpsertRequest {
            vectors: vec![with_empty],
            namespace: "".into(),
        }))
        .await
        .unwrap();
    let f = env
        .vectors()
        .fetch(req(p::FetchRequest {
            ids: vec!["x".into()],
            namespace: "".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(f.vectors["x"].metadata.is_none());
    let s = env
        .vectors()
        .describe_index_stats(req(p::DescribeIndexStatsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.total_vector_count, 1);
}
