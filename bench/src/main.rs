//! The benchmark harness: runs the gateway (a child process, pinned to CPU 0) in front of the built-in emulator and
//! measures it from this process (pinned to CPU 1), with HDR histograms, a warm-up, a bounded duration, a table on
//! stdout and a JSON summary.
//!
//!   cargo run --release --bin bench -- latency      # (a) added latency of a 10-ID fetch vs. straight REST, open loop
//!   cargo run --release --bin bench -- throughput   # (b) max calls/s with limits out of the way, CPU per call, closed loop
//!   cargo run --release --bin bench -- limiter      # (c) upstream rate vs. the limit under 10x overload, upstream 429s
//!   cargo run --release --bin bench -- coalescing   # (d) records/s of 200 one-ID callers under 100 fetch/s, on vs. off
//!   cargo run --release --bin bench -- memory       # (e) resident memory idle and under load
//!   cargo run --release --bin bench -- shared       # (f) cost of a Redis decision; three replicas' combined rate
//!   cargo run --release --bin bench -- all --json bench.json
#![forbid(unsafe_code)]

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use pinecone_gateway::emulator::{Emulator, EmulatorOptions};
use pinecone_gateway::pb::pinecone as p;
use pinecone_gateway::pb::pinecone::vector_service_client::VectorServiceClient;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

#[derive(Parser)]
struct Args {
    scenario: Scenario,
    /// Seconds measured per scenario, after the warm-up.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Seconds of warm-up, not measured.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Calls per second offered in the open-loop latency scenario.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Concurrent callers in the closed-loop throughput scenario.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Write the summary here as JSON.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Dimension of the benchmark index's vectors (8 keeps the gateway's own work in view; 1536 is a common
    /// embedding size, where decoding the answer dominates).
    #[arg(long, default_value_t = 8)]
    dimension: usize,
}

/// `--dimension`, set once at start.
static DIMENSION: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

fn dimension() -> usize {
    DIMENSION.get().copied().unwrap_or(8)
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Scenario {
    Latency,
    Throughput,
    Limiter,
    Coalescing,
    Memory,
    Shared,
    All,
}

const INDEX: &str = "bench";
const NAMESPACE: &str = "ns";

/// The gateway as a child process, so its CPU time and memory are its own.
struct Gateway {
    child: Child,
    addr: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gateway(control_plane: &str, config: &str) -> anyhow::Result<Gateway> {
    let dir = std::env::temp_dir().join(format!("pgw-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("gateway-{}.toml", rand_suffix()));
    std::fs::write(&file, config)?;
    let exe = std::env::current_exe()?.with_file_name("pinecone-gateway");
    let mut child = Command::new("taskset")
        .args(["-c", "0"])
        .arg(exe)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .args([
            "--log-level",
            "warn,pinecone_gateway=info",
            "--control-plane-url",
            control_plane,
        ])
        .args(["--default-index", INDEX, "--config"])
        .arg(&file)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .ok_or_else(|| anyhow::anyhow!("the gateway exited"))??;
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && let Some(a) = v["addr"].as_str()
        {
            break a.to_string();
        }
    };
    // Keep draining its logs so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    Ok(Gateway { child, addr })
}

/// The most arrivals in any one window (a strict sliding count, the benchmark's own).
fn max_in_any_window(arrivals: &[std::time::Instant], window: Duration) -> usize {
    let mut times = arrivals.to_vec();
    times.sort();
    let (mut most, mut first) = (0, 0);
    for (last, t) in times.iter().enumerate() {
        while *t - times[first] >= window {
            first += 1;
        }
        most = most.max(last - first + 1);
    }
    most
}

fn rand_suffix() -> u32 {
    rand::random()
}

/// Every rate limit switched off, for scenarios that measure the gateway itself.
const NO_LIMITS: &str = "[limits.rates]\n\
    upsert = { namespace_requests_per_second = 0, namespace_bytes_per_second = 0 }\n\
    query = { namespace_requests_per_second = 0 }\n\
    fetch = { index_requests_per_second = 0 }\n\
    describe_index_stats = { index_requests_per_second = 0 }\n\
    [server]\nmax_concurrent_calls = 100000\n";

async fn emulator(enforce_limits: bool) -> anyhow::Result<Emulator> {
    let emu = Emulator::start(
        "127.0.0.1:0".parse()?,
        EmulatorOptions {
            enforce_limits,
            ..Default::default()
        },
    )
    .await?;
    emu.create_index(INDEX, dimension() as u32, "cosine")
        .await
        .map_err(anyhow::Error::msg)?;
    Ok(emu)
}

async fn client(addr: &str) -> anyhow::Result<VectorServiceClient<Channel>> {
    Ok(VectorServiceClient::new(
        Channel::from_shared(format!("http://{addr}"))?
            .connect()
            .await?,
    ))
}

async fn seed(c: &mut VectorServiceClient<Channel>) -> anyhow::Result<()> {
    let vectors = (0..100)
        .map(|i| p::Vector {
            id: format!("id-{i}"),
            // Embedding-like values: every float needs its full precision on the wire.
            values: (0..dimension())
                .map(|j| ((i * dimension() + j) as f32 * 0.000_731).sin())
                .collect(),
            ..Default::default()
        })
        .collect();
    c.upsert(p::UpsertRequest {
        vectors,
        namespace: NAMESPACE.into(),
    })
    .await?;
    Ok(())
}

fn ten_ids() -> Vec<String> {
    (0..10).map(|i| format!("id-{i}")).collect()
}

fn micros(h: &Histogram<u64>, q: f64) -> u64 {
    h.value_at_quantile(q)
}

fn summary(h: &Histogram<u64>) -> Value {
    json!({"count": h.len(), "p50_us": micros(h, 0.5), "p99_us": micros(h, 0.99), "p999_us": micros(h, 0.999), "max_us": h.max()})
}

/// Open loop: calls start on a fixed schedule whatever the answers do; latency counts from the scheduled start, so
/// a slow answer cannot hide the calls queued behind it.
async fn open_loop<F, Fut>(
    rate: u64,
    warmup: Duration,
    duration: Duration,
    call: F,
) -> anyhow::Result<Histogram<u64>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut hist = Histogram::<u64>::new(3)?;
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let start = tokio::time::Instant::now();
    let end = start + warmup + duration;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut next = start;
    while next < end {
        tokio::time::sleep_until(next).await;
        let scheduled = next;
        let measured = scheduled >= start + warmup;
        let fut = call();
        let tx = tx.clone();
        tokio::spawn(async move {
            let ok = fut.await.is_ok();
            let _ = tx.send((measured, ok, scheduled.elapsed()));
        });
        next += interval;
    }
    drop(tx);
    let mut errors = 0;
    while let Some((measured, ok, took)) = rx.recv().await {
        if measured {
            if ok {
                hist.record(took.as_micros() as u64)?;
            } else {
                errors += 1;
            }
        }
    }
    anyhow::ensure!(errors == 0, "{errors} calls failed");
    Ok(hist)
}

async fn latency(a: &Args) -> anyhow::Result<Value> {
    let emu = emulator(false).await?;
    let gw = gateway(&emu.url(), NO_LIMITS)?;
    let mut c = client(&gw.addr).await?;
    seed(&mut c).await?;
    let host = emu
        .create_index("direct", dimension() as u32, "cosine")
        .await
        .map_err(anyhow::Error::msg)?;
    let warmup = Duration::from_secs(a.warmup_secs);
    let duration = Duration::from_secs(a.duration_secs);

    // Straight to the emulator's REST API: the same fetch, the same JSON, no gateway.
    let http = reqwest::Client::new();
    let query: String = ten_ids()
        .iter()
        .map(|i| format!("ids={i}&"))
        .collect::<String>()
        + "namespace=ns";
    let url = format!("http://{host}/vectors/fetch?{query}");
    // Both arms run at the same time, interleaved by half a period, so that they see the same machine: measured one
    // after the other, the noise of a shared 2-core machine moved the difference by a millisecond either way.
    let direct_arm = open_loop(a.rate, warmup, duration, || {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http
                .get(url)
                .header("Api-Key", "k")
                .header("X-Pinecone-Api-Version", "2025-10")
                .send()
                .await?;
            anyhow::ensure!(r.status().is_success(), "{}", r.status());
            r.bytes().await?;
            Ok(())
        }
    });
    let half_period = Duration::from_nanos(500_000_000 / a.rate.max(1));
    let through_arm = async {
        tokio::time::sleep(half_period).await;
        open_loop(a.rate, warmup, duration, || {
            let mut c = c.clone();
            async move {
                c.fetch(p::FetchRequest {
                    ids: ten_ids(),
                    namespace: NAMESPACE.into(),
                })
                .await?;
                Ok(())
            }
        })
        .await
    };
    let (direct, through) = tokio::join!(direct_arm, through_arm);
    let (direct, through) = (direct?, through?);
    let added = |q: f64| micros(&through, q) as i64 - micros(&direct, q) as i64;
    Ok(json!({
        "scenario": "a: added latency of a 10-ID fetch, open loop, both arms at once",
        "rate_per_second": a.rate,
        "direct_rest": summary(&direct),
        "through_gateway": summary(&through),
        "added_p50_us": added(0.5),
        "added_p99_us": added(0.99),
        "added_p999_us": added(0.999),
    }))
}

/// CPU time (user + system) of a process, in seconds, from /proc.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    // Linux reports CPU time in clock ticks, 100 per second on every common configuration.
    Ok(ticks / 100.0)
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS"))
}

/// Closed loop: `concurrency` callers, each sending its next call when the last one answers.
async fn closed_loop(
    c: &VectorServiceClient<Channel>,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<(Histogram<u64>, u64)> {
    let end = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).expect("histogram");
            let mut n = 0u64;
            while Instant::now() < end {
                let t = Instant::now();
                if c.fetch(p::FetchRequest {
                    ids: ten_ids(),
                    namespace: NAMESPACE.into(),
                })
                .await
                .is_ok()
                {
                    let _ = h.record(t.elapsed().as_micros() as u64);
                    n += 1;
                }
            }
            (h, n)
        }));
    }
    let mut hist = Histogram::<u64>::new(3)?;
    let mut calls = 0;
    for t in tasks {
        let (h, n) = t.await?;
        hist.add(h)?;
        calls += n;
    }
    Ok((hist, calls))
}

async fn throughput(a: &Args) -> anyhow::Result<Value> {
    let emu = emulator(false).await?;
    let gw = gateway(&emu.url(), NO_LIMITS)?;
    let mut c = client(&gw.addr).await?;
    seed(&mut c).await?;
    closed_loop(&c, a.concurrency, Duration::from_secs(a.warmup_secs)).await?;
    let cpu_before = cpu_seconds(gw.child.id())?;
    let start = Instant::now();
    let (hist, calls) =
        closed_loop(&c, a.concurrency, Duration::from_secs(a.duration_secs)).await?;
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(gw.child.id())? - cpu_before;
    Ok(json!({
        "scenario": "b: maximum throughput, limits out of the way, closed loop",
        "concurrency": a.concurrency,
        "calls": calls,
        "calls_per_second": (calls as f64 / elapsed).round(),
        "gateway_cpu_us_per_call": (cpu * 1e6 / calls.max(1) as f64).round(),
        "latency": summary(&hist),
        "gateway_rss_kib_after": rss_kib(gw.child.id())?,
    }))
}

/// Offers `offered` describe_index_stats calls per second for the warm-up and the duration, spread over `clients`;
/// returns the upstream rate Pinecone saw during the measured part.
async fn offer_stats(
    emu: &Emulator,
    clients: &[VectorServiceClient<Channel>],
    offered: u64,
    a: &Args,
) -> anyhow::Result<f64> {
    let warmup = Duration::from_secs(a.warmup_secs);
    let duration = Duration::from_secs(a.duration_secs);
    let before_warm = emu.count(INDEX, "describe_index_stats");
    let start = tokio::time::Instant::now();
    let measure_from = start + warmup;
    let mut next = start;
    let interval = Duration::from_nanos(1_000_000_000 / offered);
    let mut tasks = Vec::new();
    let mut at_measure_start = None;
    let mut n = 0usize;
    while next < start + warmup + duration {
        tokio::time::sleep_until(next).await;
        if at_measure_start.is_none() && next >= measure_from {
            at_measure_start = Some(emu.count(INDEX, "describe_index_stats"));
        }
        let mut c = clients[n % clients.len()].clone();
        n += 1;
        tasks.push(tokio::spawn(async move {
            let mut r = tonic::Request::new(p::DescribeIndexStatsRequest::default());
            r.set_timeout(Duration::from_millis(500));
            let _ = c.describe_index_stats(r).await;
        }));
        next += interval;
    }
    let at_end = emu.count(INDEX, "describe_index_stats");
    for t in tasks {
        let _ = t.await;
    }
    let measured = at_end - at_measure_start.unwrap_or(before_warm);
    Ok(measured as f64 / duration.as_secs_f64())
}

async fn limiter(a: &Args) -> anyhow::Result<Value> {
    // Pinecone's limits enforced by the emulator; the gateway's defaults; 10x the describe_index_stats limit offered.
    let emu = emulator(true).await?;
    let gw = gateway(&emu.url(), "")?;
    let c = client(&gw.addr).await?;
    let limit = 100.0;
    let offered = 1000;
    let rate = offer_stats(&emu, &[c], offered, a).await?;
    let busiest = max_in_any_window(
        &emu.arrivals(INDEX, "describe_index_stats"),
        Duration::from_secs(1),
    );
    Ok(json!({
        "scenario": "c: limiter accuracy under 10x overload (describe_index_stats, 100/s per index)",
        "max_in_any_one_second_window": busiest,
        "offered_per_second": offered,
        "limit_per_second": limit,
        "upstream_per_second": (rate * 10.0).round() / 10.0,
        "upstream_vs_limit_percent": ((rate / limit - 1.0) * 1000.0).round() / 10.0,
        "upstream_429s": emu.throttled(INDEX),
    }))
}

/// A redis-server of the benchmark's own on a free loopback port, pinned with the load generator.
struct RedisServer {
    child: Child,
    port: u16,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_server() -> anyhow::Result<RedisServer> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = std::env::temp_dir().join(format!("pgw-bench-redis-{port}"));
    std::fs::create_dir_all(&dir)?;
    let mut child = Command::new("taskset")
        .args(["-c", "1", "redis-server", "--bind", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .ok_or_else(|| anyhow::anyhow!("redis-server exited (is it installed?)"))??;
        if line.contains("Ready to accept connections") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    Ok(RedisServer { child, port })
}

async fn shared(a: &Args) -> anyhow::Result<Value> {
    use pinecone_gateway::stack::limit::shared::{
        Bucket, GuardVerdict, RedisSettings, Shared, Verdict,
    };
    let redis = redis_server()?;
    let url = format!("redis://127.0.0.1:{}/", redis.port);

    // The cost of one decision: the Lua script's round trip, one call at a time, two buckets as a namespaced call.
    let decider = Shared::new(RedisSettings {
        url: url.clone(),
        cluster: false,
        timeout: Duration::from_secs(1),
        reconnect_interval: Duration::from_secs(1),
        key_prefix: "bench-cost".into(),
    })
    .map_err(anyhow::Error::msg)?;
    let buckets = [
        Bucket {
            key: decider.key(INDEX, "query", "requests", Some(NAMESPACE)),
            spacing: Duration::from_nanos(1),
            cost: 1,
        },
        Bucket {
            key: decider.key(INDEX, "query", "records", None),
            spacing: Duration::from_nanos(1),
            cost: 1,
        },
    ];
    // The guard's cost grows with the requests in its window: spread over 100 keys, each holds about 100, as a
    // bucket saturated at 100/s does.
    let guard_keys: Vec<String> = (0..100)
        .map(|i| {
            format!(
                "{}:sent:{i}",
                decider.key(INDEX, "query", "requests", Some(NAMESPACE))
            )
        })
        .collect();
    let mut turn = 0usize;
    let mut cost = Histogram::<u64>::new(3)?;
    let mut guard_cost = Histogram::<u64>::new(3)?;
    let end = Instant::now() + Duration::from_secs(a.warmup_secs + a.duration_secs);
    let measure_from = Instant::now() + Duration::from_secs(a.warmup_secs);
    while Instant::now() < end {
        let t = Instant::now();
        let v = decider.decide(&buckets, Duration::from_secs(1)).await;
        anyhow::ensure!(matches!(v, Some(Verdict::Go(_))), "Redis refused: {v:?}");
        let decided = t.elapsed();
        // The guard before sending and its stamp after the answer: the other two round trips of a call.
        let g = Instant::now();
        turn += 1;
        let guards = [(guard_keys[turn % guard_keys.len()].clone(), u64::MAX / 2, 1)];
        let Some(GuardVerdict::Admitted(guarded)) = decider
            .guard(&guards, Duration::from_secs(1), Duration::from_secs(1))
            .await
        else {
            anyhow::bail!("the guard refused");
        };
        decider.close(guarded).await;
        if t >= measure_from {
            cost.record(decided.as_micros() as u64)?;
            guard_cost.record(g.elapsed().as_micros() as u64)?;
        }
    }

    // Three replicas in redis mode, 10x the describe_index_stats limit offered across them.
    let emu = emulator(true).await?;
    let config = format!(
        "[limits]\nmode = \"redis\"\nreplicas = 3\n[limits.redis]\nurl = \"{url}\"\nkey_prefix = \"bench\"\n"
    );
    let gws = [
        gateway(&emu.url(), &config)?,
        gateway(&emu.url(), &config)?,
        gateway(&emu.url(), &config)?,
    ];
    let mut clients = Vec::new();
    for gw in &gws {
        clients.push(client(&gw.addr).await?);
    }
    let limit = 100.0;
    let rate = offer_stats(&emu, &clients, 1000, a).await?;
    let busiest = max_in_any_window(
        &emu.arrivals(INDEX, "describe_index_stats"),
        Duration::from_secs(1),
    );
    Ok(json!({
        "scenario": "f: shared limits through Redis (redis mode)",
        "redis_decision": summary(&cost),
        "redis_guard_and_stamp": summary(&guard_cost),
        "max_in_any_one_second_window": busiest,
        "replicas": 3,
        "offered_per_second": 1000,
        "limit_per_second": limit,
        "combined_upstream_per_second": (rate * 10.0).round() / 10.0,
        "combined_vs_limit_percent": ((rate / limit - 1.0) * 1000.0).round() / 10.0,
        "upstream_429s": emu.throttled(INDEX),
    }))
}

/// 200 closed-loop callers, each fetching its own single ID, against Pinecone's default 100 fetch/s: records served
/// per second, upstream requests per second and upstream 429s.
async fn one_id_callers(config: &str, a: &Args) -> anyhow::Result<Value> {
    const CALLERS: usize = 200;
    let emu = emulator(true).await?;
    let gw = gateway(&emu.url(), config)?;
    let c = client(&gw.addr).await?;
    let vectors: Vec<p::Vector> = (0..CALLERS)
        .map(|i| p::Vector {
            id: format!("one-{i}"),
            // Embedding-like values: every float needs its full precision on the wire.
            values: (0..dimension())
                .map(|j| ((i * dimension() + j) as f32 * 0.000_731).sin())
                .collect(),
            ..Default::default()
        })
        .collect();
    c.clone()
        .upsert(p::UpsertRequest {
            vectors,
            namespace: NAMESPACE.into(),
        })
        .await?;
    let run = |duration: Duration| {
        let end = Instant::now() + duration;
        let tasks: Vec<_> = (0..CALLERS)
            .map(|i| {
                let mut c = c.clone();
                tokio::spawn(async move {
                    let (mut records, mut errors) = (0u64, 0u64);
                    while Instant::now() < end {
                        let mut r = tonic::Request::new(p::FetchRequest {
                            ids: vec![format!("one-{i}")],
                            namespace: NAMESPACE.into(),
                        });
                        r.set_timeout(Duration::from_secs(5));
                        match c.fetch(r).await {
                            Ok(resp) => records += resp.get_ref().vectors.len() as u64,
                            Err(_) => {
                                errors += 1;
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                    (records, errors)
                })
            })
            .collect();
        async move {
            let (mut records, mut errors) = (0, 0);
            for t in tasks {
                let (r, e) = t.await?;
                records += r;
                errors += e;
            }
            anyhow::Ok((records, errors))
        }
    };
    run(Duration::from_secs(a.warmup_secs)).await?;
    let before = emu.count(INDEX, "fetch");
    let start = Instant::now();
    let (records, errors) = run(Duration::from_secs(a.duration_secs)).await?;
    let elapsed = start.elapsed().as_secs_f64();
    let upstream = emu.count(INDEX, "fetch") - before;
    Ok(json!({
        "records_per_second": (records as f64 / elapsed).round(),
        "upstream_fetches_per_second": (upstream as f64 / elapsed * 10.0).round() / 10.0,
        "ids_per_upstream_fetch": (records as f64 / upstream.max(1) as f64).round(),
        "caller_errors": errors,
        "upstream_429s": emu.throttled(INDEX),
    }))
}

async fn coalescing(a: &Args) -> anyhow::Result<Value> {
    let on = one_id_callers("", a).await?;
    let off = one_id_callers("[coalescing]\nfetch = false\n", a).await?;
    let gain = on["records_per_second"].as_f64().unwrap_or(0.0)
        / off["records_per_second"].as_f64().unwrap_or(1.0).max(1.0);
    Ok(json!({
        "scenario": "d: coalescing gain, 200 callers x 1 ID, default 100 fetch/s per index",
        "coalescing_on": on,
        "coalescing_off": off,
        "gain": (gain * 10.0).round() / 10.0,
    }))
}

async fn memory(a: &Args) -> anyhow::Result<Value> {
    let emu = emulator(false).await?;
    let gw = gateway(&emu.url(), NO_LIMITS)?;
    let mut c = client(&gw.addr).await?;
    seed(&mut c).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib(gw.child.id())?;
    let (_, calls) = closed_loop(&c, a.concurrency, Duration::from_secs(a.duration_secs)).await?;
    let loaded = rss_kib(gw.child.id())?;
    Ok(json!({
        "scenario": "e: resident memory of the gateway",
        "idle_rss_kib": idle,
        "after_load_rss_kib": loaded,
        "load_calls": calls,
        "load_concurrency": a.concurrency,
    }))
}

fn print_table(v: &Value) {
    println!("\n## {}", v["scenario"].as_str().unwrap_or(""));
    if let Some(obj) = v.as_object() {
        for (k, val) in obj.iter().filter(|(k, _)| *k != "scenario") {
            println!("  {k:<28} {val}");
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = DIMENSION.set(args.dimension);
    // The load generator on the other core than the gateway.
    let _ = Command::new("taskset")
        .args(["-p", "-c", "1", &std::process::id().to_string()])
        .output();
    let mut results = Vec::new();
    let all = args.scenario == Scenario::All;
    if all || args.scenario == Scenario::Latency {
        results.push(latency(&args).await?);
    }
    if all || args.scenario == Scenario::Throughput {
        results.push(throughput(&args).await?);
    }
    if all || args.scenario == Scenario::Limiter {
        results.push(limiter(&args).await?);
    }
    if all || args.scenario == Scenario::Coalescing {
        results.push(coalescing(&args).await?);
    }
    if all || args.scenario == Scenario::Memory {
        results.push(memory(&args).await?);
    }
    if all || args.scenario == Scenario::Shared {
        results.push(shared(&args).await?);
    }
    for r in &results {
        print_table(r);
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let doc = json!({"machine": {"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "cpu": cpu}, "results": results});
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(())
}
