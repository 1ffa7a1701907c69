//! The emulator enforces Pinecone's documented per-second limits, as Pinecone does: at most N requests (records,
//! bytes) in any sliding one-second window per key, else 429 with Pinecone's data-plane body and `Retry-After`.
//! The rates are the gateway's own defaults ([`crate::stack::limit::rates`]), so the two agree by construction.

use super::store::StoreError;
use crate::stack::limit::rates::{OpClass, RateTable, Scope, Unit};
use crate::stack::limit::window::Window;
use crate::wire::data::normalize_namespace;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

type Key = (String, String, OpClass, Unit);

pub struct EmuLimits {
    rates: RateTable,
    windows: Mutex<HashMap<Key, Window>>,
    throttled: Mutex<HashMap<String, u64>>,
}

impl EmuLimits {
    pub fn new(rates: RateTable) -> Self {
        EmuLimits {
            rates,
            windows: Mutex::new(HashMap::new()),
            throttled: Mutex::new(HashMap::new()),
        }
    }

    /// Takes the request from every bucket that applies, all or nothing, or answers 429.
    pub fn admit(
        &self,
        index: &str,
        class: OpClass,
        namespace: &str,
        records: u64,
        bytes: u64,
    ) -> Result<(), StoreError> {
        let ns = normalize_namespace(namespace).to_string();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        // Under the lock: a clock read before it could be older than an entry another request just made.
        let now = Instant::now();
        let mut needs = Vec::new();
        for (scope, unit, rate) in self.rates.rates(index, class).buckets() {
            let cost = match unit {
                Unit::Requests => 1,
                Unit::Records => records,
                Unit::Bytes => bytes,
            };
            if cost == 0 {
                continue;
            }
            let key_ns = if scope == Scope::Namespace {
                ns.clone()
            } else {
                String::new()
            };
            let key = (index.to_string(), key_ns, class, unit);
            let w = windows
                .entry(key.clone())
                .or_insert_with(|| Window::new(rate, Duration::from_secs(1)));
            w.prune(now);
            match w.earliest(now, cost) {
                Some(at) if at <= now => needs.push((key, cost)),
                other => {
                    drop(windows);
                    *self
                        .throttled
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(index.to_string())
                        .or_default() += 1;
                    let wait = other.map_or(Duration::from_secs(1), |at| at - now);
                    let whom = match scope {
                        Scope::Namespace => format!("namespace {ns}"),
                        Scope::Index => format!("index {index}"),
                    };
                    return Err(StoreError {
                        status: 429,
                        message: format!(
                            "Request failed. You've reached the {} limit for {whom} ({rate} {}/s). Retry later.",
                            class.name(),
                            unit.name()
                        ),
                        retry_after: Some(wait),
                    });
                }
            }
        }
        for (key, cost) in needs {
            if let Some(w) = windows.get_mut(&key) {
                w.reserve(now, cost, 0);
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
