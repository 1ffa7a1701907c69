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
    pub(super) key: BucketKey,
    scope: Scope,
    /// Units per `period` (this replica's own share, for the local windows).
    rate: u64,
    period: Duration,
    cost: u64,
}

/// How far back a replica remembers what Redis granted it, to keep that share while Redis is down.
const GRANTED_HISTORY: Duration = Duration::from_secs(5);

/// What Redis granted this replica of one bucket.
#[derive(Default)]
struct Granted {
    /// The instant each request was sent, its cost, and when it was answered.
    log: std::collections::VecDeque<(Instant, u64, Option<Instant>)>,
}

#[derive(Default)]
struct State {
    buckets: HashMap<BucketKey, Window>,
    /// The namespace of each reservation still waiting.
    owners: HashMap<u64, String>,
    next_ticket: u64,
    calls_since_sweep: u32,
    /// The outage (Redis mode, degraded since) the windows were started for.
    seeded_for: Option<Instant>,
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
    /// Redis mode: what Redis granted this replica in the last seconds, per bucket: its share while Redis is down,
    /// and its own requests in the windows it then decides in.
    granted: Mutex<HashMap<BucketKey, Granted>>,
    /// Redis mode: Redis has granted this replica a turn since it started.
    ever_granted: std::sync::atomic::AtomicBool,
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
            granted: Mutex::default(),
            ever_granted: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// True while redis mode falls back to the static share.
    pub fn is_degraded(&self) -> bool {
        self.shared.as_ref().is_some_and(|s| s.is_degraded())
    }

    /// Redis mode, degraded, for a replica Redis never granted a turn (it has no share of its own, and takes the
    /// static share): its buckets give nothing for `grace_ms` (or the last window, if longer), as a replica granted
    /// nothing lately keeps its share of nothing. A start-up storm or a blip shorter than that must not add shares
    /// the other replicas, still served by Redis, do not know about (1,000 replicas connecting to a cluster at once
    /// overshot the limit by 81 requests in `bench fleet` when these took the static share after one window).
    fn spent_until(&self, period: Duration) -> Option<Instant> {
        if self.ever_granted.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let shared = self.shared.as_ref()?;
        let since = shared.degraded_since()?;
        let until = since + period.max(shared.fallback().0);
        (until > Instant::now()).then_some(until)
    }

    /// Redis granted the call's turn and it is being sent: remembered per bucket for the fall-back; returns the
    /// instant it is remembered by ([`Limiter::answered_through_redis`]).
    pub(super) fn granted_through_redis(&self, needs: &[Need]) -> Instant {
        self.ever_granted
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let now = Instant::now();
        let mut granted = self.granted.lock().unwrap_or_else(|e| e.into_inner());
        let mut share: f64 = 0.0;
        for n in needs {
            let g = granted.entry(n.key.clone()).or_default();
            while g
                .log
                .front()
                .is_some_and(|(t, ..)| now.saturating_duration_since(*t) > GRANTED_HISTORY)
            {
                g.log.pop_front();
            }
            g.log.push_back((now, n.cost, None));
            // What Redis granted this replica of the limit in the last window, this call included.
            let units: u64 = g
                .log
                .iter()
                .rev()
                .take_while(|(t, ..)| now.saturating_duration_since(*t) <= n.period)
                .map(|(_, c, _)| c)
                .sum();
            share = share.max(units as f64 / n.rate.max(1) as f64);
        }
        metrics::gauge!(m::LIMIT_REPLICA_SHARE).set(share.min(1.0));
        // Buckets nothing was granted for lately are dropped with their last entry's age.
        if granted.len() > self.settings().max_keys {
            granted.retain(|_, g| {
                g.log
                    .back()
                    .is_some_and(|(t, ..)| now.saturating_duration_since(*t) <= GRANTED_HISTORY)
            });
        }
        now
    }

    /// The request Redis granted at `sent` ([`Limiter::granted_through_redis`]) was answered: from now on it counts
    /// from its answer in the windows a fall-back starts with.
    pub(super) fn answered_through_redis(&self, needs: &[BucketKey], sent: Instant) {
        let now = Instant::now();
        let mut granted = self.granted.lock().unwrap_or_else(|e| e.into_inner());
        for key in needs {
            if let Some(entry) = granted
                .get_mut(key)
                .and_then(|g| g.log.iter_mut().rev().find(|(t, ..)| *t == sent))
            {
                entry.2 = Some(now);
            }
        }
    }

    /// The units of `key` Redis granted this replica per second in the window (`period`) before `until`. Over one
    /// window, Redis kept the whole fleet's grants within the limit, so these shares add up to no more than
    /// it; a longer average would not (a replica busier lately than over the average would claim its old share
    /// beside the new one of another).
    fn granted_rate(&self, key: &BucketKey, until: Instant, period: Duration) -> f64 {
        let granted = self.granted.lock().unwrap_or_else(|e| e.into_inner());
        let units: u64 = granted.get(key).map_or(0, |g| {
            g.log
                .iter()
                .filter(|(t, ..)| *t < until && until.saturating_duration_since(*t) <= period)
                .map(|(_, c, _)| c)
                .sum()
        });
        units as f64 / period.as_secs_f64()
    }

    /// What this replica sent of `key` through Redis since `from`: the local window's first entries when it decides
    /// alone, each counted from its answer (Pinecone may have seen it as late as that), or from `now` while it is in
    /// flight.
    fn granted_since(&self, key: &BucketKey, from: Instant, now: Instant) -> Vec<(Instant, u64)> {
        let granted = self.granted.lock().unwrap_or_else(|e| e.into_inner());
        granted.get(key).map_or_else(Vec::new, |g| {
            g.log
                .iter()
                .filter(|(t, ..)| *t >= from)
                .map(|(_, c, answered)| (answered.unwrap_or(now), *c))
                .collect()
        })
    }

    /// This replica's own share of a limit of `rate` per second, per second: the static share (`rate / replicas`);
    /// in redis mode while Redis is down, for `grace_ms`, what Redis granted it in the window before (none if it
    /// was granted nothing), then moving evenly over `fallback_decay_ms` to an equal share of the live fleet as Redis last
    /// counted it. Every replica moves alike, so the fleet's shares add up to no more than the limit. A replica that
    /// Redis never granted a turn (a new one) has no share of its own: nothing for `grace_ms` ([`Limiter::spent_until`]),
    /// then the static share (`limits.replicas`).
    fn own_share(&self, key: &BucketKey, rate: u64, settings: &LimitSettings) -> f64 {
        let static_share = rate as f64 / settings.share.max(1) as f64;
        let Some((shared, since)) = self
            .shared
            .as_ref()
            .and_then(|s| s.degraded_since().map(|since| (s, since)))
        else {
            return static_share;
        };
        let Some(live) = shared.live_replicas() else {
            return static_share;
        };
        if !self.ever_granted.load(std::sync::atomic::Ordering::Relaxed) {
            return static_share;
        }
        let equal = rate as f64 / live.max(1) as f64;
        let period = Duration::from_secs(1) + settings.window_margin;
        let granted = self.granted_rate(key, since, period).min(rate as f64);
        let (grace, decay) = shared.fallback();
        let after = Instant::now().saturating_duration_since(since + grace);
        let kept = if after.is_zero() {
            1.0
        } else if decay.is_zero() {
            0.0
        } else {
            (1.0 - after.as_secs_f64() / decay.as_secs_f64()).max(0.0)
        };
        let share = kept * granted + (1.0 - kept) * equal;
        metrics::gauge!(m::LIMIT_REPLICA_SHARE).set(share / rate.max(1) as f64);
        share
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

    /// The buckets of a call at this replica's own rates ([`Limiter::own_share`]).
    fn needs(&self, call: &UpstreamCall) -> (OpClass, Vec<Need>) {
        self.needs_at(call, true)
    }

    /// The buckets of a call, at this replica's own rates (`own`) or at the full ones (Redis's).
    fn needs_at(&self, call: &UpstreamCall, own: bool) -> (OpClass, Vec<Need>) {
        let settings = self.settings();
        let base_period = Duration::from_secs(1) + settings.window_margin;
        let class = OpClass::of(&call.op);
        let namespace = namespace_key(call).to_string();
        let (records, bytes) = super::rates::costs(&call.op);
        let index = if class == OpClass::ControlPlane {
            String::new()
        } else {
            call.index.clone()
        };
        let needs = settings
            .rates
            .rates(&call.index, class)
            .buckets()
            .filter_map(|(scope, unit, full)| {
                let key = BucketKey {
                    index: index.clone(),
                    namespace: if scope == Scope::Namespace {
                        namespace.clone()
                    } else {
                        String::new()
                    },
                    class,
                    unit,
                };
                // A share below one unit per second is one unit per longer period; none is no turn at all.
                let (rate, period) = if own {
                    let share = self.own_share(&key, full, &settings);
                    if share >= 1.0 {
                        (share as u64, base_period)
                    } else if share > 1e-6 {
                        (1, base_period.mul_f64(1.0 / share))
                    } else {
                        (0, base_period)
                    }
                } else {
                    (full, base_period)
                };
                let cost = match unit {
                    Unit::Requests => 1,
                    Unit::Records => records,
                    Unit::Bytes => bytes,
                    Unit::ReadUnits => self
                        .read_costs
                        .estimate(&(call.index.clone(), namespace.clone()), rate),
                };
                (cost > 0).then_some(Need {
                    key,
                    scope,
                    rate,
                    period,
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
        // Redis down: this replica decides alone from now on, in windows that start with what it sent through Redis
        // (windows left from an earlier outage are stale).
        let degraded_since = self.shared.as_ref().and_then(|r| r.degraded_since());
        let seed = degraded_since.is_some()
            && self.ever_granted.load(std::sync::atomic::Ordering::Relaxed);
        if degraded_since.is_some() && state.seeded_for != degraded_since {
            state.buckets.clear();
            state.seeded_for = degraded_since;
        }
        let mut at = now;
        let mut binding: Option<&Need> = None;
        let mut hold_back: Option<Instant> = None;
        for n in &needs {
            if n.rate == 0 {
                return Err(Rejection {
                    message: format!(
                        "rate limit: Redis cannot be reached, and Redis granted this replica no share of this limit \
                         ({}) in the seconds before; its share grows to an equal share of the fleet after \
                         limits.redis.grace_ms",
                        describe(n, class)
                    ),
                    retry_after: Duration::from_secs(1),
                });
            }
            if !state.buckets.contains_key(&n.key) && state.buckets.len() >= s.max_keys {
                return Err(Rejection {
                    message: format!(
                        "the gateway tracks {} limiter keys already; try again shortly",
                        s.max_keys
                    ),
                    retry_after: Duration::from_secs(1),
                });
            }
            let w = state.buckets.entry(n.key.clone()).or_insert_with(|| {
                let mut w = Window::new(n.rate, n.period);
                if seed {
                    for (sent, cost) in self.granted_since(&n.key, now - n.period, now) {
                        w.record_sent(sent, cost);
                    }
                }
                w
            });
            // A reload (or the fall-back's moving share) may have changed the rate or period since it was made.
            w.set_limit(n.rate, n.period);
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
                    retry_after: n.period,
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
        let (class, needs) = self.needs_at(call, false);
        if needs.is_empty() {
            return None;
        }
        let period = Duration::from_secs(1) + self.settings().window_margin;
        let buckets = needs
            .iter()
            .map(|n| shared::TakeBucket {
                key: shared.key(
                    &n.key.index,
                    class.name(),
                    n.key.unit.key_name(),
                    (n.scope == Scope::Namespace).then_some(n.key.namespace.as_str()),
                ),
                limit: n.rate,
                cost: n.cost,
            })
            .collect();
        Some(SharedCall {
            class,
            needs,
            buckets,
            period,
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

/// A call's limits in Redis: its buckets (each a sent set and a state hash) and its needs (for messages).
pub(super) struct SharedCall {
    pub(super) class: OpClass,
    pub(super) needs: Vec<Need>,
    pub(super) buckets: Vec<shared::TakeBucket>,
    pub(super) period: Duration,
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
