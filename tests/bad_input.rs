//! Every kind of bad input is refused with INVALID_ARGUMENT and a message naming the field and the limit, and
//! nothing reaches Pinecone.
mod common;
use common::*;
use pinecone_gateway::pb::gateway as g;
use pinecone_gateway::pb::pinecone as p;

fn vec4(id: &str) -> p::Vector {
    p::Vector {
        id: id.into(),
        values: vec![1.0, 2.0, 3.0, 4.0],
        ..Default::default()
    }
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("id-{i}")).collect()
}

/// Runs a call, and checks that it failed with INVALID_ARGUMENT naming `want`, and that the emulator saw nothing.
macro_rules! refused {
    ($env:expr, $call:expr, $want:expr) => {{
        let status = $call.await.expect_err("the call must be refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        let msg = status.message();
        for part in $want {
            assert!(msg.contains(part), "message {msg:?} lacks {part:?}");
        }
        assert_eq!(
            $env.emulator.total_requests(),
            0,
            "{:?} reached the emulator: {:?}",
            msg,
            $env.emulator.counts()
        );
    }};
}

#[tokio::test]
async fn ids_are_checked() {
    let env = Env::start().await;
    let mut v = env.vectors();
    refused!(
        env,
        v.fetch(req(p::FetchRequest {
            ids: vec![],
            namespace: "".into()
        })),
        ["ids", "at least one"]
    );
    refused!(
        env,
        v.fetch(req(p::FetchRequest {
            ids: vec!["a".into(), "".into()],
            namespace: "".into()
        })),
        ["ids[1]", "empty"]
    );
    refused!(
        env,
        v.fetch(req(p::FetchRequest {
            ids: vec!["x".repeat(513)],
            namespace: "".into()
        })),
        ["ids[0]", "512"]
    );
    refused!(
        env,
        v.fetch(req(p::FetchRequest {
            ids: vec!["a\0b".into()],
            namespace: "".into()
        })),
        ["ids[0]", "NUL"]
    );
    refused!(
        env,
        v.fetch(req(p::FetchRequest {
            ids: vec!["café".into()],
            namespace: "".into()
        })),
        ["ids[0]", "ASCII"]
    );
    refused!(
        env,
        v.fetch(req(p::FetchRequest {
            ids: ids(100_001),
            namespace: "".into()
        })),
        ["ids", "100001", "at most 100000"]
    );
    refused!(
        env,
        v.fetch(req(p::FetchRequest {
            ids: vec!["a".into()],
            namespace: "n".repeat(513)
        })),
        ["namespace", "512"]
    );
    refused!(
        env,
        v.delete(req(p::DeleteRequest {
            ids: ids(100_001),
            ..Default::default()
        })),
        ["ids", "100001", "at most 100000"]
    );
}

#[tokio::test]
async fn deletes_need_exactly_one_selector() {
    let env = Env::start().await;
    let mut v = env.vectors();
    refused!(
        env,
        v.delete(req(p::DeleteRequest::default())),
        ["exactly one of ids, filter and delete_all", "none"]
    );
    refused!(
        env,
        v.delete(req(p::DeleteRequest {
            ids: vec!["a".into()],
            delete_all: true,
            ..Default::default()
        })),
        ["ids and delete_all"]
    );
    refused!(
        env,
        v.delete(req(p::DeleteRequest {
            ids: vec!["a".into()],
            filter: Some(meta(&[("g", json_str("x"))])),
            ..Default::default()
        })),
        ["ids and filter"]
    );
    refused!(
        env,
        v.delete(req(p::DeleteRequest {
            filter: Some(pbjson_types::Struct::default()),
            ..Default::default()
        })),
        ["filter", "must not be empty"]
    );
}

#[tokio::test]
async fn filters_are_checked() {
    let env = Env::start().await;
    let mut v = env.vectors();
    refused!(
        env,
        v.delete(req(p::DeleteRequest {
            filter: Some(filter_op("g", "$regex", json_str("a.*"))),
            ..Default::default()
        })),
        ["filter.g.$regex", "unknown operator"]
    );
    refused!(
        env,
        v.query(req(p::QueryRequest {
            top_k: 1,
            vector: vec![1.0; 4],
            filter: Some(filter_op("year", "$gt", json_str("2020"))),
            ..Default::default()
        })),
        ["filter.year.$gt", "number"]
    );
    let many = json_list((0..10_001).map(|i| json_num(i as f64)).collect());
    refused!(
        env,
        v.fetch_by_metadata(req(p::FetchByMetadataRequest {
            filter: Some(filter_op("n", "$in", many.clone())),
            ..Default::default()
        })),
        ["filter.n.$in", "10001", "10000"]
    );
    refused!(
        env,
        v.update(req(p::UpdateRequest {
            filter: Some(filter_op("n", "$nin", many)),
            ..Default::default()
        })),
        ["filter.n.$nin", "10000"]
    );
    refused!(
        env,
        v.fetch_by_metadata(req(p::FetchByMetadataRequest {
            filter: Some(pbjson_types::Struct::default()),
            ..Default::default()
        })),
        ["filter", "must not be empty"]
    );
    refused!(
        env,
        v.fetch_by_metadata(req(p::FetchByMetadataRequest::default())),
        ["filter", "required"]
    );
    refused!(
        env,
        v.update(req(p::UpdateRequest {
            filter: Some(pbjson_types::Struct::default()),
            ..Default::default()
        })),
        ["filter", "must not be empty"]
    );
}

#[tokio::test]
async fn ranges_are_checked() {
    let env = Env::start().await;
    let mut v = env.vectors();
    refused!(
        env,
        v.list(req(p::ListRequest {
            limit: Some(0),
            ..Default::default()
        })),
        ["limit", "1 to 100"]
    );
    refused!(
        env,
        v.list(req(p::ListRequest {
            limit: Some(101),
            ..Default::default()
        })),
        ["limit", "101", "1 to 100"]
    );
    refused!(
        env,
        v.list_namespaces(req(p::ListNamespacesRequest {
            limit: Some(500),
            ..Default::default()
        })),
        ["limit", "1 to 100"]
    );
    refused!(
        env,
        v.fetch_by_metadata(req(p::FetchByMetadataRequest {
            filter: Some(meta(&[("g", json_str("x"))])),
            limit: Some(10_001),
            ..Default::default()
        })),
        ["limit", "1 to 10000"]
    );
    refused!(
        env,
        v.query(req(p::QueryRequest {
            top_k: 0,
            vector: vec![1.0; 4],
            ..Default::default()
        })),
        ["top_k", "1 to 10000"]
    );
    refused!(
        env,
        v.query(req(p::QueryRequest {
            top_k: 10_001,
            vector: vec![1.0; 4],
            ..Default::default()
        })),
        ["top_k", "10001"]
    );
    refused!(
        env,
        v.query(req(p::QueryRequest {
            top_k: 1,
            ..Default::default()
        })),
        ["exactly one of a vector", "id"]
    );
    refused!(
        env,
        v.query(req(p::QueryRequest {
            top_k: 1,
            vector: vec![1.0; 4],
            id: "a".into(),
            ..Default::default()
        })),
        ["exactly one of a vector"]
    );
    // Pinecone's deprecated multi-vector query: refused, saying what to send instead.
    refused!(
        env,
        v.query(req(p::QueryRequest {
            top_k: 1,
            queries: vec![p::QueryVector {
                values: vec![1.0; 4],
                top_k: 1,
                ..Default::default()
            }],
            ..Default::default()
        })),
        ["queries", "deprecated", "one Query per query vector"]
    );
}

#[tokio::test]
async fn upserts_are_checked() {
    let env = Env::start().await;
    let mut v = env.vectors();
    let up = |vectors: Vec<p::Vector>| {
        req(p::UpsertRequest {
            vectors,
            namespace: "".into(),
        })
    };
    refused!(env, v.upsert(up(vec![])), ["vectors", "at least one"]);
    refused!(
        env,
        v.upsert(up((0..100_001).map(|i| vec4(&format!("v{i}"))).collect())),
        ["vectors", "100001", "at most 100000"]
    );
    refused!(
        env,
        v.upsert(up(vec![vec4("ok"), vec4("")])),
        ["vectors[1].id", "empty"]
    );
    refused!(
        env,
        v.upsert(up(vec![p::Vector {
            id: "a".into(),
            ..Default::default()
        }])),
        ["vectors[0]", "values or sparse_values"]
    );
    let big_meta = meta(&[("text", json_str(&"x".repeat(41 * 1024)))]);
    refused!(
        env,
        v.upsert(up(vec![p::Vector {
            metadata: Some(big_meta),
            ..vec4("a")
        }])),
        ["vectors[0].metadata", "40960", "40 KB"]
    );
    let nested = meta(&[("o", json_obj(meta(&[("x", json_num(1.0))])))]);
    refused!(
        env,
        v.upsert(up(vec![p::Vector {
            metadata: Some(nested),
            ..vec4("a")
        }])),
        ["vectors[0].metadata.o"]
    );

    let sparse = p::Vector {
        sparse_values: Some(p::SparseValues {
            indices: vec![1, 2],
            values: vec![0.5],
        }),
        ..vec4("s")
    };
    refused!(
        env,
        v.upsert(up(vec![sparse])),
        ["vectors[0].sparse_values", "2 indices but 1 values"]
    );
    refused!(
        env,
        v.upsert(up(vec![p::Vector {
            values: vec![0.0; 20_001],
            ..vec4("d")
        }])),
        ["vectors[0].values", "20000"]
    );
}

#[tokio::test]
async fn namespaces_and_names_are_checked() {
    let env = Env::start().await;
    let mut v = env.vectors();
    refused!(
        env,
        v.create_namespace(req(p::CreateNamespaceRequest {
            name: "__default__".into(),
            schema: None
        })),
        ["name", "__default__"]
    );
    refused!(
        env,
        v.create_namespace(req(p::CreateNamespaceRequest {
            name: "".into(),
            schema: None
        })),
        ["name", "empty"]
    );
    for dots in [".", ".."] {
        refused!(
            env,
            v.describe_namespace(req(p::DescribeNamespaceRequest {
                namespace: dots.into()
            })),
            ["namespace", "relative path segment"]
        );
        refused!(
            env,
            v.delete_namespace(req(p::DeleteNamespaceRequest {
                namespace: dots.into()
            })),
            ["namespace", "relative path segment"]
        );
        refused!(
            env,
            v.create_namespace(req(p::CreateNamespaceRequest {
                name: dots.into(),
                schema: None
            })),
            ["name", "relative path segment"]
        );
        refused!(
            env,
            v.describe_index_stats(req_for(dots, p::DescribeIndexStatsRequest::default())),
            ["pinecone-index"]
        );
    }
    refused!(
        env,
        v.describe_index_stats(req_for(
            "Not_Valid",
            p::DescribeIndexStatsRequest::default()
        )),
        ["pinecone-index", "lowercase"]
    );
    refused!(
        env,
        v.describe_index_stats(req_for(
            &"a".repeat(46),
            p::DescribeIndexStatsRequest::default()
        )),
        ["pinecone-index", "45"]
    );
    refused!(
        env,
        v.update(req(p::UpdateRequest {
            id: "a".into(),
            filter: Some(meta(&[("g", json_str("x"))])),
            ..Default::default()
        })),
        ["either id or filter"]
    );
}

#[tokio::test]
async fn backup_calls_are_checked() {
    let env = Env::start().await;
    let mut b = env.backups();
    refused!(
        env,
        b.list_index_backups(g::ListIndexBackupsRequest {
            index_name: INDEX.into(),
            limit: Some(0),
            pagination_token: None,
            include_deleted: None,
        }),
        ["limit", "1 to 100"]
    );
    refused!(
        env,
        b.list_project_backups(g::ListProjectBackupsRequest {
            limit: Some(101),
            pagination_token: None
        }),
        ["limit", "101", "1 to 100"]
    );
    refused!(
        env,
        b.list_restore_jobs(g::ListRestoreJobsRequest {
            limit: Some(1000),
            pagination_token: None
        }),
        ["limit"]
    );
    refused!(
        env,
        b.create_backup(g::CreateBackupRequest {
            index_name: "Bad Index".into(),
            name: None,
            description: None
        }),
        ["index_name", "lowercase"]
    );
    for dots in [".", ".."] {
        refused!(
            env,
            b.describe_backup(g::DescribeBackupRequest {
                backup_id: dots.into()
            }),
            ["backup_id", "relative path segment"]
        );
        refused!(
            env,
            b.delete_backup(g::DeleteBackupRequest {
                backup_id: dots.into()
            }),
            ["backup_id", "relative path segment"]
        );
        refused!(
            env,
            b.describe_restore_job(g::DescribeRestoreJobRequest {
                job_id: dots.into()
            }),
            ["job_id", "relative path segment"]
        );
        refused!(
            env,
            b.create_index_from_backup(g::CreateIndexFromBackupRequest {
                backup_id: dots.into(),
                name: "ok".into(),
                tags: Default::default(),
                deletion_protection: None
            }),
            ["backup_id", "relative path segment"]
        );
    }
    refused!(
        env,
        b.create_index_from_backup(g::CreateIndexFromBackupRequest {
            backup_id: "b".into(),
            name: "x".repeat(46),
            tags: Default::default(),
            deletion_protection: None
        }),
        ["name", "45"]
    );
    refused!(
        env,
        b.create_index_from_backup(g::CreateIndexFromBackupRequest {
            backup_id: "b".into(),
            name: "ok".into(),
            tags: Default::default(),
            deletion_protection: Some("maybe".into())
        }),
        ["deletion_protection"]
    );
    refused!(
        env,
        b.describe_backup(g::DescribeBackupRequest {
            backup_id: "".into()
        }),
        ["backup_id", "empty"]
    );
    refused!(
        env,
        b.delete_backup(g::DeleteBackupRequest {
            backup_id: "a b".into()
        }),
        ["backup_id"]
    );
    refused!(
        env,
        b.describe_index(g::DescribeIndexRequest { name: "".into() }),
        ["name", "empty"]
    );
    let mut l = env.lists();
    refused!(
        env,
        l.list_all(req(g::ListAllRequest {
            namespace: "".into(),
            prefix: None,
            page_size: Some(0)
        })),
        ["page_size", "1 to 100"]
    );
}

/// Vectors of another length than the index's dimension (known from the index's description, which the gateway
/// reads to find its host) are refused before they are sent: upsert, query by vector, update of values. Records
/// without dense values and queries by ID are Pinecone's to judge.
#[tokio::test]
async fn vectors_of_another_dimension_are_refused_before_they_are_sent() {
    let env = Env::start().await;
    let mut c = env.vectors();
    // The first call looks the index up (its host and its dimension, 4).
    c.upsert(req(p::UpsertRequest {
        vectors: vec![vec4("ok")],
        namespace: "ns".into(),
    }))
    .await
    .unwrap();
    let upserts = env.emulator.count(INDEX, "upsert");
    let three = |id: &str| p::Vector {
        values: vec![1.0, 2.0, 3.0],
        ..vec4(id)
    };
    let e = c
        .upsert(req(p::UpsertRequest {
            vectors: vec![vec4("a"), three("short")],
            namespace: "ns".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    for part in ["`short`", "3 values", "dimension 4", "nothing was sent"] {
        assert!(e.message().contains(part), "{}", e.message());
    }
    let e = c
        .query(req(p::QueryRequest {
            top_k: 1,
            vector: vec![1.0; 5],
            namespace: "ns".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(
        e.message().starts_with("vector: 5 values"),
        "{}",
        e.message()
    );
    let e = c
        .update(req(p::UpdateRequest {
            id: "ok".into(),
            values: vec![1.0, 2.0],
            namespace: "ns".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert!(
        e.message().starts_with("values: 2 values"),
        "{}",
        e.message()
    );
    assert_eq!(
        env.emulator.count(INDEX, "upsert"),
        upserts,
        "nothing was sent"
    );
    assert_eq!(env.emulator.count(INDEX, "query"), 0);
    assert_eq!(env.emulator.count(INDEX, "update"), 0);
    // A query by ID carries no vector: it goes.
    c.query(req(p::QueryRequest {
        top_k: 1,
        id: "ok".into(),
        namespace: "ns".into(),
        ..Default::default()
    }))
    .await
    .unwrap();
}

/// An index deleted and recreated with another dimension: the dimension the gateway cached with its host would refuse
/// every correct vector until a restart. A vector the cached dimension refuses makes the gateway describe the index
/// once more (at most once a second per index) before refusing; the recreated index's vectors then go.
#[tokio::test]
async fn an_index_recreated_with_another_dimension_is_described_again() {
    let env = Env::start().await;
    let mut c = env.vectors();
    c.upsert(req(p::UpsertRequest {
        vectors: vec![vec4("ok")],
        namespace: "ns".into(),
    }))
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let deleted = http
        .delete(format!("{}/indexes/{INDEX}", env.emulator.url()))
        .header("Api-Key", KEY)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{deleted:?}");
    env.emulator.create_index(INDEX, 3, "cosine").await.unwrap();
    let three = p::Vector {
        values: vec![1.0, 2.0, 3.0],
        ..vec4("three")
    };
    // A lookup is rechecked at most once a second: this test waits that second out.
    tokio::time::sleep(pinecone_gateway::upstream::hosts::Hosts::RECHECK_EVERY).await;
    let described = env.emulator.count("control", "describe_index");
    c.upsert(req(p::UpsertRequest {
        vectors: vec![three.clone()],
        namespace: "ns".into(),
    }))
    .await
    .expect("the recreated index's dimension is 3");
    assert_eq!(
        env.emulator.count("control", "describe_index"),
        described + 1
    );
    // The old dimension is now the wrong one, and refused without another describe (looked up just now).
    let e = c
        .upsert(req(p::UpsertRequest {
            vectors: vec![vec4("four")],
            namespace: "ns".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("dimension 3"), "{}", e.message());
    assert_eq!(
        env.emulator.count("control", "describe_index"),
        described + 1
    );
}
