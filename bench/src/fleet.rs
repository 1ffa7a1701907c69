//! `bench fleet`: N replicas' rate limiters in one process, each with its own Redis connection and its own local
//! queue (the gateway's `Limiter` in redis mode, as `limits.mode = "redis"` builds it), sharing Pinecone's 100 fetches
//! per second of one index through one Redis. The upstream is a stand-in that counts every request as it arrives and
//! answers 429 past 100 in any sliding second, as Pinecone does: its strict counter is the referee.
//!
//! Loads, offered open-loop at twice the limit over the whole fleet: *uniform* (every replica alike) and *skewed*
//! (10% of the replicas send 90% of the calls); the stand-in answers in 5 ms, or `--slow-percent` of its answers in
//! 100 ms (an uneven upstream, whose slow answers break promises). Per fleet size and load: the most requests in any
//! sliding second against the limit, the share of the limit used, 429s, calls refused, Redis's decision latency (the
//! gateway's own histogram, `pinecone_gateway_rate_limit_redis_decision_seconds`, as buckets), Redis round trips (the
//! scripts the replicas ran) and commands (the scripts' own commands included) per second and per granted turn, Redis's CPU
//! (`INFO commandstats`, `INFO cpu`), and fairness: Jain's index over the replicas of granted calls against demand
//! (1 when every replica gets the same share of what it asked for), plain and weighted by demand. And once at
//! N = 100, skewed: Redis killed half way, the same figures for the half after.
//!
//! Redis runs on CPU 0 and this process on CPU 1.

use pinecone_gateway::call::{
    CallContext, Caller, Op, Priority, Reply, UpstreamCall, UpstreamError,
};
use pinecone_gateway::stack::limit::shared::RedisSettings;
use pinecone_gateway::stack::limit::{LimitLayer, LimitSettings, Limiter};
use pinecone_gateway::stack::{CallError, CallFuture, Inner};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::Layer;

/// Pinecone's fetch limit: requests per second per index.
const LIMIT: usize = 100;
/// How long the stand-in takes to answer.
const LATENCY: Duration = Duration::from_millis(5);
/// How long its slow answers take (`--slow-percent` of them).
const SLOW_LATENCY: Duration = Duration::from_millis(100);
/// Each call's deadline.
const DEADLINE: Duration = Duration::from_secs(2);

/// The stand-in for Pinecone: every arrival, and 429 past the limit in any sliding second (counted at arrival).
#[derive(Clone, Default)]
struct Upstream(Arc<UpState>);

#[derive(Default)]
struct UpState {
    window: Mutex<VecDeque<Instant>>,
    arrivals: Mutex<Vec<Instant>>,
    throttled: AtomicU64,
    /// The share of answers (percent) that take [`SLOW_LATENCY`].
    slow_percent: u64,
}

impl Inner for Upstream {
    fn send(&self, _call: UpstreamCall) -> CallFuture {
        let state = self.0.clone();
        Box::pin(async move {
            let now = Instant::now();
            let over = {
                let mut w = state.window.lock().unwrap_or_else(|e| e.into_inner());
                while w
                    .front()
                    .is_some_and(|t| now - *t >= Duration::from_secs(1))
                {
                    w.pop_front();
                }
                let over = w.len() >= LIMIT;
                if !over {
                    w.push_back(now);
                }
                over
            };
            state
                .arrivals
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(now);
            let slow = rand::random::<u64>() % 100 < state.slow_percent;
            tokio::time::sleep(if slow { SLOW_LATENCY } else { LATENCY }).await;
            if over {
                state.throttled.fetch_add(1, Ordering::Relaxed);
                return Err(CallError::Upstream(UpstreamError::Status {
                    grpc_code: None,
                    status: 429,
                    message: "Request failed. You've reached the fetch limit.".into(),
                    retry_after: Some(Duration::from_secs(1)),
                }));
            }
            Ok(Reply::Fetch(Default::default()))
        })
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Load {
    Uniform,
    Skewed,
    /// Batch calls at twice the limit from every replica, and one call in 40 interactive (5 a second).
    Priorities,
    /// Every [`BURST_EVERY`], [`BURST_CALLS`] calls in a quarter of a second, spread over the replicas; nothing in
    /// between (83 a second on average, 2.5 s of the limit in each burst).
    Bursts,
}

/// How many calls each burst of [`Load::Bursts`] has.
const BURST_CALLS: u64 = 250;
/// How often a burst comes.
const BURST_EVERY: Duration = Duration::from_secs(3);

impl Load {
    fn name(self) -> &'static str {
        match self {
            Load::Uniform => "uniform",
            Load::Skewed => "skewed (10% of replicas send 90% of calls)",
            Load::Priorities => {
                "batch at 2x the limit from every replica, 5 interactive calls/s among them"
            }
            Load::Bursts => "bursts: 250 calls in 250 ms every 3 s, over every replica",
        }
    }

    /// When the `k`th call (from 0) arrives.
    fn arrival(self, start: Instant, k: u64, spacing: Duration) -> Instant {
        match self {
            Load::Bursts => {
                start
                    + BURST_EVERY * (k / BURST_CALLS) as u32
                    + Duration::from_millis(1) * (k % BURST_CALLS) as u32
            }
            _ => start + spacing * k as u32,
        }
    }

    /// Calls per second on average.
    fn offered_per_second(self) -> f64 {
        match self {
            Load::Bursts => BURST_CALLS as f64 / BURST_EVERY.as_secs_f64(),
            _ => 2.0 * LIMIT as f64,
        }
    }

    /// The replica the next call goes to, at random: a fixed rotation would line replicas up with the alternation of
    /// granted and refused turns that an evenly spaced overload produces.
    fn pick(self, n: usize) -> usize {
        use rand::Rng;
        let mut rng = rand::rng();
        match self {
            Load::Uniform | Load::Priorities | Load::Bursts => rng.random_range(0..n),
            Load::Skewed => {
                let hot = (n / 10).max(1);
                if hot == n || rng.random_bool(0.9) {
                    rng.random_range(0..hot)
                } else {
                    rng.random_range(hot..n)
                }
            }
        }
    }

    /// The priority of the `k`th call.
    fn priority(self, k: u64) -> Priority {
        match self {
            Load::Priorities if k.is_multiple_of(40) => Priority::Interactive,
            Load::Priorities => Priority::Batch,
            _ => Priority::Default,
        }
    }
}

/// What the replicas talk to: one Redis, or a cluster of three masters.
struct Redis {
    servers: Vec<super::RedisServer>,
    cluster: bool,
}

impl Redis {
    fn single() -> anyhow::Result<Redis> {
        Ok(Redis {
            servers: vec![super::redis_server_on(0)?],
            cluster: false,
        })
    }

    /// Three masters (`redis-cli --cluster create`), all on CPU 0 as the single Redis is.
    fn cluster() -> anyhow::Result<Redis> {
        let servers = (0..3)
            .map(|_| {
                super::redis_server_with(
                    0,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                    ],
                )
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let out = std::process::Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(servers.iter().map(|s| format!("127.0.0.1:{}", s.port)))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // The nodes agree on the slots a moment after `create` returns.
        for s in &servers {
            let mut tries = 0;
            loop {
                let info = std::process::Command::new("redis-cli")
                    .args(["-p", &s.port.to_string(), "cluster", "info"])
                    .output()?;
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                tries += 1;
                anyhow::ensure!(tries < 200, "the cluster never became ready");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(Redis {
            servers,
            cluster: true,
        })
    }

    fn url(&self) -> String {
        self.servers
            .iter()
            .map(|s| format!("redis://127.0.0.1:{}/", s.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Redis's counters summed over its servers (see [`redis_counters`]).
    async fn counters(&self) -> anyhow::Result<(u64, u64, f64)> {
        let mut sum = (0, 0, 0.0);
        for s in &self.servers {
            let mut conn = redis::Client::open(format!("redis://127.0.0.1:{}/", s.port))?
                .get_multiplexed_async_connection()
                .await?;
            let (r, c, cpu) = redis_counters(&mut conn).await?;
            sum = (sum.0 + r, sum.1 + c, sum.2 + cpu);
        }
        Ok(sum)
    }

    fn kill(&mut self) {
        for s in &mut self.servers {
            s.kill();
        }
    }
}

/// How the fleet bench is run (`bench fleet --help`).
pub struct Options {
    pub sizes: Vec<usize>,
    pub runs: Vec<String>,
    pub warmup: Duration,
    pub duration: Duration,
    pub overload_ask_percent: u64,
    pub close_delay: Duration,
    pub overload_queue: Duration,
    pub answer_promise_max: Duration,
    /// The share of the stand-in's answers (percent) that take 100 ms rather than 5.
    pub slow_percent: u64,
}

/// Redis's counters: (round trips: the scripts the replicas ran; every command executed, the scripts' own included;
/// CPU seconds).
async fn redis_counters(
    conn: &mut redis::aio::MultiplexedConnection,
) -> anyhow::Result<(u64, u64, f64)> {
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    let calls = |l: &str| {
        l.split("calls=")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|c| c.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let commands = stats
        .lines()
        .filter(|l| l.starts_with("cmdstat_") && !l.starts_with("cmdstat_info:"))
        .map(calls)
        .sum();
    // The limiter sends nothing but scripts (and loads one when Redis does not know it).
    let round_trips = stats
        .lines()
        .filter(|l| {
            [
                "cmdstat_evalsha:",
                "cmdstat_eval:",
                "cmdstat_script|load:",
                "cmdstat_script:",
            ]
            .iter()
            .any(|c| l.starts_with(c))
        })
        .map(calls)
        .sum();
    let cpu: String = redis::cmd("INFO").arg("cpu").query_async(conn).await?;
    let seconds = cpu
        .lines()
        .filter(|l| l.starts_with("used_cpu_sys:") || l.starts_with("used_cpu_user:"))
        .filter_map(|l| {
            l.split(':')
                .nth(1)
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .sum();
    Ok((round_trips, commands, seconds))
}

/// The decision histogram's cumulative buckets: (upper bound in seconds, count).
fn decision_buckets(metrics: &metrics_exporter_prometheus::PrometheusHandle) -> Vec<(f64, u64)> {
    metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("pinecone_gateway_rate_limit_redis_decision_seconds_bucket"))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let count = l.rsplit(' ').next()?.parse().ok()?;
            Some((le, count))
        })
        .collect()
}

/// The replicas' Redis round trips so far, by script (the gateway's own counter).
fn round_trips_by_script(
    metrics: &metrics_exporter_prometheus::PrometheusHandle,
) -> std::collections::BTreeMap<String, f64> {
    metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("pinecone_gateway_rate_limit_redis_round_trips_total{"))
        .filter_map(|l| {
            let script = l.split("script=\"").nth(1)?.split('"').next()?.to_string();
            let n = l.rsplit(' ').next()?.parse().ok()?;
            Some((script, n))
        })
        .collect()
}

/// Redis round trips that failed or came too late (each one turned its replica to the fall-back), all replicas.
fn redis_errors(metrics: &metrics_exporter_prometheus::PrometheusHandle) -> f64 {
    metric_sum(metrics, "pinecone_gateway_rate_limit_redis_errors_total")
}

/// The sum of a metric's series (its only value, for a gauge without labels).
fn metric_sum(metrics: &metrics_exporter_prometheus::PrometheusHandle, name: &str) -> f64 {
    metrics
        .render()
        .lines()
        .filter(|l| l.split([' ', '{']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The bound of the bucket that holds quantile `q` of the decisions between two readings.
fn quantile(before: &[(f64, u64)], after: &[(f64, u64)], q: f64) -> Value {
    let diff: Vec<(f64, u64)> = after
        .iter()
        .map(|(le, n)| {
            let was = before.iter().find(|(b, _)| b == le).map_or(0, |(_, c)| *c);
            (*le, n - was)
        })
        .collect();
    let total = diff.last().map_or(0, |(_, n)| *n);
    if total == 0 {
        return Value::Null;
    }
    let want = (total as f64 * q).ceil() as u64;
    diff.iter()
        .find(|(_, n)| *n >= want)
        .map_or(Value::Null, |(le, _)| {
            if le.is_finite() {
                json!(format!("<= {} ms", le * 1000.0))
            } else {
                json!("> 1000 ms")
            }
        })
}

/// One run: `n` replicas under `load` for `duration` after `warmup`; with `kill_redis`, Redis is killed half way and
/// the figures are of the half after.
async fn run(
    redis: &mut Redis,
    metrics: &metrics_exporter_prometheus::PrometheusHandle,
    n: usize,
    load: Load,
    o: &Options,
    kill_redis: bool,
) -> anyhow::Result<Value> {
    let (warmup, duration) = (o.warmup, o.duration);
    let url = redis.url();
    let prefix = format!("fleet-{}", rand::random::<u32>());
    let upstream = Upstream(Arc::new(UpState {
        slow_percent: o.slow_percent,
        ..UpState::default()
    }));
    let errors_before = redis_errors(metrics);
    let mut errors_measured_from = errors_before;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let replicas: Vec<_> = (0..n)
        .map(|_| {
            let limiter = Limiter::new(LimitSettings {
                share: n as u64,
                redis: Some(RedisSettings {
                    cluster: redis.cluster,
                    timeout: Duration::from_millis(250),
                    overload_ask_percent: o.overload_ask_percent,
                    close_delay: o.close_delay,
                    overload_queue: o.overload_queue,
                    answer_promise_max: o.answer_promise_max,
                    ..RedisSettings::new(&url, &prefix)
                }),
                // Callers' priorities order their calls within a replica only when fair queuing is on.
                fair_queuing: load == Load::Priorities,
                ..LimitSettings::default()
            });
            // Every replica's heartbeat, as the gateway keeps it, so that each knows the fleet's size.
            if let Some(redis) = limiter.redis() {
                tokio::spawn(redis.maintain(stopped.clone()));
            }
            LimitLayer::new(limiter).layer(upstream.clone())
        })
        .collect();
    let offered_per_second = 2 * LIMIT as u64;
    // How long every granted call waited for its turn (µs).
    let granted_waits = Arc::new(Mutex::new(hdrhistogram::Histogram::<u64>::new(3)?));
    let demand: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let granted: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let refused = Arc::new(AtomicU64::new(0));
    let other_errors = Arc::new(AtomicU64::new(0));
    // Interactive calls (the priorities load): how long each waited for its turn (µs), and those refused.
    let interactive_waits = Arc::new(Mutex::new(hdrhistogram::Histogram::<u64>::new(3)?));
    let interactive_refused = Arc::new(AtomicU64::new(0));
    let mut k = 0u64;
    let start = Instant::now();
    let measure_from = start + warmup;
    let half = measure_from + duration / 2;
    let end = measure_from + duration;
    let mut redis_before = None;
    let mut scripts_before = std::collections::BTreeMap::new();
    let mut decisions_before = Vec::new();
    let mut killed = false;
    let spacing = Duration::from_secs(1) / offered_per_second as u32;
    let mut next = start;
    let mut calls = Vec::new();
    while next < end {
        tokio::time::sleep_until(next).await;
        let now = Instant::now();
        if redis_before.is_none() && now >= measure_from {
            redis_before = Some(redis.counters().await?);
            scripts_before = round_trips_by_script(metrics);
            errors_measured_from = redis_errors(metrics);
            decisions_before = decision_buckets(metrics);
        }
        if kill_redis && !killed && now >= half {
            redis.kill();
            killed = true;
        }
        let i = load.pick(n);
        let measured = now >= if kill_redis { half } else { measure_from };
        let svc = replicas[i].clone();
        let (demand, granted, refused, other) = (
            demand.clone(),
            granted.clone(),
            refused.clone(),
            other_errors.clone(),
        );
        let priority = load.priority(k);
        k += 1;
        let (waits, interactive_refused) = (interactive_waits.clone(), interactive_refused.clone());
        let all_waits = granted_waits.clone();
        calls.push(tokio::spawn(async move {
            if measured {
                demand[i].fetch_add(1, Ordering::Relaxed);
            }
            let call = UpstreamCall {
                index: "fleet".into(),
                op: Op::Fetch {
                    ids: vec!["a".into()],
                    namespace: "ns".into(),
                },
                deadline: Instant::now() + DEADLINE,
                ctx: Arc::new(CallContext {
                    caller: Caller {
                        priority,
                        ..Caller::default()
                    },
                    ..CallContext::default()
                }),
            };
            let sent = Instant::now();
            let result = svc.send(call).await;
            if measured && priority == Priority::Interactive {
                match &result {
                    Ok(_) => {
                        let waited = sent.elapsed().saturating_sub(LATENCY);
                        let _ = waits
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .record(waited.as_micros() as u64);
                    }
                    Err(_) => {
                        interactive_refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            match result {
                Ok(_) if measured => {
                    granted[i].fetch_add(1, Ordering::Relaxed);
                    let waited = sent.elapsed().saturating_sub(LATENCY);
                    let _ = all_waits
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .record(waited.as_micros() as u64);
                }
                Err(CallError::Limited(_)) if measured => {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) if measured => {
                    other.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }));
        next = load.arrival(start, k, spacing);
    }
    let redis_after = if killed {
        None
    } else {
        Some(redis.counters().await?)
    };
    let decisions_after = decision_buckets(metrics);
    let scripts_after = round_trips_by_script(metrics);
    for c in calls {
        c.await?;
    }
    let _ = stop.send(true);
    let from = if kill_redis { half } else { measure_from };
    let arrivals: Vec<std::time::Instant> = upstream
        .0
        .arrivals
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|t| **t >= from && **t < end)
        .map(|t| t.into_std())
        .collect();
    let measured_secs = (end - from).as_secs_f64();
    let busiest = super::max_in_any_window(&arrivals, Duration::from_secs(1));
    let granted_total: u64 = granted.iter().map(|g| g.load(Ordering::Relaxed)).sum();
    // Jain's index over the replicas that asked for anything, of the share of their demand they were granted.
    let shares: Vec<f64> = demand
        .iter()
        .zip(granted.iter())
        .filter(|(d, _)| d.load(Ordering::Relaxed) > 0)
        .map(|(d, g)| g.load(Ordering::Relaxed) as f64 / d.load(Ordering::Relaxed) as f64)
        .collect();
    let sum: f64 = shares.iter().sum();
    let squares: f64 = shares.iter().map(|x| x * x).sum();
    let jain = if squares > 0.0 {
        sum * sum / (shares.len() as f64 * squares)
    } else {
        0.0
    };
    // The same, each replica weighted by its demand: a replica that asked twice in the run weighs what it asked, so
    // that the sampling noise of the many quiet replicas of a large fleet does not pass for unfairness.
    let (mut dx, mut d, mut dxx) = (0.0, 0.0, 0.0);
    for (dem, got) in demand.iter().zip(granted.iter()) {
        let dem = dem.load(Ordering::Relaxed) as f64;
        if dem > 0.0 {
            let x = got.load(Ordering::Relaxed) as f64 / dem;
            dx += dem * x;
            d += dem;
            dxx += dem * x * x;
        }
    }
    let jain_weighted = if dxx > 0.0 { dx * dx / (d * dxx) } else { 0.0 };
    // What a perfectly fair limiter would score by chance alone: each replica's granted share then varies as a
    // binomial over its few calls (variance p(1-p)/demand), which a large fleet with a handful of calls per replica
    // cannot avoid. The measured index is to be read against this one.
    let p = if d > 0.0 { dx / d } else { 0.0 };
    let mean_inverse_demand = demand
        .iter()
        .map(|x| x.load(Ordering::Relaxed) as f64)
        .filter(|x| *x > 0.0)
        .map(|x| 1.0 / x)
        .sum::<f64>()
        / shares.len().max(1) as f64;
    let chance = |noise: f64| {
        if p > 0.0 {
            p * p / (p * p + p * (1.0 - p) * noise)
        } else {
            0.0
        }
    };
    let jain_chance = chance(mean_inverse_demand);
    let jain_weighted_chance = chance(shares.len() as f64 / d.max(1.0));
    let redis_work = match (redis_before, redis_after) {
        (Some((r0, c0, cpu0)), Some((r1, c1, cpu1))) => json!({
            "round_trips_per_second": ((r1 - r0) as f64 / measured_secs).round(),
            "round_trips_per_granted_turn": ((r1 - r0) as f64 / granted_total.max(1) as f64 * 100.0).round() / 100.0,
            "commands_per_second": ((c1 - c0) as f64 / measured_secs).round(),
            "commands_per_granted_turn": ((c1 - c0) as f64 / granted_total.max(1) as f64 * 100.0).round() / 100.0,
            "cpu_percent": ((cpu1 - cpu0) / measured_secs * 1000.0).round() / 10.0,
            "round_trips_per_granted_turn_by_script": scripts_after
                .iter()
                .map(|(k, v)| {
                    let d = v - scripts_before.get(k).copied().unwrap_or(0.0);
                    (k.clone(), json!((d / granted_total.max(1) as f64 * 100.0).round() / 100.0))
                })
                .collect::<serde_json::Map<String, Value>>(),
        }),
        _ => Value::Null,
    };
    let used = arrivals.len() as f64 / measured_secs / LIMIT as f64;
    let interactive = if load == Load::Priorities {
        let w = interactive_waits.lock().unwrap_or_else(|e| e.into_inner());
        let ms = |q: f64| (w.value_at_quantile(q) as f64 / 100.0).round() / 10.0;
        json!({
            "granted": w.len(),
            "refused": interactive_refused.load(Ordering::Relaxed),
            "wait_p50_ms": ms(0.5),
            "wait_p99_ms": ms(0.99),
            "wait_max_ms": (w.max() as f64 / 100.0).round() / 10.0,
        })
    } else {
        Value::Null
    };
    let asked: u64 = demand.iter().map(|d| d.load(Ordering::Relaxed)).sum();
    Ok(json!({
        "replicas": n,
        "load": load.name(),
        "redis": if redis.cluster { "cluster of 3 masters" } else { "one Redis" },
        "redis_killed_half_way": kill_redis,
        "offered_per_second": load.offered_per_second().round(),
        "calls_served_percent": (granted_total as f64 / asked.max(1) as f64 * 1000.0).round() / 10.0,
        "granted_wait_p50_ms": granted_wait_ms(&granted_waits, 0.5),
        "granted_wait_p99_ms": granted_wait_ms(&granted_waits, 0.99),
        "limit_per_second": LIMIT,
        "max_in_any_second": busiest,
        "limit_used_percent": (used * 1000.0).round() / 10.0,
        "upstream_429s": upstream.0.throttled.load(Ordering::Relaxed),
        "redis_errors_whole_run": redis_errors(metrics) - errors_before,
        "redis_errors_measured": redis_errors(metrics) - errors_measured_from,
        // The gauge is the process's: the promise the last replica to take a turn gave.
        "answer_promise_ms_last": (metric_sum(metrics, "pinecone_gateway_rate_limit_answer_promise_seconds") * 1000.0).round(),
        "calls_refused": refused.load(Ordering::Relaxed),
        "other_errors": other_errors.load(Ordering::Relaxed),
        "decision_p50": quantile(&decisions_before, &decisions_after, 0.5),
        "decision_p99": quantile(&decisions_before, &decisions_after, 0.99),
        "redis_work": redis_work,
        "interactive": interactive,
        "jain_fairness": (jain * 1000.0).round() / 1000.0,
        "jain_fairness_demand_weighted": (jain_weighted * 1000.0).round() / 1000.0,
        "jain_fairness_of_a_fair_limiter_by_chance": (jain_chance * 1000.0).round() / 1000.0,
        "jain_fairness_demand_weighted_of_a_fair_limiter_by_chance": (jain_weighted_chance * 1000.0).round() / 1000.0,
        "replicas_that_asked": shares.len(),
    }))
}

/// A quantile of the waits of every granted call, in ms.
fn granted_wait_ms(waits: &Mutex<hdrhistogram::Histogram<u64>>, q: f64) -> f64 {
    let w = waits.lock().unwrap_or_else(|e| e.into_inner());
    (w.value_at_quantile(q) as f64 / 100.0).round() / 10.0
}

/// Every fleet size and load asked for, then Redis killed at N = 100, interactive calls under a batch load at
/// N = 100, and the skewed load at the largest size on a cluster.
pub async fn run_all(o: &Options) -> anyhow::Result<Value> {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0,
        ])?
        .install_recorder()?;
    let wants = |r: &str| o.runs.iter().any(|x| x == r);
    let mut runs = Vec::new();
    for &n in &o.sizes {
        for (name, load) in [
            ("uniform", Load::Uniform),
            ("skewed", Load::Skewed),
            ("bursts", Load::Bursts),
        ] {
            if wants(name) {
                let mut redis = Redis::single()?;
                runs.push(run(&mut redis, &metrics, n, load, o, false).await?);
            }
        }
    }
    let hundred = o
        .sizes
        .iter()
        .copied()
        .filter(|n| *n <= 100)
        .max()
        .unwrap_or(100);
    if wants("kill") {
        let mut redis = Redis::single()?;
        runs.push(run(&mut redis, &metrics, hundred, Load::Skewed, o, true).await?);
    }
    if wants("priorities") {
        let mut redis = Redis::single()?;
        runs.push(run(&mut redis, &metrics, hundred, Load::Priorities, o, false).await?);
    }
    if wants("cluster") {
        let largest = o.sizes.iter().copied().max().unwrap_or(100);
        let mut redis = Redis::cluster()?;
        runs.push(run(&mut redis, &metrics, largest, Load::Skewed, o, false).await?);
    }
    Ok(json!({
        "scenario": "fleet: N replicas' limiters sharing 100 fetch/s through one Redis",
        "overload_ask_percent": o.overload_ask_percent,
        "close_delay_ms": o.close_delay.as_millis() as u64,
        "overload_queue_ms": o.overload_queue.as_millis() as u64,
        "answer_promise_max_ms": o.answer_promise_max.as_millis() as u64,
        "slow_percent": o.slow_percent,
        "runs": runs,
    }))
}
