//! One index's data plane over HTTP: decodes requests as Pinecone does, calls the store, and encodes answers and
//! errors as Pinecone does (`{"code": <gRPC code>, "message": …, "details": []}`).
//!
//! Query strings are percent-decoded only, as Pinecone reads them: a `+` stays a plus sign (a client that sends a
//! space as `+` does not find the record). Unknown query parameters and body fields are refused with 400.

use super::limits::Class;
use super::model as m;
use super::store::{self, DataError, IndexData};
use super::{EmuIndex, EmulatorState, LsnSpelling, lag, lock, read, write};
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;
use std::time::Duration;

type S = State<Arc<EmuIndex>>;

impl IntoResponse for DataError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = m::RpcStatus {
            code: self.code,
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
    type Rejection = DataError;

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

/// `key=value` pairs, percent-decoded; `+` is not a space. Only `known` keys are accepted.
fn query_pairs(q: Option<String>, known: &[&str]) -> Result<Vec<(String, String)>, DataError> {
    let q = q.unwrap_or_default();
    let mut out = Vec::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| store::bad(format!("Invalid query parameter encoding: {pair}")))
        };
        let (k, v) = (decode(k)?, decode(v)?);
        if !known.contains(&k.as_str()) {
            return Err(store::bad(format!("Unknown query parameter: {k}")));
        }
        out.push((k, v));
    }
    Ok(out)
}

fn last(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

fn limit_param(pairs: &[(String, String)]) -> Result<Option<u32>, DataError> {
    last(pairs, "limit")
        .map(|v| {
            v.parse()
                .map_err(|_| store::bad(format!("Invalid limit: {v}")))
        })
        .transpose()
}

pub(super) fn router(shared: Arc<EmulatorState>, index: Arc<EmuIndex>) -> Router {
    let scope = index.name.clone();
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
            index.clone(),
            refuse_document_index,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            (shared, scope),
            super::count_requests,
        ))
        .with_state(index)
}

/// A 2026-07 document index is not served by the vectors API: every vector operation is refused with
/// FAILED_PRECONDITION (code 9). Namespaces and stats stay available.
async fn refuse_document_index(
    State(i): S,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let vectors = req.uri().path().starts_with("/vectors/") || req.uri().path() == "/query";
    if i.document && vectors {
        return DataError::new(
            9,
            format!(
                "Index '{}' is a document index: the vectors API does not serve it; use the documents API",
                i.name
            ),
        )
        .into_response();
    }
    next.run(req).await
}

/// Reads what reads see: the indexed view while writes are pending (see `lag`), else the data.
fn reading<T>(i: &EmuIndex, f: impl FnOnce(&IndexData) -> T) -> T {
    reading_at(i, "", |view, _| f(view))
}

/// [`reading`], with the LSN of `namespace`'s last write the view holds.
fn reading_at<T>(i: &EmuIndex, namespace: &str, f: impl FnOnce(&IndexData, u64) -> T) -> T {
    use std::sync::atomic::Ordering::SeqCst;
    // Nothing pending (the usual case): reads share the data's read lock, as without a lag. The flag is set before a
    // lagged write takes the write lock, so one read under the read lock that still sees it clear reads data the
    // write has not changed.
    if !i.lagging.load(SeqCst) {
        let data = read(&i.data);
        if !i.lagging.load(SeqCst) {
            return f(&data, data.indexed_lsn(namespace));
        }
    }
    let mut lag = lock(&i.lag);
    lag.catch_up(std::time::Instant::now());
    if !lag.lagging() {
        i.lagging.store(false, SeqCst);
    }
    let data = read(&i.data);
    f(lag.view(&data), lag.indexed_lsn(&data, namespace))
}

/// A write's delay before reads see it: the request's `x-emulator-index-lag-ms`, else the emulator's setting.
fn lag_of(i: &EmuIndex, headers: &HeaderMap) -> Duration {
    let ms = headers
        .get(LAG_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| i.lag_ms.load(std::sync::atomic::Ordering::Relaxed));
    Duration::from_millis(ms)
}

const LAG_HEADER: &str = "x-emulator-index-lag-ms";

/// Applies a write to the data (refused or acknowledged at once, as Pinecone does) and gives it the namespace's next
/// LSN; with a lag, queues it for the indexed view.
fn writing<T>(
    i: &EmuIndex,
    headers: &HeaderMap,
    namespace: &str,
    apply: impl FnOnce(&mut IndexData) -> Result<T, DataError>,
    queued: impl FnOnce() -> lag::Write,
) -> Result<(T, Written), DataError> {
    let delay = lag_of(i, headers);
    let now = std::time::Instant::now();
    let mut lag = lock(&i.lag);
    lag.catch_up(now);
    let lagged = !delay.is_zero() || lag.lagging();
    // Before the data changes: readers then go through the indexed view (see `reading_at`).
    i.lagging.store(lagged, std::sync::atomic::Ordering::SeqCst);
    let mut data = write(&i.data);
    if lagged {
        lag.before_write(&data);
    }
    let out = apply(&mut data)?;
    let lsn = data.next_lsn(namespace);
    if lagged {
        lag.push(now, delay, namespace, lsn, queued());
    }
    let applied = if lagged {
        lag.indexed_lsn(&data, namespace)
    } else {
        lsn
    };
    Ok((out, Written { lsn, applied }))
}

/// A write's LSN, and the LSN its namespace had applied when it was answered (lower while writes lag).
struct Written {
    lsn: u64,
    applied: u64,
}

/// A change that is not lagged (namespaces created and deleted): to the data and the indexed view alike.
fn changing<T>(
    i: &EmuIndex,
    change: impl Fn(&mut IndexData) -> Result<T, DataError>,
) -> Result<T, DataError> {
    let mut lag = lock(&i.lag);
    let mut data = write(&i.data);
    let out = change(&mut data)?;
    lag.also(|view| {
        let _ = change(view);
    });
    Ok(out)
}

/// Pinecone's REST answers carry log sequence numbers in headers (only REST, not its gRPC API), spelt as
/// [`LsnSpelling`] says: a write the LSN it was given, a query the highest LSN its namespace has applied; with the
/// current spelling a write also says what its namespace had applied (as in Pinecone's SDK tests).
const REQUEST_LSN: &str = "x-pinecone-request-lsn";
const MAX_INDEXED_LSN: &str = "x-pinecone-max-indexed-lsn";
const LSN_COMMITTED: &str = "x-pinecone-lsn-committed";
const LSN_RECONCILED: &str = "x-pinecone-lsn-reconciled";
/// A request's `x-emulator-lsn-headers: guide|current|both` wins over the emulator's `--lsn-headers`.
const SPELLING_HEADER: &str = "x-emulator-lsn-headers";

type Lsns = axum::response::AppendHeaders<Vec<(&'static str, String)>>;
type WithLsn<T> = (Lsns, Json<T>);

fn spelling(i: &EmuIndex, headers: &HeaderMap) -> LsnSpelling {
    headers
        .get(SPELLING_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(i.lsn_spelling)
}

/// The headers of a write's answer: its LSN, and (current spelling) what its namespace had applied.
fn write_lsns(spelling: LsnSpelling, lsn: u64, applied: u64) -> Lsns {
    let mut out = Vec::with_capacity(3);
    if spelling.guide() {
        out.push((REQUEST_LSN, lsn.to_string()));
    }
    if spelling.current() {
        out.push((LSN_COMMITTED, lsn.to_string()));
        out.push((LSN_RECONCILED, applied.to_string()));
    }
    axum::response::AppendHeaders(out)
}

/// The headers of a query's answer: what its namespace had applied.
fn read_lsns(spelling: LsnSpelling, applied: u64) -> Lsns {
    let mut out = Vec::with_capacity(2);
    if spelling.guide() {
        out.push((MAX_INDEXED_LSN, applied.to_string()));
    }
    if spelling.current() {
        out.push((LSN_RECONCILED, applied.to_string()));
    }
    axum::response::AppendHeaders(out)
}

async fn upsert(
    State(i): S,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<WithLsn<m::UpsertOut>, DataError> {
    let req: m::UpsertIn = serde_json::from_slice(&body)
        .map_err(|e| store::bad(format!("Invalid request body: {e}")))?;
    i.admit(Class::Upsert, &req.namespace, 0, body.len() as u64, 0)?;
    let namespace = req.namespace.clone();
    let kept = req.clone();
    let (out, n) = writing(
        &i,
        &headers,
        &namespace,
        |d| d.upsert(req),
        || lag::Write::Upsert(kept),
    )?;
    Ok((
        write_lsns(spelling(&i, &headers), n.lsn, n.applied),
        Json(out),
    ))
}

async fn fetch(State(i): S, RawQuery(q): RawQuery) -> Result<Json<m::FetchOut>, DataError> {
    let pairs = query_pairs(q, &["ids", "namespace"])?;
    let ids: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "ids")
        .map(|(_, v)| v.clone())
        .collect();
    let namespace = last(&pairs, "namespace").unwrap_or_default();
    i.admit(Class::Fetch, &namespace, 0, 0, 0)?;
    reading(&i, |d| d.fetch(&ids, &namespace)).map(Json)
}

async fn fetch_by_metadata(
    State(i): S,
    Body(req): Body<m::FetchByMetadataIn>,
) -> Result<Json<m::FetchOut>, DataError> {
    i.admit(Class::FetchByMetadata, &req.namespace, 0, 0, 0)?;
    reading(&i, |d| d.fetch_by_metadata(&req)).map(Json)
}

async fn delete(
    State(i): S,
    headers: HeaderMap,
    Body(req): Body<m::DeleteIn>,
) -> Result<WithLsn<serde_json::Value>, DataError> {
    let class = if req.delete_all {
        Class::DeleteAll
    } else if req.filter.is_some() {
        Class::DeleteByMetadata
    } else {
        Class::Delete
    };
    i.admit(class, &req.namespace, req.ids.len() as u64, 0, 0)?;
    let namespace = req.namespace.clone();
    let ((), n) = writing(
        &i,
        &headers,
        &namespace,
        |d| d.delete(&req),
        || lag::Write::Delete(req.clone()),
    )?;
    Ok((
        write_lsns(spelling(&i, &headers), n.lsn, n.applied),
        Json(serde_json::json!({})),
    ))
}

async fn list(State(i): S, RawQuery(q): RawQuery) -> Result<Json<m::ListOut>, DataError> {
    let pairs = query_pairs(q, &["prefix", "limit", "paginationToken", "namespace"])?;
    let namespace = last(&pairs, "namespace").unwrap_or_default();
    i.admit(Class::List, &namespace, 0, 0, 0)?;
    let (prefix, limit, token) = (
        last(&pairs, "prefix").unwrap_or_default(),
        limit_param(&pairs)?,
        last(&pairs, "paginationToken"),
    );
    reading(&i, |d| d.list(&namespace, &prefix, limit, token.as_deref())).map(Json)
}

async fn query(
    State(i): S,
    headers: HeaderMap,
    Body(req): Body<m::QueryIn>,
) -> Result<WithLsn<m::QueryOut>, DataError> {
    let arrived = std::time::Instant::now();
    // Charged by the size of the namespace the query reads, as Pinecone charges (1 RU per GB, at least 0.25, and
    // the answer's whole read units); admitted against the index's read units all or nothing with its requests.
    let (out, indexed) = reading_at(&i, &req.namespace, |d, indexed| {
        let units = d.query_read_units(&req.namespace, i.bytes_per_read_unit);
        let out = i
            .admit(Class::Query, &req.namespace, 0, 0, units)
            .and_then(|()| d.query(&req, units));
        (out.map(|out| (out, units)), indexed)
    });
    let (out, units) = out?;
    i.charged(arrived, units);
    Ok((read_lsns(spelling(&i, &headers), indexed), Json(out)))
}

async fn update(
    State(i): S,
    headers: HeaderMap,
    Body(req): Body<m::UpdateIn>,
) -> Result<WithLsn<m::UpdateOut>, DataError> {
    let (class, records) = if req.filter.is_some() {
        (Class::UpdateByMetadata, 0)
    } else {
        (Class::Update, 1)
    };
    i.admit(class, &req.namespace, records, 0, 0)?;
    let namespace = req.namespace.clone();
    let (out, n) = writing(
        &i,
        &headers,
        &namespace,
        |d| d.update(&req),
        || lag::Write::Update(req.clone()),
    )?;
    Ok((
        write_lsns(spelling(&i, &headers), n.lsn, n.applied),
        Json(out),
    ))
}

async fn stats(State(i): S, Body(req): Body<m::StatsIn>) -> Result<Json<m::StatsOut>, DataError> {
    i.admit(Class::Stats, "", 0, 0, 0)?;
    reading(&i, |d| d.stats(&req)).map(Json)
}

async fn stats_get(State(i): S) -> Result<Json<m::StatsOut>, DataError> {
    i.admit(Class::Stats, "", 0, 0, 0)?;
    reading(&i, |d| d.stats(&m::StatsIn::default())).map(Json)
}

async fn list_namespaces(
    State(i): S,
    RawQuery(q): RawQuery,
) -> Result<Json<m::NamespacesOut>, DataError> {
    let pairs = query_pairs(q, &["limit", "paginationToken", "prefix"])?;
    i.admit(Class::Namespaces, "", 0, 0, 0)?;
    let (prefix, limit, token) = (
        last(&pairs, "prefix").unwrap_or_default(),
        limit_param(&pairs)?,
        last(&pairs, "paginationToken"),
    );
    reading(&i, |d| d.list_namespaces(&prefix, limit, token.as_deref())).map(Json)
}

async fn create_namespace(
    State(i): S,
    Body(req): Body<m::CreateNamespaceIn>,
) -> Result<Json<m::NamespaceOut>, DataError> {
    i.admit(Class::Namespaces, "", 0, 0, 0)?;
    changing(&i, |d| d.create_namespace(&req)).map(Json)
}

async fn describe_namespace(
    State(i): S,
    Path(ns): Path<String>,
) -> Result<Json<m::NamespaceOut>, DataError> {
    i.admit(Class::Namespaces, "", 0, 0, 0)?;
    reading(&i, |d| d.describe_namespace(&ns)).map(Json)
}

async fn delete_namespace(
    State(i): S,
    Path(ns): Path<String>,
) -> Result<Json<serde_json::Value>, DataError> {
    i.admit(Class::Namespaces, "", 0, 0, 0)?;
    changing(&i, |d| d.delete_namespace(&ns))?;
    Ok(Json(serde_json::json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plus_is_a_plus_and_unknown_parameters_are_refused() {
        let pairs = query_pairs(
            Some("ids=a+b&ids=c%20d&namespace=n%2Bs".into()),
            &["ids", "namespace"],
        )
        .unwrap();
        assert_eq!(
            pairs,
            [
                ("ids".into(), "a+b".into()),
                ("ids".into(), "c d".into()),
                ("namespace".into(), "n+s".into())
            ]
        );
        assert!(query_pairs(Some("idz=a".into()), &["ids"]).is_err());
    }
}
