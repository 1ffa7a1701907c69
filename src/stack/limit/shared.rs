//! Limits shared by every replica through Redis (`limits.mode = "redis"`).
//!
//! Each call's decision is one atomic Lua script ([`SCRIPT`]): GCRA over every bucket the call takes from, on
//! Redis's own clock (`TIME`), in one round trip. A bucket is one key holding its *theoretical arrival time* (TAT,
//! microseconds); a call of cost `c` on a bucket of spacing `T` (the window over the rate) may go at
//! `TAT + (c − 1)·T`; the call goes at the latest of these over its buckets, and only if that is within the wait it
//! can afford (its deadline less `expected_upstream_ms`, and `max_queue_wait_ms`); then every bucket's TAT becomes
//! that instant + `T` (all or nothing), with an expiry. So calls wait their turn in the order Redis saw them, spaced
//! evenly: at most the limit in any window of one second plus `window_margin_ms`, whatever the number of replicas.
//! A refused call gets the wait it would have needed as retry advice. A 429 from Pinecone pushes the buckets' TAT
//! past its `Retry-After` for every replica.
//!
//! The turn is a schedule; Pinecone counts arrivals. A request that leaves its replica late (a busy core, a slow
//! wake-up) arrives bunched with the ones scheduled after it, so the schedule alone can let Pinecone see more than
//! the limit in some second (measured: 109 against 100/s). So each request also passes a *guard* just before it is
//! sent ([`GUARD`]): per bucket a sorted set of the requests sent, each counted from the moment it is sent until its
//! answer comes back and for one window (`1 s + window_margin_ms`) after that, exactly as the local limiter counts
//! ([`super::window`]). A request that would overfill a window waits (polling at the bucket's even spacing) or is
//! refused when its deadline comes first. An answered request is stamped by [`CLOSE`]; one whose replica died is
//! counted until its deadline and then one window more.
//!
//! Keys: `<key_prefix>:{<index>}:<class>:<unit>:index` or `…:ns:<namespace>`, and the guard's `…:sent`. The `{index}`
//! hash tag puts every key of one call on one Redis Cluster slot, as a script's keys must be. With
//! `limits.redis.cluster = true`, `url` lists the cluster's seed nodes (comma-separated) and the gateway follows the
//! cluster's slots (the `redis` crate's cluster client).
//!
//! Every replica renews a heartbeat in a sorted set (`<key_prefix>:{replicas}`, [`HEARTBEAT`]) every `heartbeat_ms`;
//! those heard from within three heartbeats are the live fleet, whose size every replica knows.
//!
//! States: *connected*, or *degraded* when Redis cannot be reached or answers later than `timeout_ms`: then calls
//! use the local limiter (never no limit) at this replica's own share of each limit (`limiter.rs`, `own_share`: what
//! Redis granted it in the last window plus its part of the room the fleet left, for `grace_ms`, then moving to an
//! equal share of the live fleet over `fallback_decay_ms`), in windows that start with what it sent through Redis;
//! the `pinecone_gateway_rate_limit_degraded` gauge is 1 and one warning is logged. A replica Redis never granted a
//! turn takes the static share (limits divided by `replicas`), and its windows start as if the last window had been
//! spent by the other replicas. One call per `reconnect_interval_ms` tries Redis again, and the first answer returns
//! the gateway to shared limits (logged).
//! Differences from the local limiter: a call that gives up while waiting keeps its turn (the others are not moved
//! forward), there is no per-key queue length and no namespace fairness, and on the way back from degraded mode
//! the requests this replica sent under its static share in the last window are not in Redis's windows (for one
//! window, at most the limit plus one static share can be sent).

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

/// KEYS: the buckets. ARGV[1]: how long Pinecone asked to wait (µs). Moves each TAT past that instant.
const BLOCK: &str = r#"
local t = redis.call('TIME')
local until_ = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[1])
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if tat < until_ then
    redis.call('SET', KEYS[i], string.format('%.0f', until_), 'PX', math.floor(tonumber(ARGV[1]) / 1000) + 2000)
  end
end
return 1
"#;

/// KEYS: the guard sets. ARGV[1]: the window (µs); ARGV[2]: this request's ticket (its member in each set is
/// `<ticket>:<cost>`); ARGV[3]: the longest it can be in flight (µs, its deadline); then per key its limit and the
/// request's cost.
/// Returns {1, 0, then per key what the fleet had in its window} when the request may be sent now (it is counted from
/// now on), or {0, wait in µs}.
pub const GUARD: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
local ticket = ARGV[2]
local until_ = now + tonumber(ARGV[3])
local wait = 0
local in_window = {}
for i = 1, #KEYS do
  local limit = tonumber(ARGV[2 + 2 * i])
  local cost = tonumber(ARGV[3 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', string.format('%.0f', now - period))
  local entries = redis.call('ZRANGE', KEYS[i], 0, -1, 'WITHSCORES')
  local used = 0
  for j = 1, #entries, 2 do
    used = used + tonumber(string.match(entries[j], ':(%d+)$'))
  end
  in_window[i] = used
  if used + cost > limit then
    local excess = used + cost - limit
    local w = period
    for j = 1, #entries, 2 do
      excess = excess - tonumber(string.match(entries[j], ':(%d+)$'))
      if excess <= 0 then
        w = tonumber(entries[j + 1]) + period - now
        break
      end
    end
    if w > wait then wait = w end
  end
end
if wait > 0 then
  return {0, math.floor(wait)}
end
local ttl = math.floor((until_ - now + period) / 1000) + 1000
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], string.format('%.0f', until_), ticket .. ':' .. ARGV[3 + 2 * i])
  if redis.call('PTTL', KEYS[i]) < ttl then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
local out = {1, 0}
for i = 1, #KEYS do
  out[2 + i] = in_window[i]
end
return out
"#;

/// KEYS: the guard sets of a request; ARGV: its member in each. Its answer came back: it counts from now for one
/// window.
const CLOSE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', string.format('%.0f', now), ARGV[i])
end
return 1
"#;

/// KEYS[1]: the fleet's heartbeats (a sorted set of replica ids by the instant each was last heard from). ARGV[1]:
/// this replica's id; ARGV[2]: how long a heartbeat lasts (µs). Returns how many replicas are live.
const HEARTBEAT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local lasts = tonumber(ARGV[2])
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

/// A request the guard let through, to be stamped when its answer comes back.
pub struct Guarded {
    /// Each guard set and the request's member in it.
    members: Vec<(String, String)>,
    /// What the whole fleet had in each guard set's window when the guard let the request through (the replica's
    /// measure of the room the fleet leaves, kept for the fall-back).
    pub fleet_in_window: Vec<u64>,
}

/// What the guard decided.
pub enum GuardVerdict {
    Admitted(Guarded),
    /// A window is full: try again after this wait (at most; the requests in flight may come back sooner).
    Wait(Duration),
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
    guard: redis::Script,
    close: redis::Script,
    block: redis::Script,
    remember_lsn: redis::Script,
    read_lsn: redis::Script,
    heartbeat: redis::Script,
    health: Mutex<Health>,
    /// This replica's name in the fleet's heartbeats: random, new at every start.
    replica: String,
    /// The live replicas Redis last counted (0: never counted).
    live: std::sync::atomic::AtomicU64,
    /// Per bucket, the earliest its next turn can be, from Redis's last answers about it: calls that cannot wait that
    /// long are refused without a round trip.
    queue_ends: Mutex<std::collections::HashMap<String, Instant>>,
}

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
            guard: redis::Script::new(GUARD),
            close: redis::Script::new(CLOSE),
            block: redis::Script::new(BLOCK),
            remember_lsn: redis::Script::new(REMEMBER_LSN),
            read_lsn: redis::Script::new("return redis.call('GET', KEYS[1])"),
            heartbeat: redis::Script::new(HEARTBEAT),
            replica: format!("{:016x}", rand::random::<u64>()),
            live: std::sync::atomic::AtomicU64::new(0),
            queue_ends: Mutex::default(),
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

    /// Redis's decision for one call, or None when the gateway must decide locally (degraded). A call whose turn
    /// this replica already knows to be later than it can wait is refused without asking Redis (`queue_ends`).
    pub async fn decide(&self, buckets: &[Bucket], max_wait: Duration) -> Option<Verdict> {
        if self.skip_while_degraded() {
            return None;
        }
        let asked = Instant::now();
        if let Some(verdict) = self.known_too_late(buckets, max_wait, asked) {
            return Some(verdict);
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
        let binding = binding.saturating_sub(1);
        self.remember_queue_ends(buckets, reserved == 1, wait, binding, asked);
        Some(if reserved == 1 {
            Verdict::Go(wait)
        } else {
            Verdict::TooLate { wait, binding }
        })
    }

    /// What Redis's answer says of each bucket's theoretical arrival time, as an instant of this replica's clock no
    /// later than the true one (Redis read its clock after `asked`): after a reservation at `asked + wait`, each
    /// bucket's TAT is that plus its spacing; after a refusal, the binding bucket's is at least `asked + wait` less
    /// the call's own extra cost. A TAT only moves forward (turns are never given back, a 429 pushes it), so these
    /// stay lower bounds.
    fn remember_queue_ends(
        &self,
        buckets: &[Bucket],
        reserved: bool,
        wait: Duration,
        binding: usize,
        asked: Instant,
    ) {
        let mut ends = self.queue_ends.lock().unwrap_or_else(|e| e.into_inner());
        if ends.len() >= 10_000 {
            let now = Instant::now();
            ends.retain(|_, end| *end > now);
        }
        let mut keep = |key: &str, end: Instant| {
            let e = ends.entry(key.to_string()).or_insert(end);
            *e = (*e).max(end);
        };
        if reserved {
            for b in buckets {
                keep(&b.key, asked + wait + b.spacing);
            }
        } else if let Some(b) = buckets.get(binding) {
            let own = b
                .spacing
                .saturating_mul(u32::try_from(b.cost.saturating_sub(1)).unwrap_or(u32::MAX));
            keep(&b.key, (asked + wait).checked_sub(own).unwrap_or(asked));
        }
    }

    /// Redis would refuse this call: one of its buckets' turns is known to come later than it can wait.
    fn known_too_late(
        &self,
        buckets: &[Bucket],
        max_wait: Duration,
        now: Instant,
    ) -> Option<Verdict> {
        let ends = self.queue_ends.lock().unwrap_or_else(|e| e.into_inner());
        buckets.iter().enumerate().find_map(|(i, b)| {
            let wait = ends.get(&b.key)?.saturating_duration_since(now);
            (wait > max_wait).then_some(Verdict::TooLate { wait, binding: i })
        })
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

    /// How long a replica keeps the share Redis granted it once Redis fails, and how long the share then takes to
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
            .arg(micros(self.settings.heartbeat * 3));
        let live = self.run::<u64>("heartbeat", &invocation, false).await?;
        self.live
            .store(live.max(1), std::sync::atomic::Ordering::Relaxed);
        metrics::gauge!(m::LIMIT_REPLICAS_SEEN).set(live as f64);
        Some(live)
    }

    /// Renews the heartbeat every `heartbeat_ms` until `stop` turns true.
    pub async fn keep_heartbeat(
        self: std::sync::Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut every = tokio::time::interval(self.settings.heartbeat);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {
                    self.heartbeat().await;
                }
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// Degraded and not yet due to try Redis again.
    pub(crate) fn skip_while_degraded(&self) -> bool {
        let h = self.lock_health();
        h.degraded && Instant::now() < h.next_attempt
    }

    /// A 429 from Pinecone: every replica holds these buckets back for `pause`.
    pub async fn block(&self, keys: &[String], pause: Duration) {
        let Some(mut conn) = self.connection().await else {
            return;
        };
        let mut invocation = self.block.prepare_invoke();
        invocation.arg(micros(pause));
        for k in keys {
            invocation.key(k);
        }
        if let Ok(Err(e)) =
            tokio::time::timeout(self.settings.timeout, conn.invoke::<i64>(&invocation)).await
        {
            self.degrade(&format!("block: {:?}", e.kind()));
        }
    }

    /// The guard for one request about to be sent: `buckets` are its guard sets with their limits, `period` the
    /// window, `in_flight_for` the longest it can take (its deadline). None when Redis failed (degraded now).
    pub async fn guard(
        &self,
        buckets: &[(String, u64, u64)],
        period: Duration,
        in_flight_for: Duration,
    ) -> Option<GuardVerdict> {
        let ticket = format!("{:016x}", rand::random::<u64>());
        let mut invocation = self.guard.prepare_invoke();
        invocation
            .arg(micros(period))
            .arg(&ticket)
            .arg(micros(in_flight_for));
        for (key, limit, cost) in buckets {
            invocation.key(key).arg(*limit).arg(*cost);
        }
        let answer = self.run::<Vec<u64>>("guard", &invocation, true).await?;
        Some(match answer.as_slice() {
            [1, _, fleet_in_window @ ..] => GuardVerdict::Admitted(Guarded {
                members: buckets
                    .iter()
                    .map(|(key, _, cost)| (key.clone(), format!("{ticket}:{cost}")))
                    .collect(),
                fleet_in_window: fleet_in_window.to_vec(),
            }),
            [_, wait_us, ..] => GuardVerdict::Wait(Duration::from_micros(*wait_us)),
            _ => GuardVerdict::Wait(period),
        })
    }

    /// The guarded request's answer came back: it counts from now for one window. (If this fails, it counts until
    /// its deadline and one window more: later, never less.)
    pub async fn close(&self, guarded: Guarded) {
        let Some(mut conn) = self.connection().await else {
            return;
        };
        let mut invocation = self.close.prepare_invoke();
        for (key, member) in &guarded.members {
            invocation.key(key).arg(member);
        }
        if let Ok(Err(e)) =
            tokio::time::timeout(self.settings.timeout, conn.invoke::<i64>(&invocation)).await
        {
            self.degrade(&format!("close: {:?}", e.kind()));
        }
    }
}
