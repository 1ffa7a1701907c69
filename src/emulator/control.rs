//! The control plane over HTTP: indexes (each started on its own data-plane port), backups as snapshots of every
//! namespace, and restores into new indexes that initialize for [`super::EmulatorOptions::restore_init`] before they
//! serve. Errors use Pinecone's `ErrorResponse` body.

use super::model as m;
use super::store::{self, IndexData, Metric};
use super::v2026_07 as v7;
use super::{EmuIndex, EmulatorState, RestoreJob, lock, new_id, now_timestamp, read, write};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

type S = State<Arc<EmulatorState>>;

/// A control-plane error answer.
pub struct ControlError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = m::ControlErrorOut {
            error: m::ControlErrorDetail {
                code: self.code,
                message: self.message,
            },
            status: self.status,
        };
        (status, Json(body)).into_response()
    }
}

pub(super) fn error(status: u16, code: &'static str, message: impl Into<String>) -> ControlError {
    ControlError {
        status,
        code,
        message: message.into(),
    }
}

fn invalid(message: impl Into<String>) -> ControlError {
    error(400, "INVALID_ARGUMENT", message)
}

fn not_found(what: &str, name: &str) -> ControlError {
    error(404, "NOT_FOUND", format!("{what} {name} not found."))
}

type R<T> = Result<T, ControlError>;

pub(super) fn router(shared: Arc<EmulatorState>) -> Router {
    Router::new()
        .route("/indexes", get(list_indexes).post(create_index_route))
        .route("/indexes/{name}", get(describe_index).delete(delete_index))
        .route(
            "/indexes/{name}/backups",
            post(create_backup).get(list_index_backups),
        )
        .route("/backups", get(list_project_backups))
        .route("/backups/{id}", get(describe_backup).delete(delete_backup))
        .route("/backups/{id}/create-index", post(create_index_from_backup))
        .route("/restore-jobs", get(list_restore_jobs))
        .route("/restore-jobs/{id}", get(describe_restore_job))
        .route_layer(axum::middleware::from_fn_with_state(
            (shared.clone(), super::CONTROL.to_string()),
            super::count_requests,
        ))
        .with_state(shared)
}

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> R<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        error(
            422,
            "UNPROCESSABLE_ENTITY",
            format!("Failed to deserialize the JSON body into the target type: {e}"),
        )
    })
}

/// Pinecone's rule for index names: 1-45 characters of a-z, 0-9 and '-', starting and ending with a letter or digit.
fn index_name_ok(name: &str) -> bool {
    (1..=45).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Creates an index and starts its data plane; `data` restores a snapshot, which initializes until `ready_at`.
pub(super) async fn create_index(
    shared: &Arc<EmulatorState>,
    req: m::CreateIndexIn,
    data: Option<IndexData>,
    ready_at: Option<Instant>,
) -> R<Arc<EmuIndex>> {
    if !index_name_ok(&req.name) {
        return Err(invalid(format!(
            "Invalid index name `{}`: 1-45 characters of a-z, 0-9 and '-', not starting or ending with '-'",
            req.name
        )));
    }
    let sparse = req.vector_type.as_deref() == Some("sparse");
    let metric_name = req
        .metric
        .clone()
        .unwrap_or_else(|| if sparse { "dotproduct" } else { "cosine" }.into());
    let metric = Metric::parse(&metric_name)
        .ok_or_else(|| invalid(format!("Invalid metric: {metric_name}")))?;
    let dimension = match (sparse, req.dimension) {
        (false, Some(d)) if (1..=20_000).contains(&d) => Some(d),
        (false, _) => return Err(invalid("Dense indexes need a dimension from 1 to 20000")),
        (true, None) => None,
        (true, Some(_)) => return Err(invalid("Sparse indexes take no dimension")),
    };
    let Some(serverless) = req.spec.serverless.clone() else {
        return Err(invalid("The emulator supports only serverless indexes"));
    };
    let exists = || {
        error(
            409,
            "ALREADY_EXISTS",
            format!("Resource {} already exists.", req.name),
        )
    };
    if read(&shared.inner).indexes.contains_key(&req.name) {
        return Err(exists());
    }
    let listener = TcpListener::bind((shared.bind_ip, 0)).await.map_err(|e| {
        error(
            500,
            "UNKNOWN",
            format!("cannot bind a data-plane port: {e}"),
        )
    })?;
    let port = listener
        .local_addr()
        .map_err(|e| error(500, "UNKNOWN", e.to_string()))?
        .port();
    let (tx, rx) = watch::channel(false);
    let index = Arc::new(EmuIndex {
        name: req.name.clone(),
        id: new_id(),
        metric: metric.as_str().into(),
        dimension,
        vector_type: if sparse { "sparse" } else { "dense" },
        document: req.document,
        cloud: serverless.cloud,
        region: serverless.region,
        deletion_protection: req.deletion_protection.unwrap_or_else(|| "disabled".into()),
        tags: req.tags.filter(|t| !t.is_empty()),
        host: format!("{}:{port}", shared.bind_ip),
        initializing_until: std::sync::Mutex::new(ready_at),
        data: std::sync::RwLock::new(
            data.unwrap_or_else(|| IndexData::new(dimension, metric, sparse)),
        ),
        lag: Default::default(),
        lagging: Default::default(),
        lag_ms: shared.index_lag_ms.clone(),
        lsn_spelling: shared.options.lsn_spelling,
        shutdown: tx,
        limits: shared.limits.clone(),
        bytes_per_read_unit: shared
            .options
            .query_bytes_per_read_unit
            .unwrap_or(store::BYTES_PER_READ_UNIT)
            .max(1),
        query_read_units: Default::default(),
    });
    {
        let mut inner = write(&shared.inner);
        if inner.indexes.contains_key(&req.name) {
            return Err(exists());
        }
        inner.indexes.insert(req.name.clone(), index.clone());
    }
    let app = super::data::router(shared.clone(), index.clone());
    let task = tokio::spawn(super::serve(listener, shared.tls.clone(), app, rx));
    lock(&shared.tasks).push(task);
    Ok(index)
}

async fn create_index_route(
    State(s): S,
    bytes: axum::body::Bytes,
) -> R<(StatusCode, Json<m::IndexOut>)> {
    let req: m::CreateIndexIn = body(&bytes)?;
    let index = create_index(&s, req, None, None).await?;
    Ok((StatusCode::CREATED, Json(index.model())))
}

fn index(s: &EmulatorState, name: &str) -> R<Arc<EmuIndex>> {
    read(&s.inner)
        .indexes
        .get(name)
        .cloned()
        .ok_or_else(|| not_found("Index", name))
}

async fn list_indexes(State(s): S, headers: HeaderMap) -> Json<serde_json::Value> {
    let indexes: Vec<serde_json::Value> = read(&s.inner)
        .indexes
        .values()
        .map(|i| index_answer(i, &headers))
        .collect();
    Json(serde_json::json!({ "indexes": indexes }))
}

/// An index as the request's API version describes it.
fn index_answer(i: &EmuIndex, headers: &HeaderMap) -> serde_json::Value {
    let model = i.model();
    if v7::asked(headers) {
        v7::index(i, &model)
    } else {
        serde_json::to_value(model).unwrap_or_default()
    }
}

async fn describe_index(
    State(s): S,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> R<Json<serde_json::Value>> {
    let i = index(&s, &name)?;
    Ok(Json(index_answer(&i, &headers)))
}

async fn delete_index(State(s): S, Path(name): Path<String>) -> R<StatusCode> {
    let i = index(&s, &name)?;
    if i.deletion_protection == "enabled" {
        return Err(error(
            403,
            "FORBIDDEN",
            "Deletion protection is enabled for this index. Disable deletion protection before retrying.",
        ));
    }
    let mut inner = write(&s.inner);
    inner.indexes.remove(&name);
    let deleted_at = now_timestamp();
    for b in inner.backups.values_mut() {
        if b.model.source_index_id == i.id {
            b.source_deleted_at = Some(deleted_at.clone());
        }
    }
    drop(inner);
    let _ = i.shutdown.send(true);
    Ok(StatusCode::ACCEPTED)
}

/// A listing's query: `limit` (1-100; default 10, 100 from API 2026-07), `paginationToken`, and from 2026-07
/// `include_deleted` where `deleted` allows it; anything else is refused.
struct PageQuery {
    limit: usize,
    token: Option<String>,
    include_deleted: bool,
}

fn page_params(q: Option<String>, headers: &HeaderMap, deleted: bool) -> R<PageQuery> {
    let v7 = v7::asked(headers);
    let mut page = PageQuery {
        limit: if v7 { 100 } else { 10 },
        token: None,
        include_deleted: false,
    };
    for pair in q.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_encoding::percent_decode_str(v)
            .decode_utf8()
            .map_err(|_| invalid(format!("Invalid query parameter: {pair}")))?;
        match k {
            "limit" => {
                page.limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=100).contains(l))
                    .ok_or_else(|| invalid(format!("limit must be 1 to 100; got {v}")))?;
            }
            "paginationToken" => page.token = Some(v.into_owned()),
            "include_deleted" if v7 && deleted => {
                page.include_deleted = match v.as_ref() {
                    "true" => true,
                    "false" => false,
                    other => {
                        return Err(invalid(format!(
                            "include_deleted must be true or false; got {other}"
                        )));
                    }
                }
            }
            other => return Err(invalid(format!("Unknown query parameter: {other}"))),
        }
    }
    Ok(page)
}

fn store_error(e: store::DataError) -> ControlError {
    invalid(e.message)
}

fn backup_list<'a>(
    items: impl Iterator<Item = &'a super::Backup>,
    page: PageQuery,
    headers: &HeaderMap,
) -> R<Json<serde_json::Value>> {
    // Sorted by name (bitwise), then id, as Pinecone documents its order.
    let mut sorted: Vec<(String, &super::Backup)> = items
        .map(|b| {
            (
                format!(
                    "{}\u{0}{}",
                    b.model.name.clone().unwrap_or_default(),
                    b.model.backup_id
                ),
                b,
            )
        })
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let (data, next) = store::page(
        sorted.iter().map(|(k, b)| (k, *b)),
        page.limit,
        page.token.as_deref(),
    )
    .map_err(store_error)?;
    if v7::asked(headers) {
        return Ok(Json(v7::page(
            data.into_iter().map(v7::backup).collect(),
            next,
        )));
    }
    Ok(Json(
        serde_json::to_value(m::BackupListOut {
            data: data.into_iter().map(|b| b.model.clone()).collect(),
            pagination: next.map(|next| m::ControlPagination { next }),
        })
        .unwrap_or_default(),
    ))
}

fn backup_answer(b: &super::Backup, headers: &HeaderMap) -> serde_json::Value {
    if v7::asked(headers) {
        v7::backup(b)
    } else {
        serde_json::to_value(&b.model).unwrap_or_default()
    }
}

async fn create_backup(
    State(s): S,
    headers: HeaderMap,
    Path(name): Path<String>,
    bytes: axum::body::Bytes,
) -> R<(StatusCode, Json<serde_json::Value>)> {
    let req: m::CreateBackupIn = body(&bytes)?;
    let i = index(&s, &name)?;
    let snapshot = read(&i.data).clone();
    let size_bytes = snapshot
        .namespaces
        .values()
        .flat_map(|n| n.records.values())
        .map(|r| 4 * r.values.len() as u64 + 64)
        .sum();
    let model = m::BackupOut {
        backup_id: new_id(),
        source_index_name: name.clone(),
        source_index_id: i.id.clone(),
        status: "Ready",
        cloud: i.cloud.clone(),
        region: i.region.clone(),
        name: req.name,
        description: req.description,
        dimension: i.dimension,
        metric: i.metric.clone(),
        record_count: snapshot.record_count(),
        namespace_count: snapshot.namespaces.len() as u64,
        size_bytes,
        tags: None,
        created_at: now_timestamp(),
    };
    let backup = super::Backup {
        model,
        snapshot,
        schema: v7::schema(&i),
        source_deleted_at: None,
    };
    let answer = backup_answer(&backup, &headers);
    write(&s.inner)
        .backups
        .insert(backup.model.backup_id.clone(), backup);
    let status = if v7::asked(&headers) {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(answer)))
}

async fn list_index_backups(
    State(s): S,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> R<Json<serde_json::Value>> {
    let page = page_params(q, &headers, true)?;
    // The backups of a deleted index of this name are listed only when asked for (2026-07's include_deleted).
    let live = read(&s.inner).indexes.get(&name).map(|i| i.id.clone());
    if live.is_none() && !page.include_deleted {
        return Err(not_found("Index", &name));
    }
    let inner = read(&s.inner);
    let include_deleted = page.include_deleted;
    backup_list(
        inner.backups.values().filter(|b| {
            b.model.source_index_name == name
                && (Some(&b.model.source_index_id) == live.as_ref() || include_deleted)
        }),
        page,
        &headers,
    )
}

async fn list_project_backups(
    State(s): S,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> R<Json<serde_json::Value>> {
    let page = page_params(q, &headers, false)?;
    let inner = read(&s.inner);
    backup_list(inner.backups.values(), page, &headers)
}

async fn describe_backup(
    State(s): S,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> R<Json<serde_json::Value>> {
    read(&s.inner)
        .backups
        .get(&id)
        .map(|b| Json(backup_answer(b, &headers)))
        .ok_or_else(|| not_found("Backup", &id))
}

async fn delete_backup(State(s): S, Path(id): Path<String>) -> R<StatusCode> {
    write(&s.inner)
        .backups
        .remove(&id)
        .map(|_| StatusCode::ACCEPTED)
        .ok_or_else(|| not_found("Backup", &id))
}

async fn create_index_from_backup(
    State(s): S,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> R<(StatusCode, Json<m::CreateIndexFromBackupOut>)> {
    let req: m::CreateIndexFromBackupIn = body(&bytes)?;
    let (model, snapshot) = {
        let inner = read(&s.inner);
        let b = inner
            .backups
            .get(&id)
            .ok_or_else(|| not_found("Backup", &id))?;
        (b.model.clone(), b.snapshot.clone())
    };
    let create = m::CreateIndexIn {
        name: req.name.clone(),
        dimension: snapshot.dimension,
        metric: Some(snapshot.metric.as_str().into()),
        spec: m::IndexSpecIn {
            serverless: Some(m::ServerlessSpec {
                cloud: model.cloud.clone(),
                region: model.region.clone(),
            }),
        },
        vector_type: Some(if snapshot.sparse { "sparse" } else { "dense" }.into()),
        deletion_protection: req.deletion_protection.clone(),
        tags: req.tags.clone(),
        document: false,
    };
    let ready_at = Instant::now() + s.options.restore_init;
    let target = create_index(&s, create, Some(snapshot), Some(ready_at)).await?;
    let job = RestoreJob {
        id: new_id(),
        backup_id: id,
        target: target.clone(),
        created_at: now_timestamp(),
    };
    let out = m::CreateIndexFromBackupOut {
        restore_job_id: job.id.clone(),
        index_id: target.id.clone(),
    };
    write(&s.inner).restore_jobs.insert(job.id.clone(), job);
    Ok((StatusCode::ACCEPTED, Json(out)))
}

/// A job is pending, without a timestamp, while its target initializes; then completed.
fn job_model(job: &RestoreJob) -> m::RestoreJobOut {
    let done = !job.target.initializing(Instant::now());
    m::RestoreJobOut {
        restore_job_id: job.id.clone(),
        backup_id: job.backup_id.clone(),
        target_index_name: job.target.name.clone(),
        target_index_id: job.target.id.clone(),
        status: if done { "Completed" } else { "Pending" },
        created_at: done.then(|| job.created_at.clone()),
        completed_at: done.then(now_timestamp),
        percent_complete: if done { 100.0 } else { 0.0 },
    }
}

fn job_answer(job: &RestoreJob, headers: &HeaderMap) -> serde_json::Value {
    let model = job_model(job);
    if v7::asked(headers) {
        v7::restore_job(&model)
    } else {
        serde_json::to_value(model).unwrap_or_default()
    }
}

async fn list_restore_jobs(
    State(s): S,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> R<Json<serde_json::Value>> {
    let page = page_params(q, &headers, false)?;
    let inner = read(&s.inner);
    let (data, next) = store::page(inner.restore_jobs.iter(), page.limit, page.token.as_deref())
        .map_err(store_error)?;
    if v7::asked(&headers) {
        let data = data.into_iter().map(|j| job_answer(j, &headers)).collect();
        return Ok(Json(v7::page(data, next)));
    }
    Ok(Json(
        serde_json::to_value(m::RestoreJobListOut {
            data: data.into_iter().map(job_model).collect(),
            pagination: next.map(|next| m::ControlPagination { next }),
        })
        .unwrap_or_default(),
    ))
}

async fn describe_restore_job(
    State(s): S,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> R<Json<serde_json::Value>> {
    read(&s.inner)
        .restore_jobs
        .get(&id)
        .map(|j| Json(job_answer(j, &headers)))
        .ok_or_else(|| not_found("Restore job", &id))
}
