//! A Pinecone emulator in memory, answering like Pinecone's 2025-10/2026-04 REST API does, quirks included.
//!
//! Like Pinecone Local, the control plane answers on the address it was given and every index gets a data plane on
//! a port of its own, reported as `host` (`127.0.0.1:PORT`) by describe index. Unlike Pinecone Local it has backups,
//! restores, namespace management and fetch by metadata. It counts every request it receives per index (or
//! `control`) and operation, so tests can prove that rejected input never reached it.
//!
//! It shares nothing with the gateway's REST code: its JSON shapes ([`model`]), filter ([`filter`]) and limits
//! ([`limits`]) are its own, and it answers as Pinecone answers (64-bit counts as strings, zero values omitted,
//! `null` host while an index initializes, …), so the tests check the gateway against Pinecone's behaviour rather
//! than against the gateway's own decoder.
//!
//! Knobs ([`EmulatorOptions`]): an API key (requests without it get 401: a control-plane `ErrorResponse`, the bare
//! string `"Unauthorized"` on a data plane), Pinecone's limits, injected faults ([`faults`]), how long a restored
//! index initializes, and TLS (a certificate, and the ALPN protocols to offer: `h2`, `http/1.1`).

mod control;
mod data;
pub mod faults;
pub mod filter;
mod lag;
pub mod limits;
pub mod model;
pub mod store;
mod v2026_07;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use store::IndexData;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The scope under which control-plane requests are counted.
pub const CONTROL: &str = "control";

/// TLS on every plane of the emulator.
#[derive(Clone, Debug)]
pub struct EmulatorTls {
    /// PEM certificate chain and private key.
    pub cert_pem: String,
    pub key_pem: String,
    /// ALPN protocols offered, in order of preference (`b"h2"`, `b"http/1.1"`).
    pub alpn: Vec<Vec<u8>>,
}

#[derive(Clone, Debug, Default)]
pub struct EmulatorOptions {
    /// When set, every request must carry this `Api-Key`.
    pub api_key: Option<String>,
    /// Enforce Pinecone's documented per-second limits on every data plane (429 past them).
    pub enforce_limits: bool,
    /// Injected failures, on every plane.
    pub faults: faults::Faults,
    /// How long an index restored from a backup initializes (`host: null`, not ready) before it serves.
    pub restore_init: Duration,
    /// Serve HTTPS instead of plain HTTP.
    pub tls: Option<EmulatorTls>,
    /// How long after a write reads see it (`--index-lag-ms`; a write's `x-emulator-index-lag-ms` wins).
    pub index_lag: Duration,
    /// Which names the LSN headers of answers have (`--lsn-headers`; a request's `x-emulator-lsn-headers` wins).
    pub lsn_spelling: LsnSpelling,
    /// How many bytes of a namespace cost one read unit per query: Pinecone charges 1 RU per GB (`None`: 10^9).
    /// Smaller values make small test namespaces cost what large ones do (`--query-bytes-per-read-unit`).
    pub query_bytes_per_read_unit: Option<u64>,
}

/// The names Pinecone's answers give their log sequence numbers. Pinecone's "check data freshness" guide names
/// `x-pinecone-request-lsn` (a write's) and `x-pinecone-max-indexed-lsn` (what a query's namespace had applied); its
/// current Python SDK reads `x-pinecone-lsn-committed` and `x-pinecone-lsn-reconciled`, and its tests show both of
/// those on an upsert's answer. Which one Pinecone sends to a given account is not documented, so the emulator can
/// answer with either or both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LsnSpelling {
    /// The freshness guide's names.
    Guide,
    /// The current SDK's names (the default: what Pinecone's own client reads today).
    #[default]
    Current,
    /// Both.
    Both,
}

impl LsnSpelling {
    fn guide(self) -> bool {
        matches!(self, LsnSpelling::Guide | LsnSpelling::Both)
    }

    fn current(self) -> bool {
        matches!(self, LsnSpelling::Current | LsnSpelling::Both)
    }
}

impl std::str::FromStr for LsnSpelling {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "guide" => Ok(LsnSpelling::Guide),
            "current" => Ok(LsnSpelling::Current),
            "both" => Ok(LsnSpelling::Both),
            other => Err(format!(
                "unknown LSN header spelling {other:?}: guide, current or both"
            )),
        }
    }
}

/// An index: its description, its records, and its data-plane server.
struct EmuIndex {
    name: String,
    id: String,
    metric: String,
    dimension: Option<u32>,
    vector_type: &'static str,
    /// A 2026-07 document index: the vectors API is refused on its data plane.
    document: bool,
    cloud: String,
    region: String,
    deletion_protection: String,
    tags: Option<BTreeMap<String, String>>,
    /// `host:port` of its data plane.
    host: String,
    /// Until when it initializes (a restore target); `None` once ready.
    initializing_until: Mutex<Option<Instant>>,
    data: RwLock<IndexData>,
    /// The indexed view and the writes not yet in it (lock before `data`).
    lag: Mutex<lag::Lag>,
    /// Whether reads must go through `lag` (writes are pending); clear, they read `data` alone.
    lagging: std::sync::atomic::AtomicBool,
    /// The emulator's index lag (`--index-lag-ms`), shared by every index.
    lag_ms: Arc<std::sync::atomic::AtomicU64>,
    /// The names of the LSN headers (`--lsn-headers`).
    lsn_spelling: LsnSpelling,
    shutdown: watch::Sender<bool>,
    limits: Option<Arc<limits::Limits>>,
    /// How many bytes of a namespace cost one read unit per query (`--query-bytes-per-read-unit`).
    bytes_per_read_unit: u64,
    /// The read units each answered query was charged, and when it arrived (the latest 100,000): the tests count
    /// them per second on their own.
    query_read_units: Mutex<std::collections::VecDeque<(std::time::Instant, u64)>>,
}

impl EmuIndex {
    /// A query was answered, charged `units`.
    fn charged(&self, arrived: std::time::Instant, units: u64) {
        let mut log = lock(&self.query_read_units);
        if log.len() >= 100_000 {
            log.pop_front();
        }
        log.push_back((arrived, units));
    }

    fn admit(
        &self,
        class: limits::Class,
        namespace: &str,
        records: u64,
        bytes: u64,
        read_units: u64,
    ) -> Result<(), store::DataError> {
        match &self.limits {
            Some(l) => l
                .admit(&self.name, class, namespace, records, bytes, read_units)
                .map_err(|t| store::DataError {
                    code: 8,
                    message: t.message,
                    retry_after: Some(t.retry_after),
                }),
            None => Ok(()),
        }
    }

    /// Whether it still initializes at `now`.
    fn initializing(&self, now: Instant) -> bool {
        let mut until = lock(&self.initializing_until);
        match *until {
            Some(t) if now < t => true,
            Some(_) => {
                *until = None;
                false
            }
            None => false,
        }
    }

    fn model(&self) -> model::IndexOut {
        let initializing = self.initializing(Instant::now());
        model::IndexOut {
            name: self.name.clone(),
            metric: self.metric.clone(),
            host: (!initializing).then(|| self.host.clone()),
            spec: model::IndexSpecOut {
                serverless: model::ServerlessSpecOut {
                    cloud: self.cloud.clone(),
                    region: self.region.clone(),
                    read_capacity: model::ReadCapacity {
                        mode: "OnDemand",
                        status: model::ReadCapacityStatus { state: "Ready" },
                    },
                },
            },
            status: model::IndexStatus {
                ready: !initializing,
                state: if initializing {
                    "Initializing"
                } else {
                    "Ready"
                },
            },
            vector_type: self.vector_type.into(),
            dimension: self.dimension,
            deletion_protection: self.deletion_protection.clone(),
            tags: self.tags.clone(),
        }
    }
}

struct Backup {
    model: model::BackupOut,
    snapshot: IndexData,
    /// The schema of its index as API 2026-07 describes it (backups carry it instead of dimension and metric).
    schema: serde_json::Value,
    /// When its source index was deleted, if it was.
    source_deleted_at: Option<String>,
}

/// A restore job; its state follows its target index's initialization.
struct RestoreJob {
    id: String,
    backup_id: String,
    target: Arc<EmuIndex>,
    created_at: String,
}

#[derive(Default)]
struct Inner {
    indexes: BTreeMap<String, Arc<EmuIndex>>,
    backups: BTreeMap<String, Backup>,
    restore_jobs: BTreeMap<String, RestoreJob>,
}

/// EmulatorState state of the emulator.
pub(crate) struct EmulatorState {
    inner: RwLock<Inner>,
    counts: Mutex<HashMap<(String, &'static str), u64>>,
    /// When each request arrived, per scope and operation (the latest 100,000): the tests count them in strict
    /// sliding windows of their own.
    arrivals:
        Mutex<HashMap<(String, &'static str), std::collections::VecDeque<std::time::Instant>>>,
    /// (x-request-id, traceparent) of the most recent requests, so tests can check what the gateway sent.
    traces: Mutex<std::collections::VecDeque<(String, String)>>,
    /// `X-Pinecone-Api-Version` of the most recent request.
    api_version: Mutex<String>,
    /// Requests received per HTTP version (`HTTP/1.1`, `HTTP/2.0`).
    http_versions: Mutex<BTreeMap<String, u64>>,
    /// Injected failures; [`Emulator::set_faults`] changes them while it runs.
    faults: Mutex<faults::Faults>,
    /// The index lag in milliseconds, shared with every index.
    index_lag_ms: Arc<std::sync::atomic::AtomicU64>,
    /// Bumped on every request, so tests can wait for one without polling.
    received: watch::Sender<u64>,
    options: EmulatorOptions,
    limits: Option<Arc<limits::Limits>>,
    faults_injected: Mutex<u64>,
    bind_ip: std::net::IpAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A running emulator. Dropping it does not stop it; call [`Emulator::shutdown`].
#[derive(Clone)]
pub struct Emulator {
    shared: Arc<EmulatorState>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

fn tls_acceptor(tls: &EmulatorTls) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(std::io::Error::other)?;
    let key =
        PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).map_err(std::io::Error::other)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(std::io::Error::other)?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(std::io::Error::other)?;
    config.alpn_protocols = tls.alpn.clone();
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

impl Emulator {
    /// Binds the control plane and starts serving.
    pub async fn start(listen: SocketAddr, options: EmulatorOptions) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let tls = options.tls.as_ref().map(tls_acceptor).transpose()?;
        let shared = Arc::new(EmulatorState {
            inner: RwLock::new(Inner::default()),
            counts: Mutex::new(HashMap::new()),
            arrivals: Mutex::new(HashMap::new()),
            received: watch::channel(0).0,
            traces: Mutex::new(std::collections::VecDeque::new()),
            api_version: Mutex::new(String::new()),
            http_versions: Mutex::new(BTreeMap::new()),
            faults: Mutex::new(options.faults.clone()),
            index_lag_ms: Arc::new(std::sync::atomic::AtomicU64::new(
                options.index_lag.as_millis() as u64,
            )),
            limits: options
                .enforce_limits
                .then(|| Arc::new(limits::Limits::default())),
            faults_injected: Mutex::new(0),
            options,
            bind_ip: addr.ip(),
            tls,
            tasks: Mutex::new(Vec::new()),
        });
        let (tx, rx) = watch::channel(false);
        let app = control::router(shared.clone());
        let task = tokio::spawn(serve(listener, shared.tls.clone(), app, rx));
        lock(&shared.tasks).push(task);
        Ok(Emulator {
            shared,
            addr,
            shutdown: tx,
        })
    }

    /// The control plane's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The control-plane URL to give the gateway.
    pub fn url(&self) -> String {
        let scheme = if self.shared.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// Creates a serverless index directly, as `POST /indexes` would, and returns its host (`127.0.0.1:PORT`).
    pub async fn create_index(
        &self,
        name: &str,
        dimension: u32,
        metric: &str,
    ) -> Result<String, String> {
        self.create(name, dimension, metric, false).await
    }

    /// Creates a document index as API 2026-07 describes one: its dense vectors are a schema field named `embedding`,
    /// not the vectors API's `_values`, and its data plane refuses the vectors API (code 9, FAILED_PRECONDITION).
    /// Returns its host.
    pub async fn create_document_index(
        &self,
        name: &str,
        dimension: u32,
        metric: &str,
    ) -> Result<String, String> {
        self.create(name, dimension, metric, true).await
    }

    async fn create(
        &self,
        name: &str,
        dimension: u32,
        metric: &str,
        document: bool,
    ) -> Result<String, String> {
        let req = model::CreateIndexIn {
            name: name.into(),
            dimension: Some(dimension),
            metric: Some(metric.into()),
            spec: model::IndexSpecIn {
                serverless: Some(model::ServerlessSpec {
                    cloud: "aws".into(),
                    region: "us-east-1".into(),
                }),
            },
            document,
            ..Default::default()
        };
        control::create_index(&self.shared, req, None, None)
            .await
            .map(|i| i.host.clone())
            .map_err(|e| e.message)
    }

    /// Ends the initialization of every restored index now (they serve from the next request on).
    pub fn finish_restores(&self) {
        for index in read(&self.shared.inner).indexes.values() {
            *lock(&index.initializing_until) = None;
        }
    }

    /// How many requests the emulator received for `scope` (an index name, or [`CONTROL`]) and `op`.
    pub fn count(&self, scope: &str, op: &str) -> u64 {
        lock(&self.shared.counts)
            .iter()
            .filter(|((s, o), _)| s == scope && *o == op)
            .map(|(_, n)| *n)
            .sum()
    }

    /// When the requests for `scope` and `op` arrived, oldest first (the latest 100,000).
    pub fn arrivals(&self, scope: &str, op: &str) -> Vec<std::time::Instant> {
        lock(&self.shared.arrivals)
            .iter()
            .filter(|((s, o), _)| s == scope && *o == op)
            .flat_map(|(_, log)| log.iter().copied())
            .collect()
    }

    /// The read units each answered query to `index` was charged, with when it arrived, oldest first (the latest
    /// 100,000).
    pub fn query_read_units(&self, index: &str) -> Vec<(std::time::Instant, u64)> {
        read(&self.shared.inner)
            .indexes
            .get(index)
            .map(|i| lock(&i.query_read_units).iter().copied().collect())
            .unwrap_or_default()
    }

    /// How many requests to `index` were answered 429 because a documented limit was exceeded.
    pub fn throttled(&self, index: &str) -> u64 {
        self.shared
            .limits
            .as_ref()
            .map_or(0, |l| l.throttled(index))
    }

    /// How many faults were injected.
    pub fn faults_injected(&self) -> u64 {
        *lock(&self.shared.faults_injected)
    }

    /// (x-request-id, traceparent) headers of the most recent requests (at most 1,000), oldest first.
    pub fn traces(&self) -> Vec<(String, String)> {
        lock(&self.shared.traces).iter().cloned().collect()
    }

    /// Replaces the injected faults, from the next request on.
    pub fn set_faults(&self, faults: faults::Faults) {
        *lock(&self.shared.faults) = faults;
    }

    /// Replaces the index lag, for writes from now on.
    pub fn set_index_lag(&self, lag: Duration) {
        self.shared
            .index_lag_ms
            .store(lag.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Requests received per HTTP version (`HTTP/1.1`, `HTTP/2.0`).
    pub fn http_versions(&self) -> BTreeMap<String, u64> {
        lock(&self.shared.http_versions).clone()
    }

    /// The `X-Pinecone-Api-Version` header of the most recent request.
    pub fn last_api_version(&self) -> String {
        lock(&self.shared.api_version).clone()
    }

    /// Waits until `done` holds, checking again after each request the emulator receives.
    pub async fn wait_until(&self, mut done: impl FnMut(&Emulator) -> bool) {
        let mut rx = self.shared.received.subscribe();
        while !done(self) {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Every request the emulator received, on every plane.
    pub fn total_requests(&self) -> u64 {
        lock(&self.shared.counts).values().sum()
    }

    /// All counts, keyed `scope/op`.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        lock(&self.shared.counts)
            .iter()
            .map(|((s, o), n)| (format!("{s}/{o}"), *n))
            .collect()
    }

    /// Stops every listener; open connections are closed once their requests finish.
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let indexes: Vec<_> = read(&self.shared.inner).indexes.values().cloned().collect();
        for index in indexes {
            let _ = index.shutdown.send(true);
        }
        let tasks: Vec<_> = lock(&self.shared.tasks).drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Waits until the emulator is shut down.
    pub async fn wait(&self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// Accepts TLS connections; a handshake that fails or stalls is dropped without stopping the others.
struct TlsListener {
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let handshake = self.acceptor.accept(tcp);
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), handshake).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    mut stop: watch::Receiver<bool>,
) {
    use axum::serve::ListenerExt;
    let app = app.layer(axum::middleware::map_response(with_pinecone_request_id));
    let signal = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let result = match tls {
        Some(acceptor) => {
            let listener = TlsListener {
                tcp: listener,
                acceptor,
            };
            axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
        }
        None => {
            // As Pinecone's front ends do: small answers are not held back by Nagle's algorithm.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
        }
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "emulator listener failed");
    }
}

/// Every answer, on either plane and errors included, carries an id of its own in `x-pinecone-request-id`, as
/// Pinecone's do (its SDKs show it as `response_info.request_id`).
async fn with_pinecone_request_id(mut resp: Response) -> Response {
    if let Ok(v) = axum::http::HeaderValue::from_str(&new_id()) {
        resp.headers_mut().insert("x-pinecone-request-id", v);
    }
    resp
}

/// Counts a request under its scope and operation, before anything else looks at it.
async fn count_requests(
    State((shared, scope)): State<(Arc<EmulatorState>, String)>,
    req: Request,
    next: Next,
) -> Response {
    let op = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| operation_name(req.method().as_str(), p.as_str()))
        .unwrap_or("unknown");
    {
        let arrived = std::time::Instant::now();
        let mut arrivals = lock(&shared.arrivals);
        let log = arrivals.entry((scope.clone(), op)).or_default();
        log.push_back(arrived);
        if log.len() > 100_000 {
            log.pop_front();
        }
    }
    *lock(&shared.counts).entry((scope, op)).or_default() += 1;
    {
        // In a block: a borrow of the request (whose body is not Sync) must not live across an await.
        let header = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let mut traces = lock(&shared.traces);
        traces.push_back((header("x-request-id"), header("traceparent")));
        if traces.len() > 1000 {
            traces.pop_front();
        }
        drop(traces);
        *lock(&shared.api_version) = header("x-pinecone-api-version");
        *lock(&shared.http_versions)
            .entry(format!("{:?}", req.version()))
            .or_default() += 1;
    }
    shared.received.send_modify(|n| *n += 1);
    let authorized = match &shared.options.api_key {
        None => true,
        Some(key) => {
            req.headers().get("api-key").and_then(|v| v.to_str().ok()) == Some(key.as_str())
        }
    };
    if !authorized {
        return unauthorized(&req);
    }
    let faults = lock(&shared.faults).with_headers(req.headers());
    if faults.is_off() {
        return next.run(req).await;
    }
    if faults.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.delay_ms)).await;
    }
    let fault = faults.pick();
    if fault != faults::Fault::None {
        *lock(&shared.faults_injected) += 1;
    }
    let data_plane = is_data_plane(&req);
    match fault {
        faults::Fault::None => next.run(req).await,
        faults::Fault::Error => fault_answer(data_plane, 503, "injected fault: unavailable", None),
        faults::Fault::Throttle(ra) => {
            fault_answer(data_plane, 429, "injected fault: too many requests", ra)
        }
        // The caps apply to the data plane (reads and writes); the control plane is not metered in units.
        faults::Fault::MonthlyCap(_) if !data_plane => next.run(req).await,
        faults::Fault::MonthlyCap(kind) => {
            let message = format!(
                "Request failed. You've reached your {kind} unit limit for the current month (2000000). To \
                 continue, upgrade your plan."
            );
            fault_answer(true, 429, &message, None)
        }
        faults::Fault::Drop => {
            // Applied, then the connection breaks before the answer arrives.
            let (parts, _) = next.run(req).await.into_parts();
            let broken = tokio_stream::once(Err::<axum::body::Bytes, std::io::Error>(
                std::io::Error::other("injected fault: connection dropped"),
            ));
            Response::from_parts(parts, axum::body::Body::from_stream(broken))
        }
    }
}

fn is_data_plane(req: &Request) -> bool {
    let p = req.uri().path();
    !p.starts_with("/indexes") && !p.starts_with("/backups") && !p.starts_with("/restore-jobs")
}

fn fault_answer(
    data_plane: bool,
    status: u16,
    message: &str,
    retry_after: Option<u64>,
) -> Response {
    let mut resp = if data_plane {
        store::DataError::new(if status == 429 { 8 } else { 14 }, message).into_response()
    } else {
        let code = if status == 429 {
            "RESOURCE_EXHAUSTED"
        } else {
            "UNAVAILABLE"
        };
        control::error(status, code, message).into_response()
    };
    if let Some(secs) = retry_after
        && let Ok(v) = secs.to_string().parse()
    {
        resp.headers_mut()
            .insert(axum::http::header::RETRY_AFTER, v);
    }
    resp
}

fn unauthorized(req: &Request) -> Response {
    if is_data_plane(req) {
        (StatusCode::UNAUTHORIZED, axum::Json("Unauthorized")).into_response()
    } else {
        control::error(401, "UNAUTHENTICATED", "Invalid API Key").into_response()
    }
}

/// The operation a route serves, by method and route pattern.
fn operation_name(method: &str, path: &str) -> &'static str {
    match (method, path) {
        ("POST", "/vectors/upsert") => "upsert",
        ("GET", "/vectors/fetch") => "fetch",
        ("POST", "/vectors/fetch_by_metadata") => "fetch_by_metadata",
        ("POST", "/vectors/delete") => "delete",
        ("GET", "/vectors/list") => "list",
        ("POST", "/query") => "query",
        ("POST", "/vectors/update") => "update",
        (_, "/describe_index_stats") => "describe_index_stats",
        ("GET", "/namespaces") => "list_namespaces",
        ("POST", "/namespaces") => "create_namespace",
        ("GET", "/namespaces/{namespace}") => "describe_namespace",
        ("DELETE", "/namespaces/{namespace}") => "delete_namespace",
        ("POST", "/indexes") => "create_index",
        ("GET", "/indexes") => "list_indexes",
        ("GET", "/indexes/{name}") => "describe_index",
        ("DELETE", "/indexes/{name}") => "delete_index",
        ("POST", "/indexes/{name}/backups") => "create_backup",
        ("GET", "/indexes/{name}/backups") => "list_index_backups",
        ("GET", "/backups") => "list_project_backups",
        ("GET", "/backups/{id}") => "describe_backup",
        ("DELETE", "/backups/{id}") => "delete_backup",
        ("POST", "/backups/{id}/create-index") => "create_index_from_backup",
        ("GET", "/restore-jobs") => "list_restore_jobs",
        ("GET", "/restore-jobs/{id}") => "describe_restore_job",
        _ => "unknown",
    }
}

use crate::telemetry::new_id;

/// A timestamp as Pinecone's examples write them: `2024-03-15 10:30:00+00:00`.
fn now_timestamp() -> String {
    let rfc = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    rfc.replacen('T', " ", 1).replace('Z', "+00:00")
}

/// Sample records for the demo index that `serve --emulator` creates.
pub async fn seed_demo(emulator: &Emulator, name: &str) -> Result<String, String> {
    let host = emulator.create_index(name, 4, "cosine").await?;
    let index = read(&emulator.shared.inner).indexes.get(name).cloned();
    let Some(index) = index else {
        return Err(format!("index {name} vanished"));
    };
    let genres = ["documentary", "drama", "comedy"];
    let mut data = write(&index.data);
    for i in 1..=12u32 {
        let f = i as f32;
        let mut meta = serde_json::Map::new();
        meta.insert("genre".into(), genres[i as usize % 3].into());
        meta.insert("year".into(), (2010 + i).into());
        data.insert(
            "example-namespace",
            &format!("doc{i}#chunk1"),
            store::Record {
                values: vec![f, 1.0 / f, (f * 0.5).sin(), 0.5],
                sparse: None,
                metadata: Some(meta),
            },
        );
    }
    Ok(host)
}
