//! The rate limiter: a tower middleware that holds every call until Pinecone's documented limits let it through,
//! or rejects it at once when its turn cannot come in time.
//!
//! Each call takes from every bucket that applies to it ([`rates`]: per namespace and per index, in requests,
//! records or bytes) all or nothing, by reserving the earliest instant at which all of them have room ([`window`]).
//! It then sleeps until that instant (no polling) and goes on. Calls of one key are served first come, first served,
//! unless the configuration names callers: then they wait in the [`fair`] queue of their limit, and only the call
//! holding its next turn reserves (priorities, weighted shares, a starvation bound).
//!
//! States of a call: *reserved* (waiting for its instant; cancelling the call gives the reservation back),
//! *released* (sent; it counts in its windows until it slides out), or *rejected* (RESOURCE_EXHAUSTED with retry
//! advice, without waiting) when its instant is later than the caller's deadline less `expected_upstream_ms`, later
//! than `max_queue_wait_ms`, or when `max_queue_len` calls already wait on one bucket. Fairness: a namespace that
//! already holds `namespace_share_ms` worth of a bucket it shares with the other namespaces of its index *holds back*
//! (without reserving) until its own earlier calls are released, so a quiet namespace never queues behind more than
//! that much of a busy one, while a busy namespace alone still queues up to `max_queue_wait_ms`. A 429 from Pinecone
//! blocks every bucket of the call until its `Retry-After` (1 s when absent). Idle buckets are dropped; at most
//! `max_keys` exist.
//!
//! Knobs: [`LimitSettings`].
//!
//! Files: `limiter.rs` is the limiter (windows, reservations, permits, the namespace share, the pause after a 429);
//! this file is the service, which takes a turn from Redis (`shared.rs`, in redis mode) or else from the limiter,
//! sends the call, and tells the turn how it went ([`Granted`]); `rates.rs` is the table of Pinecone's limits and
//! `window.rs` one bucket's sliding window.

pub mod fair;
mod limiter;
pub mod rates;
mod read_costs;
pub mod shared;
pub mod window;

use crate::call::{Reply, UpstreamCall, UpstreamError};
use crate::stack::{CallError, CallFuture};
use crate::stack::{Handle, Inner, Stacked};
use crate::telemetry::metrics as m;
use crate::telemetry::trace::{OpenSpan, SpanScope};
pub use limiter::Limiter;
use limiter::{Decision, SharedCall, WaitingGauge, describe};
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, Status};
use rates::{OpClass, RateTable};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::Layer;

/// How the limiter behaves.
#[derive(Clone, Debug)]
pub struct LimitSettings {
    pub rates: RateTable,
    /// The longest a call waits for its turn.
    pub max_queue_wait: Duration,
    /// At most this many calls wait on one bucket.
    pub max_queue_len: usize,
    /// Time kept free for the upstream call itself when judging whether a turn fits the caller's deadline.
    pub expected_upstream: Duration,
    /// Added to the one-second window, so that network jitter cannot make Pinecone see more than its limit.
    pub window_margin: Duration,
    /// How far ahead one namespace may reserve a bucket it shares with the other namespaces of its index.
    pub namespace_share: Duration,
    /// At most this many buckets are kept.
    pub max_keys: usize,
    /// Every limit the local buckets enforce is divided by this (static share: the number of replicas).
    pub share: u64,
    /// Shared limits in Redis; the local buckets (divided by `share`) are the fallback.
    pub redis: Option<shared::RedisSettings>,
    /// Calls wait for a limit in the [`fair`] queue (priorities, weighted shares) rather than first come, first
    /// served: on when the configuration names callers (`[callers]`).
    pub fair_queuing: bool,
    /// In the fair queue, a call that has waited this long goes before calls of higher priorities.
    pub max_batch_starvation: Duration,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            rates: RateTable::default(),
            max_queue_wait: Duration::from_secs(10),
            max_queue_len: 1000,
            expected_upstream: Duration::from_millis(50),
            window_margin: Duration::from_millis(20),
            namespace_share: Duration::from_secs(1),
            max_keys: 100_000,
            share: 1,
            redis: None,
            fair_queuing: false,
            max_batch_starvation: Duration::from_secs(2),
        }
    }
}

/// Why a call was refused locally.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// Names the limit: operation, scope, key and rate.
    pub message: String,
    /// When trying again has a chance.
    pub retry_after: Duration,
}

/// What the coalescer may ask of the limiter, and all it may ask: when a call could have its turn, and how far
/// apart a call's turns are kept. Neither reserves anything; the call itself still passes the limit layer.
pub trait Turns: Send + Sync + 'static {
    /// The earliest instant at which `call` would find room in every bucket it takes from, without reserving it
    /// (turns already reserved by others come first). `now` is the caller's reading of the clock, so that "free
    /// now" compares equal to it.
    fn next_turn(&self, call: &UpstreamCall, now: Instant) -> Instant;

    /// The even spacing of `call`'s strictest request limit (its window over its rate), or `None` when no request
    /// limit applies to it.
    fn request_spacing(&self, call: &UpstreamCall) -> Option<Duration>;
}

/// How long Pinecone asked to be left alone, when it answered 429.
fn throttled_for(result: &Result<Reply, CallError>) -> Option<Duration> {
    match result {
        Err(CallError::Upstream(UpstreamError::Status {
            status: 429,
            retry_after,
            ..
        })) => Some(retry_after.unwrap_or(Duration::from_secs(1))),
        _ => None,
    }
}

/// What redis mode decided for a call.
enum SharedTurn {
    /// Its turn came: send it, then stamp it.
    Go(HeldTurn),
    Refused(Rejection),
    /// Redis failed: decide locally, under the static share.
    Degraded,
}

/// A turn Redis gave, until its request is answered: dropped before that (the call gave up, or was never sent), it
/// is stamped as never sent, so that it stops counting.
struct HeldTurn {
    turn: Option<shared::Turn>,
    shared: Arc<shared::RedisLimits>,
}

impl HeldTurn {
    /// The request was answered.
    fn answered(mut self) {
        if let Some(turn) = self.turn.take() {
            self.shared.close(turn, true);
        }
    }
}

impl Drop for HeldTurn {
    fn drop(&mut self) {
        if let Some(turn) = self.turn.take() {
            self.shared.close(turn, false);
        }
    }
}

/// How a caller's priority takes turns across the fleet.
fn turn_kind(call: &UpstreamCall) -> shared::TurnKind {
    match call.ctx.caller.priority {
        crate::call::Priority::Batch => shared::TurnKind::Batch,
        crate::call::Priority::Default => shared::TurnKind::Default,
        crate::call::Priority::Interactive => shared::TurnKind::Interactive,
    }
}

/// Redis mode: the call's turn, in one round trip, then a wait for it within what the call can afford.
async fn shared_turn(
    limiter: &Limiter,
    shared: &Arc<shared::RedisLimits>,
    sc: &SharedCall,
    call: &UpstreamCall,
    asking: Option<fair::Turn>,
) -> SharedTurn {
    let s = limiter.settings();
    let started = Instant::now();
    let give_up_at = (call.deadline.checked_sub(s.expected_upstream))
        .unwrap_or(started)
        .min(started + s.max_queue_wait);
    let _waiting = WaitingGauge::new();
    let span = redis_span(call, "redis turn");
    let verdict = shared
        .take(&shared::Take {
            buckets: &sc.buckets,
            kind: turn_kind(call),
            max_wait: give_up_at.saturating_duration_since(started),
            deadline: call.deadline,
            period: sc.period,
            expected: s.expected_upstream,
            class: sc.class.name(),
        })
        .await;
    // The replica's fair queue orders its calls' asking Redis; a call waiting for a turn Redis gave for later no
    // longer holds the others back (across replicas, `TurnKind` orders them).
    drop(asking);
    end_redis_span(
        call,
        span,
        match &verdict {
            None => "degraded",
            Some(shared::TakeVerdict::TooLate { .. }) => "too_late",
            Some(shared::TakeVerdict::AtHome { .. }) => "refused_at_home",
            Some(shared::TakeVerdict::Go { wait, .. }) if wait.is_zero() => "go",
            Some(shared::TakeVerdict::Go { .. }) => "wait",
        },
    );
    let limit = |binding: usize| {
        sc.needs
            .get(binding)
            .map(|n| describe(n, sc.class))
            .unwrap_or_default()
    };
    match verdict {
        None => SharedTurn::Degraded,
        Some(shared::TakeVerdict::TooLate {
            wait: None,
            binding,
        }) => SharedTurn::Refused(Rejection {
            message: format!(
                "rate limit (shared by every replica): this call costs more than {}; it can never pass",
                limit(binding)
            ),
            retry_after: sc.period,
        }),
        Some(shared::TakeVerdict::TooLate {
            wait: Some(wait),
            binding,
        }) if wait <= give_up_at.saturating_duration_since(started) => {
            SharedTurn::Refused(Rejection {
                message: format!(
                    "rate limit (shared by every replica): {}; more calls are asked of it than it serves, and no \
                 turn is given more than {} ms ahead then (limits.redis.overload_queue_ms); the next turn is in {} ms",
                    limit(binding),
                    shared.overload_queue().as_millis(),
                    wait.as_millis()
                ),
                retry_after: wait,
            })
        }
        Some(shared::TakeVerdict::TooLate {
            wait: Some(wait),
            binding,
        }) => SharedTurn::Refused(Rejection {
            message: format!(
                "rate limit (shared by every replica): {}; the next turn is in {} ms, too late for the call's \
                 deadline or past the gateway's {} ms queue limit",
                limit(binding),
                wait.as_millis(),
                s.max_queue_wait.as_millis()
            ),
            retry_after: wait,
        }),
        Some(shared::TakeVerdict::AtHome { wait, binding }) => SharedTurn::Refused(Rejection {
            message: format!(
                "rate limit (shared by every replica): {}; the fleet asks for more than the limit, and this \
                 replica refuses its part of the excess (limits.redis.overload_ask_percent); the last turn given \
                 was {} ms ahead",
                limit(binding),
                wait.as_millis()
            ),
            retry_after: wait.max(Duration::from_millis(1)),
        }),
        Some(shared::TakeVerdict::Go { wait, turn }) => {
            let mut held = HeldTurn {
                turn: Some(turn),
                shared: shared.clone(),
            };
            if !wait.is_zero() {
                // Slept from the answer's arrival: the request leaves no earlier than its turn on Redis's clock.
                tokio::time::sleep(wait).await;
            }
            // The guard: whatever the network and this host did to earlier requests, Pinecone never sees more than
            // the limit in any window.
            let confirmed = held.turn.as_ref().is_some_and(|t| t.confirmed);
            if confirmed && !wait.is_zero() && shared.is_degraded() {
                // Redis failed while the turn waited: this replica's windows now decide alone, from what it sent
                // through Redis until they were made; a turn given before would go beside them, uncounted.
                return SharedTurn::Degraded;
            }
            if !confirmed {
                loop {
                    let now = Instant::now();
                    let span = redis_span(call, "redis guard");
                    let verdict = match held.turn.as_mut() {
                        Some(t) => shared.guard(t, sc.period).await,
                        None => None,
                    };
                    end_redis_span(
                        call,
                        span,
                        match &verdict {
                            None => "degraded",
                            Some(Ok(())) => "go",
                            Some(Err(_)) => "wait",
                        },
                    );
                    match verdict {
                        Some(Ok(())) => break,
                        // Redis failed: the turn is void, and the call takes this replica's own share.
                        None => return SharedTurn::Degraded,
                        Some(Err(wait)) => {
                            // The requests in flight may come back sooner than the guard can know: ask again after a
                            // tenth of the window at most.
                            let next = now + wait.min(sc.period / 10);
                            if next > give_up_at {
                                return SharedTurn::Refused(Rejection {
                                    message: format!(
                                        "rate limit (shared by every replica): {}; requests still in flight hold the \
                                         limit longer than expected, and the next turn is in {} ms, too late for the \
                                         call's deadline",
                                        limit(0),
                                        wait.as_millis()
                                    ),
                                    retry_after: wait,
                                });
                            }
                            tokio::time::sleep_until(next).await;
                        }
                    }
                }
            }
            // This host woke the call after the promise its request was given: Redis counts it until its deadline
            // before it leaves, or the turn is void.
            if let Some(t) = held.turn.as_mut()
                && t.promised().is_some_and(|at| Instant::now() >= at)
            {
                match shared.overdue(t).await {
                    shared::Overdue::Noted => {}
                    shared::Overdue::Failed => return SharedTurn::Degraded,
                    shared::Overdue::TooLate => {
                        return SharedTurn::Refused(Rejection {
                            message: format!(
                                "rate limit (shared by every replica): {}; this host woke the call more than \
                                 limits.redis.timeout_ms after the promise its turn was given (the fleet may no \
                                 longer count it); retry",
                                limit(0)
                            ),
                            retry_after: sc.period / 10,
                        });
                    }
                }
            }
            if !wait.is_zero() || !confirmed {
                record_wait(sc.class, call, started);
            }
            SharedTurn::Go(held)
        }
    }
}

/// A call that waited for its turn (held back, queued or asleep, not the time it took to take one): counted by
/// class, and by caller and priority.
fn record_wait(class: OpClass, call: &UpstreamCall, started: Instant) {
    let waited = started.elapsed().as_secs_f64();
    m::counter(m::LIMIT_WAITS, &[("class", class.name())]).increment(1);
    m::histogram(m::LIMIT_WAIT_SECONDS, &[("class", class.name())]).record(waited);
    let caller = &call.ctx.caller;
    let labels = [
        ("caller", caller.label),
        ("priority", caller.priority.name()),
    ];
    m::counter(m::CALLER_LIMIT_WAITS, &labels).increment(1);
    m::histogram(m::CALLER_LIMIT_WAIT_SECONDS, &labels).record(waited);
}

/// A call refused by the limiter: counted by class, and by caller as a refusal by Pinecone's limits.
fn record_rejection(class: OpClass, call: &UpstreamCall) {
    m::counter(m::LIMIT_REJECTIONS, &[("class", class.name())]).increment(1);
    m::counter(
        m::CALLER_REFUSALS,
        &[("caller", call.ctx.caller.label), ("reason", "limit")],
    )
    .increment(1);
}

/// The fair queue of the limit a call waits for, when fair queuing is on.
struct Gate<'a> {
    limiter: &'a Limiter,
    key: fair::QueueKey,
    settings: Arc<LimitSettings>,
}

impl<'a> Gate<'a> {
    fn of(limiter: &'a Limiter, call: &UpstreamCall) -> Option<Gate<'a>> {
        let settings = limiter.settings();
        if !settings.fair_queuing {
            return None;
        }
        let class = OpClass::of(&call.op);
        let index = if class == OpClass::ControlPlane {
            String::new()
        } else {
            call.index.clone()
        };
        Some(Gate {
            limiter,
            key: fair::QueueKey { index, class },
            settings,
        })
    }

    /// Waits in the queue for the turn, until the caller's deadline (less `expected_upstream`) or the queue limit.
    async fn turn(&self, call: &UpstreamCall) -> Result<fair::Turn, Rejection> {
        let s = &self.settings;
        let give_up_at = (call.deadline.checked_sub(s.expected_upstream))
            .unwrap_or(call.deadline)
            .min(Instant::now() + s.max_queue_wait);
        let caller = &call.ctx.caller;
        let limit = if self.key.index.is_empty() {
            format!("{} calls of the project", self.key.class.name())
        } else {
            format!(
                "{} calls to index `{}`",
                self.key.class.name(),
                self.key.index
            )
        };
        self.limiter
            .fair
            .turn(
                self.key.clone(),
                caller,
                give_up_at,
                s.max_queue_len,
                s.max_batch_starvation,
            )
            .await
            .map_err(|e| match e {
                fair::NoTurn::Full { waiting } => Rejection {
                    message: format!(
                        "rate limit: {waiting} calls already wait their turn for {limit} (limits.max_queue_len)"
                    ),
                    retry_after: Duration::from_secs(1),
                },
                fair::NoTurn::Displaced => Rejection {
                    message: format!(
                        "rate limit: the queue for {limit} was full (limits.max_queue_len) and a call of a higher \
                         priority took the place of this {} call",
                        caller.priority.name()
                    ),
                    retry_after: Duration::from_secs(1),
                },
                fair::NoTurn::GaveUp { ahead } => Rejection {
                    message: format!(
                        "rate limit: {ahead} calls of priority {} or higher waited ahead of this one for {limit}; \
                         its turn did not come before its deadline or the gateway's {} ms queue limit",
                        caller.priority.name(),
                        s.max_queue_wait.as_millis()
                    ),
                    retry_after: Duration::from_secs(1),
                },
            })
    }
}

/// The layer.
#[derive(Clone)]
pub struct LimitLayer {
    limiter: Arc<Limiter>,
}

impl LimitLayer {
    pub fn new(limiter: Arc<Limiter>) -> Self {
        LimitLayer { limiter }
    }
}

impl<S> Layer<S> for LimitLayer {
    type Service = Stacked<Limit<S>>;

    fn layer(&self, inner: S) -> Stacked<Limit<S>> {
        Stacked::new(Limit {
            inner,
            limiter: self.limiter.clone(),
        })
    }
}

/// The service.
#[derive(Clone)]
pub struct Limit<S> {
    inner: S,
    limiter: Arc<Limiter>,
}

/// A call's turn, granted by Redis or by this process's windows; told how the request went once it is answered.
enum Granted {
    Shared {
        turn: HeldTurn,
        shared: Arc<shared::RedisLimits>,
        keys: Vec<String>,
        /// Where the fall-back remembers it: the limiter, the call's buckets, and when it was sent.
        limiter: Arc<Limiter>,
        needs: Vec<limiter::BucketKey>,
        sent: Instant,
    },
    Local {
        sent: limiter::Sent,
        limiter: Arc<Limiter>,
    },
}

impl Granted {
    /// When its request is promised answered by (redis mode): if it is not by then, Redis is told so.
    fn promised(&self) -> Option<Instant> {
        match self {
            Granted::Shared { turn, .. } => turn.turn.as_ref().and_then(shared::Turn::promised),
            Granted::Local { .. } => None,
        }
    }

    /// Its request was not answered by its promise: Redis counts it until its deadline from now on.
    async fn overdue(&mut self) {
        if let Granted::Shared { turn, shared, .. } = self
            && let Some(t) = turn.turn.as_mut()
        {
            let verdict = shared.overdue(t).await;
            if verdict != shared::Overdue::Noted {
                tracing::debug!(
                    ?verdict,
                    "a request's broken promise did not reach Redis in time"
                );
            }
        }
    }

    /// The answer reported the call's read units. This process's windows count them instead of the estimate; Redis's
    /// schedule keeps the estimate (the next calls' estimates follow the measured cost).
    fn reconcile_read_units(&mut self, units: u64) {
        if let Granted::Local { sent, .. } = self {
            sent.reconcile_read_units(units);
        }
    }

    /// The request is answered: it stops counting as in flight, and a 429 pauses every bucket it took from.
    async fn answered(self, result: &Result<Reply, CallError>) {
        match self {
            Granted::Shared {
                turn,
                shared,
                keys,
                limiter,
                needs,
                sent,
            } => {
                turn.answered();
                limiter.answered_through_redis(&needs, sent);
                if let Some(pause) = throttled_for(result) {
                    shared.block(&keys, pause).await;
                }
            }
            Granted::Local { sent, limiter } => match throttled_for(result) {
                Some(pause) => {
                    let keys = sent.keys();
                    drop(sent);
                    limiter.slow_down(&keys, Instant::now() + pause);
                }
                None => drop(sent),
            },
        }
    }
}

/// Redis mode: the turn from the shared schedule; None when Redis failed or no shared limit applies (the static
/// share decides then).
async fn shared_grant(
    limiter: &Arc<Limiter>,
    gate: Option<&Gate<'_>>,
    call: &UpstreamCall,
) -> Option<Result<Granted, CallError>> {
    let shared = limiter.shared.clone()?;
    let sc = limiter.shared_buckets(&shared, call)?;
    // This replica's waiting calls take Redis's turns in priority order; across replicas, Redis gives interactive
    // calls the earliest room and keeps batch calls out of the headroom (docs/limits.md, "Callers").
    let asking = match gate {
        Some(gate) => match gate.turn(call).await {
            Ok(turn) => Some(turn),
            Err(r) => {
                record_rejection(sc.class, call);
                return Some(Err(CallError::Limited(r)));
            }
        },
        None => None,
    };
    match shared_turn(limiter, &shared, &sc, call, asking).await {
        SharedTurn::Go(turn) => {
            let sent = limiter.granted_through_redis(&sc.needs);
            Some(Ok(Granted::Shared {
                turn,
                shared,
                keys: sc.buckets.into_iter().map(|b| b.key).collect(),
                limiter: limiter.clone(),
                needs: sc.needs.iter().map(|n| n.key.clone()).collect(),
                sent,
            }))
        }
        SharedTurn::Refused(r) => {
            record_rejection(sc.class, call);
            Some(Err(CallError::Limited(r)))
        }
        SharedTurn::Degraded => None,
    }
}

/// This process's windows (divided by the static share in `static-share` mode and when Redis is down), through the
/// fair queue when it is on: the call holds the queue's turn from its reservation until it is sent, and gives it up
/// while its namespace holds back.
async fn local_grant(
    limiter: &Arc<Limiter>,
    gate: Option<&Gate<'_>>,
    call: &UpstreamCall,
) -> Result<Granted, CallError> {
    let class = OpClass::of(&call.op);
    let started = Instant::now();
    let waiting = WaitingGauge::new();
    let mut held_back = false;
    let reject = |r: Rejection| {
        record_rejection(class, call);
        CallError::Limited(r)
    };
    let mut turn: Option<fair::Turn> = None;
    let mut queued = false;
    let mut due = None;
    let permit = loop {
        if let Some(gate) = gate
            && turn.is_none()
        {
            let t = gate.turn(call).await.map_err(reject)?;
            queued |= t.queued;
            // While the limit binds: one spacing of it after the previous holder was due.
            if let (Some(from), Some(spacing)) = (t.pace_from, limiter.request_spacing(call)) {
                due = Some(from + spacing);
                tokio::time::sleep_until(from + spacing).await;
            }
            turn = Some(t);
        }
        match limiter.reserve(call) {
            Decision::Go(p) => break p,
            Decision::HoldBack(until) => {
                held_back = true;
                turn = None;
                tokio::time::sleep_until(until).await
            }
            Decision::Reject(r) => return Err(reject(r)),
        }
    };
    let (sent, slept) = permit.ready(class).await.map_err(reject)?;
    if let Some(t) = turn.as_mut()
        && (slept || held_back || due.is_some())
    {
        // Due when paced, else when its reserved turn came (now: it has just woken for it).
        t.bound(due.filter(|_| !slept).unwrap_or_else(Instant::now));
    }
    drop(turn);
    drop(waiting);
    // A wait is a call that was held back, queued or slept for its turn, not the time it took to take one.
    if held_back || slept || queued {
        record_wait(class, call, started);
    }
    Ok(Granted::Local {
        sent,
        limiter: limiter.clone(),
    })
}

/// A query whose namespace's cost is not known yet waits for the namespace's first query (the probe) to be
/// answered, or becomes that probe (`read_costs.rs`).
async fn read_cost_known(
    limiter: &Limiter,
    key: &read_costs::CostKey,
    call: &UpstreamCall,
) -> Result<Option<read_costs::Probe>, CallError> {
    let s = limiter.settings();
    let started = Instant::now();
    let give_up_at = (call.deadline.checked_sub(s.expected_upstream))
        .unwrap_or(call.deadline)
        .min(started + s.max_queue_wait);
    match limiter
        .read_costs
        .known_or_probe(key, s.max_keys, give_up_at)
        .await
    {
        Ok(probe) => Ok(probe),
        Err(read_costs::ProbeTooLong) => {
            let class = OpClass::of(&call.op);
            record_rejection(class, call);
            Err(CallError::Limited(Rejection {
                message: format!(
                    "rate limit: {} allows {} read units/s per index (index `{}`); the cost of a query to namespace \
                     `{}` is not known yet and its first query, which measures it, was not answered before the \
                     call's deadline or the gateway's {} ms queue limit",
                    class.name(),
                    s.rates
                        .rates(&call.index, class)
                        .index_read_units
                        .unwrap_or_default(),
                    key.0,
                    key.1,
                    s.max_queue_wait.as_millis()
                ),
                retry_after: Duration::from_secs(1),
            }))
        }
    }
}

/// The limiter's span: the class and limit key the call waited for, whether Redis or this process decided, and
/// the refusal if it was refused.
fn end_limit_span(
    mut span: OpenSpan,
    scope: &SpanScope,
    call: &UpstreamCall,
    granted: &Result<Granted, CallError>,
) {
    let class = OpClass::of(&call.op);
    span.attribute(KeyValue::new("gateway.limit.class", class.name()));
    let key = match call.op.namespace() {
        _ if class == OpClass::ControlPlane => "project".to_string(),
        Some(ns) => format!(
            "{}/{}",
            call.index,
            crate::wire::data::normalize_namespace(ns)
        ),
        None => call.index.clone(),
    };
    span.attribute(KeyValue::new("gateway.limit.key", key));
    let (mode, status) = match granted {
        Ok(Granted::Shared { .. }) => ("redis", Status::Unset),
        Ok(Granted::Local { .. }) => ("local", Status::Unset),
        Err(e) => ("refused", Status::error(e.to_string())),
    };
    span.attribute(KeyValue::new("gateway.limit.decision", mode));
    span.end(scope, status);
}

/// A span for one Redis round trip of a traced call.
fn redis_span(call: &UpstreamCall, name: &'static str) -> Option<OpenSpan> {
    let mut span = call.ctx.trace.as_ref()?.child(name, SpanKind::Client);
    span.attribute(KeyValue::new("db.system.name", "redis"));
    Some(span)
}

fn end_redis_span(call: &UpstreamCall, span: Option<OpenSpan>, verdict: &'static str) {
    if let (Some(mut span), Some(scope)) = (span, call.ctx.trace.as_ref()) {
        span.attribute(KeyValue::new("gateway.limit.verdict", verdict));
        let status = if verdict == "degraded" {
            Status::error("Redis did not answer; decided locally under the static share")
        } else {
            Status::Unset
        };
        span.end(scope, status);
    }
}

impl<S: Inner> Handle for Limit<S> {
    fn handle(&self, call: UpstreamCall) -> CallFuture {
        let limiter = self.limiter.clone();
        let inner = self.inner.clone();
        Box::pin(async move {
            let read_cost = match limiter.read_cost_key(&call) {
                Some(key) => {
                    let probe = read_cost_known(&limiter, &key, &call).await?;
                    Some((key, probe))
                }
                None => None,
            };
            let gate = Gate::of(&limiter, &call);
            let span = call
                .ctx
                .trace
                .as_ref()
                .map(|s| s.child("rate limit", SpanKind::Internal));
            let granted = match shared_grant(&limiter, gate.as_ref(), &call).await {
                Some(granted) => granted,
                None => local_grant(&limiter, gate.as_ref(), &call).await,
            };
            if let (Some(span), Some(scope)) = (span, call.ctx.trace.as_ref()) {
                end_limit_span(span, scope, &call, &granted);
            }
            let mut granted = granted?;
            let result = match granted.promised() {
                None => inner.send(call).await,
                Some(at) => {
                    let mut send = std::pin::pin!(inner.send(call));
                    tokio::select! {
                        biased;
                        result = &mut send => result,
                        () = tokio::time::sleep_until(at) => {
                            let ((), result) = tokio::join!(granted.overdue(), send);
                            result
                        }
                    }
                }
            };
            if let (Some((key, _)), Ok(reply)) = (&read_cost, &result)
                && let Some(units) = reply.read_units()
            {
                limiter.read_costs.measured(key, units);
                granted.reconcile_read_units(units);
            }
            granted.answered(&result).await;
            // The probe ends after its cost is known, so the namespace's waiting queries are counted at it.
            drop(read_cost);
            result
        })
    }
}

#[cfg(test)]
mod tests;
