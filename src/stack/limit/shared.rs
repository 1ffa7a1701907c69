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
//! Keys: `<key_prefix>:{<index>}:<class>:<unit>:index` or `…:ns:<namespace>`. The `{index}` hash tag puts every bucket of one call
//! on one Redis Cluster slot, as a script's keys must be.
//!
//! States: *connected*, or *degraded* when Redis cannot be reached or answers later than `timeout_ms`: then calls
//! use the local limiter with every limit divided by `replicas` (never no limit), the
//! `pinecone_gateway_rate_limit_degraded` gauge is 1 and one warning is logged; one call per
//! `reconnect_interval_ms` tries Redis again, and the first answer returns the gateway to shared limits (logged).
//! Differences from the local limiter: a call that gives up while waiting keeps its turn (the others are not moved
//! forward), and there is no per-key queue length.

use crate::telemetry::metrics as m;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Where Redis is and how long to wait for it.
#[derive(Clone)]
pub struct RedisSettings {
    /// `redis://` or `rediss://` (TLS), with the password if any. A secret: never logged.
    pub url: String,
    /// The longest a decision may take before the gateway falls back to the static share.
    pub timeout: Duration,
    /// How often a degraded gateway tries Redis again.
    pub reconnect_interval: Duration,
    /// Prefixes every key, so that several deployments can share one Redis.
    pub key_prefix: String,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &"<secret>")
            .field("timeout", &self.timeout)
            .field("reconnect_interval", &self.reconnect_interval)
            .field("key_prefix", &self.key_prefix)
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

/// One bucket of a call, as Redis sees it.
pub struct Bucket {
    pub key: String,
    pub spacing: Duration,
    pub cost: u64,
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
    /// When a degraded gateway may try Redis again.
    next_attempt: Instant,
}

/// The Redis side of the limiter.
pub struct Shared {
    client: redis::Client,
    settings: RedisSettings,
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
    script: redis::Script,
    block: redis::Script,
    health: Mutex<Health>,
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

impl Shared {
    /// Checks the URL; connects on first use, so a gateway starts (degraded) while Redis is down.
    pub fn new(settings: RedisSettings) -> Result<Shared, String> {
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|e| format!("limits.redis.url is not a Redis URL ({:?})", e.kind()))?;
        Ok(Shared {
            client,
            settings,
            conn: tokio::sync::Mutex::new(None),
            script: redis::Script::new(SCRIPT),
            block: redis::Script::new(BLOCK),
            health: Mutex::new(Health {
                degraded: false,
                next_attempt: Instant::now(),
            }),
        })
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
    async fn connection(&self) -> Option<ConnectionManager> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Some(c.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.settings.timeout))
            .set_response_timeout(Some(self.settings.timeout))
            .set_number_of_retries(1);
        match tokio::time::timeout(
            self.settings.timeout * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        {
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

    /// Redis's decision for one call, or None when the gateway must decide locally (degraded).
    pub async fn decide(&self, buckets: &[Bucket], max_wait: Duration) -> Option<Verdict> {
        {
            let h = self.lock_health();
            if h.degraded && Instant::now() < h.next_attempt {
                return None;
            }
        }
        let mut conn = self.connection().await?;
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(micros(max_wait));
        for b in buckets {
            invocation.key(&b.key).arg(micros(b.spacing)).arg(b.cost);
        }
        let started = Instant::now();
        let answer = tokio::time::timeout(
            self.settings.timeout,
            invocation.invoke_async::<(u8, u64, usize)>(&mut conn),
        )
        .await;
        metrics::histogram!(m::LIMIT_REDIS_SECONDS).record(started.elapsed().as_secs_f64());
        match answer {
            Ok(Ok((reserved, wait_us, binding))) => {
                self.recovered();
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
            Ok(Err(e)) => {
                self.degrade(&format!("decision: {:?}", e.kind()));
                None
            }
            Err(_) => {
                self.degrade("decision: timed out");
                None
            }
        }
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
        if let Ok(Err(e)) = tokio::time::timeout(
            self.settings.timeout,
            invocation.invoke_async::<i64>(&mut conn),
        )
        .await
        {
            self.degrade(&format!("block: {:?}", e.kind()));
        }
    }
}
