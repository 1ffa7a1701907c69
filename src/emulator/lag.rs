//! Index lag: Pinecone applies a write to what reads see some time after it acknowledged it (eventual consistency).
//! With a lag (`--index-lag-ms`, or `x-emulator-index-lag-ms` on a write request), the emulator does the same: the
//! write is checked and applied at once to the index's data (so it is refused or acknowledged, with its LSN, as
//! Pinecone would), and queued to be applied to the *indexed view* when due; every read (fetch, list, query, stats,
//! namespaces) reads the indexed view, and a query's `x-pinecone-max-indexed-lsn` is the LSN of the namespace's last
//! write applied to it. Writes become visible in the order they were made (a write due sooner than one made before
//! it waits for it). With nothing pending, reads read the data itself and no copy is kept.

use super::model as m;
use super::store::{IndexData, ns_key};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A write waiting to be applied to the indexed view.
#[derive(Debug)]
pub(super) enum Write {
    Upsert(m::UpsertIn),
    Update(m::UpdateIn),
    Delete(m::DeleteIn),
}

#[derive(Debug)]
struct Pending {
    due: Instant,
    /// Normalized ("" is `__default__`).
    namespace: String,
    lsn: u64,
    write: Write,
}

/// The indexed view of one index and the writes not yet in it.
#[derive(Debug, Default)]
pub(super) struct Lag {
    pending: VecDeque<Pending>,
    /// What reads see while writes are pending: the data as of the last write applied.
    indexed: Option<IndexData>,
}

impl Lag {
    /// Applies the writes that are due.
    pub fn catch_up(&mut self, now: Instant) {
        while self.pending.front().is_some_and(|p| p.due <= now) {
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            if let Some(view) = self.indexed.as_mut() {
                // It succeeded on the data in the same order, so it succeeds here.
                let _ = match p.write {
                    Write::Upsert(r) => view.upsert(r).map(|_| ()),
                    Write::Update(r) => view.update(&r).map(|_| ()),
                    Write::Delete(r) => view.delete(&r),
                };
            }
        }
        if self.pending.is_empty() {
            self.indexed = None;
        }
    }

    /// Whether reads must see the indexed view rather than the data.
    pub fn lagging(&self) -> bool {
        self.indexed.is_some()
    }

    /// Before a write is applied to `data` with a lag: keeps the data as it is now as the indexed view, if none is
    /// kept yet.
    pub fn before_write(&mut self, data: &IndexData) {
        if self.indexed.is_none() {
            self.indexed = Some(data.clone());
        }
    }

    /// Queues an acknowledged write (`lsn` in `namespace`), visible after `lag` and after every write before it.
    pub fn push(&mut self, now: Instant, lag: Duration, namespace: &str, lsn: u64, write: Write) {
        let due = self
            .pending
            .back()
            .map_or(now + lag, |last| last.due.max(now + lag));
        self.pending.push_back(Pending {
            due,
            namespace: ns_key(namespace).to_string(),
            lsn,
            write,
        });
    }

    /// The LSN of `namespace`'s last write that reads see: the one before its first pending write, else its last.
    pub fn indexed_lsn(&self, data: &IndexData, namespace: &str) -> u64 {
        let ns = ns_key(namespace);
        self.pending
            .iter()
            .find(|p| p.namespace == ns)
            .map_or_else(|| data.indexed_lsn(ns), |p| p.lsn.saturating_sub(1))
    }

    /// The view reads see: the indexed one while lagging, else `data`.
    pub fn view<'a>(&'a self, data: &'a IndexData) -> &'a IndexData {
        self.indexed.as_ref().unwrap_or(data)
    }

    /// Applies a change that is not lagged (namespaces created or deleted) to the indexed view too.
    pub fn also(&mut self, change: impl FnOnce(&mut IndexData)) {
        if let Some(view) = self.indexed.as_mut() {
            change(view);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> IndexData {
        IndexData::new(Some(2), super::super::store::Metric::Cosine, false)
    }

    fn upsert(id: &str) -> m::UpsertIn {
        serde_json::from_value(serde_json::json!({
            "vectors": [{"id": id, "values": [1.0, 0.0]}],
            "namespace": "ns"
        }))
        .unwrap()
    }

    #[test]
    fn writes_show_when_due_and_in_order() {
        let start = Instant::now();
        let mut data = empty();
        let mut lag = Lag::default();
        for (id, after_ms) in [("a", 300), ("b", 0)] {
            lag.before_write(&data);
            data.upsert(upsert(id)).unwrap();
            let lsn = data.next_lsn("ns");
            lag.push(
                start,
                Duration::from_millis(after_ms),
                "ns",
                lsn,
                Write::Upsert(upsert(id)),
            );
        }
        let count = |lag: &Lag, data: &IndexData| lag.view(data).record_count();
        assert_eq!((count(&lag, &data), lag.indexed_lsn(&data, "ns")), (0, 0));
        // `b` was due at once but waits for `a`, made before it.
        lag.catch_up(start + Duration::from_millis(10));
        assert_eq!((count(&lag, &data), lag.indexed_lsn(&data, "ns")), (0, 0));
        lag.catch_up(start + Duration::from_millis(300));
        assert_eq!((count(&lag, &data), lag.indexed_lsn(&data, "ns")), (2, 2));
        assert!(!lag.lagging(), "no copy kept once caught up");
        assert_eq!(lag.indexed_lsn(&data, "other"), 0);
    }
}
