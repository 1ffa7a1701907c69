//! What a query is expected to cost in read units, per index and namespace: the limiter's estimate for Pinecone's
//! query read-unit limit (2,000 RU/s per index), whose cost Pinecone reports only in the answer (`usage.readUnits`).
//!
//! Pinecone charges a query by the size of its namespace (1 RU per GB, at least 0.25), which changes slowly, so the
//! estimate is the cost the namespace's last query was charged. States of a namespace: *unknown* (no query answered
//! yet), *probing* (its first query is on its way, counted as one read unit; the namespace's other queries wait for
//! its answer, within their deadline and `max_queue_wait_ms`, so that a namespace of unknown size never has more
//! than one query in flight), and *known* (queries are counted at the last measured cost, bounded by the limit so a
//! query larger than the whole limit still passes alone). A probe that ends without a measured cost (an error, a
//! cancelled call) hands probing to the next query. The limiter reconciles each sent query with its measured cost
//! when the answer comes back (`Sent::answered_costing`), so a wrong estimate shifts later turns, not the limit.
//!
//! At most `max_keys` namespaces are remembered; past that the known costs are forgotten and re-measured.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio::time::Instant;

/// An index and a namespace (normalized: "" and "__default__" are one).
pub(super) type CostKey = (String, String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cost {
    Probing,
    Known(u64),
}

#[derive(Default)]
pub(super) struct ReadCosts {
    costs: Mutex<HashMap<CostKey, Cost>>,
    /// Woken when a probe ends, measured or not.
    changed: Notify,
}

/// The first query of a namespace whose cost is unknown; dropped, it lets the namespace's next query probe.
pub(super) struct Probe {
    costs: Arc<ReadCosts>,
    key: CostKey,
}

impl Drop for Probe {
    fn drop(&mut self) {
        let mut costs = self.costs.lock();
        if costs.get(&self.key) == Some(&Cost::Probing) {
            costs.remove(&self.key);
        }
        drop(costs);
        self.costs.changed.notify_waiters();
    }
}

/// A query waited for its namespace's probe until it could wait no longer.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ProbeTooLong;

impl ReadCosts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CostKey, Cost>> {
        self.costs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The read units a query of `key` is counted at before its answer: the last measured cost, at most `cap`; one
    /// while the cost is unknown.
    pub(super) fn estimate(&self, key: &CostKey, cap: u64) -> u64 {
        match self.lock().get(key) {
            Some(Cost::Known(units)) => (*units).clamp(1, cap.max(1)),
            _ => 1,
        }
    }

    /// Waits until the cost of `key` is known, or makes this query its probe; gives up at `give_up_at`.
    pub(super) async fn known_or_probe(
        self: &Arc<Self>,
        key: &CostKey,
        max_keys: usize,
        give_up_at: Instant,
    ) -> Result<Option<Probe>, ProbeTooLong> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the state is read, so a probe ending in between still wakes this query.
            changed.as_mut().enable();
            {
                let mut costs = self.lock();
                match costs.get(key) {
                    Some(Cost::Known(_)) => return Ok(None),
                    Some(Cost::Probing) => {}
                    None => {
                        if costs.len() >= max_keys {
                            costs.retain(|_, c| *c == Cost::Probing);
                        }
                        costs.insert(key.clone(), Cost::Probing);
                        return Ok(Some(Probe {
                            costs: self.clone(),
                            key: key.clone(),
                        }));
                    }
                }
            }
            tokio::select! {
                _ = &mut changed => {}
                _ = tokio::time::sleep_until(give_up_at) => return Err(ProbeTooLong),
            }
        }
    }

    /// A query of `key` was charged `units`: the estimate for the next ones.
    pub(super) fn measured(&self, key: &CostKey, units: u64) {
        self.lock().insert(key.clone(), Cost::Known(units));
        self.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(ns: &str) -> CostKey {
        ("docs".into(), ns.into())
    }

    #[tokio::test(start_paused = true)]
    async fn one_probe_per_namespace_then_the_measured_cost() {
        let costs = Arc::new(ReadCosts::default());
        let far = Instant::now() + Duration::from_secs(10);
        let probe = costs.known_or_probe(&key("a"), 10, far).await.unwrap();
        assert!(probe.is_some());
        assert_eq!(costs.estimate(&key("a"), 2000), 1);
        // Another namespace probes on its own.
        assert!(
            costs
                .known_or_probe(&key("b"), 10, far)
                .await
                .unwrap()
                .is_some()
        );
        // The same namespace waits for the probe's answer.
        let waiter = tokio::spawn({
            let costs = costs.clone();
            async move { costs.known_or_probe(&key("a"), 10, far).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished());
        costs.measured(&key("a"), 37);
        drop(probe);
        assert!(waiter.await.unwrap().unwrap().is_none());
        assert_eq!(costs.estimate(&key("a"), 2000), 37);
        assert_eq!(costs.estimate(&key("a"), 20), 20, "bounded by the limit");
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_ends_unmeasured_hands_probing_on() {
        let costs = Arc::new(ReadCosts::default());
        let far = Instant::now() + Duration::from_secs(10);
        let probe = costs.known_or_probe(&key("a"), 10, far).await.unwrap();
        let waiter = tokio::spawn({
            let costs = costs.clone();
            async move { costs.known_or_probe(&key("a"), 10, far).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(probe);
        assert!(
            waiter.await.unwrap().unwrap().is_some(),
            "the waiter probes next"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gives_up_at_its_time() {
        let costs = Arc::new(ReadCosts::default());
        let soon = Instant::now() + Duration::from_millis(300);
        let _probe = costs.known_or_probe(&key("a"), 10, soon).await.unwrap();
        let started = Instant::now();
        assert_eq!(
            costs.known_or_probe(&key("a"), 10, soon).await.err(),
            Some(ProbeTooLong)
        );
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }
}
