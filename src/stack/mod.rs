//! The tower stack between the gRPC surface and the REST client: one middleware per module, each a `Layer` and its
//! `Service` over `Service<UpstreamCall>`.
//!
//! Order, outside in: [`batch`] (split and merge) → [`retry`] → [`limit`] (Pinecone's rate limits) → the REST
//! client, so that every batch and every retry passes the limiter.

pub mod batch;
pub mod limit;
pub mod retry;

use crate::upstream::{Reply, UpstreamCall, UpstreamError};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

/// Everything the stack can fail with.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// Refused locally by the rate limiter; never sent.
    #[error(transparent)]
    Limited(#[from] limit::Rejection),
    /// Some batches of a split call failed after their retries; the others were applied.
    #[error("{done} of {total} IDs done; {} failed: {cause}", failed_ids.len())]
    Partial {
        done: usize,
        total: usize,
        failed_ids: Vec<String>,
        cause: Box<CallError>,
    },
}

/// The future every layer of the stack returns.
pub type CallFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, CallError>> + Send>>;

/// What the gRPC surface sends calls to.
pub type UpstreamService = BoxCloneSyncService<UpstreamCall, Reply, CallError>;

/// Builds the stack over an upstream service.
pub fn build<S>(
    upstream: S,
    limiter: std::sync::Arc<limit::Limiter>,
    retry: retry::RetrySettings,
    batching: batch::BatchSettings,
) -> UpstreamService
where
    S: tower::Service<UpstreamCall, Response = Reply, Error = UpstreamError>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
{
    let upstream = upstream.map_err(CallError::Upstream);
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(batch::BatchLayer::new(batching))
            .layer(retry::RetryLayer::new(retry))
            .layer(limit::LimitLayer::new(limiter))
            .service(upstream),
    )
}
