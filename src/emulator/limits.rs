//! Pinecone's documented per-second limits, enforced as Pinecone does: a request is counted when it arrives, and one
//! that would put more than N requests (records, bytes) into any one-second window of its key is answered 429 with
//! Pinecone's body and a `Retry-After`.
//!
//! The table and the window are the emulator's own, written from Pinecone's rate-limit pages (the stricter value
//! where its pages disagree), not the gateway's limiter: the tests check the gateway's limiter against this strict
//! counter, not against a copy of itself.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// What a request is, for the limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    Upsert,
    Query,
    Fetch,
    FetchByMetadata,
    List,
    Stats,
    Update,
    UpdateByMetadata,
    Delete,
    DeleteByMetadata,
    DeleteAll,
    Namespaces,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Unit {
    Requests,
    Records,
    Bytes,
    /// A query's read units, charged by the namespace's size (`store.rs`, `query_read_units`).
    ReadUnits,
}

/// Per namespace, or per index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Per {
    Namespace,
    Index,
}

/// Pinecone's documented limits: (unit, scope, per second).
fn limits(class: Class) -> &'static [(Unit, Per, u64)] {
    use Per::*;
    use Unit::*;
    match class {
        Class::Upsert => &[(Requests, Namespace, 100), (Bytes, Namespace, 50_000_000)],
        Class::Query => &[(Requests, Namespace, 100), (ReadUnits, Index, 2_000)],
        Class::Fetch => &[(Requests, Index, 100)],
        Class::FetchByMetadata => &[(Requests, Namespace, 5)],
        Class::List => &[(Requests, Index, 200)],
        Class::Stats => &[(Requests, Index, 100)],
        Class::Update => &[(Requests, Namespace, 100), (Records, Namespace, 100)],
        Class::UpdateByMetadata => &[(Requests, Namespace, 5), (Requests, Index, 500)],
        Class::Delete => &[
            (Requests, Namespace, 100),
            (Records, Namespace, 5_000),
            (Records, Index, 5_000),
        ],
        Class::DeleteByMetadata => &[(Requests, Namespace, 5), (Requests, Index, 500)],
        Class::DeleteAll => &[(Requests, Namespace, 100)],
        Class::Namespaces => &[(Requests, Index, 100)],
    }
}

fn name(class: Class) -> &'static str {
    match class {
        Class::Upsert => "upsert",
        Class::Query => "query",
        Class::Fetch => "fetch",
        Class::FetchByMetadata => "fetch by metadata",
        Class::List => "list",
        Class::Stats => "describe index stats",
        Class::Update => "update",
        Class::UpdateByMetadata => "update by metadata",
        Class::Delete => "delete",
        Class::DeleteByMetadata => "delete by metadata",
        Class::DeleteAll => "delete all",
        Class::Namespaces => "namespace operations",
    }
}

const WINDOW: Duration = Duration::from_secs(1);

/// Arrivals in the last second: (when, cost).
#[derive(Default)]
struct Arrivals(VecDeque<(Instant, u64)>);

impl Arrivals {
    fn used(&mut self, now: Instant) -> u64 {
        while self.0.front().is_some_and(|(t, _)| now - *t >= WINDOW) {
            self.0.pop_front();
        }
        self.0.iter().map(|(_, c)| c).sum()
    }

    /// How long until `cost` more fits under `limit`.
    fn wait(&self, now: Instant, cost: u64, limit: u64) -> Duration {
        let mut used: u64 = self.0.iter().map(|(_, c)| c).sum();
        for (t, c) in &self.0 {
            if used + cost <= limit {
                break;
            }
            used -= c;
            let free_at = *t + WINDOW;
            if used + cost <= limit {
                return free_at.saturating_duration_since(now);
            }
        }
        Duration::ZERO
    }
}

type Key = (String, String, Class, Unit);

/// The 429 answer's message and `Retry-After`.
pub struct Throttled {
    pub message: String,
    pub retry_after: Duration,
}

#[derive(Default)]
pub struct Limits {
    windows: Mutex<HashMap<Key, Arrivals>>,
    throttled: Mutex<HashMap<String, u64>>,
}

impl Limits {
    /// Counts the request in every window that applies, all or nothing, or refuses it.
    pub fn admit(
        &self,
        index: &str,
        class: Class,
        namespace: &str,
        records: u64,
        bytes: u64,
        read_units: u64,
    ) -> Result<(), Throttled> {
        let ns = if namespace.is_empty() {
            "__default__"
        } else {
            namespace
        };
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        // Read under the lock, so no arrival recorded by another request is later than `now`.
        let now = Instant::now();
        let mut take = Vec::new();
        for &(unit, per, limit) in limits(class) {
            let cost = match unit {
                Unit::Requests => 1,
                Unit::Records => records,
                Unit::Bytes => bytes,
                Unit::ReadUnits => read_units,
            };
            if cost == 0 {
                continue;
            }
            let scope = match per {
                Per::Namespace => ns.to_string(),
                Per::Index => String::new(),
            };
            let key = (index.to_string(), scope, class, unit);
            let w = windows.entry(key.clone()).or_default();
            if w.used(now) + cost > limit {
                let retry_after = w.wait(now, cost, limit).max(Duration::from_millis(1));
                drop(windows);
                *self
                    .throttled
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(index.to_string())
                    .or_default() += 1;
                let unit = match unit {
                    Unit::Requests => "requests",
                    Unit::Records => "records",
                    Unit::Bytes => "bytes",
                    Unit::ReadUnits => "read units",
                };
                let whom = match per {
                    Per::Namespace => format!("namespace {ns}"),
                    Per::Index => format!("index {index}"),
                };
                return Err(Throttled {
                    message: format!(
                        "Request failed. You've reached the {} limit for {whom} ({limit} {unit} per second). \
                         Retry later.",
                        name(class)
                    ),
                    retry_after,
                });
            }
            take.push((key, cost));
        }
        for (key, cost) in take {
            if let Some(w) = windows.get_mut(&key) {
                w.0.push_back((now, cost));
            }
        }
        Ok(())
    }

    /// How many requests to `index` were answered 429 for a limit.
    pub fn throttled(&self, index: &str) -> u64 {
        self.throttled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(index)
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn at_most_the_limit_in_any_second() {
        let l = Limits::default();
        for _ in 0..5 {
            assert!(l.admit("i", Class::FetchByMetadata, "ns", 0, 0, 0).is_ok());
        }
        let t = l
            .admit("i", Class::FetchByMetadata, "ns", 0, 0, 0)
            .unwrap_err();
        assert_eq!(t.retry_after, Duration::from_secs(1));
        // Another namespace has its own window.
        assert!(
            l.admit("i", Class::FetchByMetadata, "other", 0, 0, 0)
                .is_ok()
        );
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(l.admit("i", Class::FetchByMetadata, "ns", 0, 0, 0).is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(l.admit("i", Class::FetchByMetadata, "ns", 0, 0, 0).is_ok());
        assert_eq!(l.throttled("i"), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn records_count_in_every_window_or_none() {
        let l = Limits::default();
        assert!(l.admit("i", Class::Delete, "a", 4_000, 0, 0).is_ok());
        // The index window has 1,000 records left: 2,000 in another namespace is refused, and counted nowhere.
        assert!(l.admit("i", Class::Delete, "b", 2_000, 0, 0).is_err());
        assert!(l.admit("i", Class::Delete, "b", 1_000, 0, 0).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn query_read_units_per_index() {
        let l = Limits::default();
        assert!(l.admit("i", Class::Query, "a", 0, 0, 1_500).is_ok());
        // Another namespace of the same index shares the 2,000 read units.
        let t = l.admit("i", Class::Query, "b", 0, 0, 501).unwrap_err();
        assert!(
            t.message.contains("2000 read units per second"),
            "{}",
            t.message
        );
        assert!(l.admit("i", Class::Query, "b", 0, 0, 500).is_ok());
        assert!(l.admit("other", Class::Query, "a", 0, 0, 2_000).is_ok());
    }
}
