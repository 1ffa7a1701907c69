//! The REST front door: Pinecone's REST data plane (the paths, bodies, query strings and answers of its index hosts)
//! served over the same stack as the gRPC surface, so that a service using one of Pinecone's REST clients moves behind
//! the gateway by changing only its host.
//!
//! Each request is decoded into the same prost message the gRPC surface receives (the protobuf JSON mapping, which
//! is Pinecone's REST shape) and handed, with its HTTP headers as metadata, to the same [`VectorApi`] method: one
//! copy of validation, limits, batching, coalescing, retries, quotas, read your writes, call records and traces. The
//! answer is the response message in the same mapping; response metadata (request ids, LSNs, freshness) becomes
//! headers; a status becomes Pinecone's data-plane error body (`{"code", "message", "details"}`) with the HTTP status
//! Pinecone would use, and a local refusal is 429 with `Retry-After` in whole seconds.
//!
//! Which index: a path under `/indexes/NAME/` (give the client `http://HOST:PORT/indexes/NAME` as the index's host),
//! else the `pinecone-index` header, else `upstream.default_index`. The control plane it serves (indexes, backups,
//! restore jobs) is in `control`, the listener (HTTP/1.1, h2c, TLS, graceful close) in `listener`. Knobs:
//! `server.rest_listen` (off when absent), `server.max_message_bytes` (the largest body, decompressed:
//! `Content-Encoding: gzip` bodies are read), `server.tls` (shared with the gRPC listener).

mod control;
mod listener;

use crate::api::backup::BackupApi;
use crate::api::vector::VectorApi;
use crate::pb::pinecone as p;
use crate::pb::pinecone::vector_service_server::VectorService;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

/// The gRPC surface's services, which every REST route calls.
pub struct Services {
    pub vectors: VectorApi,
    pub backups: BackupApi,
}

type Api = Arc<Services>;
type Answer = Result<tonic::Response<serde_json::Value>, tonic::Status>;

/// Binds `listen` and serves until `stop` turns true; returns the bound address.
pub async fn start(
    listen: SocketAddr,
    api: Services,
    max_body_bytes: usize,
    tls: Option<&crate::config::TlsSettings>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let tls = tls.map(listener::acceptor).transpose()?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let routes = Router::new()
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
        );
    let app = control::routes()
        .nest("/indexes/{index}", routes.clone())
        .merge(routes)
        .fallback(not_found)
        // axum refuses a body past the limit with a bare 413: Pinecone's error shape instead, naming the limit.
        .layer(axum::middleware::map_response(move |r: Response| async move {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                error(tonic::Status::invalid_argument(format!(
                    "the request body is larger than server.max_message_bytes ({max_body_bytes} bytes, counted \
                     after decompression); send fewer records per request"
                )))
            } else {
                r
            }
        }))
        // The limit counts the decompressed body: a small gzip body cannot expand past it.
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        .layer(tower_http::decompression::RequestDecompressionLayer::new())
        .with_state(Arc::new(api));
    tokio::spawn(listener::serve(listener, app, tls, stop));
    Ok(addr)
}

/// The index a path names (`/indexes/NAME/...`), if any.
type IndexPath = Option<Path<std::collections::HashMap<String, String>>>;

/// A call's metadata: its HTTP headers, with the index a path names as `pinecone-index`.
fn request<T>(index: IndexPath, headers: HeaderMap, message: T) -> tonic::Request<T> {
    let mut md = tonic::metadata::MetadataMap::from_headers(headers);
    if let Some(name) = index.and_then(|Path(p)| p.get("index").cloned())
        && let Ok(v) = name.parse()
    {
        md.insert("pinecone-index", v);
    }
    let mut extensions = tonic::Extensions::default();
    extensions.insert(crate::api::record::RestCall);
    tonic::Request::from_parts(md, extensions, message)
}

/// A JSON body as the request message; a body that is not one is 400 naming what is wrong, and nothing is called.
///
/// A field the message does not have is refused too, naming its path: the protobuf JSON mapping
/// ignores unknown fields (it must, to read Pinecone's answers, which gain fields within an API version), which would
/// drop a caller's misspelled field without a word; Pinecone refuses them (`vectors[1].metdata`). One pass:
/// `serde_ignored` reports what the decoder skipped. The free-form values (metadata, filters) have no unknown fields.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let text = if bytes.is_empty() { &b"{}"[..] } else { bytes };
    let mut unknown = None;
    let mut de = serde_json::Deserializer::from_slice(text);
    let message: T = serde_ignored::deserialize(&mut de, |path| {
        unknown.get_or_insert_with(|| field_path(&path));
    })
    .and_then(|m| de.end().map(|()| m))
    .map_err(|e| format!("the request body is not valid: {e}"))?;
    match unknown {
        Some(path) => Err(format!(
            "the request body has a field Pinecone's API does not define: `{path}`; nothing was sent"
        )),
        None => Ok(message),
    }
}

/// A field's path as a caller wrote it (`vectors[1].metdata`), without serde's wrappers (`Some`, newtypes).
fn field_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        P::Map { parent, key } => match field_path(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            field_path(parent)
        }
    }
}

/// The 400 of a request that could not be read.
fn unreadable(message: String) -> Response {
    error(tonic::Status::invalid_argument(message))
}

/// Serializes an answer message in the protobuf JSON mapping (Pinecone's REST shape).
fn json<T: serde::Serialize>(r: Result<tonic::Response<T>, tonic::Status>) -> Answer {
    r.and_then(|resp| {
        let (md, message, ext) = resp.into_parts();
        serde_json::to_value(message)
            .map(|v| tonic::Response::from_parts(md, v, ext))
            .map_err(|e| tonic::Status::internal(format!("cannot encode the answer: {e}")))
    })
}

/// The HTTP answer: the message and its metadata as headers, or Pinecone's error body.
fn answer(r: Answer) -> Response {
    match r {
        Ok(resp) => {
            let (md, value, _) = resp.into_parts();
            let mut out = axum::Json(value).into_response();
            out.headers_mut().extend(md.into_headers());
            out
        }
        Err(status) => error(status),
    }
}

/// The HTTP status Pinecone's data plane answers a gRPC code with.
fn http_status(code: tonic::Code) -> StatusCode {
    use tonic::Code::*;
    match code {
        Ok => StatusCode::OK,
        InvalidArgument | FailedPrecondition | OutOfRange => StatusCode::BAD_REQUEST,
        Unauthenticated => StatusCode::UNAUTHORIZED,
        PermissionDenied => StatusCode::FORBIDDEN,
        NotFound => StatusCode::NOT_FOUND,
        AlreadyExists | Aborted => StatusCode::CONFLICT,
        ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Unknown | Internal | DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Pinecone's data-plane error body for a status; a refusal to wait is 429 with `Retry-After` (whole seconds, at
/// least 1, as Pinecone sends it).
fn error(status: tonic::Status) -> Response {
    let body = serde_json::json!({
        "code": status.code() as i32,
        "message": status.message(),
        "details": [],
    });
    let mut out = (http_status(status.code()), axum::Json(body)).into_response();
    let pushback_ms = status
        .metadata()
        .get("grpc-retry-pushback-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let md = status.metadata().clone().into_headers();
    out.headers_mut().extend(
        md.into_iter()
            .filter_map(|(k, v)| k.map(|k| (k, v)))
            .filter(|(k, _)| !k.as_str().starts_with("grpc-")),
    );
    if let Some(ms) = pushback_ms
        && let Ok(v) = HeaderValue::from_str(&ms.div_ceil(1000).max(1).to_string())
    {
        out.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    out
}

/// A path the front door does not serve. Pinecone's control-plane operations it does not serve (create, configure and
/// delete indexes, collections, imports, ...) are refused in Pinecone's control-plane error shape, naming the
/// operation and where to do it instead; anything else is the data plane's 404.
async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let path = uri.path();
    let control = [
        "/indexes",
        "/collections",
        "/backups",
        "/restore-jobs",
        "/bulk",
        "/admin",
    ]
    .iter()
    .any(|p| path == *p || path.starts_with(&format!("{p}/")));
    if control {
        let message = format!(
            "{method} {path} is a control-plane operation the gateway's REST front door does not serve (it serves \
             the data plane, describe and list indexes, backups and restore jobs); call Pinecone's control plane \
             for it"
        );
        let body = serde_json::json!({
            "error": {"code": "UNIMPLEMENTED", "message": message},
            "status": 501,
        });
        return (StatusCode::NOT_IMPLEMENTED, axum::Json(body)).into_response();
    }
    error(tonic::Status::not_found(format!(
        "{method} {path}: no such operation on the gateway's REST front door (Pinecone's data plane: /vectors/…, \
         /query, /describe_index_stats, /namespaces)"
    )))
}

/// A query string's pairs, in order.
type Pairs = Vec<(String, String)>;

/// Query-string pairs, `+` read as a plus sign (as Pinecone reads it).
fn pairs(q: Option<String>) -> Pairs {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

fn last(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

fn number(pairs: &[(String, String)], key: &str) -> Result<Option<u32>, String> {
    last(pairs, key)
        .map(|v| {
            v.parse::<u32>()
                .map_err(|_| format!("{key}: `{v}` is not a whole number"))
        })
        .transpose()
}

macro_rules! body_call {
    ($name:ident, $req:ty, $method:ident) => {
        async fn $name(
            State(api): State<Api>,
            index: IndexPath,
            headers: HeaderMap,
            bytes: Bytes,
        ) -> Response {
            let message: $req = match body(&bytes) {
                Ok(m) => m,
                Err(e) => return unreadable(e),
            };
            answer(json(
                api.vectors.$method(request(index, headers, message)).await,
            ))
        }
    };
}

body_call!(upsert, p::UpsertRequest, upsert);
body_call!(
    fetch_by_metadata,
    p::FetchByMetadataRequest,
    fetch_by_metadata
);
body_call!(delete, p::DeleteRequest, delete);
body_call!(query, p::QueryRequest, query);
body_call!(update, p::UpdateRequest, update);
body_call!(stats, p::DescribeIndexStatsRequest, describe_index_stats);

async fn create_namespace(
    State(api): State<Api>,
    index: IndexPath,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let message: p::CreateNamespaceRequest = match body(&bytes) {
        Ok(m) => m,
        Err(e) => return unreadable(e),
    };
    answer(json(
        api.vectors
            .create_namespace(request(index, headers, message))
            .await,
    ))
}

async fn fetch(
    State(api): State<Api>,
    index: IndexPath,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = pairs(q);
    let message = p::FetchRequest {
        ids: pairs
            .iter()
            .filter(|(k, _)| k == "ids")
            .map(|(_, v)| v.clone())
            .collect(),
        namespace: last(&pairs, "namespace").unwrap_or_default(),
    };
    answer(json(
        api.vectors.fetch(request(index, headers, message)).await,
    ))
}

async fn list(
    State(api): State<Api>,
    index: IndexPath,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = pairs(q);
    let limit = match number(&pairs, "limit") {
        Ok(l) => l,
        Err(e) => return unreadable(e),
    };
    let message = p::ListRequest {
        prefix: last(&pairs, "prefix"),
        limit,
        pagination_token: last(&pairs, "paginationToken"),
        namespace: last(&pairs, "namespace").unwrap_or_default(),
    };
    answer(json(
        api.vectors.list(request(index, headers, message)).await,
    ))
}

async fn stats_get(State(api): State<Api>, index: IndexPath, headers: HeaderMap) -> Response {
    let message = p::DescribeIndexStatsRequest::default();
    answer(json(
        api.vectors
            .describe_index_stats(request(index, headers, message))
            .await,
    ))
}

async fn list_namespaces(
    State(api): State<Api>,
    index: IndexPath,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = pairs(q);
    let limit = match number(&pairs, "limit") {
        Ok(l) => l,
        Err(e) => return unreadable(e),
    };
    let message = p::ListNamespacesRequest {
        pagination_token: last(&pairs, "paginationToken"),
        limit,
        prefix: last(&pairs, "prefix"),
    };
    answer(json(
        api.vectors
            .list_namespaces(request(index, headers, message))
            .await,
    ))
}

/// `/namespaces/{namespace}` (or `/indexes/{index}/namespaces/{namespace}`): the namespace, and the index if named.
fn split_namespace(params: std::collections::HashMap<String, String>) -> (IndexPath, String) {
    let namespace = params.get("namespace").cloned().unwrap_or_default();
    let index = params.contains_key("index").then(|| Path(params.clone()));
    (index, namespace)
}

/// A call on one namespace named in the path (`/namespaces/{namespace}`).
macro_rules! namespace_call {
    ($name:ident, $req:ident) => {
        async fn $name(
            State(api): State<Api>,
            Path(params): Path<std::collections::HashMap<String, String>>,
            headers: HeaderMap,
        ) -> Response {
            let (index, namespace) = split_namespace(params);
            let message = p::$req { namespace };
            answer(json(
                api.vectors.$name(request(index, headers, message)).await,
            ))
        }
    };
}

namespace_call!(describe_namespace, DescribeNamespaceRequest);
namespace_call!(delete_namespace, DeleteNamespaceRequest);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::pinecone as p;

    #[test]
    fn unknown_body_fields_are_refused_by_their_path() {
        let ok: p::UpsertRequest = body(
            br#"{"namespace": "ns", "vectors": [{"id": "a", "values": [1.0], "metadata": {"any": {"thing": 1}}}]}"#,
        )
        .unwrap();
        assert_eq!(ok.vectors[0].id, "a");
        let snake: p::QueryRequest =
            body(br#"{"top_k": 1, "include_metadata": true, "filter": {"$x": 1}}"#).unwrap();
        assert_eq!(snake.top_k, 1);
        let typo =
            body::<p::UpsertRequest>(br#"{"vectors": [{"id": "a"}, {"id": "b", "metdata": {}}]}"#);
        let e = typo.unwrap_err();
        assert!(e.contains("`vectors[1].metdata`"), "{e}");
        let e = body::<p::QueryRequest>(br#"{"topk": 3}"#).unwrap_err();
        assert!(e.contains("`topk`"), "{e}");
        assert!(
            body::<p::QueryRequest>(br#"{"topK": 3} x"#).is_err(),
            "trailing bytes"
        );
    }

    #[test]
    fn local_refusals_are_429_with_whole_seconds_of_retry_after() {
        let mut status = tonic::Status::resource_exhausted("fetch allows 1 requests/s");
        status
            .metadata_mut()
            .insert("grpc-retry-pushback-ms", "1200".parse().unwrap());
        let r = error(status);
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()["retry-after"], "2");
        assert!(!r.headers().contains_key("grpc-retry-pushback-ms"));
    }
}
