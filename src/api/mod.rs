//! The gRPC surface: `VectorService` (Pinecone-compatible), `pinecone_gateway.v1.BackupService` and
//! `pinecone_gateway.v1.ListService`.
//!
//! Each handler validates its request ([`validate`]; nothing invalid goes further), resolves the index ([`route`]),
//! turns the request into one [`UpstreamCall`] bounded by the caller's deadline, sends it down the tower stack, and
//! maps the typed answer back ([`convert`]). Every error becomes a gRPC `Status` in exactly one place:
//! [`status::to_status`].

pub mod auth;
mod backup;
pub mod convert;
mod list;
pub mod route;
pub mod status;
pub mod validate;
mod vector;

pub use backup::BackupApi;
pub use list::ListApi;
pub use vector::VectorApi;

use crate::stack::CallError;
pub use crate::stack::UpstreamService;
use crate::telemetry::metrics as m;
use crate::upstream::{CallContext, Op, Reply, UpstreamCall};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

/// Everything that can end a call with an error.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Invalid(#[from] validate::Invalid),
    #[error(transparent)]
    Call(#[from] CallError),
    /// No token, or an unknown one (caller authentication is on).
    #[error("{0}")]
    Unauthenticated(String),
    /// The token may not use this index.
    #[error("{0}")]
    PermissionDenied(String),
    /// The gateway is shutting down.
    #[error("the gateway is shutting down; call another replica")]
    Draining,
    /// Every place for calls in progress is taken (`server.max_concurrent_calls`).
    #[error("the gateway is serving its maximum of {0} concurrent calls")]
    Overloaded(usize),
    /// Pinecone answered with a shape that does not fit the operation.
    #[error("unexpected answer from Pinecone for {0}")]
    UnexpectedReply(&'static str),
}

/// Shared by every service.
#[derive(Clone)]
pub struct Gateway {
    upstream: UpstreamService,
    default_index: Option<String>,
    default_timeout: Duration,
    /// Calls in progress; a call that finds none free is shed at once.
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    /// Set when the gateway drains: new calls are refused.
    draining: Arc<std::sync::atomic::AtomicBool>,
    auth: Arc<auth::Auth>,
}

impl Gateway {
    pub fn new(
        upstream: UpstreamService,
        default_index: Option<String>,
        default_timeout: Duration,
        max_in_flight: usize,
    ) -> Self {
        Gateway {
            upstream,
            default_index,
            default_timeout,
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            draining: Arc::default(),
            auth: Arc::default(),
        }
    }

    /// Requires caller tokens (none configured: off).
    pub fn with_auth(mut self, auth: auth::Auth) -> Self {
        self.auth = Arc::new(auth);
        self
    }

    /// Refuse new calls from now on (calls in progress go on).
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// A place among the calls in progress, or the overload error (load shedding: fail fast, never queue here).
    pub(crate) fn admit(&self) -> Result<OwnedSemaphorePermit, GatewayError> {
        if self.draining.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(GatewayError::Draining);
        }
        let place = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| GatewayError::Overloaded(self.max_in_flight))?;
        metrics::gauge!(m::IN_FLIGHT)
            .set((self.max_in_flight - self.in_flight.available_permits()) as f64);
        Ok(place)
    }

    /// The path every RPC takes: validate and build the operation, route, call, convert, log, map errors.
    pub(crate) async fn handle<Req, Resp>(
        &self,
        method: &'static str,
        req: tonic::Request<Req>,
        namespace: impl FnOnce(&Req) -> String,
        build: impl FnOnce(Req) -> validate::Checked<(Target, Op)>,
        convert: impl FnOnce(Reply) -> Result<Resp, GatewayError>,
    ) -> Result<tonic::Response<Resp>, tonic::Status> {
        let started = Instant::now();
        let ns = namespace(req.get_ref());
        let (md, _, message) = req.into_parts();
        let ctx = route::context(&md);
        let mut index = String::new();
        let result = async {
            let _place = self.admit()?;
            let caller = self.auth.authenticate(&md)?;
            let (target, op) = build(message)?;
            index = match target {
                Target::FromMetadata => route::index(&md, self.default_index.as_deref())?,
                Target::Index(name) => name,
                Target::Project => String::new(),
            };
            auth::Auth::authorize(caller, &index)?;
            let call = UpstreamCall {
                index: index.clone(),
                op,
                deadline: self.deadline(&md),
                ctx: ctx.clone(),
            };
            convert(self.call(call).await?)
        }
        .await;
        metrics::gauge!(m::IN_FLIGHT)
            .set((self.max_in_flight - self.in_flight.available_permits()) as f64);
        finish(
            CallLog {
                method,
                index: &index,
                namespace: &ns,
                started,
                ctx: &ctx,
            },
            result,
        )
    }

    /// When the caller stops waiting.
    pub(crate) fn deadline(&self, md: &tonic::metadata::MetadataMap) -> tokio::time::Instant {
        tokio::time::Instant::now() + route::timeout(md, self.default_timeout)
    }

    /// Sends one call down the stack.
    async fn call(&self, call: UpstreamCall) -> Result<Reply, GatewayError> {
        Ok(self.upstream.clone().oneshot(call).await?)
    }
}

/// Where a call goes.
pub(crate) enum Target {
    /// The index named by the call's metadata (or the default index).
    FromMetadata,
    /// An index named in the request itself (backups of an index).
    Index(String),
    /// No index: project-wide control-plane calls.
    Project,
}

fn expect_empty(reply: Reply, op: &'static str) -> Result<(), GatewayError> {
    match reply {
        Reply::Empty => Ok(()),
        _ => Err(GatewayError::UnexpectedReply(op)),
    }
}

/// What the one log line of a call says.
pub(crate) struct CallLog<'a> {
    pub method: &'static str,
    pub index: &'a str,
    pub namespace: &'a str,
    pub started: Instant,
    pub ctx: &'a CallContext,
}

/// Logs the end of a call in one line, counts it, turns its error into a Status, and returns the request id.
fn finish<T>(
    log: CallLog<'_>,
    result: Result<T, GatewayError>,
) -> Result<tonic::Response<T>, tonic::Status> {
    let CallLog {
        method,
        index,
        namespace,
        started,
        ctx,
    } = log;
    let elapsed = started.elapsed();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    let attempts = ctx.attempts.load(std::sync::atomic::Ordering::Relaxed);
    let request_id = ctx.request_id.as_str();
    metrics::histogram!(m::CALL_SECONDS, "method" => method).record(elapsed.as_secs_f64());
    let id_value = tonic::metadata::MetadataValue::try_from(request_id).ok();
    match result {
        Ok(v) => {
            metrics::counter!(m::CALLS, "method" => method, "code" => "OK").increment(1);
            tracing::info!(
                method,
                index,
                namespace,
                status = "OK",
                latency_ms,
                attempts,
                request_id,
                "call"
            );
            let mut resp = tonic::Response::new(v);
            if let Some(id) = id_value {
                resp.metadata_mut().insert(route::REQUEST_ID_METADATA, id);
            }
            Ok(resp)
        }
        Err(e) => {
            let mut status = status::to_status(e);
            metrics::counter!(m::CALLS, "method" => method, "code" => format!("{:?}", status.code())).increment(1);
            tracing::info!(
                method,
                index,
                namespace,
                status = ?status.code(),
                message = status.message(),
                latency_ms,
                attempts,
                request_id,
                "call"
            );
            if let Some(id) = id_value {
                status.metadata_mut().insert(route::REQUEST_ID_METADATA, id);
            }
            Err(status)
        }
    }
}

/// Takes the reply variant an operation expects, or fails with INTERNAL.
macro_rules! expect_reply {
    ($reply:expr, $variant:ident, $op:expr) => {
        match $reply {
            $crate::upstream::Reply::$variant(r) => Ok(r),
            _ => Err($crate::api::GatewayError::UnexpectedReply($op)),
        }
    };
}
pub(crate) use expect_reply;
