//! `upstream.api_version = "2026-07"` against the emulator answering in 2026-07's shapes: an index described without
//! top-level dimension, metric or spec (the dimension check reads `schema.fields._values`), backups carrying the
//! index's schema and, once their index is deleted, `source_index_deleted_at`, listed with `include_deleted`; a
//! document index refused by the vectors API with FAILED_PRECONDITION naming it, before anything is sent. On an older
//! API version, `include_deleted` is INVALID_ARGUMENT and nothing is sent.
mod common;
use common::*;
use pinecone_gateway::pb::gateway as g;
use pinecone_gateway::pb::pinecone as p;

const V7: &str = "[upstream]\napi_version = \"2026-07\"\n";

async fn env(config: &str) -> Env {
    Env::start_with(EnvOptions {
        config: Some(config.into()),
        ..Default::default()
    })
    .await
}

fn field<'a>(
    s: &'a Option<pbjson_types::Struct>,
    path: &[&str],
) -> Option<&'a pbjson_types::Value> {
    let mut v = s.as_ref()?.fields.get(path[0])?;
    for key in &path[1..] {
        match &v.kind {
            Some(pbjson_types::value::Kind::StructValue(s)) => v = s.fields.get(*key)?,
            _ => return None,
        }
    }
    Some(v)
}

fn upsert(values: Vec<f32>) -> p::UpsertRequest {
    p::UpsertRequest {
        vectors: vec![p::Vector {
            id: "a".into(),
            values,
            ..Default::default()
        }],
        namespace: "ns".into(),
    }
}

#[tokio::test]
async fn an_index_is_described_from_its_schema_and_the_dimension_check_uses_it() {
    let env = env(V7).await;
    let index = env
        .backups()
        .describe_index(g::DescribeIndexRequest { name: INDEX.into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(env.emulator.last_api_version(), "2026-07");
    assert_eq!(
        (
            index.dimension,
            index.metric.as_str(),
            index.vector_type.as_str()
        ),
        (Some(4), "cosine", "dense")
    );
    assert_eq!(
        (index.cloud.as_deref(), index.region.as_deref()),
        (Some("aws"), Some("us-east-1"))
    );
    assert!(field(&index.deployment, &["deployment_type"]).is_some());
    assert!(field(&index.schema, &["fields", "_values", "dimension"]).is_some());
    assert!(field(&index.read_capacity, &["mode"]).is_some());

    let mut c = env.vectors();
    c.upsert(req(upsert(vec![1.0, 0.0, 0.0, 0.0])))
        .await
        .unwrap();
    let upserts = env.emulator.count(INDEX, "upsert");
    let e = c
        .upsert(req(upsert(vec![1.0, 0.0, 0.0])))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("dimension 4"), "{}", e.message());
    assert_eq!(
        env.emulator.count(INDEX, "upsert"),
        upserts,
        "nothing was sent"
    );
}

#[tokio::test]
async fn backups_carry_the_schema_and_the_deleted_source_is_listed_when_asked() {
    let env = env(V7).await;
    env.emulator
        .create_index("gone", 4, "dotproduct")
        .await
        .unwrap();
    let mut b = env.backups();
    let created = b
        .create_backup(g::CreateBackupRequest {
            index_name: "gone".into(),
            name: Some("before-delete".into()),
            description: None,
        })
        .await
        .expect("2026-07 answers a created backup with 200")
        .into_inner();
    assert_eq!(
        (created.dimension, created.metric.as_deref()),
        (Some(4), Some("dotproduct")),
        "read from the backup's schema"
    );
    assert!(field(&created.schema, &["fields", "_values"]).is_some());
    assert_eq!(created.source_index_deleted_at, None);

    let deleted = reqwest::Client::new()
        .delete(format!("{}/indexes/gone", env.emulator.url()))
        .header("Api-Key", KEY)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    let list = |include_deleted: Option<bool>| g::ListIndexBackupsRequest {
        index_name: "gone".into(),
        limit: None,
        pagination_token: None,
        include_deleted,
    };
    let e = b.list_index_backups(list(None)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    let page = b
        .list_index_backups(list(Some(true)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.backups.len(), 1);
    assert_eq!(
        page.next_pagination_token, None,
        "pagination: null on the last page"
    );
    assert!(page.backups[0].source_index_deleted_at.is_some());
    let described = b
        .describe_backup(g::DescribeBackupRequest {
            backup_id: created.backup_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(described.source_index_deleted_at.is_some());
}

#[tokio::test]
async fn include_deleted_needs_api_2026_07() {
    let env = env("").await;
    let before = env.emulator.total_requests();
    let e = env
        .backups()
        .list_index_backups(g::ListIndexBackupsRequest {
            index_name: INDEX.into(),
            limit: None,
            pagination_token: None,
            include_deleted: Some(true),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(
        e.message().contains("include_deleted") && e.message().contains("2026-07"),
        "{}",
        e.message()
    );
    assert_eq!(env.emulator.total_requests(), before, "nothing was sent");
}

/// A 2026-07 document index (its dense field is not `_values`): the vectors API is refused with FAILED_PRECONDITION
/// naming the index, before anything is sent when the gateway has described it, and by Pinecone (passed on as
/// FAILED_PRECONDITION) when its host is configured; its stats still work.
#[tokio::test]
async fn a_document_index_refuses_the_vectors_api() {
    let env = env(V7).await;
    let host = env
        .emulator
        .create_document_index("articles", 4, "cosine")
        .await
        .unwrap();
    let mut c = env.vectors();
    c.describe_index_stats(req_for("articles", p::DescribeIndexStatsRequest::default()))
        .await
        .unwrap();
    let e = c
        .upsert(req_for("articles", upsert(vec![1.0, 0.0, 0.0, 0.0])))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message().contains("`articles`") && e.message().contains("document index"),
        "{}",
        e.message()
    );
    assert_eq!(
        env.emulator.count("articles", "upsert"),
        0,
        "nothing was sent"
    );

    let configured = env_with_host(&env, &host).await;
    let e = configured
        .vectors()
        .query(req_for(
            "articles",
            p::QueryRequest {
                top_k: 1,
                vector: vec![1.0, 0.0, 0.0, 0.0],
                namespace: "ns".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("articles"), "{}", e.message());
}

/// A second gateway on the same emulator, with `articles`' host configured (no describe index).
async fn env_with_host(env: &Env, host: &str) -> Env {
    let _ = env;
    Env::start_with(EnvOptions {
        config: Some(format!(
            "{V7}[indexes.articles]\nhost = \"http://{host}\"\n[retry]\nmax_attempts = 1\n"
        )),
        ..Default::default()
    })
    .await
}
