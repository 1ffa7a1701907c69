//! `[retry]`: when and how failed upstream calls are tried again.

use super::{Problems, at_least, invalid};
use crate::stack::retry::RetrySettings;
use serde::Deserialize;
use std::time::Duration;

/// When and how failed upstream calls are tried again.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RetrySection {
    /// Attempts per call, the first included; 1 switches retries off. Default 4.
    pub max_attempts: Option<u32>,
    /// First backoff cap; doubles per attempt (full jitter). Default 50.
    pub base_backoff_ms: Option<u64>,
    /// Largest backoff cap. Default 2000.
    pub max_backoff_ms: Option<u64>,
    /// Retries allowed as a share of recent calls, in percent. Default 20.
    pub budget_percent: Option<f32>,
    /// Retries allowed per second regardless of the share. Default 10.
    pub budget_min_per_second: Option<u32>,
    /// Retry deletes/updates by filter and delete-all after 5xx answers too (they may then run twice). Default false.
    pub retry_unsafe_writes: Option<bool>,
}

/// The `[retry]` section's settings. `expected_upstream_ms` is the limits section's: both layers keep that much of
/// the deadline free for the request itself.
pub(super) fn settings(
    r: &RetrySection,
    expected_upstream_ms: Option<u64>,
    p: &mut Problems,
) -> RetrySettings {
    let d = RetrySettings::default();
    let percent = r.budget_percent.unwrap_or(d.budget_percent);
    let budget_percent = if (0.0..=1000.0).contains(&percent) {
        percent
    } else {
        p.refuse(
            invalid("retry.budget_percent", "must be 0 to 1000"),
            d.budget_percent,
        )
    };
    RetrySettings {
        max_attempts: p.or(
            at_least(
                "retry.max_attempts",
                r.max_attempts.unwrap_or(d.max_attempts),
                1,
            ),
            d.max_attempts,
        ),
        base_backoff: r
            .base_backoff_ms
            .map(Duration::from_millis)
            .unwrap_or(d.base_backoff),
        max_backoff: r
            .max_backoff_ms
            .map(Duration::from_millis)
            .unwrap_or(d.max_backoff),
        budget_percent,
        budget_min_per_second: r.budget_min_per_second.unwrap_or(d.budget_min_per_second),
        expected_upstream: expected_upstream_ms
            .map(Duration::from_millis)
            .unwrap_or(d.expected_upstream),
        retry_unsafe_writes: r.retry_unsafe_writes.unwrap_or(false),
    }
}
