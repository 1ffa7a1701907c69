//! Limits shared by every replica through Redis (`limits.mode = "redis"`).
//!
//! Each call's turn is one atomic Lua script ([`TAKE`]) on Redis's own clock (`TIME`). Per bucket, a sorted set of
//! the turns given (`…:sent`), each counted from its start until one window (`1 s + window_margin_ms`) after its
//! answer, as the local limiter counts ([`super::window`]): after the instant its replica promised it answered by
//! ([`RedisLimits::promise`]: it reports a promise it could not keep, [`NOTE`], and the request then counts until its
//! deadline), or after its deadline while it has no promise, until the answer is stamped ([`CLOSE`], or riding on
//! the replica's next turn for the same index within `close_delay_ms`; an answer within its promise is stamped only
//! when it can ride). The script gives the call
//! the earliest instant from which every bucket has room in every window, turns given for later included (a
//! request not yet stamped is expected to end `expected_upstream_ms` after its start), no more than a tenth of a
//! limit in any tenth of the window (turns spread over it), and registers it there, all buckets or none; or refuses
//! it, with the wait as retry advice, when that is later than the call can wait. The schedule is a plan; Pinecone
//! counts arrivals, and requests leave late or stay in flight longer than expected. So each request is checked at
//! the instant it leaves against what every bucket holds then, each request in flight counted until its deadline:
//! inside [`TAKE`] when that is already known (the turn is now, or the room it was given does not depend on answers
//! not yet stamped: later turns may not start before it and overfill it), else by [`GUARD`] (a second round trip)
//! when the turn comes; a request that would overfill a window waits, or is refused when its deadline comes first.
//! A 429 from Pinecone
//! holds the buckets back (`…:state`, `blocked`) for every replica.
//!
//! Priorities ([`TurnKind`]): batch calls fill each limit only up to `batch_headroom_percent` short of it (in every
//! tenth of the window too); default and interactive calls take the earliest room. Overload: every answer carries
//! the calls asked of each bucket and those refused (decaying over a second, `…:state`); while the fleet asks for
//! more than `overload_ask_percent` of what Redis can serve, a replica refuses that excess of its default and batch
//! calls at home, at random, without a round trip, and reports them with its next turn.
//!
//! Keys: `<key_prefix>:{<index>}:<class>:<unit>:index` or `…:ns:<namespace>`, each with `…:sent` and `…:state`. The
//! `{index}` hash tag puts every key of one call on one Redis Cluster slot, as a script's keys must be. With
//! `limits.redis.cluster = true`, `url` lists the cluster's seed nodes (comma-separated) and the gateway follows the
//! cluster's slots (the `redis` crate's cluster client). Callers' quotas are GCRA buckets ([`SCRIPT`]).
//!
//! Every replica renews a heartbeat in a sorted set (`<key_prefix>:{replicas}`, [`HEARTBEAT`]) every `heartbeat_ms`,
//! or slower in a large fleet (at most [`FLEET_HEARTBEATS_PER_SECOND`] for the fleet); those heard from within three
//! intervals are the live fleet, whose size every replica knows. [`RedisLimits::maintain`] keeps the heartbeat and
//! sends the stamps that found nothing to ride on.
//!
//! States: *connected*, or *degraded* when Redis cannot be reached or answers later than `timeout_ms`: then calls
//! use the local limiter (never no limit) at this replica's own share of each limit (`limiter.rs`, `own_share`: what
//! Redis granted it in the last window, for `grace_ms`, then moving to an equal share of the live fleet over
//! `fallback_decay_ms`), in windows that start with what it sent through Redis (counted from their answers); the
//! `pinecone_gateway_rate_limit_degraded` gauge is 1 and one warning is logged. A turn given for later whose guard
//! cannot reach Redis is void. A replica Redis never granted a turn gives nothing for `grace_ms` (as one granted
//! nothing lately), then takes the static share (limits divided by `replicas`). One call per
//! `reconnect_interval_ms` tries Redis again, and the first answer returns the gateway to shared limits (logged).
//! Differences from the local limiter: a call that gives up while waiting frees its turn when its stamp reaches
//! Redis, there is no per-key queue length and no namespace fairness, and on the way back from degraded mode the
//! requests this replica sent under its own share in the last window are not in Redis's windows (for one window, at
//! most the limit plus that share can be sent).

use crate::telemetry::metrics as m;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Where Redis is and how long to wait for it.
#[derive(Clone)]
pub struct RedisSettings {
    /// `redis://` or `rediss://` (TLS), with the password if any; with `cluster`, several seed nodes separated by
    /// commas. A secret: never logged.
    pub url: String,
    /// A Redis Cluster: follow its slots.
    pub cluster: bool,
    /// The longest a decision may take before the gateway falls back to the static share.
    pub timeout: Duration,
    /// How often a degraded gateway tries Redis again.
    pub reconnect_interval: Duration,
    /// Prefixes every key, so that several deployments can share one Redis.
    pub key_prefix: String,
    /// How often each replica adds the units it charged to the shared spend and reads the others' (`api::spend`).
    pub spend_sync: Duration,
    /// How often each replica renews its heartbeat (the live fleet: heartbeats younger than three of these).
    pub heartbeat: Duration,
    /// How long after Redis fails a replica keeps the share Redis granted it.
    pub grace: Duration,
    /// How long the share then takes to become an equal share of the live fleet.
    pub fallback_decay: Duration,
    /// How long an answered request's stamp may wait to ride on a later round trip before it is sent alone.
    pub close_delay: Duration,
    /// Past this share of a limit (percent) asked of Redis by the fleet, each replica refuses the excess of its
    /// default and batch calls at home; 0: never.
    pub overload_ask_percent: u64,
    /// The share of each limit (percent) batch calls leave to the others across the fleet.
    pub batch_headroom_percent: u64,
    /// While Redis refuses calls of a bucket (sustained overload), the furthest ahead a default or batch call's turn
    /// is given; zero: as far as the call can wait.
    pub overload_queue: Duration,
    /// The longest a request is promised to be answered in ([`RedisLimits::promise`]); zero: no promises, every
    /// answer stamped.
    pub answer_promise_max: Duration,
}

impl RedisSettings {
    /// A single Redis at `url` with every other setting at its default (as `[limits.redis]` documents them), its
    /// keys under `key_prefix`.
    pub fn new(url: &str, key_prefix: &str) -> RedisSettings {
        RedisSettings {
            url: url.to_string(),
            cluster: false,
            timeout: Duration::from_millis(50),
            reconnect_interval: Duration::from_secs(1),
            key_prefix: key_prefix.to_string(),
            spend_sync: Duration::from_secs(1),
            heartbeat: Duration::from_secs(10),
            grace: Duration::from_secs(5),
            fallback_decay: Duration::from_secs(30),
            close_delay: Duration::from_millis(50),
            overload_ask_percent: 125,
            batch_headroom_percent: 10,
            overload_queue: Duration::from_millis(200),
            answer_promise_max: Duration::from_secs(1),
        }
    }
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &"<secret>")
            .field("cluster", &self.cluster)
            .field("timeout", &self.timeout)
            .field("reconnect_interval", &self.reconnect_interval)
            .field("key_prefix", &self.key_prefix)
            .field("spend_sync", &self.spend_sync)
            .field("heartbeat", &self.heartbeat)
            .field("grace", &self.grace)
            .field("fallback_decay", &self.fallback_decay)
            .field("close_delay", &self.close_delay)
            .field("overload_ask_percent", &self.overload_ask_percent)
            .field("batch_headroom_percent", &self.batch_headroom_percent)
            .field("overload_queue", &self.overload_queue)
            .field("answer_promise_max", &self.answer_promise_max)
            .finish()
    }
}

/// KEYS: the buckets. ARGV[1]: the longest wait the call accepts (µs); then per bucket its spacing (µs) and cost.
/// Returns {1 if reserved else 0, wait in µs, the 1-based index of the bucket that decided the wait}.
pub const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local max_wait = tonumber(ARGV[1])
local at = now
local binding = 1
for i = 1, #KEYS do
  local spacing = tonumber(ARGV[2 * i])
  local cost = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if tat < now then tat = now end
  local go = tat + (cost - 1) * spacing
  if go > at then
    at = go
    binding = i
  end
end
if at - now > max_wait then
  return {0, at - now, binding}
end
for i = 1, #KEYS do
  local spacing = tonumber(ARGV[2 * i])
  local tat = at + spacing
  redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 2000)
end
return {1, at - now, binding}
"#;

/// KEYS: the buckets' state hashes. ARGV[1]: how long Pinecone asked to wait (µs). No turn starts before then.
const BLOCK: &str = r#"
local t = redis.call('TIME')
local until_ = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[1])
for i = 1, #KEYS do
  local blocked = tonumber(redis.call('HGET', KEYS[i], 'blocked') or '0') or 0
  if blocked < until_ then
    redis.call('HSET', KEYS[i], 'blocked', string.format('%.0f', until_))
    local keep = math.floor(tonumber(ARGV[1]) / 1000) + 10000
    if redis.call('PTTL', KEYS[i]) < keep then redis.call('PEXPIRE', KEYS[i], keep) end
  end
end
return 1
"#;

/// One turn for a call, in one round trip: its place in every bucket's schedule, registered at once.
///
/// KEYS: per bucket its sent set and its state hash. ARGV[1]: the longest wait the call accepts (µs); [2]: how long
/// until its deadline (µs); [3]: the window (µs); [4]: its ticket; [5]: its kind (`b` batch, `d` default, `i`
/// interactive); [6]: how long a request is expected to be in flight (µs); [7]: the overload queue (µs); [8]: the
/// promise (µs; 0: none); [9]: how late a promise may be reported broken (µs); then per bucket its limit, the call's
/// cost, the limit batch calls may fill, and how many calls this replica refused at home since its last report; then
/// the number of answered requests to stamp, and per request the 1-based bucket, its member and how long ago it was
/// answered (µs; negative: never sent, removed).
/// A sent set's members are `<ticket>:<start>:<kind>:<deadline>:<cost>`, each scored by the last instant its request
/// may be in flight (its deadline; the instant it is promised answered by, for a checked turn that leaves at its
/// start; then its stamped answer), and it counts from its start until one window after that score. A promise may
/// be reported broken ([`NOTE`]) until `grace` after it: until then, checks of later instants count the request
/// until its deadline. The schedule counts a request not yet stamped as answered `expected` after its start (it cannot know
/// better); what Pinecone sees is kept within the limit by the check at the instant each request leaves: here when
/// what every bucket will hold then is already known (its kind is then registered in capitals, and no later turn may
/// start before it and overfill it), else by [`GUARD`] when it comes.
/// Returns {1 (checked) or 2 (the guard checks it when it comes), wait µs, the turn's start (µs,
/// Redis's clock), per bucket the calls asked of it, per bucket those it refused as too late (each per 1,000 s,
/// decaying over a second), the deadline registered}; or {0 (too late), wait µs (−1: never), the 1-based binding
/// bucket, asked…, refused…}.
pub const TAKE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local max_wait = tonumber(ARGV[1])
local deadline = now + tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local ticket = ARGV[4]
local kind = ARGV[5]
local expected = tonumber(ARGV[6])
local queue_cap = tonumber(ARGV[7])
local promise = tonumber(ARGV[8])
local grace = tonumber(ARGV[9])
local n = #KEYS / 2
local a = 9
local closes = tonumber(ARGV[a + 4 * n + 1])
for c = 1, closes do
  local at = a + 4 * n + 1 + 3 * (c - 1)
  local key = KEYS[2 * tonumber(ARGV[at + 1]) - 1]
  local ago = tonumber(ARGV[at + 3])
  if ago < 0 then
    redis.call('ZREM', key, ARGV[at + 2])
  else
    redis.call('ZADD', key, 'XX', 'LT', string.format('%.0f', now - ago), ARGV[at + 2])
  end
end
-- A member: <ticket>:<start>:<kind>:<deadline>:<cost>, scored by its deadline until its answer is stamped; its
-- kind in capitals when its turn was checked as it was given (it has no guard).
local function parse(member)
  local start, k, dl, cost = string.match(member, '^[^:]+:(%d+):(%a):(%d+):(%d+)$')
  if not start then return nil end
  local lower = string.lower(k)
  return tonumber(start), lower, tonumber(dl), tonumber(cost), lower ~= k
end
-- The last instant a request may be in flight, for checks of instants to come: its score, or its deadline while a
-- promise it was given may still be reported broken.
local function last(x)
  if x.score < x.deadline and now < x.score + grace then return x.deadline end
  return x.score
end
-- What a bucket holds at `at`: every request whose turn has come by then, counted until one window after its
-- stamped answer (or its promise), or after its deadline while it has none.
local function held_at(e, at)
  local held = 0
  for j = 1, #e do
    local x = e[j]
    if x.start <= at and at < last(x) + period + 1 then held = held + x.cost end
  end
  return held
end
-- A turn checked as it was given has no guard, so no turn may start at or before it and leave it holding more than
-- the limit (the new one counted until its deadline). Returns the instant from which the new turn leaves every such
-- turn within the limit.
local function after_checked(e, limit, cost)
  local times, delta, checked = {}, {}, {}
  local any = false
  local function add(time, d)
    if delta[time] == nil then
      delta[time] = 0
      times[#times + 1] = time
    end
    delta[time] = delta[time] + d
  end
  for j = 1, #e do
    local x = e[j]
    add(x.start, x.cost)
    add(last(x) + period + 1, -x.cost)
    if x.checked and x.start > now and x.start < deadline + period + 1 then
      checked[x.start] = true
      any = true
    end
  end
  if not any then return now end
  table.sort(times)
  local held, bound = 0, now
  for k = 1, #times do
    held = held + delta[times[k]]
    if checked[times[k]] and held + cost > limit then bound = times[k] + 1 end
  end
  return bound
end
-- The earliest instant from `s` from which a bucket has room for `cost` in every window (turns given for later
-- included), each entry counted from its start until one window after its end; `optimistic`: an entry neither
-- stamped nor promised ends `expected` (or the promise, if longer) after its start (or now), else at its deadline.
local function earliest(e, s, limit, cost, cap, optimistic)
  local times, all, batch = {}, {}, {}
  local function add(time, d, b)
    if all[time] == nil then
      all[time] = 0
      batch[time] = 0
      times[#times + 1] = time
    end
    all[time] = all[time] + d
    batch[time] = batch[time] + b
  end
  for j = 1, #e do
    local x = e[j]
    local b = 0
    if x.kind == 'b' then b = x.cost end
    local start = x.start
    if start < s then start = s end
    local ends = x.score
    if optimistic and x.score >= x.deadline then
      -- A turn given for later is promised from its guard: as long as this call's promise, at least.
      ends = math.max(x.start + math.max(expected, promise), now)
      if ends > x.score then ends = x.score end
    end
    if ends + period + 1 > start then
      add(start, x.cost, b)
      add(ends + period + 1, -x.cost, -b)
    end
  end
  table.sort(times)
  local totals, batches = {}, {}
  local total, bt = 0, 0
  for k = 1, #times do
    total = total + all[times[k]]
    bt = bt + batch[times[k]]
    totals[k] = total
    batches[k] = bt
  end
  if cost > limit or (kind == 'b' and cost > cap) then return -1 end
  if #times == 0 then return s end
  local at = -1
  local peak, bpeak = 0, 0
  for k = #times, 1, -1 do
    if totals[k] > peak then peak = totals[k] end
    if batches[k] > bpeak then bpeak = batches[k] end
    if peak + cost > limit or (kind == 'b' and bpeak + cost > cap) then break end
    at = times[k]
  end
  if at == times[1] or (at ~= -1 and at < s) then at = s end
  return at
end
local rates, grants, last_refused = {}, {}, {}
local opt, entries = {}, {}
-- Per bucket, what starts in each tenth of a window (its slot): a turn also needs room in its slot.
local slot_len, slot_room, slot_batch, loads, bloads = {}, {}, {}, {}, {}
for i = 1, n do
  local sent = KEYS[2 * i - 1]
  local q = KEYS[2 * i]
  local limit = tonumber(ARGV[a + 4 * i - 3])
  local cost = tonumber(ARGV[a + 4 * i - 2])
  local cap = tonumber(ARGV[a + 4 * i - 1])
  local thinned = tonumber(ARGV[a + 4 * i])
  -- The calls asked of this bucket and those refused, each a rate decaying over a second.
  local st = redis.call('HMGET', q, 'blocked', 'dr', 'rr', 'dt', 'lr')
  local blocked = tonumber(st[1] or '0') or 0
  local dr = tonumber(st[2] or '0') or 0
  local rr = tonumber(st[3] or '0') or 0
  local dt = tonumber(st[4] or '0') or now
  last_refused[i] = tonumber(st[5] or '0') or 0
  local decay = math.exp(-(now - dt) / 1000000)
  dr = dr * decay + thinned + 1
  rr = rr * decay + thinned
  redis.call('HSET', q, 'dr', string.format('%.3f', dr), 'rr', string.format('%.3f', rr), 'dt', string.format('%.0f', now))
  rates[i] = math.floor(dr * 1000)
  grants[i] = math.floor(rr * 1000)
  redis.call('ZREMRANGEBYSCORE', sent, '-inf', string.format('(%.0f', now - period))
  local s = now
  if blocked > s then s = blocked end
  local raw = redis.call('ZRANGEBYSCORE', sent, string.format('%.0f', s - period), '+inf', 'WITHSCORES')
  local e = {}
  local load, bload = {}, {}
  for j = 1, #raw, 2 do
    local start, k, dl, c, checked = parse(raw[j])
    if start then
      e[#e + 1] = {start = start, kind = k, deadline = dl, cost = c, score = tonumber(raw[j + 1]), checked = checked}
      local slot = math.floor(start / (period / 10))
      load[slot] = (load[slot] or 0) + c
      if k == 'b' then bload[slot] = (bload[slot] or 0) + c end
    end
  end
  opt[i] = earliest(e, s, limit, cost, cap, true)
  if opt[i] == -1 then
    return {0, -1, i}
  end
  local bound = after_checked(e, limit, cost)
  if bound > opt[i] then opt[i] = bound end
  entries[i] = e
  slot_len[i] = period / 10
  slot_room[i] = math.max(math.ceil(limit / 10), cost)
  slot_batch[i] = math.max(math.floor(slot_room[i] * cap / limit), cost)
  loads[i] = load
  bloads[i] = bload
end
-- The earliest instant from the windows' that every bucket's slot has room for (the windows only have more room
-- later): no more than a tenth of a limit starts in any tenth of its window, so that turns spread over it, as
-- Pinecone sees them arrive. Within its slot, a default or batch turn takes the next even place; an interactive one
-- the slot's beginning, or now.
local function place(ats)
  local go, binding = now, 1
  for i = 1, n do
    if ats[i] == -1 then return -1, i end
    if ats[i] > go then
      go = ats[i]
      binding = i
    end
  end
  for round = 1, 100 do
    local moved = false
    for i = 1, n do
      local cost = tonumber(ARGV[a + 4 * i - 2])
      local slot = math.floor(go / slot_len[i])
      while (loads[i][slot] or 0) + cost > slot_room[i]
        or (kind == 'b' and (bloads[i][slot] or 0) + cost > slot_batch[i]) do
        slot = slot + 1
      end
      local at = slot * slot_len[i]
      if kind ~= 'i' then
        at = at + (loads[i][slot] or 0) * slot_len[i] / slot_room[i]
      end
      at = math.ceil(at)
      if at > go then
        go = at
        binding = i
        moved = true
      end
    end
    if not moved then break end
  end
  return go, binding
end
local function refused(code, wait, binding)
  if code == 0 then
    for i = 1, n do
      redis.call('HINCRBYFLOAT', KEYS[2 * i], 'rr', 1)
      redis.call('HSET', KEYS[2 * i], 'lr', string.format('%.0f', now))
      grants[i] = grants[i] + 1000
    end
  end
  local out = {code, wait, binding}
  for i = 1, n do
    out[3 + i] = rates[i]
    out[3 + n + i] = grants[i]
  end
  return out
end
local go, binding = place(opt)
if go - now > max_wait then
  return refused(0, go - now, binding)
end
-- While a bucket refuses calls (more are asked of it than it serves: a refusal within the last window), a queue longer than `queue_cap` would only add
-- its length to every call served, and hold turns too far ahead to check as they are given: default and batch calls
-- past it are refused now rather than at their deadline.
if kind ~= 'i' and queue_cap > 0 and go - now > queue_cap then
  for i = 1, n do
    if now - last_refused[i] <= period then return refused(0, go - now, i) end
  end
end
-- The turn is checked here as the guard would check it when it comes: what every bucket will hold at its start, each
-- request in flight counted until its deadline, leaves room for it. Turns placed later cannot change that (they
-- start after it, or leave it within the limit: `after_checked`), and answers only shorten what is held; so a turn
-- that passes needs no guard. One that does not (the room it was given comes from answers not yet stamped) is
-- checked by the guard when it comes.
local code = 1
for i = 1, n do
  local limit = tonumber(ARGV[a + 4 * i - 3])
  local cost = tonumber(ARGV[a + 4 * i - 2])
  if held_at(entries[i], go) + cost > limit then code = 2 end
end
local mark = kind
if code == 1 then mark = string.upper(kind) end
-- A checked turn leaves at its start: it is promised answered `promise` after it. One given for later has its
-- promise from its guard (it may wait there past any promise given now).
local score = deadline
if code == 1 and promise > 0 and go + promise < deadline then score = go + promise end
for i = 1, n do
  local sent = KEYS[2 * i - 1]
  local q = KEYS[2 * i]
  local cost = ARGV[a + 4 * i - 2]
  local member = ticket .. ':' .. string.format('%.0f', go) .. ':' .. mark .. ':' .. string.format('%.0f', deadline) .. ':' .. cost
  redis.call('ZADD', sent, string.format('%.0f', score), member)
  local ttl = math.floor((deadline + period - now) / 1000) + 1000
  if redis.call('PTTL', sent) < ttl then redis.call('PEXPIRE', sent, ttl) end
  local blocked = tonumber(redis.call('HGET', q, 'blocked') or '0') or 0
  local keep = go - now
  if blocked - now > keep then keep = blocked - now end
  keep = math.floor(keep / 1000) + 10000
  if redis.call('PTTL', q) < keep then redis.call('PEXPIRE', q, keep) end
end
local out = refused(code, go - now, go)
out[4 + 2 * n] = deadline
return out
"#;

/// KEYS: a turn's sent sets; ARGV[1]: the window (µs); [2]: the promise (µs; 0: none), then per key its limit and
/// the turn's member. Whether the turn, now come, may leave: what each bucket holds at this instant (every request
/// whose turn has come, this one included, counted until one window after its stamped answer or its promise, or its
/// deadline while it has neither) is within its limit; if so, it is promised answered `promise` from now. Returns {1}
/// or {0, the wait until enough of them slide out (µs)}.
pub const GUARD: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
local promise = tonumber(ARGV[2])
local wait = 0
for i = 1, #KEYS do
  local limit = tonumber(ARGV[1 + 2 * i])
  local raw = redis.call('ZRANGEBYSCORE', KEYS[i], string.format('%.0f', now - period), '+inf', 'WITHSCORES')
  local held, list = 0, {}
  for j = 1, #raw, 2 do
    local start, c = string.match(raw[j], '^[^:]+:(%d+):%a:%d+:(%d+)$')
    if start and tonumber(start) <= now then
      held = held + tonumber(c)
      list[#list + 1] = {tonumber(raw[j + 1]), tonumber(c)}
    end
  end
  if held > limit then
    local excess = held - limit
    local w = period
    for j = 1, #list do
      excess = excess - list[j][2]
      if excess <= 0 then
        w = list[j][1] + period + 1 - now
        break
      end
    end
    if w > wait then wait = w end
  end
end
if wait > 0 then return {0, math.floor(wait)} end
if promise > 0 then
  for i = 1, #KEYS do
    local member = ARGV[2 + 2 * i]
    local dl = tonumber(string.match(member, '^[^:]+:%d+:%a:(%d+):%d+$') or '0') or 0
    if now + promise < dl then
      redis.call('ZADD', KEYS[i], 'XX', 'LT', string.format('%.0f', now + promise), member)
    end
  end
end
return {1}
"#;

/// KEYS: a turn's sent sets; ARGV[1]: how late a broken promise may be reported (µs), then per key the turn's member.
/// Its request was not answered by its promise: it counts until its deadline from now on (until its answer is
/// stamped). Returns 1, or 0 when the report came too late (it counts from now on, but another replica may already
/// have counted the request as answered) or the turn is gone.
const NOTE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local grace = tonumber(ARGV[1])
local kept = 1
for i = 1, #KEYS do
  local member = ARGV[1 + i]
  local dl = tonumber(string.match(member, '^[^:]+:%d+:%a:(%d+):%d+$') or '0') or 0
  local score = tonumber(redis.call('ZSCORE', KEYS[i], member) or '-1') or -1
  if score < 0 then
    kept = 0
  elseif score < dl then
    -- Late, it still counts from now on; turns checked in between may have taken it as answered.
    if now > score + grace then kept = 0 end
    redis.call('ZADD', KEYS[i], 'XX', string.format('%.0f', dl), member)
  end
end
return kept
"#;

/// KEYS: sent sets. ARGV[1]: the number of requests to stamp, then per request the 1-based key, its member and how
/// long ago it was answered (µs; negative: it was never sent, and is removed).
const CLOSE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for c = 1, tonumber(ARGV[1]) do
  local key = KEYS[tonumber(ARGV[3 * c - 1])]
  local ago = tonumber(ARGV[3 * c + 1])
  if ago < 0 then
    redis.call('ZREM', key, ARGV[3 * c])
  else
    redis.call('ZADD', key, 'XX', 'LT', string.format('%.0f', now - ago), ARGV[3 * c])
  end
end
return 1
"#;

/// KEYS[1]: the fleet's heartbeats (a sorted set of replica ids by the instant each was last heard from). ARGV[1]:
/// this replica's id; ARGV[2]: the heartbeat interval (µs); ARGV[3]: the most heartbeats the fleet sends a second.
/// A heartbeat lasts three intervals, each the longer of `heartbeat_ms` and the fleet's size over ARGV[3] (every
/// replica renews at that pace too). Returns how many replicas are live.
const HEARTBEAT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local every = tonumber(ARGV[2])
local paced = redis.call('ZCARD', KEYS[1]) * 1000000 / tonumber(ARGV[3])
if paced > every then every = paced end
local lasts = 3 * every
redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - lasts))
redis.call('PEXPIRE', KEYS[1], math.floor(lasts / 1000) + 1000)
return redis.call('ZCARD', KEYS[1])
"#;

/// One bucket of a call, as Redis sees it.
pub struct Bucket {
    pub key: String,
    pub spacing: Duration,
    pub cost: u64,
}

/// How a call takes its turn across the fleet (its caller's priority).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TurnKind {
    /// At the earliest instant from which batch calls hold no more than the limit less `batch_headroom_percent`.
    Batch,
    /// At the earliest instant from which every window has room (ahead of turns given for later, when it can).
    Default,
    /// As default calls, and never refused at home.
    Interactive,
}

impl TurnKind {
    fn code(self) -> &'static str {
        match self {
            TurnKind::Batch => "b",
            TurnKind::Default => "d",
            TurnKind::Interactive => "i",
        }
    }
}

/// One bucket of a call for [`RedisLimits::take`]: its key ([`RedisLimits::key`]), its limit per window and the
/// call's cost in it.
pub struct TakeBucket {
    pub key: String,
    pub limit: u64,
    pub cost: u64,
}

/// A call asking for its turn.
pub struct Take<'a> {
    pub buckets: &'a [TakeBucket],
    pub kind: TurnKind,
    /// The longest the call can wait for its turn.
    pub max_wait: Duration,
    /// Its deadline: until then it may be in flight.
    pub deadline: Instant,
    /// The window (one second and the margin).
    pub period: Duration,
    /// How long a request is expected to be in flight (`expected_upstream_ms`).
    pub expected: Duration,
    /// Its operation class ([`super::rates::OpClass::name`]): answer times, and so promises, are kept per class.
    pub class: &'static str,
}

/// A turn Redis gave: the call is in every bucket's window from its start until its answer and one window more.
pub struct Turn {
    /// Each sent set and the request's member in it.
    members: Vec<(String, String)>,
    deadline: Instant,
    /// Checked as it was given (what every bucket will hold at its start was known then); else it passes the guard
    /// when it comes ([`RedisLimits::guard`]).
    pub confirmed: bool,
    /// Each bucket's limit, for the guard.
    limits: Vec<u64>,
    /// How long after it leaves its request is promised answered (zero: no promise).
    promise: Duration,
    /// The instant (this replica's clock, never later than Redis's) by which the request is promised answered;
    /// None: no promise, it counts until its deadline until stamped.
    promised: Option<Instant>,
    /// When the request left, as far as this replica knows (its answer time is measured from then).
    left: Instant,
    /// Its operation class, whose answer times its own joins.
    class: &'static str,
    /// Reported to Redis as not answered by its promise.
    noted: bool,
}

impl Turn {
    /// The instant by which the request is promised answered, if it is and that has not been reported broken: when
    /// it passes unanswered, [`RedisLimits::overdue`] reports it.
    pub fn promised(&self) -> Option<Instant> {
        self.promised.filter(|_| !self.noted)
    }
}

/// What Redis made of a promise reported broken ([`RedisLimits::overdue`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Overdue {
    /// The request counts until its deadline.
    Noted,
    /// Past the promise by more than `timeout_ms`: the request counts until its deadline from now on, but another
    /// replica may have counted it as answered before.
    TooLate,
    /// Redis failed (degraded now).
    Failed,
}

/// What [`RedisLimits::take`] decided.
pub enum TakeVerdict {
    /// Go after this wait.
    Go { wait: Duration, turn: Turn },
    /// Redis has no turn for it within what it can wait (`None`: its cost exceeds the limit); `binding` is the
    /// index of the bucket that decided.
    TooLate {
        wait: Option<Duration>,
        binding: usize,
    },
    /// Refused without asking Redis: the fleet asks for more than `overload_ask_percent` of the limit; try again
    /// after `wait` (the last wait Redis named).
    AtHome { wait: Duration, binding: usize },
}

/// An answered (or abandoned) request whose stamp waits to ride on a later round trip.
struct Pending {
    key: String,
    member: String,
    /// When its answer came back; None: it was never sent.
    answered: Option<Instant>,
    /// Answered within its promise: Redis already counts it no longer than needed but for the promise's slack, so
    /// the stamp only rides on a round trip made anyway, and is dropped after `close_delay_ms`.
    ride_only: bool,
}

/// What this replica knows of the demand on one bucket.
#[derive(Default)]
struct Demand {
    /// The share of its calls this replica refuses at home, and when Redis's figure was read.
    refuse: Option<(f64, Instant)>,
    /// Calls refused at home since the last report to Redis.
    unreported: u64,
    /// The wait Redis last named for this bucket: the retry advice of a call refused at home.
    last_wait: Duration,
}

/// What Redis decided.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Reserved: go after this wait.
    Go(Duration),
    /// Not reserved: the turn would come after this wait; `binding` is the index of the bucket that decided it.
    TooLate { wait: Duration, binding: usize },
}

struct Health {
    degraded: bool,
    /// When it last fell back to the static share.
    degraded_since: Instant,
    /// When a degraded gateway may try Redis again.
    next_attempt: Instant,
}

/// A single Redis, or a cluster. (One per process: the size of the variants does not matter.)
#[allow(clippy::large_enum_variant)]
enum Client {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

/// A connection that reconnects by itself: a single Redis's connection manager, or a cluster connection (which
/// follows the cluster's slots).
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Conn {
    async fn invoke<T: redis::FromRedisValue>(
        &mut self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> redis::RedisResult<T> {
        match self {
            Conn::Single(c) => invocation.invoke_async(c).await,
            Conn::Cluster(c) => invocation.invoke_async(c).await,
        }
    }
}

/// The Redis side of the limiter.
pub struct RedisLimits {
    client: Client,
    settings: RedisSettings,
    conn: tokio::sync::Mutex<Option<Conn>>,
    script: redis::Script,
    take: redis::Script,
    guard: redis::Script,
    close: redis::Script,
    note: redis::Script,
    block: redis::Script,
    remember_lsn: redis::Script,
    read_lsn: redis::Script,
    heartbeat: redis::Script,
    health: Mutex<Health>,
    /// This replica's name in the fleet's heartbeats: random, new at every start.
    replica: String,
    /// The live replicas Redis last counted (0: never counted).
    live: std::sync::atomic::AtomicU64,
    /// Stamps waiting to ride on a later round trip.
    pending: Mutex<Vec<Pending>>,
    /// Per bucket, the fleet's demand as Redis last reported it.
    demand: Mutex<std::collections::HashMap<String, Demand>>,
    /// This replica's last answer times (from a request's leaving to its answer) per operation class, for its
    /// promises.
    answers: Mutex<std::collections::HashMap<&'static str, std::collections::VecDeque<Duration>>>,
}

/// How many answer times a replica keeps for its promises ([`RedisLimits::promise`]).
const PROMISE_SAMPLES: usize = 32;
/// The shortest promise: a busy host may take a few milliseconds to wake a request's task.
const PROMISE_MIN: Duration = Duration::from_millis(10);

/// Keeps the highest LSN in a key and renews its expiry (read your writes across replicas: `api::consistency`).
const REMEMBER_LSN: &str = r"
local kept = tonumber(redis.call('GET', KEYS[1]) or '-1')
local lsn = tonumber(ARGV[1])
if lsn > kept then kept = lsn end
redis.call('SET', KEYS[1], kept, 'PX', ARGV[2])
return kept
";

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

impl RedisLimits {
    /// Checks the URL; connects on first use, so a gateway starts (degraded) while Redis is down.
    pub fn new(settings: RedisSettings) -> Result<RedisLimits, String> {
        let not_a_url =
            |e: redis::RedisError| format!("limits.redis.url is not a Redis URL ({:?})", e.kind());
        let client = if settings.cluster {
            let nodes: Vec<&str> = settings.url.split(',').map(str::trim).collect();
            Client::Cluster(
                redis::cluster::ClusterClient::builder(nodes)
                    .connection_timeout(settings.timeout)
                    .response_timeout(settings.timeout)
                    .retries(1)
                    .build()
                    .map_err(not_a_url)?,
            )
        } else {
            Client::Single(redis::Client::open(settings.url.as_str()).map_err(not_a_url)?)
        };
        Ok(RedisLimits {
            client,
            settings,
            conn: tokio::sync::Mutex::new(None),
            script: redis::Script::new(SCRIPT),
            take: redis::Script::new(TAKE),
            guard: redis::Script::new(GUARD),
            close: redis::Script::new(CLOSE),
            note: redis::Script::new(NOTE),
            block: redis::Script::new(BLOCK),
            remember_lsn: redis::Script::new(REMEMBER_LSN),
            read_lsn: redis::Script::new("return redis.call('GET', KEYS[1])"),
            heartbeat: redis::Script::new(HEARTBEAT),
            replica: format!("{:016x}", rand::random::<u64>()),
            live: std::sync::atomic::AtomicU64::new(0),
            pending: Mutex::default(),
            demand: Mutex::default(),
            answers: Mutex::default(),
            health: Mutex::new(Health {
                degraded: false,
                degraded_since: Instant::now(),
                next_attempt: Instant::now(),
            }),
        })
    }

    /// Since when the static share is in force, while it is.
    pub fn degraded_since(&self) -> Option<Instant> {
        let h = self.lock_health();
        h.degraded.then_some(h.degraded_since)
    }

    /// The key of one bucket; `namespace` is None for index-wide buckets.
    pub fn key(&self, index: &str, class: &str, unit: &str, namespace: Option<&str>) -> String {
        let tag = if index.is_empty() { "_project" } else { index };
        let scope = namespace.map_or_else(|| "index".to_string(), |ns| format!("ns:{ns}"));
        format!(
            "{}:{{{tag}}}:{class}:{unit}:{scope}",
            self.settings.key_prefix
        )
    }

    fn lock_health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether calls use the static share now.
    pub fn is_degraded(&self) -> bool {
        self.lock_health().degraded
    }

    fn degrade(&self, why: &str) {
        metrics::counter!(m::LIMIT_REDIS_ERRORS).increment(1);
        let mut h = self.lock_health();
        h.next_attempt = Instant::now() + self.settings.reconnect_interval;
        if !h.degraded {
            h.degraded = true;
            h.degraded_since = Instant::now();
            metrics::gauge!(m::LIMIT_DEGRADED).set(1.0);
            tracing::warn!(
                reason = why,
                "Redis unavailable: rate limits fall back to this replica's static share"
            );
        }
    }

    fn recovered(&self) {
        // Set on every answer: a gauge set before the metrics recorder was installed would be lost.
        metrics::gauge!(m::LIMIT_DEGRADED).set(0.0);
        let mut h = self.lock_health();
        if h.degraded {
            h.degraded = false;
            tracing::info!("Redis reachable again: rate limits are shared again");
        }
    }

    /// A connection, or None when Redis cannot be reached. Calls that arrive while another connects wait for it
    /// (bounded by the connect timeout): falling back to the static share meanwhile would add its calls to the
    /// shared ones.
    async fn connection(&self) -> Option<Conn> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Some(c.clone());
        }
        let connect = async {
            match &self.client {
                Client::Single(client) => {
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(self.settings.timeout))
                        .set_response_timeout(Some(self.settings.timeout))
                        .set_number_of_retries(1);
                    ConnectionManager::new_with_config(client.clone(), config)
                        .await
                        .map(Conn::Single)
                }
                Client::Cluster(client) => client.get_async_connection().await.map(Conn::Cluster),
            }
        };
        match tokio::time::timeout(self.settings.timeout * 2, connect).await {
            Ok(Ok(c)) => {
                *slot = Some(c.clone());
                Some(c)
            }
            Ok(Err(e)) => {
                drop(slot);
                self.degrade(&format!("connect: {:?}", e.kind()));
                None
            }
            Err(_) => {
                drop(slot);
                self.degrade("connect: timed out");
                None
            }
        }
    }

    /// A GCRA decision (callers' quotas, `api::caller`), or None when the gateway must decide locally (degraded).
    pub async fn decide(&self, buckets: &[Bucket], max_wait: Duration) -> Option<Verdict> {
        if self.skip_while_degraded() {
            return None;
        }
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(micros(max_wait));
        for b in buckets {
            invocation.key(&b.key).arg(micros(b.spacing)).arg(b.cost);
        }
        let (reserved, wait_us, binding) = self
            .run::<(u8, u64, usize)>("decision", &invocation, true)
            .await?;
        let wait = Duration::from_micros(wait_us);
        Some(if reserved == 1 {
            Verdict::Go(wait)
        } else {
            Verdict::TooLate {
                wait,
                binding: binding.saturating_sub(1),
            }
        })
    }

    /// A call's turn in every bucket, in one round trip (stamps of answered requests of the same buckets ride
    /// along), or None when the gateway must decide locally (degraded). While the fleet asks Redis for more than
    /// `overload_ask_percent` of a limit, this replica refuses its part of the excess of its default and batch
    /// calls at home, at random, without a round trip.
    pub async fn take(&self, call: &Take<'_>) -> Option<TakeVerdict> {
        if self.skip_while_degraded() {
            return None;
        }
        let asked = Instant::now();
        if let Some(refused) = self.refuse_at_home(call, asked) {
            metrics::counter!(m::LIMIT_REFUSED_AT_HOME).increment(1);
            return Some(refused);
        }
        let ticket = format!("{:016x}", rand::random::<u64>());
        let promise = self.promise(call.class, call.expected);
        let sent_keys: Vec<String> = call
            .buckets
            .iter()
            .map(|b| format!("{}:sent", b.key))
            .collect();
        let mut invocation = self.take.prepare_invoke();
        invocation
            .arg(micros(call.max_wait))
            .arg(micros(call.deadline.saturating_duration_since(asked)))
            .arg(micros(call.period))
            .arg(&ticket)
            .arg(call.kind.code())
            .arg(micros(call.expected))
            .arg(micros(self.settings.overload_queue))
            .arg(micros(promise))
            .arg(micros(self.settings.timeout));
        let unreported = self.unreported(call.buckets);
        for ((b, sent), thinned) in call.buckets.iter().zip(&sent_keys).zip(&unreported) {
            let headroom = (u128::from(b.limit)
                * u128::from(self.settings.batch_headroom_percent.min(100)))
            .div_ceil(100);
            let cap = b.limit - u64::try_from(headroom).unwrap_or(0);
            invocation
                .key(sent)
                .key(format!("{}:state", b.key))
                .arg(b.limit)
                .arg(b.cost)
                .arg(cap)
                .arg(*thinned);
        }
        let riding = self.pending_for(&sent_keys);
        invocation.arg(riding.len());
        for p in &riding {
            let bucket = sent_keys.iter().position(|k| *k == p.key).unwrap_or(0) + 1;
            invocation
                .arg(bucket)
                .arg(&p.member)
                .arg(ago_micros(p.answered, asked));
        }
        let Some(answer) = self.run::<Vec<i64>>("take", &invocation, true).await else {
            self.requeue(riding);
            return None;
        };
        let n = call.buckets.len();
        // The third figure is the binding bucket of a refusal, the turn's start of a grant.
        let (code, wait_us, third) = match answer.as_slice() {
            [g, w, b, ..] => (*g, *w, *b),
            _ => return None,
        };
        let binding = usize::try_from(third).unwrap_or(1).saturating_sub(1);
        let rate = |at: usize| answer.get(at).copied().unwrap_or(0) as f64 / 1000.0;
        let demands: Vec<(f64, f64)> = (0..n).map(|i| (rate(3 + i), rate(3 + n + i))).collect();
        let wait = u64::try_from(wait_us).ok().map(Duration::from_micros);
        self.learn_demand(
            call.buckets,
            &demands,
            wait.unwrap_or(call.period),
            call.period,
            asked,
        );
        if code != 1 && code != 2 {
            return Some(TakeVerdict::TooLate { wait, binding });
        }
        let registered = answer.get(3 + 2 * n).copied().unwrap_or(0);
        let wait = wait.unwrap_or_default();
        // Redis's clock read the turn's start no earlier than `asked`: this instant is never later than its promise.
        let left = asked + wait;
        let promised = (code == 1 && !promise.is_zero())
            .then_some(left + promise)
            .filter(|at| *at < call.deadline);
        let turn = Turn {
            members: sent_keys
                .into_iter()
                .zip(call.buckets)
                .map(|(key, b)| {
                    // A turn checked as it was given is marked so: later turns must leave it within the limit.
                    let kind = if code == 1 {
                        call.kind.code().to_ascii_uppercase()
                    } else {
                        call.kind.code().to_string()
                    };
                    let member = format!("{ticket}:{third}:{kind}:{registered}:{}", b.cost);
                    (key, member)
                })
                .collect(),
            deadline: call.deadline,
            confirmed: code == 1,
            limits: call.buckets.iter().map(|b| b.limit).collect(),
            promise,
            promised,
            left,
            class: call.class,
            noted: false,
        };
        Some(TakeVerdict::Go { wait, turn })
    }

    /// A call whose part of the fleet's excess demand this replica refuses.
    fn refuse_at_home(&self, call: &Take<'_>, now: Instant) -> Option<TakeVerdict> {
        if call.kind == TurnKind::Interactive || self.settings.overload_ask_percent == 0 {
            return None;
        }
        let mut demand = self.demand.lock().unwrap_or_else(|e| e.into_inner());
        let (binding, share, wait) = call
            .buckets
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let d = demand.get(&b.key)?;
                let (share, at) = d.refuse?;
                (now.saturating_duration_since(at) <= DEMAND_FRESH).then_some((
                    i,
                    share,
                    d.last_wait,
                ))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        if rand::random::<f64>() >= share {
            return None;
        }
        for b in call.buckets {
            demand.entry(b.key.clone()).or_default().unreported += 1;
        }
        Some(TakeVerdict::AtHome { wait, binding })
    }

    /// The calls refused at home on each bucket since the last report, taken for this one.
    fn unreported(&self, buckets: &[TakeBucket]) -> Vec<u64> {
        let mut demand = self.demand.lock().unwrap_or_else(|e| e.into_inner());
        buckets
            .iter()
            .map(|b| {
                demand
                    .get_mut(&b.key)
                    .map_or(0, |d| std::mem::take(&mut d.unreported))
            })
            .collect()
    }

    /// Redis's figures (calls asked of each bucket and refused as too late, per second): the share of its calls this
    /// replica refuses at home from now on, per bucket, so that the fleet asks Redis for `overload_ask_percent` of
    /// the calls the limit can serve (the rest Redis would refuse anyway). Measured against the limit, not against
    /// what Redis served: Redis also refuses a moment's excess of a fleet that asks for less than the limit (the
    /// overload queue is short), and a fleet asking a share of what was served would then settle below the limit.
    /// Never more than the share Redis refuses: a burst it can serve later is not refused at home.
    /// Some calls always ask (at most 95% refused), so the figure stays fresh.
    fn learn_demand(
        &self,
        buckets: &[TakeBucket],
        figures: &[(f64, f64)],
        wait: Duration,
        period: Duration,
        now: Instant,
    ) {
        let ask = self.settings.overload_ask_percent as f64 / 100.0;
        let mut demand = self.demand.lock().unwrap_or_else(|e| e.into_inner());
        if demand.len() >= 10_000 {
            demand.retain(|_, d| {
                d.refuse
                    .is_some_and(|(_, at)| now.saturating_duration_since(at) <= DEMAND_FRESH)
            });
        }
        for (b, (asked, refused)) in buckets.iter().zip(figures) {
            let servable = b.limit as f64 / b.cost.max(1) as f64 / period.as_secs_f64().max(1e-3);
            // Never more than Redis refuses now: a burst Redis queues is not refused at home.
            let share = if ask > 0.0 && *asked > 0.0 {
                (1.0 - ask * servable / asked)
                    .min(refused / asked)
                    .clamp(0.0, 0.95)
            } else {
                0.0
            };
            let d = demand.entry(b.key.clone()).or_default();
            d.refuse = Some((share, now));
            d.last_wait = wait;
        }
    }

    /// The stamps waiting for these sent sets, taken to ride on a round trip to them.
    fn pending_for(&self, keys: &[String]) -> Vec<Pending> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (riding, waiting): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut *pending)
            .into_iter()
            .partition(|p| keys.contains(&p.key));
        *pending = waiting;
        riding
    }

    /// Stamps whose round trip failed wait for the next one.
    fn requeue(&self, stamps: Vec<Pending>) {
        if !stamps.is_empty() {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(stamps);
        }
    }

    /// Runs a script within `timeout_ms`: its answer, or None when Redis failed (degraded now). `timed`: its latency
    /// is a decision's (`pinecone_gateway_rate_limit_redis_decision_seconds`).
    pub(crate) async fn run<T: redis::FromRedisValue>(
        &self,
        what: &str,
        invocation: &redis::ScriptInvocation<'_>,
        timed: bool,
    ) -> Option<T> {
        let mut conn = self.connection().await?;
        let started = Instant::now();
        metrics::counter!(m::LIMIT_REDIS_ROUND_TRIPS, "script" => what.to_string()).increment(1);
        let answer =
            tokio::time::timeout(self.settings.timeout, conn.invoke::<T>(invocation)).await;
        if timed {
            metrics::histogram!(m::LIMIT_REDIS_SECONDS).record(started.elapsed().as_secs_f64());
        }
        match answer {
            Ok(Ok(v)) => {
                self.recovered();
                Some(v)
            }
            Ok(Err(e)) => {
                self.degrade(&format!("{what}: {:?}", e.kind()));
                None
            }
            Err(_) => {
                self.degrade(&format!("{what}: timed out"));
                None
            }
        }
    }

    /// The key of a caller's quota: `scope` is an operation class, or `all` for its quota over all its calls.
    pub fn quota_key(&self, caller: &str, scope: &str) -> String {
        format!("{}:{{quota:{caller}}}:{scope}", self.settings.key_prefix)
    }

    /// The key of a caller's spend in one period (`day:2026-12-02` or `month:2026-12`): a hash of units by
    /// index and operation (`api::spend`).
    pub fn spend_key(&self, caller: &str, period: &str) -> String {
        format!("{}:{{spend:{caller}}}:{period}", self.settings.key_prefix)
    }

    /// How often each replica syncs its spend with Redis.
    pub fn spend_sync(&self) -> Duration {
        self.settings.spend_sync
    }

    /// The key of a caller's highest write LSN in one index and namespace (the caller's name is length-prefixed, so
    /// that no two (caller, namespace) pairs share a key).
    pub fn lsn_key(&self, caller: &str, index: &str, namespace: &str) -> String {
        let tag = if index.is_empty() { "_project" } else { index };
        format!(
            "{}:{{{tag}}}:lsn:{}:{caller}:{namespace}",
            self.settings.key_prefix,
            caller.len()
        )
    }

    /// Keeps `lsn` in `key` if it is the highest, for `ttl`. False when Redis failed (degraded now) or is skipped
    /// while degraded.
    pub async fn remember_lsn(&self, key: &str, lsn: u64, ttl: Duration) -> bool {
        if self.skip_while_degraded() {
            return false;
        }
        let mut invocation = self.remember_lsn.prepare_invoke();
        invocation.key(key).arg(lsn).arg(micros(ttl) / 1000);
        self.run::<i64>("remember LSN", &invocation, false)
            .await
            .is_some()
    }

    /// The LSN kept in `key`: Some(None) when there is none, None when Redis failed or is skipped while degraded.
    pub async fn highest_lsn(&self, key: &str) -> Option<Option<u64>> {
        if self.skip_while_degraded() {
            return None;
        }
        let mut invocation = self.read_lsn.prepare_invoke();
        invocation.key(key);
        self.run::<Option<u64>>("read LSN", &invocation, false)
            .await
    }

    /// The fleet's size as Redis last counted it (replicas whose heartbeat is younger than three `heartbeat_ms`),
    /// or None before the first count.
    pub fn live_replicas(&self) -> Option<u64> {
        match self.live.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    /// While Redis refuses calls of a bucket, the furthest ahead a default or batch turn is given
    /// (`overload_queue_ms`).
    pub fn overload_queue(&self) -> Duration {
        self.settings.overload_queue
    }

    /// How long a replica keeps the share Redis granted it once Redis fails, and how long that share then takes to
    /// become an equal share of the live fleet.
    pub fn fallback(&self) -> (Duration, Duration) {
        (self.settings.grace, self.settings.fallback_decay)
    }

    /// Renews this replica's heartbeat and reads how many replicas are live.
    pub async fn heartbeat(&self) -> Option<u64> {
        if self.skip_while_degraded() {
            return None;
        }
        let mut invocation = self.heartbeat.prepare_invoke();
        invocation
            .key(format!("{}:{{replicas}}", self.settings.key_prefix))
            .arg(&self.replica)
            .arg(micros(self.settings.heartbeat))
            .arg(FLEET_HEARTBEATS_PER_SECOND);
        let live = self.run::<u64>("heartbeat", &invocation, false).await?;
        self.live
            .store(live.max(1), std::sync::atomic::Ordering::Relaxed);
        metrics::gauge!(m::LIMIT_REPLICAS_SEEN).set(live as f64);
        Some(live)
    }

    /// Degraded and not yet due to try Redis again.
    pub(crate) fn skip_while_degraded(&self) -> bool {
        let h = self.lock_health();
        h.degraded && Instant::now() < h.next_attempt
    }

    /// A 429 from Pinecone: no replica starts a turn of these buckets ([`RedisLimits::key`]s) for `pause`.
    pub async fn block(&self, keys: &[String], pause: Duration) {
        let mut invocation = self.block.prepare_invoke();
        invocation.arg(micros(pause));
        for k in keys {
            invocation.key(format!("{k}:state"));
        }
        self.run::<i64>("block", &invocation, false).await;
    }

    /// The request of `turn` was answered (`sent`), or never sent: its stamp rides on this replica's next round trip
    /// to the same buckets, or goes alone after `close_delay_ms`. Not stamped at all when its deadline comes about
    /// as soon (it stops counting then anyway); answered within its promise, only if a round trip carries it within
    /// `close_delay_ms` (Redis counts it until the promise). Until stamped, it counts until its deadline (or its
    /// promise) and one window more: later, never less.
    pub fn close(&self, turn: Turn, sent: bool) {
        let now = Instant::now();
        if sent {
            self.answered_in(turn.class, now.saturating_duration_since(turn.left));
            if turn.deadline.saturating_duration_since(now) <= self.settings.close_delay {
                return;
            }
        }
        let answered = sent.then_some(now);
        let ride_only = sent && turn.promised().is_some_and(|at| now <= at);
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.extend(turn.members.into_iter().map(|(key, member)| Pending {
            key,
            member,
            answered,
            ride_only,
        }));
    }

    /// How long this replica's requests of `class` are promised answered in: one and a half times the 90th percentile
    /// of its last answer times of that class and 5 ms (`expected` before its first), at least [`PROMISE_MIN`], at most
    /// `answer_promise_max_ms` (zero: no promise). An answer later than its promise costs a round trip to report it
    /// and one to stamp it; a longer promise holds each answered request's turn that much longer.
    pub fn promise(&self, class: &str, expected: Duration) -> Duration {
        let max = self.settings.answer_promise_max;
        if max.is_zero() {
            return Duration::ZERO;
        }
        let all = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        // A replica of a large fleet answers a few calls a minute: its first answer already says more than a
        // guess (a longer promise holds every turn longer; a shorter one costs two round trips when it breaks).
        let promise = match all.get(class).filter(|a| !a.is_empty()) {
            None => expected,
            Some(answers) => {
                let mut sorted: Vec<Duration> = answers.iter().copied().collect();
                sorted.sort_unstable();
                let p90 = sorted[(sorted.len() * 9 / 10).min(sorted.len() - 1)];
                p90 * 3 / 2 + Duration::from_millis(5)
            }
        };
        let promise = promise.max(PROMISE_MIN).min(max);
        metrics::gauge!(m::LIMIT_ANSWER_PROMISE).set(promise.as_secs_f64());
        promise
    }

    /// One answer time of `class`, for its promises.
    fn answered_in(&self, class: &'static str, took: Duration) {
        let mut all = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        let answers = all.entry(class).or_default();
        if answers.len() >= PROMISE_SAMPLES {
            answers.pop_front();
        }
        answers.push_back(took);
    }

    /// The request of `turn` was not answered by its promise (or leaves after it): from now on Redis counts it until
    /// its deadline, until its answer is stamped.
    pub async fn overdue(&self, turn: &mut Turn) -> Overdue {
        turn.noted = true;
        if self.skip_while_degraded() {
            return Overdue::Failed;
        }
        let mut invocation = self.note.prepare_invoke();
        invocation.arg(micros(self.settings.timeout));
        for (key, member) in &turn.members {
            invocation.key(key).arg(member);
        }
        match self.run::<i64>("note", &invocation, false).await {
            Some(1) => Overdue::Noted,
            Some(_) => Overdue::TooLate,
            None => Overdue::Failed,
        }
    }

    /// The guard for a turn given for later, now come: `Ok` when it may leave, `Err(wait)` while the requests before
    /// it hold the limit (their stamps may come sooner), None when Redis failed (degraded now).
    pub async fn guard(&self, turn: &mut Turn, period: Duration) -> Option<Result<(), Duration>> {
        let asked = Instant::now();
        let mut invocation = self.guard.prepare_invoke();
        invocation.arg(micros(period)).arg(micros(turn.promise));
        for ((key, member), limit) in turn.members.iter().zip(&turn.limits) {
            invocation.key(key).arg(*limit).arg(member);
        }
        let answer = self.run::<Vec<u64>>("guard", &invocation, true).await?;
        Some(match answer.as_slice() {
            [1, ..] => {
                // Redis read its clock after `asked`: this instant is never later than the promise it registered.
                turn.left = asked;
                turn.promised = (!turn.promise.is_zero())
                    .then_some(asked + turn.promise)
                    .filter(|at| *at < turn.deadline);
                Ok(())
            }
            [_, wait_us, ..] => Err(Duration::from_micros(*wait_us)),
            _ => Err(period),
        })
    }

    /// Sends the stamps that waited `close_delay_ms` (all of them with `all`): one round trip on a single Redis,
    /// one per index (hash slot) on a cluster.
    pub async fn flush_closes(&self, all: bool) {
        if self.skip_while_degraded() {
            return;
        }
        let now = Instant::now();
        let due = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let due = |p: &Pending| {
                all || p
                    .answered
                    .is_none_or(|a| now.saturating_duration_since(a) >= self.settings.close_delay)
            };
            if !pending.iter().any(|p| !p.ride_only && due(p)) {
                // Answered within their promises, and nothing carried them: Redis counts them until the promise.
                pending.retain(|p| !(p.ride_only && due(p)));
                return;
            }
            std::mem::take(&mut *pending)
        };
        let mut groups: std::collections::BTreeMap<String, Vec<Pending>> = Default::default();
        for p in due {
            let slot = match self.client {
                Client::Single(_) => String::new(),
                Client::Cluster(_) => hash_tag(&p.key).to_string(),
            };
            groups.entry(slot).or_default().push(p);
        }
        for (_, stamps) in groups {
            let mut keys: Vec<&str> = Vec::new();
            let mut invocation = self.close.prepare_invoke();
            invocation.arg(stamps.len());
            for p in &stamps {
                let i = keys.iter().position(|k| *k == p.key).unwrap_or_else(|| {
                    keys.push(&p.key);
                    keys.len() - 1
                });
                invocation
                    .arg(i + 1)
                    .arg(&p.member)
                    .arg(ago_micros(p.answered, now));
            }
            for k in &keys {
                invocation.key(*k);
            }
            if self.run::<i64>("close", &invocation, false).await.is_none() {
                self.requeue(stamps);
                return;
            }
        }
    }

    /// Renews the heartbeat (every `heartbeat_ms`, or slower in a large fleet: the fleet sends at most
    /// [`FLEET_HEARTBEATS_PER_SECOND`]) and sends stamps that waited long enough, until `stop` turns true.
    pub async fn maintain(
        self: std::sync::Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let tick = (self.settings.close_delay / 2)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut every = tokio::time::interval(tick);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_heartbeat = Instant::now();
        loop {
            tokio::select! {
                _ = every.tick() => {
                    if Instant::now() >= next_heartbeat {
                        // A heartbeat Redis did not take is tried again as soon as Redis may be asked again.
                        next_heartbeat = Instant::now()
                            + match self.heartbeat().await {
                                Some(_) => self.heartbeat_interval(),
                                None => self.settings.reconnect_interval,
                            };
                    } else if let Some(live) = self.live_replicas() {
                        // Set again between heartbeats: one set before the metrics recorder was installed is lost.
                        metrics::gauge!(m::LIMIT_REPLICAS_SEEN).set(live as f64);
                    }
                    self.flush_closes(false).await;
                }
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                self.flush_closes(true).await;
                return;
            }
        }
    }

    /// How often this replica renews its heartbeat: `heartbeat_ms`, or the fleet's size over
    /// [`FLEET_HEARTBEATS_PER_SECOND`] when that is longer.
    pub fn heartbeat_interval(&self) -> Duration {
        let paced = Duration::from_secs_f64(
            self.live_replicas().unwrap_or(1) as f64 / FLEET_HEARTBEATS_PER_SECOND as f64,
        );
        self.settings.heartbeat.max(paced)
    }
}

/// The most heartbeats a fleet sends Redis a second: a larger fleet renews more slowly (its replicas stay counted
/// for three of its intervals, so a dead one is counted a while longer, which only makes the fall-back's shares
/// smaller).
pub const FLEET_HEARTBEATS_PER_SECOND: u64 = 10;

/// How recent Redis's demand figure must be for a replica to refuse calls at home on it.
const DEMAND_FRESH: Duration = Duration::from_secs(2);

/// How long before `now` a request was answered (µs), or −1 when it was never sent.
fn ago_micros(answered: Option<Instant>, now: Instant) -> i64 {
    answered.map_or(-1, |a| {
        i64::try_from(now.saturating_duration_since(a).as_micros()).unwrap_or(i64::MAX)
    })
}

/// The `{…}` hash tag of a key (its Redis Cluster slot), or the whole key.
fn hash_tag(key: &str) -> &str {
    key.split_once('{')
        .and_then(|(_, rest)| rest.split_once('}'))
        .map_or(key, |(tag, _)| tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The share of calls a replica refuses at home after Redis reported `asked` and `refused` calls a second for a
    /// bucket of 100 requests a second.
    fn share(asked: f64, refused: f64) -> f64 {
        let limits = RedisLimits::new(RedisSettings::new("redis://127.0.0.1:1/", "t"))
            .expect("a client for a URL is made without connecting");
        let bucket = TakeBucket {
            key: "k".into(),
            limit: 100,
            cost: 1,
        };
        let now = Instant::now();
        limits.learn_demand(
            std::slice::from_ref(&bucket),
            &[(asked, refused)],
            Duration::ZERO,
            Duration::from_secs(1),
            now,
        );
        let demand = limits.demand.lock().unwrap_or_else(|e| e.into_inner());
        demand["k"].refuse.map_or(0.0, |(s, _)| s)
    }

    #[test]
    fn the_fleet_is_brought_to_ask_for_its_share_of_the_limit_not_of_what_was_served() {
        // 150 asked, 70 refused (a short queue refuses some of what the limit could serve): the fleet should ask for
        // 125 of them, the limit's 100 and a quarter more, whatever Redis served.
        let s = share(150.0, 70.0);
        assert!((s - (1.0 - 125.0 / 150.0)).abs() < 1e-9, "{s}");
        // Asking for less than 125% of the limit: nothing refused at home, however many Redis refused.
        assert_eq!(share(110.0, 60.0), 0.0);
        // A burst Redis queues (it refuses few): no more refused at home than Redis refuses.
        let s = share(300.0, 3.0);
        assert!((s - 0.01).abs() < 1e-9, "{s}");
        assert_eq!(share(5_000.0, 4_990.0), 0.95, "some calls always ask");
    }
}
