//! `[coalescing]` and `[indexes.NAME.coalescing]`: merging small fetches and deletes by ID.

use super::{IndexSection, Problems, invalid};
use crate::stack::RequestCaps;
use crate::stack::coalesce::{CoalesceSettings, Switches};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

/// Merging concurrent fetches and deletes by ID of one namespace while the rate limit has no turn to spare.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct CoalescingSection {
    /// Coalesce fetch by ID. Default true.
    pub fetch: Option<bool>,
    /// Coalesce delete by ID. Default true.
    pub delete: Option<bool>,
    /// Requests one namespace may send back to back before it keeps to the even spacing of its limit. Default 10.
    pub burst_requests: Option<u32>,
}

/// Coalescing switches for one index, over the global ones.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct IndexCoalescingSection {
    /// Coalesce fetch by ID for this index. Default: `coalescing.fetch`.
    pub fetch: Option<bool>,
    /// Coalesce delete by ID for this index. Default: `coalescing.delete`.
    pub delete: Option<bool>,
}

/// The coalescing settings: the global switches, each index's over them, and the batching layer's caps.
pub(super) fn settings(
    c: &CoalescingSection,
    indexes: &BTreeMap<String, IndexSection>,
    caps: RequestCaps,
    p: &mut Problems,
) -> CoalesceSettings {
    let d = CoalesceSettings::default();
    let enabled = Switches {
        fetch: c.fetch.unwrap_or(d.enabled.fetch),
        delete: c.delete.unwrap_or(d.enabled.delete),
    };
    let per_index: HashMap<String, Switches> = indexes
        .iter()
        .filter_map(|(name, section)| {
            let s = section.coalescing.as_ref()?;
            Some((
                name.clone(),
                Switches {
                    fetch: s.fetch.unwrap_or(enabled.fetch),
                    delete: s.delete.unwrap_or(enabled.delete),
                },
            ))
        })
        .collect();
    let burst_requests = match c.burst_requests {
        Some(0) => p.refuse(
            invalid("coalescing.burst_requests", "must be more than 0"),
            d.burst_requests,
        ),
        b => b.unwrap_or(d.burst_requests),
    };
    CoalesceSettings {
        enabled,
        per_index,
        burst_requests,
        caps,
    }
}
