//! Read your writes: reads that wait for their namespace to apply a log sequence number.
//!
//! Pinecone is eventually consistent; for serverless indexes its REST answers say how far a namespace is: a write's
//! LSN (`x-pinecone-request-lsn`, or `x-pinecone-lsn-committed` as Pinecone's current SDK reads it) and, with a query,
//! the highest LSN the namespace has applied (`x-pinecone-max-indexed-lsn`, or `x-pinecone-lsn-reconciled`). The
//! gateway reads either spelling and returns both, under both spellings, in response metadata. A read (query, fetch, fetch by
//! metadata, list) may ask for a floor: `x-pinecone-min-lsn: N`, or `x-consistency: read-your-writes` (N is then the
//! highest LSN of the caller's own acknowledged writes to that index and namespace, remembered for
//! `consistency.remember_ms`, at most `consistency.max_remembered` of them, least recently used dropped first). The
//! gateway sends the read; while the answer's applied LSN is below N it sends it again after a backoff (doubling from
//! `first_backoff_ms` to `max_backoff_ms`), each time through the whole stack and so through the rate limiter, until
//! it is fresh or `consistency.max_wait_ms` or the caller's deadline runs out. Then it answers with the last result
//! and `x-consistency-stale: true`, or, with `x-consistency-required: true`, FAILED_PRECONDITION naming both LSNs (a
//! repeated read that fails, say because its limit's turn would come too late, ends the wait the same way). An
//! answer without an applied LSN (an operation Pinecone does not give one, a pod-based index) is passed on with
//! `x-consistency-stale: unknown`, at once.
//!
//! States of a read: *sent*, *fresh*, *waiting* (between two sends), *stale* or *refused*. Knobs:
//! [`ConsistencySettings`].

use super::validate::Invalid;
use crate::call::Freshness;
use crate::stack::limit::shared::RedisLimits;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use tonic::metadata::MetadataMap;

pub const MIN_LSN: &str = "x-pinecone-min-lsn";
pub const CONSISTENCY: &str = "x-consistency";
pub const REQUIRED: &str = "x-consistency-required";
pub const STALE: &str = "x-consistency-stale";
/// A write's LSN and the applied one are returned under both of Pinecone's spellings (the freshness guide's and the
/// current SDK's), so a client reading either finds them.
pub const REQUEST_LSN: &str = "x-pinecone-request-lsn";
pub const LSN_COMMITTED: &str = "x-pinecone-lsn-committed";
pub const MAX_INDEXED_LSN: &str = "x-pinecone-max-indexed-lsn";
pub const LSN_RECONCILED: &str = "x-pinecone-lsn-reconciled";
/// Pinecone's ids of the call's upstream requests.
pub const PINECONE_REQUEST_ID: &str = "x-pinecone-request-id";
const READ_YOUR_WRITES: &str = "read-your-writes";

#[derive(Clone, Debug, PartialEq)]
pub struct ConsistencySettings {
    /// The longest a read waits for its LSN, whatever its deadline.
    pub max_wait: Duration,
    /// How long a caller's write LSN is remembered.
    pub remember: Duration,
    /// (caller, index, namespace) keys remembered at most.
    pub max_remembered: NonZeroUsize,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for ConsistencySettings {
    fn default() -> Self {
        ConsistencySettings {
            max_wait: Duration::from_secs(2),
            remember: Duration::from_secs(60),
            max_remembered: NonZeroUsize::new(100_000).unwrap_or(NonZeroUsize::MIN),
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(200),
        }
    }
}

/// The floor a read asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub lsn: u64,
    /// FAILED_PRECONDITION rather than a stale answer.
    pub required: bool,
}

type Key = (String, String, String);

/// Each caller's highest acknowledged write LSN per index and namespace, for a bounded time and number of keys; in
/// redis mode also in Redis (`<key_prefix>:{<index>}:lsn:…`, expiring after `remember_ms`), so that a read on
/// another replica finds it. When Redis fails, the replica's own memory still answers.
pub struct Writes {
    settings: ConsistencySettings,
    entries: Mutex<lru::LruCache<Key, (u64, Instant)>>,
    shared: Option<Arc<RedisLimits>>,
}

impl Writes {
    pub fn new(settings: ConsistencySettings, shared: Option<Arc<RedisLimits>>) -> Self {
        Writes {
            entries: Mutex::new(lru::LruCache::new(settings.max_remembered)),
            settings,
            shared,
        }
    }

    /// Remembers a write here and, in redis mode, in Redis (awaited: a read sent to another replica as soon as this
    /// write is acknowledged must find it).
    pub async fn remember(&self, caller: &str, index: &str, namespace: &str, lsn: u64) {
        self.remember_here(caller, index, namespace, lsn);
        if let Some(redis) = &self.shared {
            let ns = crate::wire::data::normalize_namespace(namespace);
            redis
                .remember_lsn(
                    &redis.lsn_key(caller, index, ns),
                    lsn,
                    self.settings.remember,
                )
                .await;
        }
    }

    /// The highest LSN of `caller`'s writes remembered here or, in redis mode, by any replica.
    pub async fn highest(&self, caller: &str, index: &str, namespace: &str) -> Option<u64> {
        let here = self.highest_here(caller, index, namespace);
        let Some(redis) = &self.shared else {
            return here;
        };
        let ns = crate::wire::data::normalize_namespace(namespace);
        let shared = redis
            .highest_lsn(&redis.lsn_key(caller, index, ns))
            .await
            .flatten();
        here.max(shared)
    }

    /// The floor a read asked for, its read-your-writes resolved.
    pub async fn resolve(
        &self,
        asked: Asked,
        caller: &str,
        index: &str,
        namespace: &str,
    ) -> Option<Wanted> {
        let lsn = match asked.floor {
            Floor::Lsn(n) => Some(n),
            Floor::MyWrites => self.highest(caller, index, namespace).await,
        };
        lsn.map(|lsn| Wanted {
            lsn,
            required: asked.required,
        })
    }

    pub fn settings(&self) -> &ConsistencySettings {
        &self.settings
    }

    fn key(caller: &str, index: &str, namespace: &str) -> Key {
        (
            caller.to_string(),
            index.to_string(),
            crate::wire::data::normalize_namespace(namespace).to_string(),
        )
    }

    /// A write of `caller` was acknowledged with `lsn`: this replica's memory.
    fn remember_here(&self, caller: &str, index: &str, namespace: &str, lsn: u64) {
        let until = Instant::now() + self.settings.remember;
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let key = Self::key(caller, index, namespace);
        let kept = entries
            .get(&key)
            .filter(|(_, until)| *until > Instant::now())
            .map_or(0, |(l, _)| *l);
        entries.put(key, (lsn.max(kept), until));
    }

    /// The highest LSN of `caller`'s writes this replica still remembers.
    fn highest_here(&self, caller: &str, index: &str, namespace: &str) -> Option<u64> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(&Self::key(caller, index, namespace))
            .filter(|(_, until)| *until > Instant::now())
            .map(|(l, _)| *l)
    }
}

/// Where a read's floor comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Floor {
    /// `x-pinecone-min-lsn`.
    Lsn(u64),
    /// `x-consistency: read-your-writes`.
    MyWrites,
}

/// What a read's metadata asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asked {
    pub floor: Floor,
    pub required: bool,
}

/// What the read's metadata asks for, if anything.
pub fn asked(md: &MetadataMap) -> Result<Option<Asked>, Invalid> {
    let text = |key: &str| md.get(key).and_then(|v| v.to_str().ok()).map(str::trim);
    let required = match text(REQUIRED) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Invalid(format!(
                "{REQUIRED}: `{other}` is neither `true` nor `false`"
            )));
        }
    };
    let floor = match (text(MIN_LSN), text(CONSISTENCY)) {
        (Some(n), _) => Floor::Lsn(n.parse::<u64>().map_err(|_| {
            Invalid(format!(
                "{MIN_LSN}: `{n}` is not a log sequence number (an unsigned integer)"
            ))
        })?),
        (None, Some(READ_YOUR_WRITES)) => Floor::MyWrites,
        (None, Some(other)) => {
            return Err(Invalid(format!(
                "{CONSISTENCY}: `{other}` is not a consistency the gateway offers (only `{READ_YOUR_WRITES}`)"
            )));
        }
        (None, None) => return Ok(None),
    };
    Ok(Some(Asked { floor, required }))
}

/// What a read that waited ended as, for the metrics.
pub fn record(freshness: Option<Freshness>, repeats: u32, waited: Duration) {
    use crate::telemetry::metrics as m;
    let outcome = freshness.map_or("refused", Freshness::name);
    m::counter(m::CONSISTENCY_READS, &[("outcome", outcome)]).increment(1);
    if repeats > 0 {
        m::counter(m::CONSISTENCY_REPEATS, &[]).increment(u64::from(repeats));
        m::histogram(m::CONSISTENCY_WAIT_SECONDS, &[]).record(waited.as_secs_f64());
    }
}

/// Full jitter within the doubling backoff.
pub fn backoff(settings: &ConsistencySettings, repeats: u32) -> Duration {
    let cap = settings
        .first_backoff
        .saturating_mul(1u32 << repeats.min(16))
        .min(settings.max_backoff);
    cap.mul_f64(0.5 + rand::random::<f64>() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::route::tests::md;

    #[test]
    fn the_floor_comes_from_the_header_or_the_callers_writes() {
        assert_eq!(asked(&md(&[])).unwrap(), None);
        assert_eq!(
            asked(&md(&[(MIN_LSN, "7")])).unwrap(),
            Some(Asked {
                floor: Floor::Lsn(7),
                required: false
            })
        );
        assert_eq!(
            asked(&md(&[
                (CONSISTENCY, "read-your-writes"),
                (REQUIRED, "true")
            ]))
            .unwrap(),
            Some(Asked {
                floor: Floor::MyWrites,
                required: true
            })
        );
        for (k, v) in [(MIN_LSN, "-1"), (CONSISTENCY, "strong"), (REQUIRED, "yes")] {
            let e = asked(&md(&[(k, v)])).unwrap_err();
            assert!(e.0.starts_with(k), "{}", e.0);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn writes_are_remembered_per_caller_and_namespace_for_a_while() {
        let w = Writes::new(
            ConsistencySettings {
                max_remembered: NonZeroUsize::new(2).unwrap(),
                ..Default::default()
            },
            None,
        );
        w.remember("a", "i", "", 5).await;
        w.remember("a", "i", "__default__", 3).await;
        assert_eq!(
            w.highest("a", "i", "").await,
            Some(5),
            "the highest is kept; '' is __default__"
        );
        assert_eq!(
            w.highest("b", "i", "").await,
            None,
            "another caller's writes are not mine"
        );
        let mine = Asked {
            floor: Floor::MyWrites,
            required: false,
        };
        assert_eq!(w.resolve(mine, "a", "i", "").await.map(|x| x.lsn), Some(5));
        assert_eq!(
            w.resolve(mine, "b", "i", "").await,
            None,
            "nothing to wait for"
        );
        w.remember("b", "i", "x", 1).await;
        w.remember("c", "i", "x", 1).await;
        assert_eq!(
            w.highest("a", "i", "").await,
            None,
            "the least recently used key went first"
        );
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(
            w.highest("c", "i", "x").await,
            None,
            "forgotten after `remember`"
        );
    }
}
