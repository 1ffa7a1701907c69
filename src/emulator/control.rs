//! The control plane over HTTP: indexes (each started on its own data-plane port), backups as snapshots of every
//! namespace, and restores into new indexes that initialize for [`super::EmulatorOptions::restore_init`] before they
//! serve. Errors use Pinecone's `ErrorResponse` body.

use super::model as m;
use super::store::{self, IndexData, Metric};
use super::{EmuIndex, EmulatorState, RestoreJob, lock, new_id, now_timestamp, read, write};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
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

async fn list_indexes(State(s): S) -> Json<m::IndexListOut> {
    let indexes = read(&s.inner).indexes.values().map(|i| i.model()).collect();
    Json(m::IndexListOut { indexes })
}

async fn describe_index(State(s): S, Path(name): Path<String>) -> R<Json<m::IndexOut>> {
    Ok(Json(index(&s, &name)?.model()))
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
    write(&s.inner).indexes.remove(&name);
    let _ = i.shutdown.send(true);
    Ok(StatusCode::ACCEPTED)
}

/// `limit` (1-100, default 10) and `paginationToken`, percent-decoded; anything else is refused.
fn page_params(q: Option<String>) -> R<(usize, Option<String>)> {
    let mut limit = 10;
    let mut token = None;
    for pair in q.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_encoding::percent_decode_str(v)
            .decode_utf8()
            .map_err(|_| invalid(format!("Invalid query parameter: {pair}")))?;
        match k {
            "limit" => {
                limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=100).contains(l))
                    .ok_or_else(|| invalid(format!("limit must be 1 to 100; got {v}")))?;
            }
            "paginationToken" => token = Some(v.into_owned()),
            other => return Err(invalid(format!("Unknown query parameter: {other}"))),
        }
    }
    Ok((limit, token))
}

fn store_error(e: store::DataError) -> ControlError {
    invalid(e.message)
}

fn backup_list<'a>(
    items: impl Iterator<Item = &'a m::BackupOut>,
    q: Option<String>,
) -> R<Json<m::BackupListOut>> {
    let (limit, token) = page_params(q)?;
    // Sorted by name (bitwise), then id, as Pinecone documents its order.
    let mut sorted: Vec<(String, &m::BackupOut)> = items
        .map(|b| {
            (
                format!("{}\u{0}{}", b.name.clone().unwrap_or_default(), b.backup_id),
                b,
            )
        })
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let (data, next) = store::page(
        sorted.iter().map(|(k, b)| (k, (*b).clone())),
        limit,
        token.as_deref(),
    )
    .map_err(store_error)?;
    Ok(Json(m::BackupListOut {
        data,
        pagination: next.map(|next| m::ControlPagination { next }),
    }))
}

async fn create_backup(
    State(s): S,
    Path(name): Path<String>,
    bytes: axum::body::Bytes,
) -> R<(StatusCode, Json<m::BackupOut>)> {
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
    write(&s.inner).backups.insert(
        model.backup_id.clone(),
        super::Backup {
            model: model.clone(),
            snapshot,
        },
    );
    Ok((StatusCode::CREATED, Json(model)))
}

async fn list_index_backups(
    State(s): S,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> R<Json<m::BackupListOut>> {
    index(&s, &name)?;
    let inner = read(&s.inner);
    backup_list(
        inner
            .backups
            .values()
            .map(|b| &b.model)
            .filter(|m| m.source_index_name == name),
        q,
    )
}

async fn list_project_backups(State(s): S, RawQuery(q): RawQuery) -> R<Json<m::BackupListOut>> {
    let inner = read(&s.inner);
    backup_list(inner.backups.values().map(|b| &b.model), q)
}

async fn describe_backup(State(s): S, Path(id): Path<String>) -> R<Json<m::BackupOut>> {
    read(&s.inner)
        .backups
        .get(&id)
        .map(|b| Json(b.model.clone()))
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

async fn list_restore_jobs(State(s): S, RawQuery(q): RawQuery) -> R<Json<m::RestoreJobListOut>> {
    let (limit, token) = page_params(q)?;
    let inner = read(&s.inner);
    let (data, next) = store::page(
        inner.restore_jobs.iter().map(|(k, j)| (k, job_model(j))),
        limit,
        token.as_deref(),
    )
    .map_err(store_error)?;
    Ok(Json(m::RestoreJobListOut {
        data,
        pagination: next.map(|next| m::ControlPagination { next }),
    }))
}

async fn describe_restore_job(State(s): S, Path(id): Path<String>) -> R<Json<m::RestoreJobOut>> {
    read(&s.inner)
        .restore_jobs
        .get(&id)
        .map(|j| Json(job_model(j)))
        .ok_or_else(|| not_found("Restore job", &id))
}
