//! The tower stack between the gRPC surface and the REST client: one middleware per module, each a `Layer` and its
//! `Service` over `Service<UpstreamCall>`.
//!
//! Order, outside in: [`order`] (a delete never overtakes an earlier fetch or write of the same ID, nor the
//! reverse) → [`batch`] (split and merge) → [`retry`] → [`coalesce`] (merge small fetches and deletes while the
//! limit has no turn to spare) → [`limit`] (Pinecone's rate limits) → the REST client, so that every batch and every
//! retry passes the limiter, and a caller's retry joins a new coalesced request rather than repeating its old one.

pub mod batch;
pub mod coalesce;
pub mod limit;
pub mod order;
pub mod retry;
#[cfg(test)]
pub mod testing;

use crate::call::{Reply, UpstreamCall, UpstreamError};
use tower::{ServiceBuilder, ServiceExt};

/// Everything the stack can fail with.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// Refused locally by the rate limiter; never sent.
    #[error(transparent)]
    Limited(#[from] limit::Rejection),
    /// The caller's deadline passed while the call waited in the gateway, before or without an answer from
    /// Pinecone: behind an earlier call on the same IDs (`order`), or for its coalesced request (`coalesce`).
    #[error("the deadline passed while the call waited for {waiting_for}")]
    DeadlineWhileWaiting { waiting_for: &'static str },
    /// The gateway dropped the coalesced request this call was part of before it answered (the gateway is
    /// stopping); Pinecone may or may not have received it.
    #[error("the gateway abandoned the coalesced request before Pinecone answered")]
    Abandoned,
    /// Some batches of a split call failed after their retries; the others were applied.
    #[error("{done} of {total} IDs done; {} failed: {cause}", failed_ids.len())]
    Partial {
        done: usize,
        total: usize,
        failed_ids: Vec<String>,
        cause: Box<CallError>,
    },
}

/// What one upstream request may carry: Pinecone's documented caps, and how much of a fetch's URL its IDs may take.
/// Batching splits calls to fit them and coalescing merges calls up to them: one value serves both (the
/// configuration's `batching.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestCaps {
    /// IDs per upstream fetch or delete (Pinecone: 1,000).
    pub max_ids: usize,
    /// Bytes of `ids=…&` query parameters per upstream fetch (common request-line limits are 8–16 KB).
    pub fetch_url_budget_bytes: usize,
    /// Vectors per upstream upsert (Pinecone: 1,000).
    pub max_upsert_vectors: usize,
    /// JSON bytes per upstream upsert (Pinecone: 2 MB).
    pub max_upsert_bytes: usize,
}

impl Default for RequestCaps {
    fn default() -> Self {
        RequestCaps {
            max_ids: 1000,
            fetch_url_budget_bytes: 8 * 1024,
            max_upsert_vectors: 1000,
            max_upsert_bytes: 2_000_000,
        }
    }
}

/// Settings a layer reads per call and a reload (SIGHUP) replaces whole; each call reads one consistent copy.
pub struct Reloadable<T>(std::sync::Arc<std::sync::RwLock<std::sync::Arc<T>>>);

impl<T> Clone for Reloadable<T> {
    fn clone(&self) -> Self {
        Reloadable(self.0.clone())
    }
}

impl<T> Reloadable<T> {
    pub fn new(value: T) -> Self {
        Reloadable(std::sync::Arc::new(std::sync::RwLock::new(
            std::sync::Arc::new(value),
        )))
    }

    pub fn get(&self) -> std::sync::Arc<T> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, value: T) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(value);
    }
}

impl<T> From<T> for Reloadable<T> {
    fn from(value: T) -> Self {
        Reloadable::new(value)
    }
}

/// What every middleware wraps: the next layer down, or the REST client at the bottom ([`Client`]). A layer hands a
/// call down with [`Inner::send`] and `&self`: no `poll_ready`, no `Oneshot`, and a clone (for a future that sends
/// later, or more than once) is a reference count, since each layer's state sits behind the [`Stacked`]'s `Arc`.
pub trait Inner: Clone + Send + Sync + 'static {
    fn send(&self, call: UpstreamCall) -> CallFuture;
}

/// One middleware's work on one call. Every layer's service is a [`Stacked`] over its `Handle`.
pub trait Handle: Send + Sync + 'static {
    fn handle(&self, call: UpstreamCall) -> CallFuture;
}

/// The one `tower::Service` of the stack's middlewares: always ready, since a layer that waits (for a turn, for an
/// earlier call, for a backoff) does so inside the call's future, where the caller's deadline bounds it; each call
/// goes to the layer's [`Handle`].
pub struct Stacked<H>(std::sync::Arc<H>);

impl<H> Stacked<H> {
    pub fn new(handle: H) -> Self {
        Stacked(std::sync::Arc::new(handle))
    }
}

impl<H> Clone for Stacked<H> {
    fn clone(&self) -> Self {
        Stacked(self.0.clone())
    }
}

impl<H: Handle> Inner for Stacked<H> {
    fn send(&self, call: UpstreamCall) -> CallFuture {
        self.0.handle(call)
    }
}

impl<H: Handle> tower::Service<UpstreamCall> for Stacked<H> {
    type Response = Reply;
    type Error = CallError;
    type Future = CallFuture;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), CallError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: UpstreamCall) -> CallFuture {
        self.0.handle(call)
    }
}

/// The bottom of the stack: the REST client (any `tower::Service` of calls), its errors made [`CallError`]s.
#[derive(Clone)]
pub struct Client<S>(pub S);

impl<S> Inner for Client<S>
where
    S: tower::Service<UpstreamCall, Response = Reply, Error = UpstreamError>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
{
    fn send(&self, call: UpstreamCall) -> CallFuture {
        let client = self.0.clone();
        Box::pin(async move { client.oneshot(call).await.map_err(CallError::Upstream) })
    }
}

/// The future every layer of the stack returns.
pub type CallFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, CallError>> + Send>>;

/// What the gRPC surface sends calls to: the whole stack behind one reference count.
#[derive(Clone)]
pub struct UpstreamService(std::sync::Arc<dyn Fn(UpstreamCall) -> CallFuture + Send + Sync>);

impl UpstreamService {
    pub fn new(stack: impl Inner) -> Self {
        UpstreamService(std::sync::Arc::new(move |call| stack.send(call)))
    }

    pub fn send(&self, call: UpstreamCall) -> CallFuture {
        (self.0)(call)
    }
}

/// Builds the stack over an upstream service.
pub fn build<S>(
    upstream: S,
    limiter: std::sync::Arc<limit::Limiter>,
    retry: retry::RetrySettings,
    batching: batch::BatchSettings,
    coalescing: Reloadable<coalesce::CoalesceSettings>,
) -> UpstreamService
where
    Client<S>: Inner,
{
    UpstreamService::new(
        ServiceBuilder::new()
            .layer(order::OrderLayer::new())
            .layer(batch::BatchLayer::new(batching))
            .layer(retry::RetryLayer::new(retry))
            .layer(coalesce::CoalesceLayer::new(limiter.clone(), coalescing))
            .layer(limit::LimitLayer::new(limiter))
            .service(Client(upstream)),
    )
}
