//! Coalescing: a tower middleware that merges concurrent fetches and deletes by ID of one index and namespace into
//! shared upstream requests while the rate limiter has no turn to spare, so that callers fetching one record at a
//! time get many records out of each of Pinecone's per-request turns.
//!
//! One *group* per (index, namespace, operation). A call that finds its group with nothing waiting and a turn free
//! goes out at once, alone: no timer, nothing added at low load. Otherwise it joins the group's waiting batch, or
//! opens a new one when the last is full (`max_ids` IDs, or the fetch URL budget); the group's driver sends the
//! oldest batch at its next turn with every ID gathered by then. Duplicate IDs are sent once.
//!
//! A turn is free when the limiter could take the call now ([`Turns::next_turn`], the limiter's one window onto its state for this layer) *and* the group's pace allows
//! it: a group sends at most `burst_requests` requests back to back, then one per even spacing of its strictest
//! request limit (10.2 ms for 100/s). That is the limiter's own rate, spread out, so that a burst of lone calls cannot
//! spend a whole second's turns on one ID each and leave the queue waiting for the next second.
//!
//! States of a caller: *waiting* in a batch (cancelling the call or passing its deadline takes it out; a batch left
//! with no caller is not sent), *sent*, *answered*. A fetch caller receives exactly the records it asked for
//! (missing IDs omitted, as Pinecone does) and its share of the read units, in proportion to the IDs it asked for; a
//! delete caller receives the empty answer. A batch that fails gives its error to each of its own callers; their
//! retries (the retry layer sits above) come through the coalescer again. Calls below this layer (limiter, client)
//! see one ordinary call per batch.
//!
//! Knobs: [`CoalesceSettings`]: on or off per operation, globally and per index; the burst.

#[cfg(test)]
mod tests;

use crate::call::{CallContext, Op, Reply, UpstreamCall};
use crate::pb::pinecone as p;
use crate::stack::limit::Turns;
use crate::stack::{CallError, CallFuture, Reloadable, RequestCaps};
use crate::stack::{Handle, Inner, Stacked};
use crate::telemetry::metrics as m;
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, Status};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tower::Layer;

/// Which operations coalesce, for all indexes or one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switches {
    pub fetch: bool,
    pub delete: bool,
}

#[derive(Clone, Debug)]
pub struct CoalesceSettings {
    /// The default for every index.
    pub enabled: Switches,
    /// Per-index overrides.
    pub per_index: HashMap<String, Switches>,
    /// Requests a group may send back to back before it keeps to the even spacing of its limit.
    pub burst_requests: u32,
    /// What one merged request may carry (IDs, the fetch URL budget): the batching layer's own caps.
    pub caps: RequestCaps,
}

impl Default for CoalesceSettings {
    fn default() -> Self {
        CoalesceSettings {
            enabled: Switches {
                fetch: true,
                delete: true,
            },
            per_index: HashMap::new(),
            burst_requests: 10,
            caps: RequestCaps::default(),
        }
    }
}

impl CoalesceSettings {
    fn applies(&self, call: &UpstreamCall) -> Option<Kind> {
        let on = self.per_index.get(&call.index).unwrap_or(&self.enabled);
        match &call.op {
            Op::Fetch { ids, .. } if on.fetch && ids.len() < self.caps.max_ids => Some(Kind::Fetch),
            Op::Delete(d)
                if on.delete
                    && !d.delete_all
                    && d.filter.is_none()
                    && !d.ids.is_empty()
                    && d.ids.len() < self.caps.max_ids =>
            {
                Some(Kind::Delete)
            }
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Fetch,
    Delete,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Fetch => "fetch",
            Kind::Delete => "delete",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct GroupKey {
    index: String,
    /// Normalized: "" and "__default__" are one group.
    namespace: String,
    kind: Kind,
}

/// One caller waiting in a batch.
struct Member {
    ids: Vec<String>,
    deadline: Instant,
    ctx: Arc<CallContext>,
    tx: oneshot::Sender<Result<Reply, CallError>>,
    /// Its wait in the batch, when the call is traced: linked to the batch's span when that is sent.
    span: Option<crate::telemetry::trace::OpenSpan>,
}

impl Member {
    fn gone(&self, now: Instant) -> bool {
        self.tx.is_closed() || self.deadline <= now
    }
}

/// IDs gathered for one upstream request.
#[derive(Default)]
struct Pending {
    members: Vec<Member>,
    ids: Vec<String>,
    seen: HashSet<String>,
    url_bytes: usize,
}

impl Pending {
    /// The bytes and count `ids` would add.
    fn growth(&self, ids: &[String], kind: Kind) -> (usize, usize) {
        let mut fresh = HashSet::new();
        let mut bytes = 0;
        for id in ids {
            if !self.seen.contains(id) && fresh.insert(id.as_str()) && kind == Kind::Fetch {
                bytes += crate::wire::query::encoded_id_len(id);
            }
        }
        (fresh.len(), bytes)
    }

    fn fits(&self, ids: &[String], kind: Kind, s: &CoalesceSettings) -> bool {
        let (n, bytes) = self.growth(ids, kind);
        self.ids.len() + n <= s.caps.max_ids
            && (kind == Kind::Delete || self.url_bytes + bytes <= s.caps.fetch_url_budget_bytes)
    }

    fn add(&mut self, member: Member, kind: Kind) {
        for id in &member.ids {
            if self.seen.insert(id.clone()) {
                if kind == Kind::Fetch {
                    self.url_bytes += crate::wire::query::encoded_id_len(id);
                }
                self.ids.push(id.clone());
            }
        }
        self.members.push(member);
    }

    /// Takes out callers that cancelled or ran out of time, and IDs no remaining caller asked for.
    fn prune(&mut self, now: Instant, kind: Kind) {
        if !self.members.iter().any(|m| m.gone(now)) {
            return;
        }
        let members = std::mem::take(&mut self.members);
        *self = Pending::default();
        for m in members.into_iter().filter(|m| !m.gone(now)) {
            self.add(m, kind);
        }
    }
}

struct Group {
    /// GCRA's theoretical arrival time: the group may send when `now >= tat - (burst - 1) × spacing`.
    tat: Instant,
    /// Oldest first; only the last takes new callers.
    batches: VecDeque<Pending>,
    /// A driver task is sending this group's batches.
    driving: bool,
    /// The original spelling of the namespace, sent upstream.
    namespace: String,
}

impl Group {
    fn paced_at(&self, spacing: Duration, burst: u32) -> Instant {
        let tolerance = spacing * burst.saturating_sub(1);
        self.tat.checked_sub(tolerance).unwrap_or(self.tat)
    }

    fn take_turn(&mut self, now: Instant, spacing: Duration) {
        self.tat = self.tat.max(now) + spacing;
    }
}

struct Coalescer<S> {
    inner: S,
    limiter: Arc<dyn Turns>,
    settings: Reloadable<CoalesceSettings>,
    groups: Mutex<HashMap<GroupKey, Group>>,
    /// Calls since idle groups were last dropped.
    calls_since_sweep: std::sync::atomic::AtomicU32,
}

impl<S> Coalescer<S> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<GroupKey, Group>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn op_for(kind: Kind, namespace: &str, ids: Vec<String>) -> Op {
    match kind {
        Kind::Fetch => Op::Fetch {
            ids,
            namespace: namespace.to_string(),
        },
        Kind::Delete => Op::Delete(p::DeleteRequest {
            ids,
            namespace: namespace.to_string(),
            ..Default::default()
        }),
    }
}

fn record(kind: Kind, ids: usize, callers: usize) {
    metrics::histogram!(m::COALESCE_IDS, "operation" => kind.name()).record(ids as f64);
    metrics::histogram!(m::COALESCE_CALLERS, "operation" => kind.name()).record(callers as f64);
}

/// Each caller's part of a batch's answer.
fn distribute(kind: Kind, members: Vec<Member>, result: Result<Reply, CallError>) {
    let reply = match result {
        Err(e) => {
            for m in members {
                let _ = m.tx.send(Err(e.clone()));
            }
            return;
        }
        Ok(r) => r,
    };
    let fetched = match (kind, reply) {
        (Kind::Fetch, Reply::Fetch(f)) => f,
        (_, reply) => {
            for m in members {
                let _ = m.tx.send(Ok(reply.clone()));
            }
            return;
        }
    };
    let units = fetched
        .usage
        .as_ref()
        .and_then(|u| u.read_units)
        .map(|total| share(total, &members));
    for (i, m) in members.into_iter().enumerate() {
        let vectors = m
            .ids
            .iter()
            .filter_map(|id| fetched.vectors.get(id).map(|v| (id.clone(), v.clone())))
            .collect();
        let usage = units.as_ref().map(|u| p::Usage {
            read_units: Some(u[i]),
        });
        let _ = m.tx.send(Ok(Reply::Fetch(p::FetchResponse {
            vectors,
            namespace: fetched.namespace.clone(),
            usage,
        })));
    }
}

/// `total` split in proportion to the IDs each caller asked for (largest remainder, so the parts add up).
fn share(total: u32, members: &[Member]) -> Vec<u32> {
    let weights: Vec<u64> = members.iter().map(|m| m.ids.len() as u64).collect();
    let sum: u64 = weights.iter().sum::<u64>().max(1);
    let exact: Vec<(u64, u64)> = weights
        .iter()
        .map(|wt| {
            let x = u64::from(total) * wt;
            (x / sum, x % sum)
        })
        .collect();
    let mut parts: Vec<u32> = exact.iter().map(|&(q, _)| q as u32).collect();
    let mut left = total.saturating_sub(parts.iter().sum());
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(exact[i].1));
    for i in order {
        if left == 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    parts
}

impl<S: Inner> Coalescer<S> {
    /// Sends the group's batches, oldest first, each at its turn; ends when none is left.
    async fn drive(self: Arc<Self>, key: GroupKey, spacing: Duration) {
        loop {
            let step = {
                let mut groups = self.lock();
                let Some(group) = groups.get_mut(&key) else {
                    return;
                };
                let now = Instant::now();
                for b in group.batches.iter_mut() {
                    b.prune(now, key.kind);
                }
                group.batches.retain(|b| !b.members.is_empty());
                let Some(front) = group.batches.front() else {
                    group.driving = false;
                    if group.tat <= now {
                        groups.remove(&key);
                    }
                    return;
                };
                let probe = UpstreamCall {
                    index: key.index.clone(),
                    op: op_for(key.kind, &group.namespace, front.ids.clone()),
                    deadline: now,
                    ctx: Default::default(),
                };
                let at = self
                    .limiter
                    .next_turn(&probe, now)
                    .max(group.paced_at(spacing, self.settings.get().burst_requests));
                if at <= now {
                    group.take_turn(now, spacing);
                    group
                        .batches
                        .pop_front()
                        .map(|b| (b, group.namespace.clone()))
                        .ok_or(at)
                } else {
                    Err(at)
                }
            };
            match step {
                Err(at) => tokio::time::sleep_until(at).await,
                Ok((batch, namespace)) => {
                    tokio::spawn(self.clone().send(key.clone(), namespace, batch));
                }
            }
        }
    }

    async fn send(self: Arc<Self>, key: GroupKey, namespace: String, batch: Pending) {
        let Pending {
            mut members, ids, ..
        } = batch;
        let Some(first) = members.first() else {
            return;
        };
        record(key.kind, ids.len(), members.len());
        let deadline = members
            .iter()
            .map(|m| m.deadline)
            .max()
            .unwrap_or(first.deadline);
        // Traced: the batch is a span of its own in the trace of its first traced caller, with the upstream
        // attempts under it; every traced caller's wait links to it.
        let traced = members
            .iter()
            .find_map(|m| m.ctx.trace.as_ref())
            .map(|owner| {
                let mut span = owner.child("coalesced batch", SpanKind::Internal);
                span.attribute(KeyValue::new("gateway.operation", key.kind.name()));
                span.attribute(KeyValue::new("gateway.ids", ids.len() as i64));
                span.attribute(KeyValue::new("gateway.callers", members.len() as i64));
                let scope = owner.scope_of(&span);
                (owner.clone(), span, scope)
            });
        let ctx = match &traced {
            Some((_, _, scope)) => Arc::new(CallContext {
                request_id: first.ctx.request_id.clone(),
                trace: Some(scope.clone()),
                caller: first.ctx.caller.clone(),
                ..Default::default()
            }),
            None => first.ctx.clone(),
        };
        let call = UpstreamCall {
            index: key.index.clone(),
            op: op_for(key.kind, &namespace, ids),
            deadline,
            ctx: ctx.clone(),
        };
        let result = self.inner.send(call).await;
        // Each caller's answer carries the batch's LSNs (a delete's is every caller's write).
        for m in &members {
            if !Arc::ptr_eq(&m.ctx, &ctx) {
                m.ctx.lsns.take_from(&ctx.lsns);
                m.ctx
                    .pinecone_request_ids
                    .take_from(&ctx.pinecone_request_ids);
            }
        }
        let ordering = std::sync::atomic::Ordering::Relaxed;
        match traced {
            None => {
                // The first caller's context counted the upstream request; the others took part in it too.
                for m in members.iter().skip(1) {
                    m.ctx.attempts.fetch_add(1, ordering);
                }
            }
            Some((owner, span, scope)) => {
                let attempts = ctx.attempts.load(ordering);
                let status = match &result {
                    Ok(_) => Status::Unset,
                    Err(e) => Status::error(e.to_string()),
                };
                for m in members.iter_mut() {
                    m.ctx.attempts.fetch_add(attempts, ordering);
                    if let (Some(mut wait), Some(own)) = (m.span.take(), m.ctx.trace.as_ref()) {
                        wait.link(scope.context());
                        wait.end(own, status.clone());
                    }
                }
                span.end(&owner, status);
            }
        }
        distribute(key.kind, members, result);
    }

    fn call(self: &Arc<Self>, call: UpstreamCall) -> CallFuture {
        let settings = self.settings.get();
        let Some(kind) = settings.applies(&call) else {
            return self.inner.send(call);
        };
        let Some(spacing) = self.limiter.request_spacing(&call) else {
            return self.inner.send(call);
        };
        let key = GroupKey {
            index: call.index.clone(),
            namespace: crate::wire::data::normalize_namespace(
                call.op.namespace().unwrap_or_default(),
            )
            .to_string(),
            kind,
        };
        let now = Instant::now();
        let mut groups = self.lock();
        if self
            .calls_since_sweep
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            >= 1024
        {
            self.calls_since_sweep
                .store(0, std::sync::atomic::Ordering::Relaxed);
            // A group whose pace has caught up with the clock holds nothing worth keeping.
            groups.retain(|_, g| g.driving || g.tat > now);
        }
        let group = groups.entry(key.clone()).or_insert_with(|| Group {
            tat: now,
            batches: VecDeque::new(),
            driving: false,
            namespace: call.op.namespace().unwrap_or_default().to_string(),
        });
        if !group.driving
            && self
                .limiter
                .next_turn(&call, now)
                .max(group.paced_at(spacing, settings.burst_requests))
                <= now
        {
            group.take_turn(now, spacing);
            drop(groups);
            record(kind, call.op.ids().len(), 1);
            return self.inner.send(call);
        }
        let (tx, rx) = oneshot::channel();
        let deadline = call.deadline;
        let member = Member {
            ids: crate::stack::batch::dedup(call.op.ids()),
            deadline,
            span: call
                .ctx
                .trace
                .as_ref()
                .map(|s| s.child("coalesce wait", SpanKind::Internal)),
            ctx: call.ctx,
            tx,
        };
        match group.batches.back_mut() {
            Some(last) if last.fits(&member.ids, kind, &settings) => last.add(member, kind),
            _ => {
                let mut batch = Pending::default();
                batch.add(member, kind);
                group.batches.push_back(batch);
            }
        }
        if !group.driving {
            group.driving = true;
            tokio::spawn(self.clone().drive(key, spacing));
        }
        drop(groups);
        Box::pin(async move {
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(CallError::Abandoned),
                // Dropping the receiver takes the caller out of its batch if it was not sent yet.
                Err(_) => Err(CallError::DeadlineWhileWaiting {
                    waiting_for: "its coalesced request",
                }),
            }
        })
    }
}

#[derive(Clone)]
pub struct CoalesceLayer {
    limiter: Arc<dyn Turns>,
    settings: Reloadable<CoalesceSettings>,
}

impl CoalesceLayer {
    /// `settings` may be a [`Reloadable`] that a reload replaces.
    pub fn new(limiter: Arc<dyn Turns>, settings: impl Into<Reloadable<CoalesceSettings>>) -> Self {
        CoalesceLayer {
            limiter,
            settings: settings.into(),
        }
    }
}

impl<S> Layer<S> for CoalesceLayer {
    type Service = Stacked<Coalesce<S>>;

    fn layer(&self, inner: S) -> Stacked<Coalesce<S>> {
        Stacked::new(Coalesce {
            shared: Arc::new(Coalescer {
                inner,
                limiter: self.limiter.clone(),
                settings: self.settings.clone(),
                groups: Mutex::new(HashMap::new()),
                calls_since_sweep: std::sync::atomic::AtomicU32::new(0),
            }),
        })
    }
}

pub struct Coalesce<S> {
    shared: Arc<Coalescer<S>>,
}

impl<S> Clone for Coalesce<S> {
    fn clone(&self) -> Self {
        Coalesce {
            shared: self.shared.clone(),
        }
    }
}

impl<S: Inner> Handle for Coalesce<S> {
    fn handle(&self, call: UpstreamCall) -> CallFuture {
        self.shared.call(call)
    }
}
