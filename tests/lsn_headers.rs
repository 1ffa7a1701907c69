//! The headers Pinecone answers with, as files (tests/fixtures/pinecone/lsn_headers.json): each spelling of its log
//! sequence numbers (the freshness guide's `x-pinecone-request-lsn` / `x-pinecone-max-indexed-lsn`, the current SDK's
//! `x-pinecone-lsn-committed` / `x-pinecone-lsn-reconciled`), alone and together, is read as the fixture says; the
//! caller gets both under both spellings; Pinecone's `x-pinecone-request-id` reaches the caller's metadata and the
//! call's log line. Served by a tiny Pinecone of the test's own in front of the real gateway binary.
mod common;
use common::fixtures;
use pinecone_gateway::pb::pinecone as p;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug, serde::Deserialize)]
struct Case {
    name: String,
    operation: String,
    headers: BTreeMap<String, String>,
    committed: Option<u64>,
    reconciled: Option<u64>,
    #[serde(default)]
    request_id: Option<String>,
}

fn cases() -> Vec<Case> {
    #[derive(serde::Deserialize)]
    struct File {
        cases: Vec<Case>,
    }
    let text = std::fs::read_to_string(fixtures::dir().join("lsn_headers.json")).unwrap();
    let cases = serde_json::from_str::<File>(&text).unwrap().cases;
    assert!(cases.len() >= 8);
    cases
}

fn header_map(case: &Case) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in &case.headers {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn each_fixture_is_read_as_it_says() {
    for case in cases() {
        assert_eq!(
            pinecone_gateway::upstream::answer_lsns(&header_map(&case)),
            (case.committed, case.reconciled),
            "{}",
            case.name
        );
    }
}

async fn tiny_pinecone(
    stage: Arc<Mutex<(Option<Case>, String)>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (case, addr) = stage.lock().unwrap().clone();
    let case = case.unwrap();
    let (body, headers) = match (req.method().as_str(), req.uri().path()) {
        ("GET", "/indexes/docs") => (
            String::from_utf8(fixtures::body("index_ready.json"))
                .unwrap()
                .replace("HOST", &addr)
                .into_bytes(),
            http::HeaderMap::new(),
        ),
        ("POST", "/vectors/upsert") if case.operation == "upsert" => {
            (fixtures::body("upsert.json"), header_map(&case))
        }
        ("POST", "/query") if case.operation == "query" => {
            (fixtures::body("query_matches.json"), header_map(&case))
        }
        (m, path) => {
            return (
                http::StatusCode::from_u16(599).unwrap(),
                format!("unexpected {m} {path}"),
            )
                .into_response();
        }
    };
    let mut resp = (http::StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    resp.headers_mut().extend(headers);
    resp
}

fn md(md: &tonic::metadata::MetadataMap, key: &str) -> Option<String> {
    md.get(key).map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn each_fixture_reaches_the_caller_under_both_spellings_with_pinecones_request_id() {
    let stage = Arc::new(Mutex::new((None::<Case>, String::new())));
    let app = axum::Router::new().fallback({
        let stage = stage.clone();
        move |req| tiny_pinecone(stage.clone(), req)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    stage.lock().unwrap().1 = addr.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let gw = common::spawn_gateway(
        &["--control-plane-url", &format!("http://{addr}")],
        &[("PINECONE_API_KEY", "lsn-test-key")],
    );
    let mut client =
        p::vector_service_client::VectorServiceClient::connect(format!("http://{}", gw.addr))
            .await
            .unwrap();
    for case in cases() {
        stage.lock().unwrap().0 = Some(case.clone());
        let metadata = if case.operation == "upsert" {
            // Sparse values only: the fixture index's dimension (1536) does not apply.
            let mut r = tonic::Request::new(p::UpsertRequest {
                vectors: vec![p::Vector {
                    id: "s".into(),
                    sparse_values: Some(p::SparseValues {
                        indices: vec![1],
                        values: vec![0.5],
                    }),
                    ..Default::default()
                }],
                namespace: "ns".into(),
            });
            r.metadata_mut()
                .insert("pinecone-index", "docs".parse().unwrap());
            r.set_timeout(Duration::from_secs(10));
            client.upsert(r).await.unwrap().metadata().clone()
        } else {
            let mut r = tonic::Request::new(p::QueryRequest {
                id: "a".into(),
                top_k: 3,
                namespace: "ns".into(),
                ..Default::default()
            });
            r.metadata_mut()
                .insert("pinecone-index", "docs".parse().unwrap());
            r.set_timeout(Duration::from_secs(10));
            client.query(r).await.unwrap().metadata().clone()
        };
        let number = |k: &str| md(&metadata, k).map(|v| v.parse::<u64>().unwrap());
        assert_eq!(
            number("x-pinecone-lsn-committed"),
            case.committed,
            "{}",
            case.name
        );
        assert_eq!(
            number("x-pinecone-request-lsn"),
            case.committed,
            "{}",
            case.name
        );
        assert_eq!(
            number("x-pinecone-lsn-reconciled"),
            case.reconciled,
            "{}",
            case.name
        );
        assert_eq!(
            number("x-pinecone-max-indexed-lsn"),
            case.reconciled,
            "{}",
            case.name
        );
        assert_eq!(
            md(&metadata, "x-pinecone-request-id"),
            case.request_id,
            "{}",
            case.name
        );
        if let Some(id) = &case.request_id {
            gw.wait_for_log(&format!("\"pinecone_request_id\":\"{id}\""));
        }
    }
}
