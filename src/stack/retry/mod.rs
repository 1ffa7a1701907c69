//! Retries: a tower middleware that tries a failed call again when that is safe and there is time.
//!
//! What is retried ([`retryable`]):
//! - Pinecone's 429: always, because Pinecone refused the call (after its `Retry-After`);
//! - a connection that was never made: always, because nothing reached Pinecone;
//! - 5xx answers and connections that broke mid-request: only idempotent operations (fetch, fetch by metadata,
//!   list, query, describe, stats, list namespaces/backups/restore jobs, upsert, update by ID, delete by ID);
//!   never create backup, create index from backup, create/delete namespace, delete backup, or (by default) deletes
//!   and updates by metadata filter and delete-all, which may have been applied;
//! - never a local rate-limit rejection, a timeout, or any other 4xx.
//!
//! Backoff is exponential with full jitter (`base_backoff_ms` × 2^attempt, capped at `max_backoff_ms`), never
//! shorter than Pinecone's `Retry-After`, and always inside the caller's deadline: a retry whose wait would leave
//! less than `expected_upstream_ms` before the deadline is not made. A budget (tower's `TpsBudget`: retries at most
//! `budget_percent` of recent calls plus `budget_min_per_second`) keeps an upstream outage from multiplying
//! traffic. Every attempt passes the rate limiter again, which sits below this layer.
//!
//! Knobs: [`RetrySettings`].

use crate::call::{Op, UpstreamCall, UpstreamError};
use crate::stack::{CallError, CallFuture};
use crate::stack::{Handle, Inner, Stacked};
use crate::telemetry::metrics as m;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::Layer;
use tower::retry::budget::{Budget, TpsBudget};

#[derive(Clone, Debug)]
pub struct RetrySettings {
    /// Attempts per call, the first included. 1 switches retries off.
    pub max_attempts: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Retries allowed as a share of recent calls, 0–1000 percent.
    pub budget_percent: f32,
    /// Retries allowed per second whatever the share.
    pub budget_min_per_second: u32,
    /// Time kept free for the upstream call when judging whether a retry fits the deadline.
    pub expected_upstream: Duration,
    /// Retry deletes and updates by filter and delete-all after 5xx answers too (they may run twice).
    pub retry_unsafe_writes: bool,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            max_attempts: 4,
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            budget_percent: 20.0,
            budget_min_per_second: 10,
            expected_upstream: Duration::from_millis(50),
            retry_unsafe_writes: false,
        }
    }
}

/// Whether this failure of this call may be retried, and the least wait Pinecone asked for.
pub fn retryable(op: &Op, err: &CallError, settings: &RetrySettings) -> Option<Duration> {
    let e = match err {
        CallError::Upstream(e) => e,
        // Like a connection that broke: the request may have reached Pinecone.
        CallError::Abandoned if op.is_idempotent(settings.retry_unsafe_writes) => {
            return Some(Duration::ZERO);
        }
        _ => return None,
    };
    match e {
        UpstreamError::Status {
            status: 429,
            retry_after,
            ..
        } => Some(retry_after.unwrap_or_default()),
        UpstreamError::Connect { .. } => Some(Duration::ZERO),
        UpstreamError::Status { status, .. }
            if matches!(status, 500 | 502 | 503 | 504)
                && op.is_idempotent(settings.retry_unsafe_writes) =>
        {
            Some(Duration::ZERO)
        }
        UpstreamError::Broken { .. } if op.is_idempotent(settings.retry_unsafe_writes) => {
            Some(Duration::ZERO)
        }
        _ => None,
    }
}

#[derive(Clone)]
pub struct RetryLayer {
    settings: Arc<RetrySettings>,
    budget: Arc<TpsBudget>,
}

impl RetryLayer {
    pub fn new(settings: RetrySettings) -> Self {
        let budget = TpsBudget::new(
            Duration::from_secs(10),
            settings.budget_min_per_second,
            settings.budget_percent / 100.0,
        );
        RetryLayer {
            settings: Arc::new(settings),
            budget: Arc::new(budget),
        }
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Stacked<Retry<S>>;

    fn layer(&self, inner: S) -> Stacked<Retry<S>> {
        Stacked::new(Retry {
            inner,
            settings: self.settings.clone(),
            budget: self.budget.clone(),
        })
    }
}

#[derive(Clone)]
pub struct Retry<S> {
    inner: S,
    settings: Arc<RetrySettings>,
    budget: Arc<TpsBudget>,
}

/// Full jitter: uniform in [0, min(max, base × 2^attempt)].
fn backoff(settings: &RetrySettings, attempt: u32) -> Duration {
    let cap = settings
        .base_backoff
        .saturating_mul(1u32 << attempt.min(20))
        .min(settings.max_backoff);
    cap.mul_f64(rand::random::<f64>())
}

impl<S: Inner> Handle for Retry<S> {
    fn handle(&self, call: UpstreamCall) -> CallFuture {
        let inner = self.inner.clone();
        let settings = self.settings.clone();
        let budget = self.budget.clone();
        Box::pin(async move {
            budget.deposit();
            let mut attempt = 0;
            loop {
                let sent = inner.send(call.clone());
                let result = if call.ctx.trace.is_some() {
                    crate::call::RESEND.scope(attempt, sent).await
                } else {
                    sent.await
                };
                let err = match result {
                    Ok(reply) => return Ok(reply),
                    Err(e) => e,
                };
                attempt += 1;
                let Some(asked) = retryable(&call.op, &err, &settings) else {
                    return Err(err);
                };
                if attempt >= settings.max_attempts {
                    return Err(err);
                }
                let wait = backoff(&settings, attempt - 1).max(asked);
                if Instant::now() + wait + settings.expected_upstream > call.deadline {
                    return Err(err);
                }
                if !budget.withdraw() {
                    tracing::debug!(
                        operation = call.op.name(),
                        "retry budget spent; not retrying"
                    );
                    m::counter(m::RETRY_BUDGET_EXHAUSTED, &[("operation", call.op.name())])
                        .increment(1);
                    return Err(err);
                }
                tracing::debug!(operation = call.op.name(), attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying");
                metrics::counter!(m::RETRIES, "operation" => call.op.name()).increment(1);
                tokio::time::sleep(wait).await;
            }
        })
    }
}

#[cfg(test)]
mod tests;
