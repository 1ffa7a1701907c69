//! Pinecone's REST API as a `tower::Service<UpstreamCall>`: one REST request per call, the answer decoded into a
//! typed [`Reply`] or a typed [`UpstreamError`].
//!
//! It knows hosts (index name → data-plane host, [`hosts`]), headers (`Api-Key`, `X-Pinecone-Api-Version`), and the
//! JSON shapes ([`crate::wire`]); nothing about limits or retries, which belong to the tower stack above it. Every
//! request is bounded by the call's deadline.

pub mod error;
pub mod hosts;
pub mod http;

pub use crate::call::{CallContext, Op, Reply, UpstreamCall, UpstreamError};

use crate::telemetry::metrics as m;
use crate::wire::control as c;
use crate::wire::data as d;
use crate::wire::query::Query;
use ::http::Method;
use ::http::{HeaderName, HeaderValue};
use hosts::Hosts;
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, Status};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use url::Url;

/// The REST API versions the gateway speaks, oldest first. Their wire shapes are the same for every operation the
/// gateway uses (data plane, describe index, backups, restore jobs); docs/compatibility.md says more.
pub const API_VERSIONS: &[&str] = &["2025-10", "2026-04", "2026-07"];

/// The newest supported version: Pinecone supports a stable version for at least 12 months after its release.
pub const DEFAULT_API_VERSION: &str = "2026-04";

/// A secret that never prints.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// How to reach Pinecone.
#[derive(Clone, Debug)]
pub struct UpstreamSettings {
    pub control_plane: Url,
    pub api_key: ApiKey,
    /// Index name → configured host, bypassing the control-plane lookup.
    pub static_hosts: std::collections::HashMap<String, String>,
    pub connect_timeout: Duration,
    /// Sent as `X-Pinecone-Api-Version`; one of [`API_VERSIONS`].
    pub api_version: &'static str,
    /// HTTP/2 without negotiation to `http://` hosts (h2c); `https://` negotiates by ALPN either way.
    pub plaintext_http2: bool,
}

/// The REST client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Upstream {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `plaintext_http2` makes it use one HTTP/2 connection for `http://` hosts: one connection carries every
    /// request at once, which costs a quarter less CPU per fetch than HTTP/1.1's connection per request in flight
    /// (BENCHMARKS.md).
    http: http::HttpClient,
    control_plane: Url,
    /// The headers every request carries, made once (the key's value marked sensitive: it never prints).
    headers: CommonHeaders,
    /// `upstream.api_version`.
    api_version: &'static str,
    hosts: Hosts,
    /// Since when no connection to Pinecone has succeeded (None while the last attempt got an answer).
    failing_since: std::sync::Mutex<Option<tokio::time::Instant>>,
    /// Whether `failing_since` is set, so that an answered request does not take its lock.
    failing: std::sync::atomic::AtomicBool,
    /// One host lookup at a time per index: concurrent first calls wait for it instead of each asking the control
    /// plane (whose limit is 20 requests/s per project).
    lookups: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// One REST request, before the host is known.
struct RestRequest {
    method: Method,
    /// Path segments, each percent-encoded when the URL is built (the API refuses `.` and `..` before this).
    path: Vec<String>,
    query: Query,
    /// Shared, not copied, by every attempt.
    body: Option<bytes::Bytes>,
}

impl RestRequest {
    fn new(method: Method, path: &[&str]) -> Self {
        debug_assert!(
            !path.iter().any(|s| crate::wire::query::is_dot_segment(s)),
            "dot segments must be refused by validation"
        );
        RestRequest {
            method,
            path: path.iter().map(|s| s.to_string()).collect(),
            query: Query::new(),
            body: None,
        }
    }

    fn body(mut self, body: impl Into<bytes::Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }

    fn json<T: serde::Serialize>(self, body: &T) -> Self {
        self.body(d::encode(body))
    }

    fn query(mut self, key: &'static str, value: Option<impl ToString>) -> Self {
        self.query.push_opt(key, value);
        self
    }

    fn page(self, p: &c::PageParams) -> Self {
        self.query("limit", p.limit)
            .query("paginationToken", p.pagination_token.as_ref())
            .query("include_deleted", p.include_deleted.then_some("true"))
    }
}

impl Upstream {
    pub fn new(settings: UpstreamSettings) -> std::io::Result<Self> {
        let http = http::HttpClient::new(&http::HttpSettings {
            connect_timeout: settings.connect_timeout,
            pool_idle: Duration::from_secs(60),
            plaintext_http2: settings.plaintext_http2,
        })?;
        let hosts = Hosts::new(settings.control_plane.scheme(), settings.static_hosts);
        Ok(Upstream {
            inner: Arc::new(Inner {
                http,
                control_plane: settings.control_plane,
                headers: common_headers(&settings.api_key, settings.api_version),
                api_version: settings.api_version,
                hosts,
                failing_since: std::sync::Mutex::new(None),
                failing: std::sync::atomic::AtomicBool::new(false),
                lookups: std::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Replaces the per-index hosts of the configuration (SIGHUP).
    pub fn reload_hosts(&self, hosts: std::collections::HashMap<String, String>) {
        self.inner.hosts.set_static(hosts);
    }

    /// How long Pinecone has been unreachable (every attempt since failed to connect), if it is.
    pub fn unreachable_for(&self) -> Option<Duration> {
        let since = *self
            .inner
            .failing_since
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        since.map(|s| s.elapsed())
    }

    /// Sends one call and decodes the answer.
    pub async fn send(&self, call: UpstreamCall) -> Result<Reply, UpstreamError> {
        let inner = &self.inner;
        let op_name = call.op.name();
        // What one upstream request carries, after batching and coalescing.
        let items = call.op.ids().len();
        if items > 0 {
            m::histogram(m::BATCH_SIZE, &[("operation", op_name)]).record(items as f64);
        }
        if let Op::ListIndexBackups(p) = &call.op
            && p.include_deleted
            && inner.api_version != "2026-07"
        {
            return Err(UpstreamError::NotInVersion {
                field: "include_deleted",
                version: inner.api_version,
            });
        }
        let (rest, decode) = translate(&call);
        if !call.op.is_data_plane() {
            let base = inner.control_plane.clone();
            let resp = inner
                .execute(op_name, &base, &rest, call.deadline, &call.ctx)
                .await?;
            return decode(op_name, resp);
        }
        let mut base = inner.host(&call.index, call.deadline, &call.ctx).await?;
        if call.op.is_vectors_api() && inner.hosts.is_document(&call.index) {
            return Err(UpstreamError::DocumentIndex {
                index: call.index.clone(),
            });
        }
        if let Some(dimension) = inner.hosts.dimension(&call.index)
            && let Err(refused) = wrong_dimension(&call, dimension)
        {
            // The index may have been deleted and recreated with another dimension since it was looked up: look
            // again (at most once a second per index) before refusing.
            if !inner.hosts.recheck(&call.index, &base) {
                return Err(refused);
            }
            base = inner.host(&call.index, call.deadline, &call.ctx).await?;
            if let Some(dimension) = inner.hosts.dimension(&call.index) {
                wrong_dimension(&call, dimension)?;
            }
        }
        let first = inner
            .execute(op_name, &base, &rest, call.deadline, &call.ctx)
            .await;
        // Pinecone's own dimension error, or a 404 (the index gone, or only a namespace missing): what was looked up
        // may be stale, so the next call looks the index up again (at most once a second per index).
        if let Ok(answer) = &first
            && (answer.status == 404
                || (answer.status == 400 && contains(&answer.body, b"dimension")))
        {
            inner.hosts.recheck(&call.index, &base);
        }
        // A refused connection never reached Pinecone, and the host may have moved (the index deleted or
        // recreated): look it up again (a vanished index then answers NOT_FOUND) and, only if the host changed, send
        // the request once more. Nothing that may have been applied is ever sent twice here. A data-plane 404 is not
        // a sign of a stale host: it also means "no such namespace".
        let stale = matches!(first, Err(UpstreamError::Connect { .. }));
        if stale && inner.hosts.forget(&call.index, &base) {
            let fresh = inner.host(&call.index, call.deadline, &call.ctx).await?;
            if fresh != base {
                return decode(
                    op_name,
                    inner
                        .execute(op_name, &fresh, &rest, call.deadline, &call.ctx)
                        .await?,
                );
            }
        }
        decode(op_name, first?)
    }
}

#[derive(Debug)]
struct CommonHeaders {
    /// None for a key that is not a valid header value: Pinecone then refuses the request (401, naming no key).
    api_key: Option<HeaderValue>,
    api_version: HeaderValue,
}

const API_KEY: HeaderName = HeaderName::from_static("api-key");
const API_VERSION: HeaderName = HeaderName::from_static("x-pinecone-api-version");
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// Pinecone's log sequence numbers (serverless, REST only): a write's, and the one a namespace has applied, each
/// under two spellings. Pinecone's "check data freshness" guide names `x-pinecone-request-lsn` and
/// `x-pinecone-max-indexed-lsn`; its current Python SDK (pinecone-io/python-sdk, `ResponseInfo`) reads
/// `x-pinecone-lsn-committed` and `x-pinecone-lsn-reconciled`, and its tests put both of those on upsert answers.
const REQUEST_LSN: HeaderName = HeaderName::from_static("x-pinecone-request-lsn");
const LSN_COMMITTED: HeaderName = HeaderName::from_static("x-pinecone-lsn-committed");
const MAX_INDEXED_LSN: HeaderName = HeaderName::from_static("x-pinecone-max-indexed-lsn");
const LSN_RECONCILED: HeaderName = HeaderName::from_static("x-pinecone-lsn-reconciled");
/// Pinecone's id of a request: what its support asks for.
const PINECONE_REQUEST_ID: HeaderName = HeaderName::from_static("x-pinecone-request-id");

fn lsn_header(headers: &::http::HeaderMap, name: &HeaderName) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The LSNs an answer carries, under either spelling: the write's (committed; the higher when both are sent, so a
/// read never waits for less than the write) and the one the namespace had applied (reconciled; the lower when both
/// are sent, so a read is never called fresher than either says).
pub fn answer_lsns(headers: &::http::HeaderMap) -> (Option<u64>, Option<u64>) {
    let committed = lsn_header(headers, &REQUEST_LSN).max(lsn_header(headers, &LSN_COMMITTED));
    let reconciled = match (
        lsn_header(headers, &MAX_INDEXED_LSN),
        lsn_header(headers, &LSN_RECONCILED),
    ) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    (committed, reconciled)
}
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const USER_AGENT: HeaderValue =
    HeaderValue::from_static(concat!("pinecone-gateway/", env!("CARGO_PKG_VERSION")));

fn common_headers(key: &ApiKey, api_version: &'static str) -> CommonHeaders {
    let api_key = HeaderValue::from_str(key.expose()).ok().map(|mut v| {
        v.set_sensitive(true);
        v
    });
    CommonHeaders {
        api_key,
        api_version: HeaderValue::from_static(api_version),
    }
}

/// A raw answer: status and body bytes.
struct Answer {
    status: u16,
    body: bytes::Bytes,
    retry_after: Option<Duration>,
    pinecone_request_id: Option<Box<str>>,
}

impl Answer {
    fn error(self) -> UpstreamError {
        UpstreamError::from_answer(self.status, &self.body, self.retry_after)
    }

    fn success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// `Retry-After` in seconds (HTTP dates are not worth honouring for sub-minute limits).
fn retry_after(headers: &::http::HeaderMap) -> Option<Duration> {
    let v = headers.get(::http::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

impl Inner {
    async fn host(
        &self,
        index: &str,
        deadline: tokio::time::Instant,
        ctx: &CallContext,
    ) -> Result<Url, UpstreamError> {
        if let Some(url) = self.hosts.get(index) {
            return Ok(url);
        }
        let gate = self
            .lookups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(index.to_string())
            .or_default()
            .clone();
        let turn = tokio::time::timeout_at(deadline, gate.lock())
            .await
            .map_err(|_| UpstreamError::Timeout)?;
        let result = match self.hosts.get(index) {
            // Found by the lookup this call waited for.
            Some(url) => Ok(url),
            None => self.look_up(index, deadline, ctx).await,
        };
        drop(turn);
        let mut lookups = self.lookups.lock().unwrap_or_else(|e| e.into_inner());
        if lookups.get(index).is_some_and(|g| Arc::ptr_eq(g, &gate)) {
            lookups.remove(index);
        }
        result
    }

    async fn look_up(
        &self,
        index: &str,
        deadline: tokio::time::Instant,
        ctx: &CallContext,
    ) -> Result<Url, UpstreamError> {
        let rest = RestRequest::new(Method::GET, &["indexes", index]);
        let answer = self
            .execute("describe_index", &self.control_plane, &rest, deadline, ctx)
            .await?;
        let model: c::IndexModel = match decode_control("describe_index", answer) {
            Err(UpstreamError::Status {
                status: 404,
                message,
                grpc_code,
                retry_after,
            }) => {
                return Err(UpstreamError::Status {
                    status: 404,
                    message: format!("index `{index}` not found: {message}"),
                    grpc_code,
                    retry_after,
                });
            }
            other => other?,
        };
        // An index without a host (initializing) is not cached: the next call looks it up again.
        match model.usable_host() {
            Some(host) => self.hosts.insert(
                index,
                host,
                model.dense_dimension(),
                model.is_document_index(),
            ),
            // Pinecone's states from which an index never becomes ready: clients retry UNAVAILABLE for ever.
            None if matches!(
                model.status.state.as_str(),
                "InitializationFailed" | "Failed" | "Terminating"
            ) =>
            {
                Err(UpstreamError::IndexFailed {
                    index: index.to_string(),
                    state: model.status.state,
                })
            }
            None => Err(UpstreamError::NotReady {
                index: index.to_string(),
                state: if model.status.state.is_empty() {
                    "unknown".into()
                } else {
                    model.status.state
                },
            }),
        }
    }

    /// One request, counted and timed by operation and outcome.
    async fn execute(
        &self,
        operation: &'static str,
        base: &Url,
        rest: &RestRequest,
        deadline: tokio::time::Instant,
        ctx: &CallContext,
    ) -> Result<Answer, UpstreamError> {
        let started = std::time::Instant::now();
        ctx.attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let span = ctx.trace.as_ref().map(|scope| {
            let mut span = scope.child(route_name(operation), SpanKind::Client);
            span.attribute(KeyValue::new(
                "http.request.method",
                rest.method.to_string(),
            ));
            span.attribute(KeyValue::new("url.template", route_template(operation)));
            span.attribute(KeyValue::new(
                "server.address",
                base.host_str().unwrap_or_default().to_string(),
            ));
            let resends = crate::call::RESEND.try_with(|n| *n).unwrap_or(0);
            if resends > 0 {
                span.attribute(KeyValue::new(
                    "http.request.resend_count",
                    i64::from(resends),
                ));
            }
            span
        });
        let trace_headers = match (&span, &ctx.trace) {
            (Some(span), Some(scope)) => (Some(scope.traceparent(span)), scope.tracestate()),
            _ => (ctx.traceparent.clone(), ctx.tracestate.clone()),
        };
        let result = self
            .execute_once(base, rest, deadline, ctx, trace_headers)
            .await;
        if let (Some(mut span), Some(scope)) = (span, &ctx.trace) {
            let status = match &result {
                Ok(a) => {
                    span.attribute(KeyValue::new(
                        "http.response.status_code",
                        i64::from(a.status),
                    ));
                    if let Some(id) = &a.pinecone_request_id {
                        span.attribute(KeyValue::new("pinecone.request_id", id.to_string()));
                    }
                    if a.status >= 400 {
                        Status::error(a.status.to_string())
                    } else {
                        Status::Unset
                    }
                }
                Err(e) => Status::error(e.to_string()),
            };
            span.end(scope, status);
        }
        let outcome = match &result {
            Ok(a) => m::status_label(a.status),
            Err(UpstreamError::Connect { .. }) => "connect_error".into(),
            Err(UpstreamError::Broken { .. }) => "broken".into(),
            Err(UpstreamError::Timeout) => "timeout".into(),
            Err(_) => "error".into(),
        };
        match outcome {
            std::borrow::Cow::Borrowed(status) => {
                m::counter(m::UPSTREAM, &[("operation", operation), ("status", status)])
            }
            std::borrow::Cow::Owned(status) => {
                metrics::counter!(m::UPSTREAM, "operation" => operation, "status" => status)
            }
        }
        .increment(1);
        m::histogram(m::UPSTREAM_SECONDS, &[("operation", operation)])
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn execute_once(
        &self,
        base: &Url,
        rest: &RestRequest,
        deadline: tokio::time::Instant,
        ctx: &CallContext,
        (traceparent, tracestate): (Option<String>, Option<String>),
    ) -> Result<Answer, UpstreamError> {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if remaining.is_zero() {
            return Err(UpstreamError::Timeout);
        }
        let Some(uri) = request_uri(base, rest) else {
            return Err(UpstreamError::Connect {
                host: base.to_string(),
                detail: "the host and path do not make a URL".into(),
            });
        };
        let mut req = ::http::Request::builder()
            .method(rest.method.clone())
            .uri(uri)
            .body(http_body_util::Full::new(
                rest.body.clone().unwrap_or_default(),
            ))
            .map_err(|e| UpstreamError::Connect {
                host: base.to_string(),
                detail: e.to_string(),
            })?;
        let headers = req.headers_mut();
        headers.insert(API_VERSION, self.headers.api_version.clone());
        headers.insert(::http::header::ACCEPT, JSON);
        headers.insert(::http::header::USER_AGENT, USER_AGENT);
        if let Some(key) = &self.headers.api_key {
            headers.insert(API_KEY, key.clone());
        }
        if !ctx.request_id.is_empty()
            && let Ok(v) = HeaderValue::from_str(&ctx.request_id)
        {
            headers.insert(REQUEST_ID, v);
        }
        if let Some(tp) = traceparent
            && let Ok(v) = HeaderValue::try_from(tp)
        {
            headers.insert(TRACEPARENT, v);
            if let Some(ts) = tracestate
                && let Ok(v) = HeaderValue::try_from(ts)
            {
                headers.insert(TRACESTATE, v);
            }
        }
        if rest.body.is_some() {
            headers.insert(::http::header::CONTENT_TYPE, JSON);
        }
        let sent = tokio::time::timeout_at(deadline, self.http.send(req)).await;
        let host = || base.host_str().unwrap_or_default().to_string();
        let answer = match sent {
            Err(_elapsed) => Err(UpstreamError::Timeout),
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(http::HttpError::Connect(detail))) => Err(UpstreamError::Connect {
                host: host(),
                detail,
            }),
            Ok(Err(http::HttpError::Broken(detail))) => Err(UpstreamError::Broken {
                host: host(),
                detail,
            }),
        };
        self.note_connection(&answer);
        let answer = answer?;
        if (200..300).contains(&answer.status) {
            let (committed, reconciled) = answer_lsns(&answer.headers);
            ctx.lsns.note(committed, reconciled);
        }
        // Kept for errors too: those are what support is asked about.
        let pinecone_request_id = answer
            .headers
            .get(PINECONE_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(Box::<str>::from);
        if let Some(id) = &pinecone_request_id {
            ctx.pinecone_request_ids.note(id);
        }
        Ok(Answer {
            status: answer.status,
            retry_after: retry_after(&answer.headers),
            body: answer.body,
            pinecone_request_id,
        })
    }

    /// Keeps `failing_since`: set by the first refused connection, cleared by any answer.
    fn note_connection(&self, sent: &Result<http::HttpAnswer, UpstreamError>) {
        use std::sync::atomic::Ordering;
        let refused = matches!(sent, Err(UpstreamError::Connect { .. }));
        if !refused && !self.failing.load(Ordering::Acquire) {
            return;
        }
        let mut failing = self.failing_since.lock().unwrap_or_else(|e| e.into_inner());
        if refused {
            failing.get_or_insert_with(tokio::time::Instant::now);
        } else {
            *failing = None;
        }
        self.failing.store(refused, Ordering::Release);
    }
}

/// `base` (a host, perhaps with a path prefix) with the request's path segments, each percent-encoded as a URL
/// path segment, and its query.
fn request_uri(base: &Url, rest: &RestRequest) -> Option<::http::Uri> {
    let base = base.as_str().trim_end_matches('/');
    let mut uri = String::with_capacity(base.len() + 64 + rest.query.as_str().len());
    uri.push_str(base);
    for segment in &rest.path {
        uri.push('/');
        uri.extend(percent_encoding::utf8_percent_encode(segment, PATH_SEGMENT));
    }
    if !rest.query.is_empty() {
        uri.push('?');
        uri.push_str(rest.query.as_str());
    }
    ::http::Uri::try_from(uri).ok()
}

/// What the `url` crate encodes in a path segment of an `http(s)` URL (its `SPECIAL_PATH_SEGMENT` set), so URLs are the bytes they were when
/// reqwest built them from a `Url`.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'?')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'%')
    .add(b'\\');

fn malformed(operation: &'static str, e: serde_json::Error) -> UpstreamError {
    UpstreamError::Malformed {
        operation,
        detail: e.to_string(),
    }
}

/// A data-plane answer, by the protobuf JSON mapping.
fn decode_data<T: DeserializeOwned + d::Tidy>(
    operation: &'static str,
    answer: Answer,
) -> Result<T, UpstreamError> {
    if !answer.success() {
        return Err(answer.error());
    }
    d::decode(&answer.body).map_err(|e| malformed(operation, e))
}

/// A control-plane answer.
fn decode_control<T: DeserializeOwned>(
    operation: &'static str,
    answer: Answer,
) -> Result<T, UpstreamError> {
    if !answer.success() {
        return Err(answer.error());
    }
    serde_json::from_slice(&answer.body).map_err(|e| malformed(operation, e))
}

type Decoder = fn(&'static str, Answer) -> Result<Reply, UpstreamError>;

macro_rules! data {
    ($variant:ident) => {
        (|op, a| decode_data(op, a).map(Reply::$variant)) as Decoder
    };
}

macro_rules! control {
    ($variant:ident) => {
        (|op, a| decode_control(op, a).map(Reply::$variant)) as Decoder
    };
}

/// Operations whose answer carries nothing the caller needs (delete → `{}`, delete backup → 202 and no body).
fn decode_empty(_: &'static str, answer: Answer) -> Result<Reply, UpstreamError> {
    if answer.success() {
        Ok(Reply::Empty)
    } else {
        Err(answer.error())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Refuses vectors whose length is not the index's dimension, before anything is sent (Pinecone would answer 400).
/// Empty dense values pass: a query by ID, an update of metadata only, a sparse-only record (Pinecone judges those).
fn wrong_dimension(call: &UpstreamCall, dimension: u32) -> Result<(), UpstreamError> {
    let found = match &call.op {
        Op::Upsert(body) => body
            .wrong_dimension(dimension)
            .map(|(id, got)| (format!("vectors[id `{id}`].values"), got)),
        Op::Query(q) => Some(("vector".to_string(), q.vector.len() as u32)),
        Op::Update(u) => Some(("values".to_string(), u.values.len() as u32)),
        _ => None,
    };
    match found {
        Some((field, got)) if got > 0 && got != dimension => Err(UpstreamError::WrongDimension {
            field,
            got,
            index: call.index.clone(),
            dimension,
        }),
        _ => Ok(()),
    }
}

/// The path template of an operation's REST request (OpenTelemetry's `url.template`): no IDs or names in it.
fn route_template(operation: &'static str) -> &'static str {
    match operation {
        "upsert" => "/vectors/upsert",
        "fetch" => "/vectors/fetch",
        "fetch_by_metadata" => "/vectors/fetch_by_metadata",
        "delete" => "/vectors/delete",
        "list" => "/vectors/list",
        "query" => "/query",
        "update" => "/vectors/update",
        "describe_index_stats" => "/describe_index_stats",
        "list_namespaces" | "create_namespace" => "/namespaces",
        "describe_namespace" | "delete_namespace" => "/namespaces/{namespace}",
        "describe_index" => "/indexes/{index_name}",
        "create_backup" | "list_index_backups" => "/indexes/{index_name}/backups",
        "list_project_backups" => "/backups",
        "describe_backup" | "delete_backup" => "/backups/{backup_id}",
        "create_index_from_backup" => "/backups/{backup_id}/create-index",
        "list_restore_jobs" => "/restore-jobs",
        "describe_restore_job" => "/restore-jobs/{job_id}",
        _ => "",
    }
}

/// The name of an upstream attempt's span: OpenTelemetry's HTTP client convention, `{method} {url.template}`.
fn route_name(operation: &'static str) -> &'static str {
    match operation {
        "upsert" => "POST /vectors/upsert",
        "fetch" => "GET /vectors/fetch",
        "fetch_by_metadata" => "POST /vectors/fetch_by_metadata",
        "delete" => "POST /vectors/delete",
        "list" => "GET /vectors/list",
        "query" => "POST /query",
        "update" => "POST /vectors/update",
        "describe_index_stats" => "POST /describe_index_stats",
        "list_namespaces" => "GET /namespaces",
        "create_namespace" => "POST /namespaces",
        "describe_namespace" => "GET /namespaces/{namespace}",
        "delete_namespace" => "DELETE /namespaces/{namespace}",
        "describe_index" => "GET /indexes/{index_name}",
        "create_backup" => "POST /indexes/{index_name}/backups",
        "list_index_backups" => "GET /indexes/{index_name}/backups",
        "list_project_backups" => "GET /backups",
        "describe_backup" => "GET /backups/{backup_id}",
        "delete_backup" => "DELETE /backups/{backup_id}",
        "create_index_from_backup" => "POST /backups/{backup_id}/create-index",
        "list_restore_jobs" => "GET /restore-jobs",
        "describe_restore_job" => "GET /restore-jobs/{job_id}",
        _ => "HTTP",
    }
}

/// The REST request of an operation and how to decode its answer.
fn translate(call: &UpstreamCall) -> (RestRequest, Decoder) {
    use Method as M;
    let index = call.index.as_str();
    match &call.op {
        Op::Upsert(b) => (
            RestRequest::new(M::POST, &["vectors", "upsert"]).body(b.body()),
            data!(Upsert),
        ),
        Op::Fetch { ids, namespace } => {
            let mut r = RestRequest::new(M::GET, &["vectors", "fetch"]);
            for id in ids {
                r.query.push("ids", id);
            }
            (r.query("namespace", Some(namespace)), data!(Fetch))
        }
        Op::FetchByMetadata(b) => (
            RestRequest::new(M::POST, &["vectors", "fetch_by_metadata"]).json(b),
            data!(FetchByMetadata),
        ),
        Op::Delete(b) => (
            RestRequest::new(M::POST, &["vectors", "delete"]).json(b),
            decode_empty,
        ),
        Op::List(p) => (
            RestRequest::new(M::GET, &["vectors", "list"])
                .query("prefix", p.prefix.as_ref())
                .query("limit", p.limit)
                .query("paginationToken", p.pagination_token.as_ref())
                .query("namespace", Some(&p.namespace)),
            data!(List),
        ),
        Op::Query(b) => (RestRequest::new(M::POST, &["query"]).json(b), data!(Query)),
        Op::Update(b) => (
            RestRequest::new(M::POST, &["vectors", "update"]).json(b),
            data!(Update),
        ),
        Op::DescribeIndexStats(b) => (
            RestRequest::new(M::POST, &["describe_index_stats"]).json(b),
            data!(DescribeIndexStats),
        ),
        Op::ListNamespaces(p) => (
            RestRequest::new(M::GET, &["namespaces"])
                .query("limit", p.limit)
                .query("paginationToken", p.pagination_token.as_ref())
                .query("prefix", p.prefix.as_ref()),
            data!(ListNamespaces),
        ),
        Op::DescribeNamespace(ns) => (
            RestRequest::new(M::GET, &["namespaces", ns]),
            data!(Namespace),
        ),
        Op::CreateNamespace(b) => (
            RestRequest::new(M::POST, &["namespaces"]).json(b),
            data!(Namespace),
        ),
        Op::DeleteNamespace(ns) => (
            RestRequest::new(M::DELETE, &["namespaces", ns]),
            decode_empty,
        ),
        Op::DescribeIndex => (
            RestRequest::new(M::GET, &["indexes", index]),
            (|op, a| decode_control(op, a).map(|m| Reply::Index(Box::new(m)))) as Decoder,
        ),
        Op::ListIndexes => (RestRequest::new(M::GET, &["indexes"]), control!(Indexes)),
        Op::CreateBackup(b) => (
            RestRequest::new(M::POST, &["indexes", index, "backups"]).json(b),
            control!(Backup),
        ),
        Op::ListIndexBackups(p) => (
            RestRequest::new(M::GET, &["indexes", index, "backups"]).page(p),
            control!(Backups),
        ),
        Op::ListProjectBackups(p) => (
            RestRequest::new(M::GET, &["backups"]).page(p),
            control!(Backups),
        ),
        Op::DescribeBackup(id) => (RestRequest::new(M::GET, &["backups", id]), control!(Backup)),
        Op::DeleteBackup(id) => (RestRequest::new(M::DELETE, &["backups", id]), decode_empty),
        Op::CreateIndexFromBackup { backup_id, request } => (
            RestRequest::new(M::POST, &["backups", backup_id, "create-index"]).json(request),
            control!(Restore),
        ),
        Op::ListRestoreJobs(p) => (
            RestRequest::new(M::GET, &["restore-jobs"]).page(p),
            control!(RestoreJobs),
        ),
        Op::DescribeRestoreJob(id) => (
            RestRequest::new(M::GET, &["restore-jobs", id]),
            control!(RestoreJob),
        ),
    }
}

/// Decodes an answer to `op` as the gateway does for a real request: for the contract tests, which feed Pinecone's
/// bodies (tests/fixtures/pinecone/) through exactly this path.
pub fn decode_answer(
    op: &Op,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> Result<Reply, UpstreamError> {
    let call = UpstreamCall {
        index: String::new(),
        op: op.clone(),
        deadline: tokio::time::Instant::now(),
        ctx: Default::default(),
    };
    let (_, decode) = translate(&call);
    decode(
        op.name(),
        Answer {
            status,
            body: bytes::Bytes::copy_from_slice(body),
            retry_after,
            pinecone_request_id: None,
        },
    )
}

impl tower::Service<UpstreamCall> for Upstream {
    type Response = Reply;
    type Error = UpstreamError;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, UpstreamError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The HTTP client pools connections itself and never applies backpressure here.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: UpstreamCall) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.send(call).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_never_prints() {
        let k = ApiKey::new("pcsk_secret");
        assert!(!format!("{k:?}").contains("secret"));
    }

    fn rest(op: Op) -> RestRequest {
        translate(&UpstreamCall {
            index: "i".into(),
            op,
            deadline: tokio::time::Instant::now(),
            ctx: Default::default(),
        })
        .0
    }

    #[test]
    fn fetch_sends_repeated_ids_percent_encoded() {
        let r = rest(Op::Fetch {
            ids: vec!["a".into(), "b c".into(), "d+e".into()],
            namespace: "n s".into(),
        });
        assert_eq!(
            r.query.as_str(),
            "ids=a&ids=b%20c&ids=d%2Be&namespace=n%20s"
        );
    }

    #[test]
    fn list_and_list_namespaces_encode_their_parameters() {
        let r = rest(Op::List(crate::pb::pinecone::ListRequest {
            prefix: Some("doc 1#".into()),
            limit: Some(5),
            pagination_token: Some("t+k".into()),
            namespace: "ns".into(),
        }));
        assert_eq!(
            r.query.as_str(),
            "prefix=doc%201%23&limit=5&paginationToken=t%2Bk&namespace=ns"
        );
        let r = rest(Op::ListNamespaces(
            crate::pb::pinecone::ListNamespacesRequest {
                pagination_token: None,
                limit: Some(3),
                prefix: Some("a b".into()),
            },
        ));
        assert_eq!(r.query.as_str(), "limit=3&prefix=a%20b");
    }

    #[test]
    fn data_plane_operations_need_a_host() {
        assert!(Op::DescribeNamespace("x".into()).is_data_plane());
        assert!(!Op::DescribeIndex.is_data_plane());
    }
}
