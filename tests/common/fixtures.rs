//! Pinecone's answers as files (tests/fixtures/pinecone/), independent of both the gateway's decoder and the
//! emulator: each case names the operation, the HTTP status and body Pinecone (or a proxy in front of it) sends, and
//! the gRPC answer a caller must get.

use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;

#[derive(Deserialize, Debug, Clone)]
pub struct Case {
    pub name: String,
    pub operation: String,
    pub status: u16,
    /// A file under `bodies/`.
    pub body: String,
    #[serde(default)]
    pub retry_after: Option<String>,
    /// The index a data-plane call names (default `docs`).
    #[serde(default)]
    pub index: Option<String>,
    /// What describe index answers when the gateway looks that index's host up (a file under `bodies/`).
    #[serde(default)]
    pub index_answer: Option<String>,
    /// False when the case needs the whole request path (a host lookup), not only the decoder.
    #[serde(default = "yes")]
    pub decoder: bool,
    #[serde(default)]
    pub source: Option<String>,
    pub expect: Expect,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Debug, Clone)]
pub struct Expect {
    /// A `tonic::Code` name (`OK`, `NotFound`, …).
    pub code: String,
    /// The response message in the protobuf JSON mapping, when `code` is OK.
    #[serde(default)]
    pub response: Option<Value>,
    /// Parts of the status message, otherwise.
    #[serde(default)]
    pub message: Vec<String>,
    #[serde(default)]
    pub pushback_ms: Option<u64>,
    /// The status must carry no retry advice (neither `grpc-retry-pushback-ms` nor a RetryInfo detail).
    #[serde(default)]
    pub no_retry_advice: bool,
}

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pinecone")
}

pub fn cases() -> Vec<Case> {
    #[derive(Deserialize)]
    struct File {
        cases: Vec<Case>,
    }
    let text = std::fs::read_to_string(dir().join("cases.json")).unwrap();
    serde_json::from_str::<File>(&text).unwrap().cases
}

pub fn body(file: &str) -> Vec<u8> {
    std::fs::read(dir().join("bodies").join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The REST request the gateway must send for an operation (the calls in [`call`] name index `docs`, namespace
/// `ns1`, backup `bkp_1`, restore job `job_1`).
pub fn request_of(operation: &str) -> (&'static str, &'static str) {
    match operation {
        "upsert" => ("POST", "/vectors/upsert"),
        "fetch" => ("GET", "/vectors/fetch"),
        "fetch_by_metadata" => ("POST", "/vectors/fetch_by_metadata"),
        "delete" => ("POST", "/vectors/delete"),
        "list" => ("GET", "/vectors/list"),
        "query" => ("POST", "/query"),
        "update" => ("POST", "/vectors/update"),
        "describe_index_stats" => ("POST", "/describe_index_stats"),
        "list_namespaces" => ("GET", "/namespaces"),
        "describe_namespace" => ("GET", "/namespaces/ns1"),
        "create_namespace" => ("POST", "/namespaces"),
        "delete_namespace" => ("DELETE", "/namespaces/ns1"),
        "describe_index" => ("GET", "/indexes/docs"),
        "list_indexes" => ("GET", "/indexes"),
        "create_backup" => ("POST", "/indexes/docs/backups"),
        "describe_backup" => ("GET", "/backups/bkp_1"),
        "list_index_backups" => ("GET", "/indexes/docs/backups"),
        "list_project_backups" => ("GET", "/backups"),
        "delete_backup" => ("DELETE", "/backups/bkp_1"),
        "create_index_from_backup" => ("POST", "/backups/bkp_1/create-index"),
        "describe_restore_job" => ("GET", "/restore-jobs/job_1"),
        "list_restore_jobs" => ("GET", "/restore-jobs"),
        other => panic!("no request for operation {other}"),
    }
}

/// JSON equality with numbers compared as numbers (a float of the proto is an f32: compared to 6 digits).
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Checks a gRPC answer (the response as JSON, or the status) against a case.
pub fn check(case: &Case, answer: Result<Value, tonic::Status>) {
    let name = &case.name;
    match answer {
        Ok(got) => {
            assert_eq!(case.expect.code, "OK", "{name}: answered OK with {got}");
            let want = case.expect.response.as_ref().unwrap();
            assert!(same_json(&got, want), "{name}:\n got  {got}\n want {want}");
        }
        Err(status) => {
            assert_eq!(
                format!("{:?}", status.code()),
                case.expect.code,
                "{name}: {status:?}"
            );
            for part in &case.expect.message {
                assert!(
                    status.message().contains(part.as_str()),
                    "{name}: {:?} lacks {part:?}",
                    status.message()
                );
            }
            if case.expect.no_retry_advice {
                assert!(
                    status.metadata().get("grpc-retry-pushback-ms").is_none()
                        && status.details().is_empty(),
                    "{name}: retry advice on {status:?}"
                );
            }
            if let Some(ms) = case.expect.pushback_ms {
                assert_eq!(
                    status
                        .metadata()
                        .get("grpc-retry-pushback-ms")
                        .and_then(|v| v.to_str().ok()),
                    Some(ms.to_string().as_str()),
                    "{name}: retry advice"
                );
            }
        }
    }
}
