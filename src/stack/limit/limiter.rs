//! The limiter itself: every bucket's window, reservations (all of a call's buckets or none), permits that give a
//! reservation back when dropped and keep a sent request in its windows until it is answered, the namespace share,
//! and the pause after a 429. The service in `mod.rs` asks it for turns; the coalescer asks it through [`Turns`].

use super::rates::{OpClass, Scope, Unit};
use super::read_costs::{CostKey, ReadCosts};
use super::window::Window;
use super::{LimitSettings, Rejection, Turns, shared};
use crate::call::UpstreamCall;
use crate::telemetry::metrics as m;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct BucketKey {
    index: String,
    /// Empty for index-scoped buckets.
    namespace: String,
    class: OpClass,
    unit: Unit,
}

pub(super) struct Need {
    key: BucketKey,
    scope: Scope,
    rate: u64,
    cost: u64,
}

#[derive(Default)]
struct State {
    buckets: HashMap<BucketKey, Window>,
    /// The namespace of each reservation still waiting.
    owners: HashMap<u64, String>,
    next_ticket: u64,
    calls_since_sweep: u32,
}

/// What [`Limiter::reserve`] decided.
pub(super) enum Decision {
    Go(Permit),
    /// The namespace holds its share of a shared bucket: ask again at this instant.
    HoldBack(Instant),
    Reject(Rejection),
}

/// The shared limiter state.
pub struct Limiter {
    /// Replaced whole on reload (SIGHUP); each call reads one consistent copy.
    settings: std::sync::RwLock<Arc<LimitSettings>>,
    state: Mutex<State>,
    /// Redis, in redis mode (fixed at start: a reload does not change the mode).
    pub(super) shared: Option<Arc<shared::RedisLimits>>,
    /// Where calls wait for a turn when fair queuing is on.
    pub(super) fair: Arc<super::fair::FairQueues>,
    /// What a query of each namespace is expected to cost in read units.
    pub(super) read_costs: Arc<ReadCosts>,
}

pub(super) fn describe(n: &Need, class: OpClass) -> String {
    let unit = n.key.unit.name();
    match n.scope {
        Scope::Namespace => format!(
            "{} allows {} {unit}/s per namespace (namespace `{}` of index `{}`)",
            class.name(),
            n.rate,
            n.key.namespace,
            n.key.index
        ),
        Scope::Index if class == OpClass::ControlPlane => {
            format!("control-plane calls allow {} {unit}/s per project", n.rate)
        }
        Scope::Index => format!(
            "{} allows {} {unit}/s per index (index `{}`)",
            class.name(),
            n.rate,
            n.key.index
        ),
    }
}

impl Limiter {
    /// The Redis side, in redis mode (also where callers' write LSNs are shared: `api::consistency`).
    pub fn redis(&self) -> Option<Arc<shared::RedisLimits>> {
        self.shared.clone()
    }

    pub fn new(settings: LimitSettings) -> Arc<Limiter> {
        // The configuration checked the URL; a failure here still leaves the static share in force.
        let shared = settings
            .redis
            .clone()
            .and_then(|r| match shared::RedisLimits::new(r) {
                Ok(s) => Some(Arc::new(s)),
                Err(e) => {
                    tracing::error!(error = %e, "shared limits off");
                    None
                }
            });
        Arc::new(Limiter {
            settings: std::sync::RwLock::new(Arc::new(settings)),
            state: Mutex::new(State::default()),
            shared,
            fair: Arc::default(),
            read_costs: Arc::default(),
        })
    }

    /// True while redis mode falls back to the static share.
    pub fn is_degraded(&self) -> bool {
        self.shared.as_ref().is_some_and(|s| s.is_degraded())
    }

    /// Redis mode, degraded: the last window before the fall-back counts as spent (by the other replicas, through
    /// Redis), so the local buckets give nothing until it has slid out.
    fn spent_until(&self, period: Duration) -> Option<Instant> {
        let since = self.shared.as_ref()?.degraded_since()?;
        let until = since + period;
        (until > Instant::now()).then_some(until)
    }

    pub fn settings(&self) -> Arc<LimitSettings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// New limits for calls from now on; calls already reserved keep their turn, buckets take the new rates.
    pub fn reload(&self, settings: LimitSettings) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(settings);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The buckets of a call at the local rates (each limit divided by `share`).
    fn needs(&self, call: &UpstreamCall) -> (OpClass, Vec<Need>) {
        self.needs_divided(call, self.settings().share.max(1))
    }

    fn needs_divided(&self, call: &UpstreamCall, divisor: u64) -> (OpClass, Vec<Need>) {
        let class = OpClass::of(&call.op);
        let namespace = namespace_key(call).to_string();
        let (records, bytes) = super::rates::costs(&call.op);
        let index = if class == OpClass::ControlPlane {
            String::new()
        } else {
            call.index.clone()
        };
        let needs = self
            .settings()
            .rates
            .rates(&call.index, class)
            .buckets()
            .filter_map(|(scope, unit, rate)| {
                let rate = (rate / divisor).max(1);
                let cost = match unit {
                    Unit::Requests => 1,
                    Unit::Records => records,
                    Unit::Bytes => bytes,
                    Unit::ReadUnits => self
                        .read_costs
                        .estimate(&(call.index.clone(), namespace.clone()), rate),
                };
                (cost > 0).then(|| Need {
                    key: BucketKey {
                        index: index.clone(),
                        namespace: if scope == Scope::Namespace {
                            namespace.clone()
                        } else {
                            String::new()
                        },
                        class,
                        unit,
                    },
                    scope,
                    rate,
                    cost,
                })
            })
            .collect();
        (class, needs)
    }

    /// Reserves the call's turn in every bucket, or says why not.
    pub(super) fn reserve(self: &Arc<Self>, call: &UpstreamCall) -> Decision {
        match self.try_reserve(call) {
            Ok(Ok(p)) => Decision::Go(p),
            Ok(Err(at)) => Decision::HoldBack(at),
            Err(r) => Decision::Reject(r),
        }
    }

    fn try_reserve(
        self: &Arc<Self>,
        call: &UpstreamCall,
    ) -> Result<Result<Permit, Instant>, Rejection> {
        let (class, needs) = self.needs(call);
        if needs.is_empty() {
            return Ok(Ok(Permit::free(self.clone(), Instant::now())));
        }
        let s = self.settings();
        let period = Duration::from_secs(1) + s.window_margin;
        let namespace = namespace_key(call).to_string();
        let spent_until = self.spent_until(period);
        let mut state = self.lock();
        let state = &mut *state;
        // Read the clock under the lock: entries stamped by others must never be later than our `now`.
        let now = Instant::now();
        state.calls_since_sweep += 1;
        if state.buckets.len() >= s.max_keys || state.calls_since_sweep >= 1024 {
            state.calls_since_sweep = 0;
            state.buckets.retain(|_, w| {
                w.prune(now);
                !w.is_idle()
            });
        }
        let mut at = now;
        let mut binding: Option<&Need> = None;
        let mut hold_back: Option<Instant> = None;
        for n in &needs {
            if !state.buckets.contains_key(&n.key) && state.buckets.len() >= s.max_keys {
                return Err(Rejection {
                    message: format!(
                        "the gateway tracks {} limiter keys already; try again shortly",
                        s.max_keys
                    ),
                    retry_after: Duration::from_secs(1),
                });
            }
            let w = state
                .buckets
                .entry(n.key.clone())
                .or_insert_with(|| Window::new(n.rate, period));
            // A reload may have changed the rate or the margin since the bucket was made.
            w.set_limit(n.rate, period);
            if let Some(until) = spent_until {
                w.block_until(until);
            }
            w.prune(now);
            let Some(earliest) = w.earliest(now, n.cost) else {
                return Err(Rejection {
                    message: format!(
                        "rate limit: this call costs {} {} but {}; it can never pass",
                        n.cost,
                        n.key.unit.name(),
                        describe(n, class)
                    ),
                    retry_after: period,
                });
            };
            if w.waiting(now) >= s.max_queue_len {
                return Err(Rejection {
                    message: format!(
                        "rate limit: {} calls already wait their turn; {}",
                        s.max_queue_len,
                        describe(n, class)
                    ),
                    retry_after: earliest - now,
                });
            }
            if n.scope == Scope::Index && !namespace.is_empty() && class != OpClass::ControlPlane {
                let owners = &state.owners;
                let mine = w.queued_after(now, |k| owners.get(&k).is_some_and(|o| *o == namespace));
                let share =
                    (n.rate as f64 * s.namespace_share.as_secs_f64()).max(n.cost as f64) as u64;
                if mine + n.cost > share {
                    let mine_next =
                        w.next_release(now, |k| owners.get(&k).is_some_and(|o| *o == namespace));
                    hold_back = mine_next.map(|t| hold_back.map_or(t, |h: Instant| h.min(t)));
                }
            }
            if earliest > at || binding.is_none() {
                at = at.max(earliest);
                binding = Some(n);
            }
        }
        let wait = at - now;
        let deadline_left = call.deadline.saturating_duration_since(now);
        let reason = if wait > s.max_queue_wait {
            Some(format!(
                "the next turn is in {} ms, past the gateway's {} ms queue limit",
                wait.as_millis(),
                s.max_queue_wait.as_millis()
            ))
        } else if wait > Duration::ZERO && wait + s.expected_upstream > deadline_left {
            Some(format!(
                "the next turn is in {} ms, too late for the call's deadline",
                wait.as_millis()
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            let limit = binding.map(|n| describe(n, class)).unwrap_or_default();
            return Err(Rejection {
                message: format!("rate limit: {limit}; {reason}"),
                retry_after: wait,
            });
        }
        metrics::gauge!(m::LIMIT_KEYS).set(state.buckets.len() as f64);
        if let Some(t) = hold_back {
            return Ok(Err(t));
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        for n in &needs {
            if let Some(w) = state.buckets.get_mut(&n.key) {
                w.reserve(at, n.cost, ticket);
            }
        }
        if at > now {
            state.owners.insert(ticket, namespace);
        }
        Ok(Ok(Permit {
            limiter: self.clone(),
            needs: needs.into_iter().map(|n| (n.key, n.cost)).collect(),
            at,
            deadline: call.deadline,
            ticket,
            released: false,
        }))
    }

    /// The call's buckets in Redis at the full rates, with its needs (for messages), or None when no limit applies.
    pub(super) fn shared_buckets(
        &self,
        shared: &shared::RedisLimits,
        call: &UpstreamCall,
    ) -> Option<SharedCall> {
        let (class, needs) = self.needs_divided(call, 1);
        if needs.is_empty() {
            return None;
        }
        let period = Duration::from_secs(1) + self.settings().window_margin;
        let buckets: Vec<shared::Bucket> = needs
            .iter()
            .map(|n| shared::Bucket {
                key: shared.key(
                    &n.key.index,
                    class.name(),
                    n.key.unit.key_name(),
                    (n.scope == Scope::Namespace).then_some(n.key.namespace.as_str()),
                ),
                spacing: period / n.rate.min(u32::MAX as u64) as u32,
                cost: n.cost,
            })
            .collect();
        let guards = buckets
            .iter()
            .zip(&needs)
            .map(|(b, n)| (format!("{}:sent", b.key), n.rate, n.cost))
            .collect();
        let spacing = buckets.iter().map(|b| b.spacing).max().unwrap_or(period);
        Some(SharedCall {
            class,
            needs,
            buckets,
            guards,
            period,
            spacing,
        })
    }

    /// A 429 from Pinecone: nothing more for these buckets until `until`.
    pub(super) fn slow_down(&self, keys: &[BucketKey], until: Instant) {
        let mut state = self.lock();
        for k in keys {
            if let Some(w) = state.buckets.get_mut(k) {
                w.block_until(until);
            }
        }
    }

    /// How many buckets exist (bounded by `max_keys`).
    pub fn keys(&self) -> usize {
        self.lock().buckets.len()
    }
}

/// A call's limits in Redis: its GCRA buckets (the schedule), its guard sets (what was sent), and its needs (for
/// messages).
pub(super) struct SharedCall {
    pub(super) class: OpClass,
    pub(super) needs: Vec<Need>,
    pub(super) buckets: Vec<shared::Bucket>,
    /// Each guard set, with the limit and the call's cost in it.
    pub(super) guards: Vec<(String, u64, u64)>,
    pub(super) period: Duration,
    /// The longest even spacing among the call's buckets: how often a waiting call asks the guard again.
    pub(super) spacing: Duration,
}

impl Turns for Limiter {
    /// The earliest instant at which `call` would find room in every bucket it takes from, without reserving it
    /// (turns already reserved by others come first). The coalescer asks this to decide whether to send now or
    /// let calls accumulate.
    /// `now` is the caller's reading of the clock, so that "free now" compares equal to it.
    fn next_turn(&self, call: &UpstreamCall, now: Instant) -> Instant {
        let (_, needs) = self.needs(call);
        let mut state = self.lock();
        let mut at = now;
        for n in &needs {
            if let Some(w) = state.buckets.get_mut(&n.key) {
                w.prune(now);
                // A cost that never fits is the limiter's to reject, not a reason to hold the call back.
                if let Some(t) = w.earliest(now, n.cost) {
                    at = at.max(t);
                }
            }
        }
        at
    }

    /// The even spacing of `call`'s strictest request limit (its window over its rate), or `None` when no request
    /// limit applies to it.
    fn request_spacing(&self, call: &UpstreamCall) -> Option<Duration> {
        let s = self.settings();
        let period = Duration::from_secs(1) + s.window_margin;
        s.rates
            .rates(&call.index, OpClass::of(&call.op))
            .buckets()
            .filter(|(_, unit, _)| *unit == Unit::Requests)
            .map(|(_, _, rate)| (rate / s.share.max(1)).max(1))
            .min()
            .map(|rate| period / rate.min(u32::MAX as u64) as u32)
    }
}

impl Limiter {
    /// The call's key for read-unit estimates, when a read-unit limit applies to it (queries).
    pub(super) fn read_cost_key(&self, call: &UpstreamCall) -> Option<CostKey> {
        let class = OpClass::of(&call.op);
        let limited = self
            .settings()
            .rates
            .rates(&call.index, class)
            .buckets()
            .any(|(_, unit, _)| unit == Unit::ReadUnits);
        limited.then(|| (call.index.clone(), namespace_key(call).to_string()))
    }
}

/// The namespace's key ("" and "__default__" are one namespace, so one key); "" outside any namespace.
fn namespace_key(call: &UpstreamCall) -> &str {
    call.op
        .namespace()
        .map_or("", crate::wire::data::normalize_namespace)
}

/// A reserved turn. Dropped before it is used, it gives the reservation back.
pub(super) struct Permit {
    limiter: Arc<Limiter>,
    /// Each bucket and the call's cost in it.
    needs: Vec<(BucketKey, u64)>,
    at: Instant,
    deadline: Instant,
    ticket: u64,
    released: bool,
}

impl Permit {
    fn free(limiter: Arc<Limiter>, now: Instant) -> Permit {
        Permit {
            limiter,
            needs: Vec::new(),
            at: now,
            deadline: now,
            ticket: u64::MAX,
            released: true,
        }
    }

    /// Sleeps until the turn, checks again that every bucket has room now (requests still in flight may have
    /// outlasted what the reservation assumed) and waits longer if not; then marks the call as sent.
    /// Also says whether the call had to wait for its turn.
    pub(super) async fn ready(mut self, class: OpClass) -> Result<(Sent, bool), Rejection> {
        let mut slept = false;
        loop {
            // tokio's timer rounds deadlines up to the next millisecond: never sleep for a turn that is now.
            if self.at > Instant::now() {
                slept = true;
                tokio::time::sleep_until(self.at).await;
            }
            if self.needs.is_empty() {
                self.released = true;
                let sent = Sent {
                    limiter: self.limiter.clone(),
                    needs: Vec::new(),
                    ticket: self.ticket,
                    reported: None,
                };
                return Ok((sent, slept));
            }
            let mut state = self.limiter.lock();
            let now = Instant::now();
            let mut at = now;
            for (key, cost) in &self.needs {
                if let Some(w) = state.buckets.get_mut(key) {
                    w.prune(now);
                    if let Some(t) = w.earliest_without(now, *cost, Some(self.ticket)) {
                        at = at.max(t);
                    }
                }
            }
            if at <= now {
                for (key, _) in &self.needs {
                    if let Some(w) = state.buckets.get_mut(key) {
                        w.open(self.ticket, now);
                    }
                }
                state.owners.remove(&self.ticket);
                self.released = true;
                let sent = Sent {
                    limiter: self.limiter.clone(),
                    needs: std::mem::take(&mut self.needs),
                    ticket: self.ticket,
                    reported: None,
                };
                return Ok((sent, slept));
            }
            if at + self.limiter.settings().expected_upstream > self.deadline {
                // Dropping self gives the reservation back.
                return Err(Rejection {
                    message: format!(
                        "rate limit: {} calls still in flight hold the limit longer than expected; the next turn is \
                         in {} ms, too late for the call's deadline",
                        class.name(),
                        (at - now).as_millis()
                    ),
                    retry_after: at - now,
                });
            }
            for (key, _) in &self.needs {
                if let Some(w) = state.buckets.get_mut(key) {
                    w.postpone(self.ticket, at);
                }
            }
            self.at = at;
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let mut state = self.limiter.lock();
        state.owners.remove(&self.ticket);
        for (k, _) in &self.needs {
            if let Some(w) = state.buckets.get_mut(k) {
                w.cancel(self.ticket);
            }
        }
    }
}

/// A call on its way: it counts as in flight until its answer comes back (or it is abandoned).
pub(super) struct Sent {
    limiter: Arc<Limiter>,
    needs: Vec<(BucketKey, u64)>,
    ticket: u64,
    /// The read units the answer reported.
    reported: Option<u64>,
}

impl Sent {
    pub(super) fn keys(&self) -> Vec<BucketKey> {
        self.needs.iter().map(|(k, _)| k.clone()).collect()
    }

    /// The answer reported the call's read units: its read-unit buckets count that, not the estimate.
    pub(super) fn reconcile_read_units(&mut self, units: u64) {
        self.reported = Some(units);
    }
}

impl Drop for Sent {
    fn drop(&mut self) {
        let mut state = self.limiter.lock();
        let now = Instant::now();
        for (k, _) in &self.needs {
            if let Some(w) = state.buckets.get_mut(k) {
                let reported = self.reported.filter(|_| k.unit == Unit::ReadUnits);
                w.close_costing(self.ticket, now, reported);
            }
        }
    }
}

/// Counts the calls waiting in the limiter, as a gauge, for as long as it lives.
pub(super) struct WaitingGauge;

impl WaitingGauge {
    pub(super) fn new() -> Self {
        m::gauge(m::LIMIT_QUEUE, &[]).increment(1.0);
        WaitingGauge
    }
}

impl Drop for WaitingGauge {
    fn drop(&mut self) {
        m::gauge(m::LIMIT_QUEUE, &[]).decrement(1.0);
    }
}
