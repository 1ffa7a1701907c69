//! The tower stack between the gRPC surface and the REST client: one middleware per module, each a `Layer` and its
//! `Service` over `Service<UpstreamCall>`.
//!
//! Order, outside in: [`retry`] → [`limit`] (Pinecone's rate limits) → the REST client, so that every retry
//! passes the limiter again.

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
}

/// What the gRPC surface sends calls to.
pub type UpstreamService = BoxCloneSyncService<UpstreamCall, Reply, CallError>;

/// Builds the stack over an upstream service.
pub fn build<S>(upstream: S, limiter: std::sync::Arc<limit::Limiter>, retry: retry::RetrySettings) -> UpstreamService
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
            .layer(retry::RetryLayer::new(retry))
            .layer(limit::LimitLayer::new(limiter))
            .service(upstream),
    )
}
