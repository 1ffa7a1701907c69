//! The control plane over HTTP: indexes (each started on its own data-plane port), backups as snapshots of every
//! namespace, and restores into new indexes. Errors use Pinecone's `ErrorResponse` body.

use super::store::{self, IndexData, Metric};
use super::{EmuIndex, Shared, lock, new_id, now_rfc3339, read, write};
use crate::api::validate::index_name_problem;
use crate::wire::control as c;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

type S = State<Arc<Shared>>;

/// A control-plane error answer.
pub struct ControlError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = c::ErrorResponse {
            error: c::ErrorDetail {
                code: self.code.into(),
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

fn not_found(what: &str, name: &str) -> ControlError {
    error(
        404,
        "NOT_FOUND",
        format!("Resource {what} {name} not found"),
    )
}

type R<T> = Result<T, ControlError>;

pub(super) fn router(shared: Arc<Shared>) -> Router {
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
            400,
            "INVALID_ARGUMENT",
            format!("Invalid request body: {e}"),
        )
    })
}

/// Creates an index and starts its data plane; `data` restores a snapshot.
pub(super) async fn create_index(
    shared: &Arc<Shared>,
    req: c::CreateIndexRequest,
    data: Option<IndexData>,
) -> R<c::IndexModel> {
    if let Some(problem) = index_name_problem(&req.name) {
        return Err(error(
            400,
            "INVALID_ARGUMENT",
            format!("Invalid index name: {problem}"),
        ));
    }
    let sparse = req.vector_type.as_deref() == Some("sparse");
    let metric_name = req
        .metric
        .clone()
        .unwrap_or_else(|| if sparse { "dotproduct" } else { "cosine" }.into());
    let metric = Metric::parse(&metric_name).ok_or_else(|| {
        error(
            400,
            "INVALID_ARGUMENT",
            format!("Invalid metric: {metric_name}"),
        )
    })?;
    let dimension = match (sparse, req.dimension) {
        (false, Some(d)) if (1..=20_000).contains(&d) => Some(d),
        (false, _) => {
            return Err(error(
                400,
                "INVALID_ARGUMENT",
                "Dense indexes need a dimension from 1 to 20000",
            ));
        }
        (true, None) => None,
        (true, Some(_)) => {
            return Err(error(
                400,
                "INVALID_ARGUMENT",
                "Sparse indexes take no dimension",
            ));
        }
    };
    if req.spec.serverless.is_none() {
        return Err(error(
            400,
            "INVALID_ARGUMENT",
            "The emulator supports only serverless indexes",
        ));
    }
    if read(&shared.inner).indexes.contains_key(&req.name) {
        return Err(error(
            409,
            "ALREADY_EXISTS",
            format!("Resource {} already exists", req.name),
        ));
    }
    let listener = TcpListener::bind((shared.bind_ip, 0)).await.map_err(|e| {
        error(
            500,
            "INTERNAL",
            format!("cannot bind a data-plane port: {e}"),
        )
    })?;
    let port = listener
        .local_addr()
        .map_err(|e| error(500, "INTERNAL", e.to_string()))?
        .port();
    let model = c::IndexModel {
        name: req.name.clone(),
        metric: metric.as_str().into(),
        host: format!("{}:{port}", shared.bind_ip),
        spec: req.spec.clone(),
        status: c::IndexStatus {
            ready: true,
            state: "Ready".into(),
        },
        vector_type: if sparse { "sparse" } else { "dense" }.into(),
        dimension,
        deletion_protection: req.deletion_protection.unwrap_or_else(|| "disabled".into()),
        tags: req.tags,
    };
    let (tx, rx) = watch::channel(false);
    let index = Arc::new(EmuIndex {
        model: model.clone(),
        id: new_id(),
        data: std::sync::RwLock::new(
            data.unwrap_or_else(|| IndexData::new(dimension, metric, sparse)),
        ),
        shutdown: tx,
        limits: shared.limits.clone(),
    });
    {
        let mut inner = write(&shared.inner);
        if inner.indexes.contains_key(&req.name) {
            return Err(error(
                409,
                "ALREADY_EXISTS",
                format!("Resource {} already exists", req.name),
            ));
        }
        inner.indexes.insert(req.name.clone(), index.clone());
    }
    let app = super::data::router(shared.clone(), index);
    let task = tokio::spawn(super::serve(listener, app, rx));
    lock(&shared.tasks).push(task);
    Ok(model)
}

async fn create_index_route(
    State(s): S,
    bytes: axum::body::Bytes,
) -> R<(StatusCode, Json<c::IndexModel>)> {
    let req: c::CreateIndexRequest = body(&bytes)?;
    Ok((
        StatusCode::CREATED,
        Json(create_index(&s, req, None).await?),
    ))
}

fn index(s: &Shared, name: &str) -> R<Arc<EmuIndex>> {
    read(&s.inner)
        .indexes
        .get(name)
        .cloned()
        .ok_or_else(|| not_found("index", name))
}

async fn list_indexes(State(s): S) -> Json<c::IndexList> {
    let indexes = read(&s.inner)
        .indexes
        .values()
        .map(|i| i.model.clone())
        .collect();
    Json(c::IndexList { indexes })
}

async fn describe_index(State(s): S, Path(name): Path<String>) -> R<Json<c::IndexModel>> {
    Ok(Json(index(&s, &name)?.model.clone()))
}

async fn delete_index(State(s): S, Path(name): Path<String>) -> R<StatusCode> {
    let i = index(&s, &name)?;
    if i.model.deletion_protection == "enabled" {
        return Err(error(
            403,
            "FORBIDDEN",
            format!("Deletion protection is enabled for index {name}"),
        ));
    }
    write(&s.inner).indexes.remove(&name);
    let _ = i.shutdown.send(true);
    Ok(StatusCode::ACCEPTED)
}

fn page_params(q: Option<String>) -> R<(usize, Option<String>)> {
    let mut limit = 10;
    let mut token = None;
    for (k, v) in form_urlencoded::parse(q.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "limit" => {
                limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=100).contains(l))
                    .ok_or_else(|| {
                        error(
                            400,
                            "INVALID_ARGUMENT",
                            format!("limit must be 1 to 100; got {v}"),
                        )
                    })?;
            }
            "paginationToken" => token = Some(v.into_owned()),
            _ => {}
        }
    }
    Ok((limit, token))
}

fn store_error(e: store::StoreError) -> ControlError {
    error(e.status, "INVALID_ARGUMENT", e.message)
}

fn backup_list<'a>(
    items: impl Iterator<Item = &'a c::BackupModel>,
    q: Option<String>,
) -> R<Json<c::BackupList>> {
    let (limit, token) = page_params(q)?;
    // Sorted by name (bitwise), then id, as Pinecone documents its order.
    let mut sorted: Vec<(String, &c::BackupModel)> = items
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
    Ok(Json(c::BackupList {
        data,
        pagination: next.map(|next| c::PaginationResponse { next }),
    }))
}

async fn create_backup(
    State(s): S,
    Path(name): Path<String>,
    bytes: axum::body::Bytes,
) -> R<(StatusCode, Json<c::BackupModel>)> {
    let req: c::CreateBackupRequest = body(&bytes)?;
    let i = index(&s, &name)?;
    let snapshot = read(&i.data).clone();
    let size_bytes = snapshot
        .namespaces
        .values()
        .flat_map(|n| n.records.values())
        .map(|v| serde_json::to_vec(v).map(|b| b.len() as u64).unwrap_or(0))
        .sum();
    let serverless = i.model.spec.serverless.clone().unwrap_or_default();
    let model = c::BackupModel {
        backup_id: new_id(),
        source_index_name: name.clone(),
        source_index_id: i.id.clone(),
        status: "Ready".into(),
        cloud: serverless.cloud,
        region: serverless.region,
        name: req.name,
        description: req.description,
        dimension: i.model.dimension,
        metric: Some(i.model.metric.clone()),
        record_count: Some(snapshot.record_count()),
        namespace_count: Some(snapshot.namespaces.len() as u64),
        size_bytes: Some(size_bytes),
        tags: Default::default(),
        created_at: now_rfc3339(),
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
) -> R<Json<c::BackupList>> {
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

async fn list_project_backups(State(s): S, RawQuery(q): RawQuery) -> R<Json<c::BackupList>> {
    let inner = read(&s.inner);
    backup_list(inner.backups.values().map(|b| &b.model), q)
}

async fn describe_backup(State(s): S, Path(id): Path<String>) -> R<Json<c::BackupModel>> {
    read(&s.inner)
        .backups
        .get(&id)
        .map(|b| Json(b.model.clone()))
        .ok_or_else(|| not_found("backup", &id))
}

async fn delete_backup(State(s): S, Path(id): Path<String>) -> R<StatusCode> {
    write(&s.inner)
        .backups
        .remove(&id)
        .map(|_| StatusCode::ACCEPTED)
        .ok_or_else(|| not_found("backup", &id))
}

async fn create_index_from_backup(
    State(s): S,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> R<(StatusCode, Json<c::CreateIndexFromBackupResponse>)> {
    let req: c::CreateIndexFromBackupRequest = body(&bytes)?;
    let (model, snapshot) = {
        let inner = read(&s.inner);
        let b = inner
            .backups
            .get(&id)
            .ok_or_else(|| not_found("backup", &id))?;
        (b.model.clone(), b.snapshot.clone())
    };
    let create = c::CreateIndexRequest {
        name: req.name.clone(),
        dimension: snapshot.dimension,
        metric: Some(snapshot.metric.as_str().into()),
        spec: c::IndexSpec {
            serverless: Some(c::ServerlessSpec {
                cloud: model.cloud.clone(),
                region: model.region.clone(),
            }),
        },
        vector_type: Some(if snapshot.sparse { "sparse" } else { "dense" }.into()),
        deletion_protection: req.deletion_protection.clone(),
        tags: req.tags.clone(),
    };
    let created_at = now_rfc3339();
    create_index(&s, create, Some(snapshot)).await?;
    let index_id = index(&s, &req.name)?.id.clone();
    let job = c::RestoreJobModel {
        restore_job_id: new_id(),
        backup_id: id,
        target_index_name: req.name,
        target_index_id: index_id.clone(),
        status: "Completed".into(),
        created_at,
        completed_at: Some(now_rfc3339()),
        percent_complete: Some(100.0),
    };
    let out = c::CreateIndexFromBackupResponse {
        restore_job_id: job.restore_job_id.clone(),
        index_id,
    };
    write(&s.inner)
        .restore_jobs
        .insert(job.restore_job_id.clone(), job);
    Ok((StatusCode::ACCEPTED, Json(out)))
}

async fn list_restore_jobs(State(s): S, RawQuery(q): RawQuery) -> R<Json<c::RestoreJobList>> {
    let (limit, token) = page_params(q)?;
    let inner = read(&s.inner);
    let (data, next) = store::page(
        inner.restore_jobs.iter().map(|(k, j)| (k, j.clone())),
        limit,
        token.as_deref(),
    )
    .map_err(store_error)?;
    Ok(Json(c::RestoreJobList {
        data,
        pagination: next.map(|next| c::PaginationResponse { next }),
    }))
}

async fn describe_restore_job(State(s): S, Path(id): Path<String>) -> R<Json<c::RestoreJobModel>> {
    read(&s.inner)
        .restore_jobs
        .get(&id)
        .map(|j| Json(j.clone()))
        .ok_or_else(|| not_found("restore job", &id))
}
