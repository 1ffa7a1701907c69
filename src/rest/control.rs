//! Pinecone's control plane as far as the REST front door serves it: describe and list indexes (each index's `host`
//! rewritten to this front door, so a client given only an index's name finds it behind the gateway), and backups
//! and restore jobs, each through the same BackupService code as gRPC callers (limits, caller tokens, retries, call
//! records). Answers take the shape of the API version the caller asks for (`X-Pinecone-Api-Version`: 2026-07's, or
//! 2025-10's for any other), errors the control plane's (`{"error": {"code", "message"}, "status"}`). Other
//! control-plane operations (create, configure, delete indexes, collections, imports) are refused, 501 naming them.

use super::{Api, Pairs, last, number, pairs, request};
use crate::pb::gateway as g;
use crate::pb::gateway::backup_service_server::BackupService;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;

type Answer = Result<tonic::Response<Value>, tonic::Status>;

/// The answer shapes a caller gets: API 2026-07's when it asks for 2026-07, else 2025-10's (which 2026-04 shares), and
/// the address it reached the gateway by, for the indexes' hosts.
struct Shape {
    v2026_07: bool,
    front: Option<String>,
}

impl Shape {
    fn of(headers: &HeaderMap) -> Shape {
        Shape {
            v2026_07: headers
                .get("x-pinecone-api-version")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() == "2026-07"),
            front: headers
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string),
        }
    }

    /// An index, its host on this front door (`http://HOST/indexes/NAME`) once Pinecone gives it one.
    fn index(&self, index: g::Index) -> Value {
        let host = match (&self.front, index.host.is_empty()) {
            (Some(front), false) => Some(format!("http://{front}/indexes/{}", index.name)),
            _ => None,
        };
        if self.v2026_07 {
            index_model_2026_07(index, host)
        } else {
            index_model(index, host)
        }
    }

    /// A backup: 2026-07 carries the index's `schema` instead of `dimension` and `metric`.
    fn backup(&self, b: g::Backup) -> Value {
        let schema = b.schema.as_ref().and_then(|s| serde_json::to_value(s).ok());
        let mut out = json!({
            "backup_id": b.backup_id,
            "source_index_name": b.source_index_name,
            "source_index_id": b.source_index_id,
            "name": b.name,
            "description": b.description,
            "status": b.status,
            "cloud": b.cloud,
            "region": b.region,
            "record_count": b.record_count,
            "namespace_count": b.namespace_count,
            "size_bytes": b.size_bytes,
            "tags": if b.tags.is_empty() { Value::Null } else { json!(b.tags) },
            "created_at": (!b.created_at.is_empty()).then_some(b.created_at),
        });
        if self.v2026_07 {
            out["schema"] = schema.unwrap_or_else(|| {
                let mut fields = serde_json::Map::new();
                if let Some(d) = b.dimension {
                    fields.insert(
                        "_values".into(),
                        json!({"type": "dense_vector", "dimension": d, "metric": b.metric}),
                    );
                }
                fields.insert("_sparse_values".into(), json!({"type": "sparse_vector"}));
                json!({ "fields": fields })
            });
            out["source_index_deleted_at"] = json!(b.source_index_deleted_at);
        } else {
            out["dimension"] = json!(b.dimension);
            out["metric"] = json!(b.metric);
        }
        out
    }

    /// A restore job: 2026-07's `percent_complete` is a whole number.
    fn restore_job(&self, j: g::RestoreJob) -> Value {
        let percent = j.percent_complete.map(|p| {
            if self.v2026_07 {
                json!(p.round() as u64)
            } else {
                json!(p)
            }
        });
        json!({
            "restore_job_id": j.restore_job_id,
            "backup_id": j.backup_id,
            "target_index_name": j.target_index_name,
            "target_index_id": j.target_index_id,
            "status": j.status,
            "created_at": j.created_at,
            "completed_at": j.completed_at,
            "percent_complete": percent,
        })
    }

    /// A page of a listing: `pagination` is `null` on the last page (2026-07) or absent (before).
    fn page(&self, data: Vec<Value>, next: Option<String>) -> Value {
        let mut out = json!({ "data": data });
        match next {
            Some(next) => out["pagination"] = json!({ "next": next }),
            None if self.v2026_07 => out["pagination"] = Value::Null,
            None => {}
        }
        out
    }
}

/// The control plane's error body for a status, with the HTTP status, headers and `Retry-After` of the data plane's.
fn control_error(status: tonic::Status) -> Response {
    let mut out = super::error(status.clone());
    let code = super::http_status(status.code());
    let body = json!({
        "error": {"code": code_name(status.code()), "message": status.message()},
        "status": code.as_u16(),
    });
    let headers = std::mem::take(out.headers_mut());
    out = (code, axum::Json(body)).into_response();
    for (k, v) in headers.iter() {
        if k != axum::http::header::CONTENT_TYPE && k != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// A gRPC code's name as Pinecone's control plane spells its error codes (`NOT_FOUND`, `INVALID_ARGUMENT`, ...).
fn code_name(code: tonic::Code) -> String {
    let words = format!("{code:?}");
    let mut out = String::new();
    for (i, ch) in words.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

/// The HTTP answer of a control-plane call: `ok` and the JSON on success, the control plane's error otherwise.
fn control_answer(r: Answer) -> Response {
    control_answer_with(StatusCode::OK, r)
}

fn control_answer_with(ok: StatusCode, r: Answer) -> Response {
    match r {
        Ok(resp) => {
            let (md, value, _) = resp.into_parts();
            let mut out = (ok, axum::Json(value)).into_response();
            out.headers_mut().extend(md.into_headers());
            out
        }
        Err(status) => control_error(status),
    }
}

/// A request body of the control plane; a body that is not one is 400 in the control plane's shape.
fn control_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, tonic::Status> {
    super::body(bytes).map_err(tonic::Status::invalid_argument)
}

/// The page parameters of a listing (`limit`, `paginationToken`).
fn page_params(pairs: &Pairs) -> Result<(Option<u32>, Option<String>), tonic::Status> {
    let limit = number(pairs, "limit").map_err(tonic::Status::invalid_argument)?;
    Ok((limit, last(pairs, "paginationToken")))
}

fn param(params: &HashMap<String, String>, key: &str) -> String {
    params.get(key).cloned().unwrap_or_default()
}

/// Pinecone's describe index (`GET /indexes/NAME`), as its control plane answers it, with `host` rewritten to this
/// front door's address for that index (`http://HOST/indexes/NAME`, HOST as the client reached the gateway), so that
/// a client given the gateway as its control plane (`Pinecone(host=...)`) and only an index's name finds the index
/// behind the gateway.
async fn describe_index(
    State(api): State<Api>,
    Path(params): Path<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let name = params.get("index").cloned().unwrap_or_default();
    let shape = Shape::of(&headers);
    let message = g::DescribeIndexRequest { name };
    let described = api
        .backups
        .describe_index(request(None, headers, message))
        .await;
    control_answer(described.map(|r| r.map(|index| shape.index(index))))
}

/// Pinecone's list indexes (`GET /indexes`), each index's `host` rewritten as describe index's is.
async fn list_indexes(State(api): State<Api>, headers: HeaderMap) -> Response {
    let shape = Shape::of(&headers);
    let listed = api.backups.list_indexes(request(None, headers, ())).await;
    control_answer(listed.map(|r| {
        r.map(|indexes| {
            let indexes: Vec<Value> = indexes.into_iter().map(|i| shape.index(i)).collect();
            json!({ "indexes": indexes })
        })
    }))
}

/// An index in Pinecone's control-plane shape (API 2025-10 and 2026-04).
fn index_model(i: g::Index, host: Option<String>) -> Value {
    let spec = if let Some(pod) = &i.pod {
        json!({"pod": {
            "environment": pod.environment, "pod_type": pod.pod_type, "pods": pod.pods,
            "replicas": pod.replicas, "shards": pod.shards,
            "metadata_config": {"indexed": pod.indexed_metadata_fields},
        }})
    } else if let Some(byoc) = &i.byoc {
        json!({"byoc": {"environment": byoc.environment}})
    } else {
        json!({"serverless": {"cloud": i.cloud, "region": i.region}})
    };
    let mut out = json!({
        "name": i.name,
        "metric": i.metric,
        "host": host,
        "spec": spec,
        "status": {"ready": i.ready, "state": i.state},
        "vector_type": i.vector_type,
        "deletion_protection": i.deletion_protection,
        "tags": if i.tags.is_empty() { Value::Null } else { json!(i.tags) },
    });
    if let Some(d) = i.dimension {
        out["dimension"] = d.into();
    }
    if let Some(embed) = &i.embed {
        out["embed"] = serde_json::to_value(embed).unwrap_or_default();
    }
    out
}

/// An index in API 2026-07's control-plane shape (what a client asking for 2026-07, such as Pinecone's 10.x Python
/// SDK, parses): `deployment` and a typed `schema` instead of `spec`, `dimension` and `metric`.
fn index_model_2026_07(i: g::Index, host: Option<String>) -> Value {
    let deployment = match (&i.pod, &i.byoc, &i.deployment) {
        (_, _, Some(d)) => serde_json::to_value(d).unwrap_or_default(),
        (Some(pod), _, _) => json!({
            "deployment_type": "pod", "environment": pod.environment, "pod_type": pod.pod_type,
            "pods": pod.pods, "replicas": pod.replicas, "shards": pod.shards,
        }),
        (_, Some(byoc), _) => {
            json!({"deployment_type": "byoc", "environment": byoc.environment})
        }
        _ => {
            json!({"deployment_type": "managed", "cloud": i.cloud, "region": i.region})
        }
    };
    // A 2026-07 schema (from a gateway on 2026-07) as it came; else the vectors API's reserved fields from the
    // dimension, metric and vector type, with an older schema's metadata fields beside them.
    let known = i.schema.as_ref().and_then(|s| serde_json::to_value(s).ok());
    let typed = known
        .as_ref()
        .and_then(|s| s.get("fields"))
        .is_some_and(|f| f.get("_values").is_some() || f.get("_sparse_values").is_some());
    let schema = match known {
        Some(s) if typed => s,
        other => {
            let mut fields = serde_json::Map::new();
            if let Some(Value::Object(meta)) = other.as_ref().and_then(|s| s.get("fields")) {
                fields.extend(meta.clone());
            }
            if let (Some(d), "dense") = (i.dimension, i.vector_type.as_str()) {
                fields.insert(
                    "_values".into(),
                    json!({"type": "dense_vector", "dimension": d, "metric": i.metric}),
                );
            }
            fields.insert("_sparse_values".into(), json!({"type": "sparse_vector"}));
            json!({ "fields": fields })
        }
    };
    let mut out = json!({
        "name": i.name,
        "host": host,
        "status": {"ready": i.ready, "state": i.state},
        "deployment": deployment,
        "schema": schema,
        "deletion_protection": i.deletion_protection,
        "tags": if i.tags.is_empty() { Value::Null } else { json!(i.tags) },
    });
    if let Some(rc) = &i.read_capacity {
        out["read_capacity"] = serde_json::to_value(rc).unwrap_or_default();
    }
    out
}

/// `POST /indexes/{index}/backups`: 201 with the backup (200 in 2026-07, as Pinecone answers).
async fn create_backup(
    State(api): State<Api>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        name: Option<String>,
        description: Option<String>,
    }
    let body: Body = match control_body(&bytes) {
        Ok(b) => b,
        Err(refusal) => return control_error(refusal),
    };
    let shape = Shape::of(&headers);
    let message = g::CreateBackupRequest {
        index_name: param(&params, "index"),
        name: body.name,
        description: body.description,
    };
    let created = api
        .backups
        .create_backup(request(None, headers, message))
        .await;
    let ok = if shape.v2026_07 {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    control_answer_with(ok, created.map(|r| r.map(|b| shape.backup(b))))
}

/// `GET /indexes/{index}/backups` (`limit`, `paginationToken`, `include_deleted`).
async fn list_index_backups(
    State(api): State<Api>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = pairs(q);
    let (limit, pagination_token) = match page_params(&pairs) {
        Ok(p) => p,
        Err(refusal) => return control_error(refusal),
    };
    let include_deleted = match last(&pairs, "include_deleted").as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return control_error(tonic::Status::invalid_argument(format!(
                "include_deleted: `{other}` must be true or false"
            )));
        }
    };
    let shape = Shape::of(&headers);
    let message = g::ListIndexBackupsRequest {
        index_name: param(&params, "index"),
        limit,
        pagination_token,
        include_deleted,
    };
    let listed = api
        .backups
        .list_index_backups(request(None, headers, message))
        .await;
    control_answer(listed.map(|r| r.map(|l| backups_page(&shape, l))))
}

fn backups_page(shape: &Shape, l: g::ListBackupsResponse) -> Value {
    let data = l.backups.into_iter().map(|b| shape.backup(b)).collect();
    shape.page(data, l.next_pagination_token)
}

/// `DELETE /backups/{backup_id}`: 202 and no body, as Pinecone answers.
async fn delete_backup(
    State(api): State<Api>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let message = g::DeleteBackupRequest {
        backup_id: param(&params, "backup_id"),
    };
    match api
        .backups
        .delete_backup(request(None, headers, message))
        .await
    {
        Ok(resp) => {
            let mut out = StatusCode::ACCEPTED.into_response();
            out.headers_mut()
                .extend(resp.metadata().clone().into_headers());
            out
        }
        Err(status) => control_error(status),
    }
}

/// `POST /backups/{backup_id}/create-index`: 202 with the restore job's and the new index's ids.
async fn create_index_from_backup(
    State(api): State<Api>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        name: String,
        #[serde(default)]
        tags: Option<HashMap<String, String>>,
        deletion_protection: Option<String>,
    }
    let body: Body = match control_body(&bytes) {
        Ok(b) => b,
        Err(refusal) => return control_error(refusal),
    };
    let message = g::CreateIndexFromBackupRequest {
        backup_id: param(&params, "backup_id"),
        name: body.name,
        tags: body.tags.unwrap_or_default(),
        deletion_protection: body.deletion_protection,
    };
    let restored = api
        .backups
        .create_index_from_backup(request(None, headers, message))
        .await;
    control_answer_with(
        StatusCode::ACCEPTED,
        restored.map(|r| {
            r.map(|j| json!({"restore_job_id": j.restore_job_id, "index_id": j.index_id}))
        }),
    )
}

fn restore_jobs_page(shape: &Shape, l: g::ListRestoreJobsResponse) -> Value {
    let data = l
        .restore_jobs
        .into_iter()
        .map(|j| shape.restore_job(j))
        .collect();
    shape.page(data, l.next_pagination_token)
}

/// A project-wide listing (`GET /backups`, `GET /restore-jobs`): `limit` and `paginationToken` from the query string.
macro_rules! project_listing {
    ($name:ident, $req:ident, $page:ident) => {
        async fn $name(
            State(api): State<Api>,
            headers: HeaderMap,
            RawQuery(q): RawQuery,
        ) -> Response {
            let (limit, pagination_token) = match page_params(&pairs(q)) {
                Ok(p) => p,
                Err(refusal) => return control_error(refusal),
            };
            let shape = Shape::of(&headers);
            let message = g::$req {
                limit,
                pagination_token,
            };
            let listed = api.backups.$name(request(None, headers, message)).await;
            control_answer(listed.map(|r| r.map(|l| $page(&shape, l))))
        }
    };
}

project_listing!(
    list_project_backups,
    ListProjectBackupsRequest,
    backups_page
);
project_listing!(list_restore_jobs, ListRestoreJobsRequest, restore_jobs_page);

/// One backup or restore job by the id in its path (`GET /backups/{backup_id}`, `GET /restore-jobs/{job_id}`).
macro_rules! described_by_id {
    ($name:ident, $req:ident, $id:ident, $shape:ident) => {
        async fn $name(
            State(api): State<Api>,
            Path(params): Path<HashMap<String, String>>,
            headers: HeaderMap,
        ) -> Response {
            let shape = Shape::of(&headers);
            let message = g::$req {
                $id: param(&params, stringify!($id)),
            };
            let described = api.backups.$name(request(None, headers, message)).await;
            control_answer(described.map(|r| r.map(|m| shape.$shape(m))))
        }
    };
}

described_by_id!(describe_backup, DescribeBackupRequest, backup_id, backup);
described_by_id!(
    describe_restore_job,
    DescribeRestoreJobRequest,
    job_id,
    restore_job
);

/// The control-plane routes; every other method on them is refused naming the operation.
pub(super) fn routes() -> axum::Router<Api> {
    use axum::routing::get;
    let refuse = super::not_found;
    axum::Router::new()
        .route("/indexes", get(list_indexes).fallback(refuse))
        .route("/indexes/{index}", get(describe_index).fallback(refuse))
        .route(
            "/indexes/{index}/backups",
            get(list_index_backups).post(create_backup).fallback(refuse),
        )
        .route("/backups", get(list_project_backups).fallback(refuse))
        .route(
            "/backups/{backup_id}",
            get(describe_backup).delete(delete_backup).fallback(refuse),
        )
        .route(
            "/backups/{backup_id}/create-index",
            axum::routing::post(create_index_from_backup).fallback(refuse),
        )
        .route("/restore-jobs", get(list_restore_jobs).fallback(refuse))
        .route(
            "/restore-jobs/{job_id}",
            get(describe_restore_job).fallback(refuse),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> g::Index {
        g::Index {
            name: "docs".into(),
            metric: "cosine".into(),
            host: "h".into(),
            dimension: Some(8),
            vector_type: "dense".into(),
            ready: true,
            state: "Ready".into(),
            cloud: Some("aws".into()),
            region: Some("us-east-1".into()),
            ..Default::default()
        }
    }

    /// For a 2026-07 client, an index described by an older API gets the vectors API's reserved fields, and its
    /// metadata schema's fields beside them (not instead of them: that would describe a document index).
    #[test]
    fn a_2026_07_answer_always_has_the_reserved_vector_fields() {
        let mut i = index();
        i.schema =
            serde_json::from_value(serde_json::json!({"fields": {"genre": {"filterable": true}}}))
                .ok();
        let v = index_model_2026_07(i, Some("http://gw/indexes/docs".into()));
        let fields = &v["schema"]["fields"];
        assert_eq!(fields["_values"]["dimension"], 8, "{v}");
        assert_eq!(fields["_values"]["metric"], "cosine");
        assert!(fields["_sparse_values"].is_object());
        assert_eq!(fields["genre"]["filterable"], true);
        assert_eq!(v["deployment"]["deployment_type"], "managed");
        assert_eq!(v["host"], "http://gw/indexes/docs");
        assert!(v.get("dimension").is_none() && v.get("spec").is_none());
    }

    #[test]
    fn an_older_client_gets_spec_dimension_and_metric() {
        let v = index_model(index(), Some("http://gw/indexes/docs".into()));
        assert_eq!(v["dimension"], 8);
        assert_eq!(v["spec"]["serverless"]["cloud"], "aws");
        assert_eq!(v["status"]["ready"], true);
    }
}
