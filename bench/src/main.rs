//! The benchmark harness of pinecone-gateway.
//!
//!   bench proxies      # the gateway beside straight REST, nginx and a minimal translator: latency, calls/s, CPU per
//!                      # call, latency at a fixed rate, memory (needs h2load and nginx: Debian's nghttp2-client, nginx)
//!   bench limiter      # (c) upstream rate vs. the limit under 10x overload: the busiest second, 429s
//!   bench coalescing   # (d) records/s of 200 one-ID callers under 100 fetch/s, on vs. off
//!   bench shared       # (f) Redis round trips; three replicas' combined rate and busiest second (needs redis-server)
//!   bench callers      # a batch caller at 10x a fetch limit beside an interactive one: its wait, priorities off vs on
//!   bench fleet        # N = 10, 100, 1,000 replicas' limiters sharing one index's limit through one Redis
//!   bench freshness    # (g) a write then a read under a 300 ms index lag: reads reflecting it, read-your-writes off vs on
//!   bench all --json bench/results/DATE.json
//!
//! The process under test is pinned to CPU 0; load generators and the upstream to CPU 1.
#![forbid(unsafe_code)]

/// The same allocator as the gateway, so the floor arm measures the same stack less the gateway's layers.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod callers;
mod fleet;
mod floor;
mod freshness;
mod proxies;

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
    /// Calls per second of the fixed-rate runs.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Write the summary here as JSON.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// `floor`: where to listen, and the upstream's control plane (every index is looked up at start).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    #[arg(long, default_value = "")]
    upstream: String,
    /// `floor`: HTTP/2 without negotiation (h2c) to the upstream, as the gateway's `upstream.plaintext_http2`.
    #[arg(long)]
    http2: bool,
    /// The gateway binary to measure (another build, for a before/after in one run). Default: the one beside this
    /// harness.
    #[arg(long)]
    gateway_exe: Option<std::path::PathBuf>,
    /// `upsert-large`: run the gateway under heaptrack and report bytes allocated per call (a build with
    /// `--no-default-features`, whose allocator heaptrack sees).
    #[arg(long)]
    heaptrack: bool,
    /// `proxies`: fetches of the serial run (the upsert workload makes a twentieth as many).
    #[arg(long, default_value_t = 5000)]
    serial_requests: u64,
    /// `fleet`: the fleet sizes to run, comma-separated (the run with Redis killed half way is at 100, or the
    /// largest size below it).
    #[arg(long, value_delimiter = ',', default_values_t = [10, 100, 1000])]
    fleet_sizes: Vec<usize>,
    /// `fleet`: the runs, comma-separated: `uniform`, `skewed`, `bursts` (at every size), `kill` (Redis killed half
    /// way), `priorities` (interactive calls under a saturating batch load), `cluster` (skewed, on a 3-master cluster).
    #[arg(long, value_delimiter = ',', default_values_t = ["uniform".to_string(), "skewed".to_string(), "bursts".to_string(), "kill".to_string(), "priorities".to_string(), "cluster".to_string()])]
    fleet_runs: Vec<String>,
    /// `fleet`: `limits.redis.overload_ask_percent` of every replica.
    #[arg(long, default_value_t = 125)]
    overload_ask_percent: u64,
    /// `fleet`: `limits.redis.close_delay_ms` of every replica.
    #[arg(long, default_value_t = 50)]
    close_delay_ms: u64,
    /// `fleet`: `limits.redis.overload_queue_ms` of every replica.
    #[arg(long, default_value_t = 200)]
    overload_queue_ms: u64,
    /// `fleet`: `limits.redis.answer_promise_max_ms` of every replica (0: every answer stamped).
    #[arg(long, default_value_t = 1000)]
    answer_promise_max_ms: u64,
    /// `fleet`: the share of the stand-in's answers (percent) that take 100 ms rather than 5 (an uneven upstream).
    #[arg(long, default_value_t = 0)]
    slow_percent: u64,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Scenario {
    Proxies,
    Limiter,
    Coalescing,
    Shared,
    /// A batch caller at 10x an index's fetch limit and an interactive caller at 10%: priorities off vs on.
    Callers,
    /// (g) A write then a read under a 300 ms index lag: read-your-writes off vs on.
    Freshness,
    /// N replicas' limiters in one process sharing one index's limit through one Redis (not part of `all`).
    Fleet,
    /// A 1,000 x 1,536 upsert through the gateway alone: CPU per call, or with `--heaptrack` bytes allocated.
    UpsertLarge,
    All,
    /// Not a scenario: serves the floor arm (`--listen`, `--upstream`); `proxies` starts it.
    Floor,
}

const INDEX: &str = "bench";
const NAMESPACE: &str = "ns";

/// The gateway as a child process, so its CPU time and memory are its own.
struct Gateway {
    _proc: proxies::Proc,
    addr: String,
}

fn gateway(a: &Args, control_plane: &str, config: &str) -> anyhow::Result<Gateway> {
    let dir = std::env::temp_dir().join(format!("pgw-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("gateway-{}.toml", rand_suffix()));
    // Calls name no index: the scenario's index is the default.
    std::fs::write(
        &file,
        format!("[upstream]\ndefault_index = \"{INDEX}\"\n{config}"),
    )?;
    let exe = match &a.gateway_exe {
        Some(exe) => exe.clone(),
        None => std::env::current_exe()?.with_file_name("pinecone-gateway"),
    };
    let (proc, addr) =
        proxies::start_gateway(&exe, control_plane, &file, "warn,pinecone_gateway=info")?;
    Ok(Gateway { _proc: proc, addr })
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

async fn emulator(enforce_limits: bool) -> anyhow::Result<Emulator> {
    let emu = Emulator::start(
        "127.0.0.1:0".parse()?,
        EmulatorOptions {
            enforce_limits,
            ..Default::default()
        },
    )
    .await?;
    emu.create_index(INDEX, 8, "cosine")
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

fn micros(h: &Histogram<u64>, q: f64) -> u64 {
    h.value_at_quantile(q)
}

fn summary(h: &Histogram<u64>) -> Value {
    json!({"count": h.len(), "p50_us": micros(h, 0.5), "p99_us": micros(h, 0.99), "p999_us": micros(h, 0.999), "max_us": h.max()})
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
    let gw = gateway(a, &emu.url(), "")?;
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
    dir: std::path::PathBuf,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // Killed and waited for before its directory goes, so nothing is written into it afterwards.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl RedisServer {
    /// Kills it now (an outage), keeping its directory until it is dropped.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_server() -> anyhow::Result<RedisServer> {
    redis_server_on(1)
}

/// A redis-server pinned to `cpu`.
fn redis_server_on(cpu: usize) -> anyhow::Result<RedisServer> {
    redis_server_with(cpu, &[])
}

/// A redis-server pinned to `cpu`, with more arguments (`--cluster-enabled yes`…).
fn redis_server_with(cpu: usize, extra: &[&str]) -> anyhow::Result<RedisServer> {
    // A cluster node also listens 10,000 above its port: a node whose bus port is taken, or past 65,535, exits.
    let port = loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        if port <= 55_535 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            break port;
        }
    };
    let dir = std::env::temp_dir().join(format!("pgw-bench-redis-{port}"));
    std::fs::create_dir_all(&dir)?;
    let mut child = Command::new("taskset")
        .args([
            "-c",
            &cpu.to_string(),
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
        ])
        .arg(port.to_string())
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(&dir)
        .args(extra)
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
    Ok(RedisServer { child, port, dir })
}

async fn shared(a: &Args) -> anyhow::Result<Value> {
    use pinecone_gateway::stack::limit::shared::{
        RedisLimits, RedisSettings, Take, TakeBucket, TakeVerdict, TurnKind,
    };
    let redis = redis_server()?;
    let url = format!("redis://127.0.0.1:{}/", redis.port);

    // The cost of one turn: the Lua script's round trip, one call at a time, two buckets as a namespaced call, each
    // holding about 100 requests in its window as a bucket saturated at 100/s does (spread over 100 keys).
    let decider = RedisLimits::new(RedisSettings {
        timeout: Duration::from_secs(1),
        overload_ask_percent: 0,
        ..RedisSettings::new(&url, "bench-cost")
    })
    .map_err(anyhow::Error::msg)?;
    let keys: Vec<[TakeBucket; 2]> = (0..100)
        .map(|i| {
            let ns = format!("{NAMESPACE}-{i}");
            [
                TakeBucket {
                    key: decider.key(INDEX, "query", "requests", Some(&ns)),
                    limit: u64::MAX / 4,
                    cost: 1,
                },
                TakeBucket {
                    key: decider.key(INDEX, "query", "records", Some(&ns)),
                    limit: u64::MAX / 4,
                    cost: 1,
                },
            ]
        })
        .collect();
    let mut turn = 0usize;
    let mut cost = Histogram::<u64>::new(3)?;
    let mut guard_cost = Histogram::<u64>::new(3)?;
    let end = Instant::now() + Duration::from_secs(a.warmup_secs + a.duration_secs);
    let measure_from = Instant::now() + Duration::from_secs(a.warmup_secs);
    while Instant::now() < end {
        turn += 1;
        let t = Instant::now();
        let v = decider
            .take(&Take {
                buckets: &keys[turn % keys.len()],
                kind: TurnKind::Default,
                max_wait: Duration::from_secs(1),
                deadline: tokio::time::Instant::now() + Duration::from_secs(1),
                period: Duration::from_secs(1),
                expected: Duration::from_millis(50),
                class: "fetch",
            })
            .await;
        let Some(TakeVerdict::Go { turn: given, .. }) = v else {
            anyhow::bail!("Redis refused a turn");
        };
        let decided = t.elapsed();
        // Its stamp after the answer, sent alone (the most it costs: it usually rides on the next turn).
        let g = Instant::now();
        decider.close(given, false);
        decider.flush_closes(true).await;
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
        gateway(a, &emu.url(), &config)?,
        gateway(a, &emu.url(), &config)?,
        gateway(a, &emu.url(), &config)?,
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
        "redis_stamp_alone": summary(&guard_cost),
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
    let gw = gateway(a, &emu.url(), config)?;
    let c = client(&gw.addr).await?;
    let vectors: Vec<p::Vector> = (0..CALLERS)
        .map(|i| p::Vector {
            id: format!("one-{i}"),
            values: vec![0.5; 8],
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

fn print_table(v: &Value) {
    println!("\n## {}", v["scenario"].as_str().unwrap_or(""));
    if let Some(arms) = v["arms"].as_array() {
        println!(
            "  {:<66} {:<18} {:>9} {:>9} {:>10} {:>9} {:>8} {:>8} {:>8} {:>7}",
            "arm",
            "workload",
            "serial µs",
            "CPU µs",
            "load /s",
            "CPU µs",
            "p50 µs",
            "p99 µs",
            "p999 µs",
            "RSS MB"
        );
        let cell = |a: &Value, k: &str| a[k].as_f64().map_or("–".to_string(), |x| x.to_string());
        for a in arms {
            let r = &a["at_rate"];
            println!(
                "  {:<66} {:<18} {:>9} {:>9} {:>10} {:>9} {:>8} {:>8} {:>8} {:>7}",
                a["arm"].as_str().unwrap_or(""),
                a["workload"].as_str().unwrap_or(""),
                cell(a, "serial_mean_us"),
                cell(a, "serial_cpu_us_per_call"),
                cell(a, "load_calls_per_second"),
                cell(a, "load_cpu_us_per_call"),
                cell(r, "p50_us"),
                cell(r, "p99_us"),
                cell(r, "p999_us"),
                cell(a, "rss_after_mb"),
            );
        }
    }
    if let Some(obj) = v.as_object() {
        for (k, val) in obj.iter().filter(|(k, _)| *k != "scenario" && *k != "arms") {
            println!("  {k:<48} {val}");
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.scenario == Scenario::Floor {
        // The runtime the gateway picks with the same CPUs (src/main.rs): one thread on one CPU.
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let mut builder = if cpus == 1 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            tokio::runtime::Builder::new_multi_thread()
        };
        return builder.enable_all().build()?.block_on(floor::serve(
            args.listen,
            &args.upstream,
            args.http2,
        ));
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?
        .block_on(scenarios(args))
}

async fn scenarios(args: Args) -> anyhow::Result<()> {
    // The load generator on the other core than the process under test.
    let _ = Command::new("taskset")
        .args(["-p", "-c", "1", &std::process::id().to_string()])
        .output();
    let mut results = Vec::new();
    let all = args.scenario == Scenario::All;
    if all || args.scenario == Scenario::Proxies {
        let exe = std::env::current_exe()?;
        let plan = proxies::Plan {
            serial_requests: args.serial_requests,
            load_secs: args.duration_secs,
            rate: args.rate,
            rate_secs: args.duration_secs,
            dir: std::env::temp_dir().join(format!("pgw-bench-proxies-{}", std::process::id())),
        };
        let gateway_exe = args
            .gateway_exe
            .clone()
            .unwrap_or_else(|| exe.with_file_name("pinecone-gateway"));
        let r =
            tokio::task::spawn_blocking(move || proxies::run(&plan, &gateway_exe, &exe)).await??;
        results.push(r);
    }
    if all || args.scenario == Scenario::UpsertLarge {
        let exe = args.gateway_exe.clone().map_or_else(
            || std::env::current_exe().map(|e| e.with_file_name("pinecone-gateway")),
            Ok,
        )?;
        let dir = std::env::temp_dir().join(format!("pgw-bench-upsert-{}", std::process::id()));
        let (calls, heaptrack) = ((args.serial_requests / 250).max(4), args.heaptrack);
        results.push(
            tokio::task::spawn_blocking(move || {
                proxies::upsert_large(&exe, &dir, calls, heaptrack)
            })
            .await??,
        );
    }
    if all || args.scenario == Scenario::Limiter {
        results.push(limiter(&args).await?);
    }
    if all || args.scenario == Scenario::Coalescing {
        results.push(coalescing(&args).await?);
    }
    if all || args.scenario == Scenario::Shared {
        results.push(shared(&args).await?);
    }
    if all || args.scenario == Scenario::Callers {
        results.push(callers::run(&args).await?);
    }
    if args.scenario == Scenario::Fleet {
        results.push(
            fleet::run_all(&fleet::Options {
                sizes: args.fleet_sizes.clone(),
                runs: args.fleet_runs.clone(),
                warmup: Duration::from_secs(args.warmup_secs),
                duration: Duration::from_secs(args.duration_secs),
                overload_ask_percent: args.overload_ask_percent,
                close_delay: Duration::from_millis(args.close_delay_ms),
                overload_queue: Duration::from_millis(args.overload_queue_ms),
                answer_promise_max: Duration::from_millis(args.answer_promise_max_ms),
                slow_percent: args.slow_percent.min(100),
            })
            .await?,
        );
    }
    if all || args.scenario == Scenario::Freshness {
        results.push(freshness::run(&args).await?);
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
