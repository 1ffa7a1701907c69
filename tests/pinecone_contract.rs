//! The contract with Pinecone, checked against its answers as files (tests/fixtures/pinecone/, see its README),
//! not against the emulator: every shape Pinecone documents or is known to send, for every operation the gateway
//! calls, and error bodies from either plane or from a proxy in front of it.
//!
//! 1. Each answer through the gateway's decoder and error map, as the gRPC answer a caller gets.
//! 2. Each answer served by a tiny HTTP server in front of the real gateway binary, which must send the request the
//!    operation calls for and answer the caller as in (1).
mod common;
use common::fixtures::{self, Case};
use pinecone_gateway::api::convert as cv;
use pinecone_gateway::api::{GatewayError, status::to_status};
use pinecone_gateway::pb::gateway as g;
use pinecone_gateway::pb::pinecone as p;
use pinecone_gateway::stack::CallError;
use pinecone_gateway::upstream::{Op, Reply, decode_answer};
use pinecone_gateway::wire::control as c;
use pinecone_gateway::wire::upsert::UpsertBody;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn op_of(operation: &str) -> Op {
    match operation {
        "upsert" => Op::Upsert(UpsertBody::encode(&Default::default())),
        "fetch" => Op::Fetch {
            ids: vec!["a".into()],
            namespace: "ns1".into(),
        },
        "fetch_by_metadata" => Op::FetchByMetadata(Default::default()),
        "delete" => Op::Delete(Default::default()),
        "list" => Op::List(Default::default()),
        "query" => Op::Query(Default::default()),
        "update" => Op::Update(Default::default()),
        "describe_index_stats" => Op::DescribeIndexStats(Default::default()),
        "list_namespaces" => Op::ListNamespaces(Default::default()),
        "describe_namespace" => Op::DescribeNamespace("ns1".into()),
        "create_namespace" => Op::CreateNamespace(Default::default()),
        "delete_namespace" => Op::DeleteNamespace("ns1".into()),
        "describe_index" => Op::DescribeIndex,
        "list_indexes" => Op::ListIndexes,
        "create_backup" => Op::CreateBackup(Default::default()),
        "describe_backup" => Op::DescribeBackup("bkp_1".into()),
        "list_index_backups" => Op::ListIndexBackups(Default::default()),
        "list_project_backups" => Op::ListProjectBackups(Default::default()),
        "delete_backup" => Op::DeleteBackup("bkp_1".into()),
        "create_index_from_backup" => Op::CreateIndexFromBackup {
            backup_id: "bkp_1".into(),
            request: c::CreateIndexFromBackupRequest::default(),
        },
        "describe_restore_job" => Op::DescribeRestoreJob("job_1".into()),
        "list_restore_jobs" => Op::ListRestoreJobs(Default::default()),
        other => panic!("unknown operation {other}"),
    }
}

fn json<T: serde::Serialize>(m: T) -> Value {
    serde_json::to_value(m).unwrap()
}

/// The gRPC message a reply becomes, as the API's handlers convert it.
fn message(operation: &str, reply: Reply) -> Value {
    match reply {
        Reply::Upsert(r) => json(r),
        Reply::Fetch(r) => json(r),
        Reply::FetchByMetadata(r) => json(r),
        Reply::List(r) => json(r),
        Reply::Query(r) => json(r),
        Reply::Update(r) => json(r),
        Reply::DescribeIndexStats(r) => json(r),
        Reply::ListNamespaces(r) => json(r),
        Reply::Namespace(r) => json(r),
        Reply::Empty if operation == "delete_backup" => json(g::DeleteBackupResponse {}),
        Reply::Empty => json(p::DeleteResponse {}),
        Reply::Index(i) => json(cv::index_from_wire(*i)),
        Reply::Indexes(l) => {
            let indexes: Vec<g::Index> = l.indexes.into_iter().map(cv::index_from_wire).collect();
            serde_json::json!({ "indexes": indexes })
        }
        Reply::Backup(b) => json(cv::backup_from_wire(b)),
        Reply::Backups(l) => json(cv::backups_page(l)),
        Reply::Restore(r) => json(cv::restore_from_wire(r)),
        Reply::RestoreJob(j) => json(cv::restore_job_from_wire(j)),
        Reply::RestoreJobs(l) => json(cv::restore_jobs_page(l)),
    }
}

#[test]
fn every_fixture_decodes_to_the_answer_a_caller_must_get() {
    let cases = fixtures::cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut checked = 0;
    for case in cases.iter().filter(|c| c.decoder) {
        let retry_after = case
            .retry_after
            .as_ref()
            .map(|s| Duration::from_secs(s.parse().unwrap()));
        let answer = decode_answer(
            &op_of(&case.operation),
            case.status,
            &fixtures::body(&case.body),
            retry_after,
        )
        .map(|reply| message(&case.operation, reply))
        .map_err(|e| to_status(GatewayError::Call(CallError::Upstream(e))));
        fixtures::check(case, answer);
        checked += 1;
    }
    // Every operation the gateway calls has at least one fixture.
    for operation in [
        "upsert",
        "fetch",
        "fetch_by_metadata",
        "delete",
        "list",
        "query",
        "update",
        "describe_index_stats",
        "list_namespaces",
        "describe_namespace",
        "create_namespace",
        "delete_namespace",
        "describe_index",
        "list_indexes",
        "create_backup",
        "describe_backup",
        "list_index_backups",
        "list_project_backups",
        "delete_backup",
        "create_index_from_backup",
        "describe_restore_job",
        "list_restore_jobs",
    ] {
        assert!(
            cases
                .iter()
                .any(|c| c.operation == operation && c.status < 300),
            "no answer fixture for {operation}"
        );
    }
    assert!(checked >= 60);
}

/// What the tiny Pinecone serves now, and what it received.
#[derive(Default)]
struct Stage {
    case: Option<Case>,
    addr: String,
    received: Vec<String>,
}

async fn tiny_pinecone(
    stage: Arc<Mutex<Stage>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let mut stage = stage.lock().unwrap();
    stage.received.push(format!("{method} {path}"));
    let case = stage.case.clone().unwrap();
    let with = |status: u16, body: Vec<u8>, retry_after: Option<&str>| {
        let mut resp = (axum::http::StatusCode::from_u16(status).unwrap(), body).into_response();
        resp.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        if let Some(ra) = retry_after {
            resp.headers_mut()
                .insert("retry-after", ra.parse().unwrap());
        }
        resp
    };
    let (want_method, want_path) = fixtures::request_of(&case.operation);
    if method == want_method && path == want_path {
        return with(
            case.status,
            fixtures::body(&case.body),
            case.retry_after.as_deref(),
        );
    }
    // The host lookup of a data-plane call: this server is the index's host too.
    if method == "GET" && path.starts_with("/indexes/") && case.operation != "describe_index" {
        let file = case.index_answer.as_deref().unwrap_or("index_ready.json");
        let body = String::from_utf8(fixtures::body(file))
            .unwrap()
            .replace("HOST", &stage.addr);
        return with(200, body.into_bytes(), None);
    }
    with(
        599,
        format!("unexpected request {method} {path}").into_bytes(),
        None,
    )
}

fn md<T>(msg: T, index: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("pinecone-index", index.parse().unwrap());
    r.set_timeout(Duration::from_secs(10));
    r
}

/// Makes the gRPC call of an operation, as a caller would.
async fn call(channel: tonic::transport::Channel, case: &Case) -> Result<Value, tonic::Status> {
    use g::backup_service_client::BackupServiceClient as B;
    use p::vector_service_client::VectorServiceClient as V;
    let index = case.index.as_deref().unwrap_or("docs");
    let mut v = V::new(channel.clone());
    let mut b = B::new(channel);
    let filter: pbjson_types::Struct = [("genre".to_string(), pbjson_types::Value::from("drama"))]
        .into_iter()
        .collect();
    let r = |x: Result<tonic::Response<Value>, tonic::Status>| x.map(|r| r.into_inner());
    macro_rules! v {
        ($method:ident, $msg:expr) => {
            r(v.$method(md($msg, index)).await.map(|x| x.map(json)))
        };
    }
    macro_rules! b {
        ($method:ident, $msg:expr) => {
            r(b.$method(md($msg, index)).await.map(|x| x.map(json)))
        };
    }
    // The dimension of the fixtures' indexes: the gateway refuses vectors of another length before sending them.
    const FIXTURE_DIMENSION: usize = 1536;
    match case.operation.as_str() {
        "upsert" => v!(
            upsert,
            p::UpsertRequest {
                vectors: vec![p::Vector {
                    id: "a".into(),
                    values: vec![0.5; FIXTURE_DIMENSION],
                    ..Default::default()
                }],
                namespace: "ns1".into(),
            }
        ),
        "fetch" => v!(
            fetch,
            p::FetchRequest {
                ids: vec!["doc1#chunk1".into()],
                namespace: "ns1".into(),
            }
        ),
        "fetch_by_metadata" => v!(
            fetch_by_metadata,
            p::FetchByMetadataRequest {
                namespace: "ns1".into(),
                filter: Some(filter),
                ..Default::default()
            }
        ),
        "delete" => v!(
            delete,
            p::DeleteRequest {
                ids: vec!["a".into()],
                namespace: "ns1".into(),
                ..Default::default()
            }
        ),
        "list" => v!(
            list,
            p::ListRequest {
                namespace: "ns1".into(),
                ..Default::default()
            }
        ),
        "query" => v!(
            query,
            p::QueryRequest {
                namespace: "ns1".into(),
                top_k: 3,
                vector: vec![0.5; FIXTURE_DIMENSION],
                ..Default::default()
            }
        ),
        "update" => v!(
            update,
            p::UpdateRequest {
                id: "a".into(),
                values: vec![0.5; FIXTURE_DIMENSION],
                namespace: "ns1".into(),
                ..Default::default()
            }
        ),
        "describe_index_stats" => v!(
            describe_index_stats,
            p::DescribeIndexStatsRequest::default()
        ),
        "list_namespaces" => v!(list_namespaces, p::ListNamespacesRequest::default()),
        "describe_namespace" => v!(
            describe_namespace,
            p::DescribeNamespaceRequest {
                namespace: "ns1".into()
            }
        ),
        "create_namespace" => v!(
            create_namespace,
            p::CreateNamespaceRequest {
                name: "fresh".into(),
                schema: None
            }
        ),
        "delete_namespace" => v!(
            delete_namespace,
            p::DeleteNamespaceRequest {
                namespace: "ns1".into()
            }
        ),
        "list_indexes" => unreachable!("list indexes has no gRPC method"),
        "describe_index" => b!(
            describe_index,
            g::DescribeIndexRequest {
                name: "docs".into()
            }
        ),
        "create_backup" => b!(
            create_backup,
            g::CreateBackupRequest {
                index_name: "docs".into(),
                name: Some("backup_2024_03_15".into()),
                description: None
            }
        ),
        "describe_backup" => b!(
            describe_backup,
            g::DescribeBackupRequest {
                backup_id: "bkp_1".into()
            }
        ),
        "list_index_backups" => b!(
            list_index_backups,
            g::ListIndexBackupsRequest {
                index_name: "docs".into(),
                limit: None,
                pagination_token: None,
                include_deleted: None,
            }
        ),
        "list_project_backups" => b!(
            list_project_backups,
            g::ListProjectBackupsRequest {
                limit: None,
                pagination_token: None
            }
        ),
        "delete_backup" => b!(
            delete_backup,
            g::DeleteBackupRequest {
                backup_id: "bkp_1".into()
            }
        ),
        "create_index_from_backup" => b!(
            create_index_from_backup,
            g::CreateIndexFromBackupRequest {
                backup_id: "bkp_1".into(),
                name: "restored".into(),
                tags: Default::default(),
                deletion_protection: None
            }
        ),
        "describe_restore_job" => b!(
            describe_restore_job,
            g::DescribeRestoreJobRequest {
                job_id: "job_1".into()
            }
        ),
        "list_restore_jobs" => b!(
            list_restore_jobs,
            g::ListRestoreJobsRequest {
                limit: None,
                pagination_token: None
            }
        ),
        other => panic!("unknown operation {other}"),
    }
}

#[tokio::test]
async fn every_fixture_served_to_the_real_binary_reaches_the_caller_as_it_should() {
    let stage = Arc::new(Mutex::new(Stage::default()));
    let app = axum::Router::new().fallback({
        let stage = stage.clone();
        move |req| tiny_pinecone(stage.clone(), req)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    stage.lock().unwrap().addr = addr.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Retries off, so each answer reaches the caller as Pinecone gave it.
    let config = std::env::temp_dir().join(format!("contract-{}.toml", std::process::id()));
    std::fs::write(&config, "[retry]\nmax_attempts = 1\n").unwrap();
    let gw = common::spawn_gateway(
        &[
            "--control-plane-url",
            &format!("http://{addr}"),
            "--config",
            config.to_str().unwrap(),
        ],
        &[("PINECONE_API_KEY", "contract-test-key")],
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", gw.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    // List indexes has no gRPC method (the REST front door serves it, in Pinecone's shape: tests/rest_control_plane.rs).
    for case in fixtures::cases()
        .into_iter()
        .filter(|c| c.operation != "list_indexes")
    {
        {
            let mut s = stage.lock().unwrap();
            s.case = Some(case.clone());
            s.received.clear();
        }
        let answer = call(channel.clone(), &case).await;
        fixtures::check(&case, answer);
        let received = stage.lock().unwrap().received.clone();
        let (method, path) = fixtures::request_of(&case.operation);
        let sent = received
            .iter()
            .filter(|r| **r == format!("{method} {path}"))
            .count();
        let want = if case.index_answer.is_some() { 0 } else { 1 };
        assert_eq!(sent, want, "{}: requests {received:?}", case.name);
    }
    let _ = std::fs::remove_file(config);
}
