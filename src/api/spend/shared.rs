//! Spend shared by every replica through Redis (`limits.mode = "redis"`).
//!
//! A replica charges each call here first (*pending*), and every `limits.redis.spend_sync_ms` adds what it charged to
//! Redis, one script per caller and day ([`SYNC`]), which answers with what every replica has spent; budgets are
//! checked against that answer plus what this replica charged since. Keys: `<key_prefix>:{spend:<caller>}:
//! day:<YYYY-MM-DD>` and `…:month:<YYYY-MM>`, hashes of `r|<index>|<operation>` (read units) and `w|…` (write units)
//! fields, expiring one day after their period ends; the `{spend:<caller>}` hash tag keeps a caller's keys on one
//! Redis Cluster slot.
//!
//! So spend survives restarts: a replica reads a caller's spend from Redis before that caller's first budgeted call.
//! A replica that cannot reach Redis keeps counting locally (what it charges stays pending), checks budgets against
//! the last shared totals it read plus its own count, and adds its count to Redis when Redis answers again; while
//! Redis is down the replicas do not see each other's new spend, so a fleet may overrun a budget by what the other
//! replicas spent meanwhile. A replica that dies loses what it charged since its last sync (at most
//! `spend_sync_ms` of its calls); a drain syncs one last time.

use super::{Period, Row, Units};
use crate::stack::limit::shared::RedisLimits;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// KEYS[1]: a caller's day hash; KEYS[2]: its month hash. ARGV[1], ARGV[2]: when each expires (Unix seconds); then
/// field and units pairs to add to both. Returns both hashes, as flat field, value arrays.
pub const SYNC: &str = r"
for i = 3, #ARGV, 2 do
  local n = tonumber(ARGV[i + 1])
  redis.call('HINCRBY', KEYS[1], ARGV[i], n)
  redis.call('HINCRBY', KEYS[2], ARGV[i], n)
end
if #ARGV > 2 then
  redis.call('EXPIREAT', KEYS[1], ARGV[1])
  redis.call('EXPIREAT', KEYS[2], ARGV[2])
end
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}
";

/// Units charged by field (`r|<index>|<operation>`, `w|…`), per caller and day.
type Deltas = HashMap<(&'static str, Period), HashMap<String, u64>>;

/// What Redis last said a caller spent, over every replica.
#[derive(Clone, Copy)]
struct Seen {
    period: Period,
    today: Units,
    month: Units,
}

#[derive(Default)]
struct State {
    /// Charged here, not yet in Redis.
    pending: Deltas,
    /// Being added to Redis now (counted until Redis's answer, which includes them, is seen).
    syncing: Deltas,
    seen: HashMap<&'static str, Seen>,
}

/// The Redis side of the ledger.
pub struct SharedSpend {
    redis: Arc<RedisLimits>,
    state: Mutex<State>,
    script: redis::Script,
    /// One sync at a time (the periodic one, a report's, a drain's).
    one_sync: tokio::sync::Mutex<()>,
}

/// Both hashes of one caller's day: (day, month), flat field, value arrays.
type Hashes = (Vec<String>, Vec<String>);

fn field(read: bool, index: &str, operation: &str) -> String {
    format!("{}|{index}|{operation}", if read { 'r' } else { 'w' })
}

/// Per (index, operation): the units in one hash.
fn parse(flat: &[String]) -> HashMap<(String, String), Units> {
    let mut out: HashMap<(String, String), Units> = HashMap::new();
    for pair in flat.chunks_exact(2) {
        let mut parts = pair[0].splitn(3, '|');
        let (Some(kind), Some(index), Some(operation)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let n: u64 = pair[1].parse().unwrap_or(0);
        let u = out
            .entry((index.to_string(), operation.to_string()))
            .or_default();
        match kind {
            "r" => u.read += n,
            "w" => u.write += n,
            _ => {}
        }
    }
    out
}

fn total(hash: &HashMap<(String, String), Units>) -> Units {
    hash.values().fold(Units::default(), |a, u| Units {
        read: a.read + u.read,
        write: a.write + u.write,
    })
}

/// What `deltas` add to a caller's today and this month.
fn unsynced(deltas: &Deltas, caller: &str, now: Period) -> (Units, Units) {
    let mut out = (Units::default(), Units::default());
    for ((c, period), fields) in deltas {
        if *c != caller || period.month != now.month {
            continue;
        }
        for (f, n) in fields {
            let (today, month) = (&mut out.0, &mut out.1);
            let read = f.starts_with('r');
            let add = |u: &mut Units| {
                if read { u.read += n } else { u.write += n }
            };
            add(month);
            if period.day == now.day {
                add(today);
            }
        }
    }
    out
}

fn merge(into: &mut Deltas, from: Deltas) {
    for (group, fields) in from {
        let g = into.entry(group).or_default();
        for (f, n) in fields {
            *g.entry(f).or_default() += n;
        }
    }
}

impl SharedSpend {
    pub fn new(redis: Arc<RedisLimits>) -> Self {
        SharedSpend {
            redis,
            state: Mutex::default(),
            script: redis::Script::new(SYNC),
            one_sync: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn charge(
        &self,
        caller: &'static str,
        index: &str,
        operation: &str,
        units: Units,
        now: Period,
    ) {
        let mut state = self.lock();
        let fields = state.pending.entry((caller, now)).or_default();
        for (read, n) in [(true, units.read), (false, units.write)] {
            if n > 0 {
                *fields.entry(field(read, index, operation)).or_default() += n;
            }
        }
    }

    /// What every replica spent (as last read) plus what this one charged since; None when nothing was read for the
    /// caller this month yet.
    fn spent(&self, caller: &str, now: Period) -> Option<(Units, Units)> {
        let state = self.lock();
        let seen = state
            .seen
            .get(caller)
            .filter(|s| s.period.month == now.month)?;
        let mut today = if seen.period.day == now.day {
            seen.today
        } else {
            Units::default()
        };
        let mut month = seen.month;
        for deltas in [&state.pending, &state.syncing] {
            let (t, m) = unsynced(deltas, caller, now);
            today = today.plus(t);
            month = month.plus(m);
        }
        Some((today, month))
    }

    /// [`SharedSpend::spent`], reading the caller's spend from Redis first if it was never read this month. Redis
    /// unreachable: what this replica charged since it started.
    pub async fn spent_by(&self, caller: &'static str, now: Period) -> (Units, Units) {
        if let Some(s) = self.spent(caller, now) {
            return s;
        }
        if !self.redis.skip_while_degraded() {
            self.run(caller, now, &HashMap::new()).await;
        }
        self.spent(caller, now).unwrap_or_else(|| {
            let state = self.lock();
            let (t, m) = unsynced(&state.pending, caller, now);
            let (t2, m2) = unsynced(&state.syncing, caller, now);
            (t.plus(t2), m.plus(m2))
        })
    }

    /// Adds `deltas` to the caller's hashes of `period` and reads them back (remembered when `period` is today).
    /// None when Redis failed.
    async fn run(
        &self,
        caller: &'static str,
        period: Period,
        deltas: &HashMap<String, u64>,
    ) -> Option<(
        HashMap<(String, String), Units>,
        HashMap<(String, String), Units>,
    )> {
        let day_key = self
            .redis
            .spend_key(caller, &format!("day:{}", period.day_name()));
        let month_key = self
            .redis
            .spend_key(caller, &format!("month:{}", period.month_name()));
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(&day_key)
            .key(&month_key)
            .arg((period.day + 2) * 86_400)
            .arg(period.next_month_start() + 86_400);
        for (f, n) in deltas {
            invocation.arg(f).arg(*n);
        }
        let (day, month): Hashes = self.redis.run("spend sync", &invocation, false).await?;
        let (day, month) = (parse(&day), parse(&month));
        if period == Period::now() {
            let seen = Seen {
                period,
                today: total(&day),
                month: total(&month),
            };
            // The answer includes this sync's deltas: they stop counting as unsynced with the same lock. (A read
            // alone leaves a sync's deltas counted: if Redis already has them they count twice for a moment, never
            // less than once.)
            let mut state = self.lock();
            if !deltas.is_empty() {
                state.syncing.remove(&(caller, period));
            }
            state.seen.insert(caller, seen);
        }
        Some((day, month))
    }

    /// Adds what this replica charged to Redis and reads back each caller's spend (and `also`'s: the callers whose
    /// budgets are checked). What Redis could not take stays pending for the next sync. True when all of it went.
    pub async fn sync(&self, also: &[&'static str]) -> bool {
        let _one = self.one_sync.lock().await;
        let batch = {
            let mut state = self.lock();
            let batch = std::mem::take(&mut state.pending);
            merge(&mut state.syncing, batch.clone());
            batch
        };
        let now = Period::now();
        let mut read: Vec<&'static str> = Vec::new();
        let mut all = true;
        for ((caller, period), deltas) in batch {
            let done = !self.redis.skip_while_degraded()
                && self.run(caller, period, &deltas).await.is_some();
            let mut state = self.lock();
            if done {
                // Already taken out by `run` when the period is today.
                state.syncing.remove(&(caller, period));
                read.push(caller);
            } else {
                all = false;
                state.syncing.remove(&(caller, period));
                merge(
                    &mut state.pending,
                    HashMap::from([((caller, period), deltas)]),
                );
            }
        }
        for caller in also {
            if !read.contains(caller) && !self.redis.skip_while_degraded() {
                self.run(caller, now, &HashMap::new()).await;
            }
        }
        all
    }

    /// Every caller's spend today and this month, from Redis (after adding this replica's); None when Redis cannot
    /// be reached.
    pub async fn rows(&self, callers: &[&'static str], now: Period) -> Option<Vec<Row>> {
        if !self.sync(&[]).await {
            return None;
        }
        let mut rows = Vec::new();
        for caller in callers {
            let (day, month) = self.run(caller, now, &HashMap::new()).await?;
            for ((index, operation), this_month) in month {
                let today = day
                    .get(&(index.clone(), operation.clone()))
                    .copied()
                    .unwrap_or_default();
                rows.push(Row {
                    caller: caller.to_string(),
                    index,
                    operation,
                    today,
                    this_month,
                });
            }
        }
        Some(rows)
    }
}
