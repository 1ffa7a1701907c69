//! Batching: a tower middleware that splits calls larger than one Pinecone request into upstream batches and merges
//! the answers, so callers never split by hand.
//!
//! - Fetch by ID: duplicate IDs are sent once; batches hold at most `max_ids` IDs and, because fetch IDs travel in
//!   the URL, at most `fetch_url_budget_bytes` of encoded `ids=` parameters. Answers merge into one map, read units
//!   summed.
//! - Delete by ID: duplicates sent once, at most `max_ids` per batch.
//! - Upsert: at most `max_upsert_vectors` vectors and `max_upsert_bytes` of JSON per batch; counts summed.
//!
//! Batches run concurrently (at most `max_concurrent_batches` at a time per call), each through the retry layer and
//! the limiter below. A split call is not atomic: if a batch still fails after its retries, the call fails with
//! [`CallError::Partial`], saying how many IDs were done and which failed; repeating the call is safe for fetch,
//! delete and upsert. Calls that fit one request pass through untouched.
//!
//! Knobs: [`BatchSettings`] (the caps, [`RequestCaps`], are shared with the coalescer).

use crate::call::{Op, Reply, UpstreamCall};
use crate::pb::pinecone as p;
use crate::stack::{CallError, CallFuture, RequestCaps};
use crate::stack::{Handle, Inner, Stacked};
use crate::wire::query::encoded_id_len;
use futures::StreamExt;
use std::collections::HashSet;
use std::sync::Arc;
use tower::Layer;

#[derive(Clone, Debug)]
pub struct BatchSettings {
    /// What one upstream request may carry.
    pub caps: RequestCaps,
    /// Batches of one call in flight at once.
    pub max_concurrent_batches: usize,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            caps: RequestCaps::default(),
            max_concurrent_batches: 8,
        }
    }
}

pub(crate) fn dedup(ids: &[String]) -> Vec<String> {
    let mut seen = HashSet::with_capacity(ids.len());
    ids.iter()
        .filter(|id| seen.insert(id.as_str()))
        .cloned()
        .collect()
}

/// Splits IDs into batches of at most `max` IDs and `budget` bytes (a single ID is never split).
pub fn split_ids(ids: Vec<String>, max: usize, budget: Option<usize>) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut bytes = 0;
    for id in ids {
        let len = budget.map_or(0, |_| encoded_id_len(&id));
        let full = out.last().is_none_or(|b| {
            b.len() >= max || budget.is_some_and(|bud| bytes + len > bud && !b.is_empty())
        });
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += len;
        if let Some(b) = out.last_mut() {
            b.push(id);
        }
    }
    out
}

#[derive(Clone)]
pub struct BatchLayer {
    settings: Arc<BatchSettings>,
}

impl BatchLayer {
    pub fn new(settings: BatchSettings) -> Self {
        BatchLayer {
            settings: Arc::new(settings),
        }
    }
}

impl<S> Layer<S> for BatchLayer {
    type Service = Stacked<Batch<S>>;

    fn layer(&self, inner: S) -> Stacked<Batch<S>> {
        Stacked::new(Batch {
            inner,
            settings: self.settings.clone(),
        })
    }
}

#[derive(Clone)]
pub struct Batch<S> {
    inner: S,
    settings: Arc<BatchSettings>,
}

/// The batches of a call, each with the IDs it carries (for the failure report).
fn plan(call: &UpstreamCall, s: &BatchSettings) -> Option<Vec<(UpstreamCall, Vec<String>)>> {
    let with_op = |op: Op| UpstreamCall {
        index: call.index.clone(),
        op,
        deadline: call.deadline,
        ctx: call.ctx.clone(),
    };
    match &call.op {
        Op::Fetch { ids, namespace } => {
            let batches = split_ids(
                dedup(ids),
                s.caps.max_ids,
                Some(s.caps.fetch_url_budget_bytes),
            );
            (batches.len() > 1 || batches.iter().map(Vec::len).sum::<usize>() < ids.len()).then(
                || {
                    batches
                        .into_iter()
                        .map(|b| {
                            let op = Op::Fetch {
                                ids: b.clone(),
                                namespace: namespace.clone(),
                            };
                            (with_op(op), b)
                        })
                        .collect()
                },
            )
        }
        Op::Delete(d) if !d.ids.is_empty() && d.filter.is_none() && !d.delete_all => {
            let batches = split_ids(dedup(&d.ids), s.caps.max_ids, None);
            (batches.len() > 1 || batches.iter().map(Vec::len).sum::<usize>() < d.ids.len()).then(
                || {
                    batches
                        .into_iter()
                        .map(|b| {
                            let op = Op::Delete(p::DeleteRequest {
                                ids: b.clone(),
                                namespace: d.namespace.clone(),
                                ..Default::default()
                            });
                            (with_op(op), b)
                        })
                        .collect()
                },
            )
        }
        Op::Upsert(u) => {
            let batches = u.split(s.caps.max_upsert_vectors, s.caps.max_upsert_bytes);
            (batches.len() > 1).then(|| {
                batches
                    .into_iter()
                    .map(|b| {
                        let ids = b.ids().to_vec();
                        (with_op(Op::Upsert(b)), ids)
                    })
                    .collect()
            })
        }
        _ => None,
    }
}

/// Merges the answers of a split call, or reports what failed.
fn merge(
    op: &Op,
    results: Vec<(Vec<String>, Result<Reply, CallError>)>,
) -> Result<Reply, CallError> {
    let total: usize = results.iter().map(|(ids, _)| ids.len()).sum();
    let mut failed_ids = Vec::new();
    let mut cause = None;
    let mut replies = Vec::new();
    for (ids, r) in results {
        match r {
            Ok(reply) => replies.push(reply),
            Err(e) => {
                failed_ids.extend(ids);
                cause.get_or_insert(e);
            }
        }
    }
    if let Some(cause) = cause {
        return Err(CallError::Partial {
            done: total - failed_ids.len(),
            total,
            failed_ids,
            cause: Box::new(cause),
        });
    }
    match op {
        Op::Fetch { namespace, .. } => {
            let mut out = p::FetchResponse {
                namespace: namespace.clone(),
                ..Default::default()
            };
            let mut units: Option<u32> = None;
            for r in replies {
                if let Reply::Fetch(f) = r {
                    out.vectors.extend(f.vectors);
                    if let Some(u) = f.usage.and_then(|u| u.read_units) {
                        units = Some(units.unwrap_or(0) + u);
                    }
                    out.namespace = f.namespace;
                }
            }
            out.usage = units.map(|u| p::Usage {
                read_units: Some(u),
            });
            Ok(Reply::Fetch(out))
        }
        Op::Upsert(_) => {
            let upserted_count = replies
                .iter()
                .map(|r| match r {
                    Reply::Upsert(u) => u.upserted_count,
                    _ => 0,
                })
                .sum();
            Ok(Reply::Upsert(p::UpsertResponse { upserted_count }))
        }
        _ => Ok(Reply::Empty),
    }
}

impl<S: Inner> Handle for Batch<S> {
    fn handle(&self, call: UpstreamCall) -> CallFuture {
        let inner = self.inner.clone();
        let Some(batches) = plan(&call, &self.settings) else {
            return inner.send(call);
        };
        let concurrency = self.settings.max_concurrent_batches.max(1);
        Box::pin(async move {
            // Kept inside the caller's future: a caller that goes away stops the batches not yet sent.
            let results: Vec<_> = futures::stream::iter(batches)
                .map(move |(batch, ids)| {
                    let inner = inner.clone();
                    async move { (ids, inner.send(batch).await) }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            merge(&call.op, results)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("id-{i:05}")).collect()
    }

    #[test]
    fn ids_split_by_count_and_url_budget() {
        let b = split_ids(ids(2500), 1000, None);
        assert_eq!(
            b.iter().map(Vec::len).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        // "ids=id-00000&" is 13 bytes: 8192 / 13 = 630 per batch.
        let b = split_ids(ids(2500), 1000, Some(8192));
        assert!(
            b.iter()
                .all(|x| x.len() <= 630
                    && x.iter().map(|i| encoded_id_len(i)).sum::<usize>() <= 8192)
        );
        assert_eq!(b.iter().map(Vec::len).sum::<usize>(), 2500);
        // Characters that need escaping count at their encoded length.
        assert_eq!(encoded_id_len("a b/c"), "ids=a%20b%2Fc&".len());
    }

    #[test]
    fn vectors_split_by_count_and_bytes() {
        let vectors: Vec<p::Vector> = (0..2500)
            .map(|i| p::Vector {
                id: format!("v{i}"),
                values: vec![0.123_456_79; 200],
                ..Default::default()
            })
            .collect();
        let u = crate::wire::upsert::UpsertBody::encode(&p::UpsertRequest {
            vectors,
            namespace: "ns".into(),
        });
        let batches = u.split(1000, 2_000_000);
        for b in &batches {
            assert!(b.body().len() <= 2_000_000);
            assert!(b.len() <= 1000);
        }
        assert_eq!(batches.iter().map(|b| b.len()).sum::<usize>(), 2500);
        assert!(
            batches[0].len() < 1000,
            "200 floats of 11 JSON bytes make ~2.2 KB a vector: the byte cap splits before the count cap"
        );
    }

    #[test]
    fn duplicates_are_sent_once() {
        let d = dedup(&["a".into(), "b".into(), "a".into()]);
        assert_eq!(d, ["a", "b"]);
    }
}
