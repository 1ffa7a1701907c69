//! `[consistency]`: how long reads may wait for their namespace to apply an LSN, and how callers' writes are
//! remembered for read-your-writes (docs/freshness.md).

use super::{Problems, at_least};
use crate::api::consistency::ConsistencySettings;
use serde::Deserialize;
use std::num::NonZeroUsize;
use std::time::Duration;

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ConsistencySection {
    /// The longest a read waits for its LSN (the caller's deadline may end it sooner). Default 2000.
    pub max_wait_ms: Option<u64>,
    /// How long a caller's write LSN is remembered for `x-consistency: read-your-writes`. Default 60000.
    pub remember_ms: Option<u64>,
    /// (caller, index, namespace) write LSNs remembered at most; the least recently used go first. Default 100000.
    pub max_remembered: Option<usize>,
    /// The pause before the first repeated read; it doubles. Default 10.
    pub first_backoff_ms: Option<u64>,
    /// The longest pause between two reads. Default 200.
    pub max_backoff_ms: Option<u64>,
}

pub(super) fn settings(c: &ConsistencySection, p: &mut Problems) -> ConsistencySettings {
    let d = ConsistencySettings::default();
    let ms = |key: &str, v: Option<u64>, d: Duration, p: &mut Problems| {
        v.map_or(d, |v| {
            p.or(at_least(key, v, 1).map(Duration::from_millis), d)
        })
    };
    let max_remembered = c.max_remembered.map_or(d.max_remembered, |n| {
        p.or(
            at_least("consistency.max_remembered", n, 1)
                .map(|n| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)),
            d.max_remembered,
        )
    });
    ConsistencySettings {
        max_wait: ms("consistency.max_wait_ms", c.max_wait_ms, d.max_wait, p),
        remember: ms("consistency.remember_ms", c.remember_ms, d.remember, p),
        max_remembered,
        first_backoff: ms(
            "consistency.first_backoff_ms",
            c.first_backoff_ms,
            d.first_backoff,
            p,
        ),
        max_backoff: ms(
            "consistency.max_backoff_ms",
            c.max_backoff_ms,
            d.max_backoff,
            p,
        ),
    }
}
