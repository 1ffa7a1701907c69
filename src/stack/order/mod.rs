//! Ordering: a tower middleware that keeps a delete and a fetch, upsert or update of the same ID in the order the
//! gateway accepted them, although the layers below may hold calls back (the limiter queues each operation class
//! apart; the coalescer gathers fetches and deletes).
//!
//! Each call that names IDs registers them, per index and namespace, when the gateway accepts it (synchronously in
//! `call`). A call then waits, before going down the stack, for every earlier call that *conflicts* with it to end:
//! a delete by ID conflicts with earlier fetches, upserts and updates of its IDs, and they with an earlier delete of
//! theirs; a delete by filter or of everything conflicts with every earlier fetch, upsert and update of its
//! namespace, and they with it. Calls that do not conflict (two fetches, two upserts, two deletes) never wait on
//! each other. A call that ends, fails or is cancelled releases its IDs; a wait that outlasts the caller's deadline
//! ends the call with DEADLINE_EXCEEDED.
//!
//! No knobs: it costs one map update per ID, and nothing when no call conflicts.

#[cfg(test)]
mod tests;

use crate::call::{Op, UpstreamCall};
use crate::stack::{CallError, CallFuture};
use crate::stack::{Handle, Inner, Stacked};
use crate::telemetry::metrics as m;
use futures::FutureExt;
use futures::future::Shared;
use rustc_hash::FxHashMap as HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tower::Layer;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// Fetch, upsert, update.
    Use,
    Delete,
}

/// Resolves when the call that registered it ends.
type Done = Shared<oneshot::Receiver<()>>;

struct Entry {
    seq: u64,
    access: Access,
    done: Done,
}

#[derive(Default)]
struct NamespaceIds {
    by_id: HashMap<String, Vec<Entry>>,
    /// Deletes by filter and delete-all: they touch every ID.
    everything: Vec<Entry>,
}

impl NamespaceIds {
    fn is_empty(&self) -> bool {
        self.by_id.is_empty() && self.everything.is_empty()
    }
}

type Key = (String, String);

#[derive(Default)]
struct State {
    namespaces: HashMap<Key, NamespaceIds>,
    next_seq: u64,
}

/// What a call touches.
enum Touch<'a> {
    Ids(Access, Vec<&'a str>),
    Everything,
}

fn touch(op: &Op) -> Option<(&str, Touch<'_>)> {
    match op {
        Op::Fetch { ids, namespace } => Some((
            namespace.as_str(),
            Touch::Ids(Access::Use, ids.iter().map(String::as_str).collect()),
        )),
        Op::Upsert(u) => Some((
            u.namespace(),
            Touch::Ids(Access::Use, u.ids().iter().map(String::as_str).collect()),
        )),
        Op::Update(u) if u.filter.is_none() && !u.id.is_empty() => Some((
            u.namespace.as_str(),
            Touch::Ids(Access::Use, vec![u.id.as_str()]),
        )),
        Op::Delete(d) if d.delete_all || d.filter.is_some() => {
            Some((d.namespace.as_str(), Touch::Everything))
        }
        Op::Delete(d) => Some((
            d.namespace.as_str(),
            Touch::Ids(Access::Delete, d.ids.iter().map(String::as_str).collect()),
        )),
        Op::DeleteNamespace(ns) => Some((ns.as_str(), Touch::Everything)),
        _ => None,
    }
}

/// Releases a call's IDs when it ends, however it ends.
struct Registration {
    state: Arc<Mutex<State>>,
    key: Key,
    seq: u64,
    ids: Vec<String>,
    everything: bool,
    _done: oneshot::Sender<()>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(ns) = state.namespaces.get_mut(&self.key) else {
            return;
        };
        for id in &self.ids {
            if let Some(entries) = ns.by_id.get_mut(id) {
                entries.retain(|e| e.seq != self.seq);
                if entries.is_empty() {
                    ns.by_id.remove(id);
                }
            }
        }
        if self.everything {
            ns.everything.retain(|e| e.seq != self.seq);
        }
        if ns.is_empty() {
            state.namespaces.remove(&self.key);
        }
    }
}

/// Registers the call's IDs and returns what it must wait for.
fn register(state: &Arc<Mutex<State>>, call: &UpstreamCall) -> Option<(Registration, Vec<Done>)> {
    let (namespace, touched) = touch(&call.op)?;
    let key = (
        call.index.clone(),
        crate::wire::data::normalize_namespace(namespace).to_string(),
    );
    let (tx, rx) = oneshot::channel();
    let done = rx.shared();
    let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
    let st = &mut *guard;
    let seq = st.next_seq;
    st.next_seq += 1;
    let ns = st.namespaces.entry(key.clone()).or_default();
    let mut waits = Vec::new();
    let mut ids = Vec::new();
    let everything = matches!(touched, Touch::Everything);
    match touched {
        Touch::Everything => {
            waits.extend(
                ns.by_id
                    .values()
                    .flatten()
                    .filter(|e| e.access == Access::Use)
                    .map(|e| e.done.clone()),
            );
            ns.everything.push(Entry {
                seq,
                access: Access::Delete,
                done,
            });
        }
        Touch::Ids(access, touched) => {
            if access == Access::Use {
                waits.extend(ns.everything.iter().map(|e| e.done.clone()));
            }
            for id in touched {
                let entries = ns.by_id.entry(id.to_string()).or_default();
                if entries.iter().any(|e| e.seq == seq) {
                    // The same ID twice in one call.
                    continue;
                }
                waits.extend(
                    entries
                        .iter()
                        .filter(|e| e.access != access)
                        .map(|e| e.done.clone()),
                );
                entries.push(Entry {
                    seq,
                    access,
                    done: done.clone(),
                });
                ids.push(id.to_string());
            }
        }
    }
    drop(guard);
    Some((
        Registration {
            state: state.clone(),
            key,
            seq,
            ids,
            everything,
            _done: tx,
        },
        waits,
    ))
}

#[derive(Clone, Default)]
pub struct OrderLayer {
    state: Arc<Mutex<State>>,
}

impl OrderLayer {
    pub fn new() -> Self {
        OrderLayer::default()
    }
}

impl<S> Layer<S> for OrderLayer {
    type Service = Stacked<Order<S>>;

    fn layer(&self, inner: S) -> Stacked<Order<S>> {
        Stacked::new(Order {
            inner,
            state: self.state.clone(),
        })
    }
}

#[derive(Clone)]
pub struct Order<S> {
    inner: S,
    state: Arc<Mutex<State>>,
}

impl<S: Inner> Handle for Order<S> {
    fn handle(&self, call: UpstreamCall) -> CallFuture {
        let inner = self.inner.clone();
        let Some((registration, waits)) = register(&self.state, &call) else {
            return inner.send(call);
        };
        Box::pin(async move {
            if !waits.is_empty() {
                metrics::counter!(m::ORDER_WAITS, "operation" => call.op.name()).increment(1);
                let span = call.ctx.trace.as_ref().map(|s| {
                    let mut span = s.child("order wait", opentelemetry::trace::SpanKind::Internal);
                    span.attribute(opentelemetry::KeyValue::new(
                        "gateway.waits_for_calls",
                        waits.len() as i64,
                    ));
                    span
                });
                let all = futures::future::join_all(waits);
                let waited = tokio::time::timeout_at(call.deadline, all).await;
                if let (Some(span), Some(scope)) = (span, call.ctx.trace.as_ref()) {
                    span.end(scope, opentelemetry::trace::Status::Unset);
                }
                if waited.is_err() {
                    return Err(CallError::DeadlineWhileWaiting {
                        waiting_for: "an earlier call on the same IDs (a delete and a use of one ID keep their order)",
                    });
                }
            }
            let result = inner.send(call).await;
            drop(registration);
            result
        })
    }
}
