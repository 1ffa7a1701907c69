//! `[batching]`: how calls larger than one Pinecone request are split; its caps are the coalescer's too.

use super::{Problems, invalid};
use crate::stack::RequestCaps;
use crate::stack::batch::BatchSettings;
use serde::Deserialize;

/// How calls larger than one Pinecone request are split. Values above Pinecone's documented caps are refused.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct BatchingSection {
    /// IDs per upstream fetch or delete, at most 1000. Default 1000.
    pub max_ids: Option<usize>,
    /// Bytes of encoded `ids=` parameters per upstream fetch URL. Default 8192.
    pub fetch_url_budget_bytes: Option<usize>,
    /// Vectors per upstream upsert, at most 1000. Default 1000.
    pub max_upsert_vectors: Option<usize>,
    /// JSON bytes per upstream upsert, at most 2000000. Default 2000000.
    pub max_upsert_bytes: Option<usize>,
    /// Batches of one call in flight at once. Default 8.
    pub max_concurrent_batches: Option<usize>,
}

/// The `[batching]` section's settings. A value above Pinecone's documented cap is refused, never lowered.
pub(super) fn settings(b: &BatchingSection, p: &mut Problems) -> BatchSettings {
    let d = BatchSettings::default();
    let mut capped = |key: &str, v: Option<usize>, default: usize, max: usize| match v {
        Some(0) => p.refuse(invalid(key, "must be more than 0"), default),
        Some(v) if v > max => p.refuse(
            invalid(key, format!("{v} is above Pinecone's documented {max}")),
            default,
        ),
        v => v.unwrap_or(default),
    };
    BatchSettings {
        caps: RequestCaps {
            max_ids: capped("batching.max_ids", b.max_ids, d.caps.max_ids, 1000),
            fetch_url_budget_bytes: capped(
                "batching.fetch_url_budget_bytes",
                b.fetch_url_budget_bytes,
                d.caps.fetch_url_budget_bytes,
                1 << 20,
            ),
            max_upsert_vectors: capped(
                "batching.max_upsert_vectors",
                b.max_upsert_vectors,
                d.caps.max_upsert_vectors,
                1000,
            ),
            max_upsert_bytes: capped(
                "batching.max_upsert_bytes",
                b.max_upsert_bytes,
                d.caps.max_upsert_bytes,
                2_000_000,
            ),
        },
        max_concurrent_batches: capped(
            "batching.max_concurrent_batches",
            b.max_concurrent_batches,
            d.max_concurrent_batches,
            1024,
        ),
    }
}
