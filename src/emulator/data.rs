//! One index's data plane over HTTP: decodes requests, calls the store, encodes answers and errors as Pinecone does
//! (`{"code": <gRPC code>, "message": …, "details": []}`).

use super::store::{self, IndexData, StoreError};
use super::{EmuIndex, Shared, read, write};
use crate::stack::limit::rates::OpClass;
use crate::wire::data as w;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;

type S = State<Arc<EmuIndex>>;

impl IntoResponse for StoreError {
    fn into_response(self) -> Response {
        let code = match self.status {
            400 | 422 => 3,
            401 => 16,
            403 => 7,
            404 => 5,
            409 => 6,
            412 => 9,
            429 => 8,
            _ => 13,
        };
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = w::RpcStatus {
            code,
            message: self.message,
            details: vec![],
        };
        let mut resp = (status, Json(body)).into_response();
        if let Some(ra) = self.retry_after {
            let secs = ra.as_secs() + u64::from(ra.subsec_nanos() > 0);
            if let Ok(v) = secs.to_string().parse() {
                resp.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// JSON bodies that fail to decode get Pinecone's 400 body rather than axum's plain-text rejection.
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned, St: Send + Sync> axum::extract::FromRequest<St> for Body<T> {
    type Rejection = StoreError;

    async fn from_request(
        req: axum::extract::Request,
        state: &St,
    ) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| store::bad(e.to_string()))?;
        serde_json::from_slice(&bytes)
            .map(Body)
            .map_err(|e| store::bad(format!("Invalid request body: {e}")))
    }
}

pub(super) fn router(shared: Arc<Shared>, index: Arc<EmuIndex>) -> Router {
    let scope = index.model.name.clone();
    Router::new()
        .route("/vectors/upsert", post(upsert))
        .route("/vectors/fetch", get(fetch))
        .route("/vectors/fetch_by_metadata", post(fetch_by_metadata))
        .route("/vectors/delete", post(delete))
        .route("/vectors/list", get(list))
        .route("/query", post(query))
        .route("/vectors/update", post(update))
        .route("/describe_index_stats", post(stats).get(stats_get))
        .route("/namespaces", get(list_namespaces).post(create_namespace))
        .route(
            "/namespaces/{namespace}",
            get(describe_namespace).delete(delete_namespace),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            (shared, scope),
            super::count_requests,
        ))
        .with_state(index)
}

fn data(index: &EmuIndex) -> std::sync::RwLockReadGuard<'_, IndexData> {
    read(&index.data)
}

async fn upsert(
    State(i): S,
    Body(req): Body<w::UpsertRequest>,
) -> Result<Json<w::UpsertResponse>, StoreError> {
    let bytes = serde_json::to_vec(&req)
        .map(|b| b.len() as u64)
        .unwrap_or(0);
    i.admit(OpClass::Upsert, &req.namespace, 0, bytes)?;
    write(&i.data).upsert(req).map(Json)
}

async fn fetch(State(i): S, RawQuery(q): RawQuery) -> Result<Json<w::FetchResponse>, StoreError> {
    // Repeated `ids=` parameters, decoded as application/x-www-form-urlencoded.
    let mut ids = Vec::new();
    let mut namespace = String::new();
    for (k, v) in form_urlencoded::parse(q.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "ids" => ids.push(v.into_owned()),
            "namespace" => namespace = v.into_owned(),
            _ => {}
        }
    }
    i.admit(OpClass::Fetch, &namespace, 0, 0)?;
    data(&i).fetch(&ids, &namespace).map(Json)
}

async fn fetch_by_metadata(
    State(i): S,
    Body(req): Body<w::FetchByMetadataRequest>,
) -> Result<Json<w::FetchByMetadataResponse>, StoreError> {
    i.admit(OpClass::FetchByMetadata, &req.namespace, 0, 0)?;
    data(&i).fetch_by_metadata(&req).map(Json)
}

async fn delete(
    State(i): S,
    Body(req): Body<w::DeleteRequest>,
) -> Result<Json<serde_json::Value>, StoreError> {
    let class = if req.delete_all {
        OpClass::DeleteAll
    } else if req.filter.is_some() {
        OpClass::DeleteByMetadata
    } else {
        OpClass::Delete
    };
    i.admit(class, &req.namespace, req.ids.len() as u64, 0)?;
    write(&i.data).delete(&req)?;
    Ok(Json(serde_json::json!({})))
}

fn query_params<T: serde::de::DeserializeOwned>(q: Option<String>) -> Result<T, StoreError> {
    serde_urlencoded_like(q.unwrap_or_default())
}

/// Decodes `a=1&b=x` into a struct through a JSON object, so numbers arrive as numbers.
fn serde_urlencoded_like<T: serde::de::DeserializeOwned>(q: String) -> Result<T, StoreError> {
    let mut obj = serde_json::Map::new();
    for (k, v) in form_urlencoded::parse(q.as_bytes()) {
        let value = match v.parse::<u64>() {
            Ok(n) if k == "limit" => serde_json::Value::from(n),
            _ => serde_json::Value::from(v.into_owned()),
        };
        obj.insert(k.into_owned(), value);
    }
    serde_json::from_value(serde_json::Value::Object(obj))
        .map_err(|e| store::bad(format!("Invalid query: {e}")))
}

async fn list(State(i): S, RawQuery(q): RawQuery) -> Result<Json<w::ListResponse>, StoreError> {
    let p: w::ListParams = query_params(q)?;
    i.admit(OpClass::List, &p.namespace, 0, 0)?;
    data(&i).list(&p).map(Json)
}

async fn query(
    State(i): S,
    Body(req): Body<w::QueryRequest>,
) -> Result<Json<w::QueryResponse>, StoreError> {
    i.admit(OpClass::Query, &req.namespace, 0, 0)?;
    data(&i).query(&req).map(Json)
}

async fn update(
    State(i): S,
    Body(req): Body<w::UpdateRequest>,
) -> Result<Json<w::UpdateResponse>, StoreError> {
    let (class, records) = if req.filter.is_some() {
        (OpClass::UpdateByMetadata, 0)
    } else {
        (OpClass::Update, 1)
    };
    i.admit(class, &req.namespace, records, 0)?;
    write(&i.data).update(&req).map(Json)
}

async fn stats(
    State(i): S,
    Body(req): Body<w::DescribeIndexStatsRequest>,
) -> Result<Json<w::DescribeIndexStatsResponse>, StoreError> {
    i.admit(OpClass::DescribeIndexStats, "", 0, 0)?;
    data(&i).stats(&req).map(Json)
}

async fn stats_get(State(i): S) -> Result<Json<w::DescribeIndexStatsResponse>, StoreError> {
    i.admit(OpClass::DescribeIndexStats, "", 0, 0)?;
    data(&i)
        .stats(&w::DescribeIndexStatsRequest::default())
        .map(Json)
}

async fn list_namespaces(
    State(i): S,
    RawQuery(q): RawQuery,
) -> Result<Json<w::ListNamespacesResponse>, StoreError> {
    let p: w::ListNamespacesParams = query_params(q)?;
    i.admit(OpClass::Namespaces, "", 0, 0)?;
    data(&i).list_namespaces(&p).map(Json)
}

async fn create_namespace(
    State(i): S,
    Body(req): Body<w::CreateNamespaceRequest>,
) -> Result<Json<w::NamespaceDescription>, StoreError> {
    i.admit(OpClass::Namespaces, "", 0, 0)?;
    write(&i.data).create_namespace(&req).map(Json)
}

async fn describe_namespace(
    State(i): S,
    Path(ns): Path<String>,
) -> Result<Json<w::NamespaceDescription>, StoreError> {
    i.admit(OpClass::Namespaces, "", 0, 0)?;
    data(&i).describe_namespace(&ns).map(Json)
}

async fn delete_namespace(
    State(i): S,
    Path(ns): Path<String>,
) -> Result<Json<serde_json::Value>, StoreError> {
    i.admit(OpClass::Namespaces, "", 0, 0)?;
    write(&i.data).delete_namespace(&ns)?;
    Ok(Json(serde_json::json!({})))
}
