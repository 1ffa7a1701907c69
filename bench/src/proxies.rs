//! The gateway side by side with what a platform team would otherwise run, in one run, on one machine: straight
//! REST to the upstream, nginx as a plain reverse proxy (with and without an access log), the floor arm (a minimal
//! gRPC → REST translator: src/floor.rs) and the gateway (limits and coalescing off, logs at warn and at the default
//! info; then with limits, coalescing and ordering on but not binding).
//!
//! Two workloads, each served by every arm from the same upstream (the built-in emulator, in a process of its own):
//! a 1-ID fetch (the per-call cost of the stack) and an upsert of 100 vectors of 1,536 dimensions (the cost of
//! translating big messages: protobuf in, JSON out; nginx passes the JSON through, so only the floor arm and straight
//! REST compare there). The proxy under test runs alone on CPU 0; the load generator (h2load, from Debian's
//! nghttp2-client: it sends pre-encoded gRPC frames) and the upstream share CPU 1. Per arm and workload: serial
//! calls (one caller, one stream: latency), load (several streams: calls per second, and the proxy's CPU per call
//! from /proc/PID/task/*/schedstat), and for the fetch a fixed rate (latency percentiles from h2load's per-request
//! log). Figures are ratios to the arms beside them.

use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process, killed on drop.
pub struct Proc {
    child: Child,
    pub pid: u32,
}

impl Proc {
    /// Waits for it to exit by itself.
    pub fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `program` pinned to `cpu` and returns it with the lines it printed (stdout and stderr) up to the first one
/// containing `wait_for`; with none, at once (nginx says nothing when it starts).
fn spawn_pinned(
    cpu: u32,
    program: &Path,
    args: &[&str],
    wait_for: Option<&str>,
) -> anyhow::Result<(Proc, Vec<String>)> {
    let mut child = Command::new("taskset")
        .args(["-c", &cpu.to_string()])
        .arg(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    for pipe in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                // Keep draining after the line was found, so the child never blocks on a full pipe.
                let _ = tx.send(line);
            }
        });
    }
    let proc = Proc { child, pid };
    let mut lines = Vec::new();
    let Some(wait_for) = wait_for else {
        return Ok((proc, lines));
    };
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .with_context(|| format!("{} said nothing with {wait_for:?}", program.display()))?;
        let found = line.contains(wait_for);
        lines.push(line);
        if found {
            return Ok((proc, lines));
        }
    }
}

/// CPU time used by every thread of `pid`, in nanoseconds.
pub fn cpu_ns(pid: u32) -> anyhow::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat"))?;
        total += stat
            .split_whitespace()
            .next()
            .context("schedstat")?
            .parse::<u64>()?;
    }
    Ok(total)
}

pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("VmRSS")?
        .parse()
        .map_err(Into::into)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn tool(name: &str) -> anyhow::Result<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if path.is_empty() {
        bail!("{name} is not on the PATH (Debian: apt-get install nghttp2-client nginx)");
    }
    Ok(PathBuf::from(path))
}

/// What h2load sends to an arm.
#[derive(Clone)]
enum Target {
    /// A REST request with an `Api-Key` header: `GET url`, or `POST url` with a JSON body.
    Rest { url: String, body: Option<PathBuf> },
    /// A gRPC call to `url` (`http://addr/VectorService/Method`) for `index`, the frame in `body`.
    Grpc {
        url: String,
        index: String,
        body: PathBuf,
    },
}

impl Target {
    fn args(&self) -> Vec<String> {
        match self {
            Target::Rest { url, body } => {
                let mut a = vec!["-H".into(), "Api-Key: bench".into()];
                if let Some(body) = body {
                    a.extend(["-d".into(), body.display().to_string()]);
                    a.extend(["-H".into(), "content-type: application/json".into()]);
                }
                a.push(url.clone());
                a
            }
            Target::Grpc { url, index, body } => vec![
                "-d".into(),
                body.display().to_string(),
                "-H".into(),
                "content-type: application/grpc".into(),
                "-H".into(),
                "te: trailers".into(),
                "-H".into(),
                format!("pinecone-index: {index}"),
                // Names the caller to the gateway (the callers arm configures it; elsewhere it is `other`).
                "-H".into(),
                "x-caller: bench".into(),
                url.clone(),
            ],
        }
    }
}

/// One h2load run: requests done, requests per second, and the request-time line (min, max, mean in µs).
struct H2load {
    done: u64,
    failed: u64,
    per_second: f64,
    min_us: f64,
    mean_us: f64,
}

fn parse_time(v: &str) -> Option<f64> {
    let (num, unit) = v
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| v.split_at(i))?;
    let n: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => n,
        "ms" => n * 1e3,
        "s" => n * 1e6,
        _ => return None,
    })
}

fn h2load(extra: &[String], target: &Target) -> anyhow::Result<H2load> {
    let out = Command::new("taskset")
        .args(["-c", "1", "h2load"])
        .args(extra)
        .args(target.args())
        .output()
        .context("running h2load")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |line_start: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(line_start))
            .map(str::to_string)
            .with_context(|| {
                format!(
                    "h2load {} ({}) printed no `{line_start}`:\n{text}\n{}",
                    target.args().join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )
            })
    };
    let finished = field("finished in")?;
    let per_second: f64 = finished
        .split(", ")
        .nth(1)
        .and_then(|s| s.strip_suffix(" req/s"))
        .context("req/s")?
        .parse()?;
    let requests = field("requests:")?;
    let count = |label: &str| -> anyhow::Result<u64> {
        requests
            .split(", ")
            .find_map(|p| p.trim().strip_suffix(label))
            .map(|n| n.trim().trim_start_matches("requests:").trim().parse())
            .context(label.to_string())?
            .map_err(Into::into)
    };
    let times = field("time for request:")?;
    let cols: Vec<&str> = times
        .trim_start_matches(|c: char| c != ':')
        .trim_start_matches(':')
        .split_whitespace()
        .collect();
    Ok(H2load {
        done: count(" succeeded")?,
        failed: count(" failed")? + count(" errored")?,
        per_second,
        min_us: parse_time(cols.first().context("min")?).context("min")?,
        mean_us: parse_time(cols.get(2).context("mean")?).context("mean")?,
    })
}

/// Percentiles (µs) of the per-request durations h2load logged.
fn percentiles(log: &Path) -> anyhow::Result<Value> {
    let mut d: Vec<u64> = std::fs::read_to_string(log)?
        .lines()
        .filter_map(|l| l.split('\t').nth(2)?.trim().parse().ok())
        .collect();
    anyhow::ensure!(!d.is_empty(), "h2load logged no requests");
    d.sort_unstable();
    let q = |q: f64| d[((d.len() - 1) as f64 * q).round() as usize];
    Ok(
        json!({"count": d.len(), "p50_us": q(0.5), "p99_us": q(0.99), "p999_us": q(0.999), "max_us": q(1.0)}),
    )
}

/// How hard each arm is driven.
pub struct Plan {
    pub serial_requests: u64,
    pub load_secs: u64,
    pub rate: u64,
    pub rate_secs: u64,
    pub dir: PathBuf,
}

/// One workload: what is sent, and how hard.
struct Workload {
    name: &'static str,
    /// The gRPC method and its frame.
    method: &'static str,
    index: String,
    grpc: PathBuf,
    /// The REST path on the index host, and the JSON body (none: a GET).
    rest_path: String,
    rest_body: Option<PathBuf>,
    warmup: u64,
    serial: u64,
    /// Load: connections and streams per connection.
    connections: u64,
    streams: u64,
    /// Run the fixed-rate part.
    at_rate: bool,
}

/// Measures one arm; `pid` is the proxy's process (none for the straight arm).
fn measure(
    arm: &str,
    w: &Workload,
    target: &Target,
    pid: Option<u32>,
    plan: &Plan,
) -> anyhow::Result<Value> {
    let s = |n: u64| n.to_string();
    // Warm-up: connections, caches, allocator arenas.
    h2load(
        &[
            "-n".into(),
            s(w.warmup),
            "-c".into(),
            "1".into(),
            "-m".into(),
            "4".into(),
        ],
        target,
    )?;
    let cpu = |pid: Option<u32>| pid.map(cpu_ns).transpose();

    let before = cpu(pid)?;
    let serial = h2load(
        &[
            "-n".into(),
            s(w.serial),
            "-c".into(),
            "1".into(),
            "-m".into(),
            "1".into(),
        ],
        target,
    )?;
    let serial_cpu = cpu(pid)?
        .zip(before)
        .map(|(a, b)| (a - b) as f64 / serial.done.max(1) as f64 / 1e3);

    let before = cpu(pid)?;
    let load = h2load(
        &[
            "-D".into(),
            s(plan.load_secs),
            "-c".into(),
            s(w.connections),
            "-m".into(),
            s(w.streams),
        ],
        target,
    )?;
    let load_cpu = cpu(pid)?
        .zip(before)
        .map(|(a, b)| (a - b) as f64 / load.done.max(1) as f64 / 1e3);

    let mut failed = serial.failed + load.failed;
    let at_rate = if w.at_rate {
        // Arm names may hold a `/` (HTTP/2), which a file name may not.
        let log = plan
            .dir
            .join(format!("{arm}-{}.log", w.name).replace('/', "-"));
        let _ = std::fs::remove_file(&log);
        let rate = h2load(
            &[
                "-D".into(),
                s(plan.rate_secs),
                "-c".into(),
                "1".into(),
                "-m".into(),
                "1".into(),
                format!("--rps={}", plan.rate),
                "--log-file".into(),
                log.display().to_string(),
            ],
            target,
        )?;
        failed += rate.failed;
        percentiles(&log)?
    } else {
        Value::Null
    };
    anyhow::ensure!(failed == 0, "{arm}, {}: {failed} requests failed", w.name);
    let round = |v: f64| (v * 10.0).round() / 10.0;
    Ok(json!({
        "arm": arm,
        "workload": w.name,
        "serial_mean_us": round(serial.mean_us),
        "serial_min_us": round(serial.min_us),
        "serial_cpu_us_per_call": serial_cpu.map(round),
        "load_calls_per_second": round(load.per_second),
        "load_cpu_us_per_call": load_cpu.map(round),
        "at_rate": at_rate,
        "rate_per_second": if w.at_rate { json!(plan.rate) } else { Value::Null },
    }))
}

/// A gRPC frame (uncompressed) holding `m`.
fn frame(m: &impl prost::Message) -> Vec<u8> {
    let mut frame = vec![0u8];
    frame.extend((m.encoded_len() as u32).to_be_bytes());
    frame.extend(m.encode_to_vec());
    frame
}

const WIDE_INDEX: &str = "wide";
const WIDE_DIMENSION: usize = 1536;

/// The two workloads, their bodies written to `dir`.
fn workloads(dir: &Path, plan: &Plan) -> anyhow::Result<Vec<Workload>> {
    use pinecone_gateway::pb::pinecone as p;
    let fetch = dir.join("fetch.grpc");
    std::fs::write(
        &fetch,
        frame(&p::FetchRequest {
            ids: vec!["doc1#chunk1".into()],
            namespace: "example-namespace".into(),
        }),
    )?;
    let upsert = wide_upsert(100);
    let upsert_grpc = dir.join("upsert.grpc");
    std::fs::write(&upsert_grpc, frame(&upsert))?;
    let upsert_json = dir.join("upsert.json");
    std::fs::write(&upsert_json, serde_json::to_vec(&upsert)?)?;
    Ok(vec![
        Workload {
            name: "fetch 1 ID",
            method: "Fetch",
            index: "demo".into(),
            grpc: fetch,
            rest_path: "/vectors/fetch?ids=doc1%23chunk1&namespace=example-namespace".into(),
            rest_body: None,
            warmup: plan.serial_requests.min(2000),
            serial: plan.serial_requests,
            connections: 4,
            streams: 16,
            at_rate: true,
        },
        Workload {
            name: "upsert 100 x 1536",
            method: "Upsert",
            index: WIDE_INDEX.into(),
            grpc: upsert_grpc,
            rest_path: "/vectors/upsert".into(),
            rest_body: Some(upsert_json),
            warmup: (plan.serial_requests / 100).clamp(5, 20),
            serial: (plan.serial_requests / 20).max(10),
            connections: 2,
            streams: 2,
            at_rate: false,
        },
    ])
}

/// nginx as a reverse proxy, one server per `(port, upstream)`; bodies up to 64 MB kept in memory (the upsert
/// workload's 2 MB would otherwise go to a temporary file).
fn nginx_conf(dir: &Path, servers: &[(u16, String)], access_log: bool) -> anyhow::Result<PathBuf> {
    let d = dir.display();
    let log = if access_log {
        format!("access_log {d}/access.log;")
    } else {
        "access_log off;".into()
    };
    let mut http = format!(
        "  {log}\n  keepalive_requests 1000000000;\n  client_max_body_size 64m;\n  client_body_buffer_size 4m;\n  \
         client_body_temp_path {d};\n  proxy_temp_path {d};\n  fastcgi_temp_path {d};\n  uwsgi_temp_path {d};\n  \
         scgi_temp_path {d};\n"
    );
    for (i, (port, upstream)) in servers.iter().enumerate() {
        http += &format!(
            "  upstream up{i} {{ server {upstream}; keepalive 32; keepalive_requests 1000000000; }}\n  \
             server {{\n    listen 127.0.0.1:{port} http2;\n    location / {{\n      proxy_pass http://up{i};\n      \
             proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n    }}\n  }}\n"
        );
    }
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 1024; }}\nhttp {{\n{http}}}\n"
    );
    let path = dir.join(if access_log {
        "nginx-log.conf"
    } else {
        "nginx.conf"
    });
    std::fs::write(&path, conf)?;
    Ok(path)
}

/// Waits until something accepts connections on `port`.
fn wait_listening(port: u16) -> anyhow::Result<()> {
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!("nothing listens on port {port}")
}

const NO_LIMITS: &str = "[limits.rates]\n\
    fetch = { index_requests_per_second = 0 }\n\
    upsert = { namespace_requests_per_second = 0, namespace_bytes_per_second = 0 }\n\
    [coalescing]\nfetch = false\ndelete = false\n";

/// The same, speaking HTTP/2 to the emulator (as to Pinecone over TLS, where ALPN picks it).
const NO_LIMITS_H2: &str = "[limits.rates]\n\
    fetch = { index_requests_per_second = 0 }\n\
    upsert = { namespace_requests_per_second = 0, namespace_bytes_per_second = 0 }\n\
    [coalescing]\nfetch = false\ndelete = false\n\
    [upstream]\nplaintext_http2 = true\n";

const FLOOR_H2: &str = "floor over HTTP/2 (h2c to the upstream)";
const GW_H2_TRACED: &str = "gateway over HTTP/2, traces on: every call sampled and exported";
const GW_H2_TRACED_1PC: &str = "gateway over HTTP/2, traces on: 1% of calls sampled";
const GW_H2: &str =
    "gateway over HTTP/2 (h2c to the upstream), limits and coalescing off, logs at warn";
const GW_REST: &str = "gateway's REST front door (Pinecone's REST API in and out), limits and coalescing off, logs at warn";

const LIMITS_NOT_BINDING: &str = "[limits.rates]\n\
    fetch = { index_requests_per_second = 1000000 }\n\
    upsert = { namespace_requests_per_second = 1000000, namespace_bytes_per_second = 1000000000000 }\n";
/// The same, with the load generator a configured caller: a quota checked on every call (never binding) and the
/// fair queue in front of every limit.
const CALLERS_NOT_BINDING: &str = "[limits.rates]\n\
    fetch = { index_requests_per_second = 1000000 }\n\
    upsert = { namespace_requests_per_second = 1000000, namespace_bytes_per_second = 1000000000000 }\n\
    [callers.bench]\npriority = \"interactive\"\nrequests_per_second = 100000000\n";

const GW_CALLERS: &str = "gateway, limits, coalescing and ordering on, a configured caller (quota, fair queue), a log line per call";

/// The callers arm with budgets on the caller that never bind: each call reads what its caller spent before it goes
/// and publishes the share of each budget after (the accounting itself is in every arm).
const BUDGETS_NOT_BINDING: &str = "[limits.rates]\n\
    fetch = { index_requests_per_second = 1000000 }\n\
    upsert = { namespace_requests_per_second = 1000000, namespace_bytes_per_second = 1000000000000 }\n\
    [callers.bench]\npriority = \"interactive\"\nrequests_per_second = 100000000\n\
    read_units_per_day = 1000000000000\nread_units_per_month = 1000000000000\n\
    write_units_per_day = 1000000000000\nwrite_units_per_month = 1000000000000\n";

const GW_BUDGETS: &str =
    "gateway, as the configured-caller arm, with day and month budgets on the caller";

/// Starts the gateway on CPU 0 with JSON logs at `level`; it and the address it serves gRPC on. Its logs are read
/// and thrown away, so it never blocks on a full pipe.
pub fn start_gateway(
    exe: &Path,
    control_plane: &str,
    config: &Path,
    level: &str,
) -> anyhow::Result<(Proc, String)> {
    start_gateway_under(None, exe, control_plane, config, level).map(|s| (s.proc, s.addr))
}

/// A gateway started for an arm: its process and where it listens (`rest` is `off` unless the configuration turns
/// the REST front door on).
struct Started {
    proc: Proc,
    addr: String,
    admin: String,
    rest: String,
}

/// [`start_gateway`], run by `wrapper` (heaptrack) when given; also the admin listener's and the REST front door's
/// addresses.
fn start_gateway_under(
    wrapper: Option<(&Path, &[&str])>,
    exe: &Path,
    control_plane: &str,
    config: &Path,
    level: &str,
) -> anyhow::Result<Started> {
    let config = config.display().to_string();
    let exe_arg = exe.display().to_string();
    let (program, mut args): (&Path, Vec<&str>) = match wrapper {
        Some((w, wargs)) => (w, wargs.iter().copied().chain([exe_arg.as_str()]).collect()),
        None => (exe, Vec::new()),
    };
    args.extend([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--log-level",
        level,
        "--control-plane-url",
        control_plane,
        "--config",
        &config,
    ]);
    let (proc, lines) = spawn_pinned(0, program, &args, Some("listening"))?;
    let start: Value = serde_json::from_str(lines.last().context("start line")?)
        .context("the gateway's start line")?;
    let field = |k: &str| start[k].as_str().unwrap_or_default().to_string();
    anyhow::ensure!(!field("addr").is_empty(), "the start line has no addr");
    Ok(Started {
        proc,
        addr: field("addr"),
        admin: field("admin"),
        rest: field("rest"),
    })
}

/// Creates the 1,536-dimension index of the upsert workload; its host.
fn create_wide_index(control_plane: &str) -> anyhow::Result<String> {
    tokio::runtime::Handle::current().block_on(async {
        let body = json!({
            "name": WIDE_INDEX, "dimension": WIDE_DIMENSION, "metric": "cosine",
            "spec": {"serverless": {"cloud": "aws", "region": "us-east-1"}},
        });
        let resp = reqwest::Client::new()
            .post(format!("{control_plane}/indexes"))
            .header("Api-Key", "bench")
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        let status = resp.status();
        let v: Value = serde_json::from_slice(&resp.bytes().await?)?;
        anyhow::ensure!(status.is_success(), "creating the index: {status} {v}");
        v["host"]
            .as_str()
            .map(str::to_string)
            .context("the new index's host")
    })
}

/// One arm under test: its name, the process (none: straight to the upstream) and how each workload reaches it.
struct Arm {
    name: String,
    proc: Option<Proc>,
    target: Box<dyn Fn(&Workload) -> Target>,
    /// Read once both workloads ran, before the process is stopped: a key of the arm's first result, and its value.
    after: Option<(&'static str, AfterArm)>,
}

type AfterArm = Box<dyn Fn() -> anyhow::Result<Value>>;

/// The whole side-by-side run.
pub fn run(plan: &Plan, gateway_exe: &Path, bench_exe: &Path) -> anyhow::Result<Value> {
    tool("h2load")?;
    let nginx = tool("nginx")?;
    std::fs::create_dir_all(&plan.dir)?;

    // The upstream, alone with the load generator on CPU 1.
    let (emulator, lines) = spawn_pinned(
        1,
        gateway_exe,
        &["emulator", "--listen", "127.0.0.1:0", "--demo"],
        Some("index `demo` at"),
    )?;
    let after = |marker: &str| {
        lines
            .iter()
            .find(|l| l.contains(marker))
            .and_then(|l| l.rsplit(' ').next())
            .map(|u| u.to_string())
            .with_context(|| format!("the emulator printed no {marker:?}"))
    };
    let control_plane = after("control plane at")?;
    let demo_host = after("index `demo` at")?
        .trim_start_matches("http://")
        .to_string();
    let wide_host = create_wide_index(&control_plane)?;
    let _keep = &emulator;
    let workloads = workloads(&plan.dir, plan)?;
    let host_of = move |w: &Workload| {
        if w.index == WIDE_INDEX {
            wide_host.clone()
        } else {
            demo_host.clone()
        }
    };

    let grpc = |addr: String| {
        Box::new(move |w: &Workload| Target::Grpc {
            url: format!("http://{addr}/VectorService/{}", w.method),
            index: w.index.clone(),
            body: w.grpc.clone(),
        }) as Box<dyn Fn(&Workload) -> Target>
    };

    let mut results = Vec::new();
    let mut memory = json!({});
    let mut measure_arm = |arm: Arm, results: &mut Vec<Value>| -> anyhow::Result<()> {
        let pid = arm.proc.as_ref().map(|p| p.pid);
        let idle = pid.map(rss_kib).transpose()?;
        for w in &workloads {
            let mut v = measure(&arm.name, w, &(arm.target)(w), pid, plan)?;
            if let (Some(pid), Some(idle)) = (pid, idle) {
                v["rss_idle_mb"] = json!((idle as f64 / 102.4).round() / 10.0);
                v["rss_after_mb"] = json!((rss_kib(pid)? as f64 / 102.4).round() / 10.0);
            }
            results.push(v);
        }
        if let Some((key, after)) = &arm.after
            && let Some(first) = results.len().checked_sub(workloads.len())
        {
            results[first][*key] = after()?;
        }
        if arm.name.starts_with("gateway")
            && memory.as_object().is_some_and(|m| m.is_empty())
            && let (Some(pid), Some(idle)) = (pid, idle)
        {
            memory = json!({"idle_mb": (idle as f64 / 102.4).round() / 10.0,
                "after_both_workloads_mb": (rss_kib(pid)? as f64 / 102.4).round() / 10.0});
        }
        Ok(())
    };

    {
        let host_of = host_of.clone();
        measure_arm(
            Arm {
                name: "straight REST".into(),
                proc: None,
                target: Box::new(move |w| Target::Rest {
                    url: format!("http://{}{}", host_of(w), w.rest_path),
                    body: w.rest_body.clone(),
                }),
                after: None,
            },
            &mut results,
        )?;
    }

    for (name, access_log) in [("nginx", false), ("nginx + access log", true)] {
        // One server per index host, each on a port of its own, so every path stays what Pinecone serves.
        let demo_port = free_port()?;
        let wide_port = free_port()?;
        let conf = nginx_conf(
            &plan.dir,
            &[
                (demo_port, host_of(&workloads[0])),
                (wide_port, host_of(&workloads[1])),
            ],
            access_log,
        )?;
        let (proc, _) = spawn_pinned(
            0,
            &nginx,
            &[
                "-c",
                &conf.display().to_string(),
                "-p",
                &plan.dir.display().to_string(),
            ],
            None,
        )?;
        wait_listening(demo_port)?;
        wait_listening(wide_port)?;
        measure_arm(
            Arm {
                name: name.into(),
                proc: Some(proc),
                target: Box::new(move |w| Target::Rest {
                    url: format!(
                        "http://127.0.0.1:{}{}",
                        if w.index == WIDE_INDEX {
                            wide_port
                        } else {
                            demo_port
                        },
                        w.rest_path
                    ),
                    body: w.rest_body.clone(),
                }),
                after: None,
            },
            &mut results,
        )?;
    }

    for (name, http2) in [
        ("floor (minimal tonic + reqwest translator)", false),
        (FLOOR_H2, true),
    ] {
        let mut args = vec![
            "floor",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &control_plane,
        ];
        if http2 {
            args.push("--http2");
        }
        let (proc, lines) = spawn_pinned(0, bench_exe, &args, Some("listening on"))?;
        let addr = lines
            .last()
            .and_then(|l| l.rsplit(' ').next())
            .context("floor address")?
            .to_string();
        measure_arm(
            Arm {
                name: name.into(),
                proc: Some(proc),
                target: grpc(addr),
                after: None,
            },
            &mut results,
        )?;
    }

    for (name, config, level) in [
        // The start line (which says where it listens) is at info; the per-call lines are silenced.
        (
            "gateway, limits and coalescing off, logs at warn",
            NO_LIMITS,
            "warn,pinecone_gateway=info,pinecone_gateway::api::record=warn",
        ),
        (
            "gateway, limits and coalescing off, a log line per call",
            NO_LIMITS,
            "info",
        ),
        (
            GW_H2,
            NO_LIMITS_H2,
            "warn,pinecone_gateway=info,pinecone_gateway::api::record=warn",
        ),
        // Limits on but not binding (Pinecone's 100 fetches per second would measure Pinecone's limit, not the
        // gateway): their bookkeeping, coalescing and ordering are part of every call's cost.
        (
            "gateway, limits, coalescing and ordering on, a log line per call",
            LIMITS_NOT_BINDING,
            "info",
        ),
        (GW_CALLERS, CALLERS_NOT_BINDING, "info"),
        (GW_BUDGETS, BUDGETS_NOT_BINDING, "info"),
    ] {
        let file = plan.dir.join("gateway.toml");
        std::fs::write(&file, config)?;
        let (proc, addr) = start_gateway(gateway_exe, &control_plane, &file, level)?;
        measure_arm(
            Arm {
                name: name.into(),
                proc: Some(proc),
                target: grpc(addr),
                after: None,
            },
            &mut results,
        )?;
    }

    // The REST front door: Pinecone's REST API in, the same stack, Pinecone's REST API out (HTTP/1.1 to the upstream,
    // as nginx speaks it), reached over h2c as nginx is.
    {
        let file = plan.dir.join("gateway.toml");
        std::fs::write(
            &file,
            format!("{NO_LIMITS}[server]\nrest_listen = \"127.0.0.1:0\"\n"),
        )?;
        let Started { proc, rest, .. } = start_gateway_under(
            None,
            gateway_exe,
            &control_plane,
            &file,
            "warn,pinecone_gateway=info,pinecone_gateway::api::record=warn",
        )?;
        anyhow::ensure!(
            rest != "off" && !rest.is_empty(),
            "the REST front door did not start"
        );
        measure_arm(
            Arm {
                name: GW_REST.into(),
                proc: Some(proc),
                target: Box::new(move |w| Target::Rest {
                    url: format!("http://{rest}/indexes/{}{}", w.index, w.rest_path),
                    body: w.rest_body.clone(),
                }),
                after: None,
            },
            &mut results,
        )?;
    }

    // Traces: the HTTP/2 arm again, exporting to an OTLP receiver in this process (CPU 1) that counts what arrives.
    let (collector, received) = otlp_sink()?;
    for (name, ratio) in [(GW_H2_TRACED, "1"), (GW_H2_TRACED_1PC, "0.01")] {
        let file = plan.dir.join("gateway.toml");
        std::fs::write(
            &file,
            format!(
                "{NO_LIMITS_H2}[tracing]\notlp_endpoint = \"{collector}\"\nsample_ratio = {ratio}\n\
                 export_interval_ms = 100\n"
            ),
        )?;
        let Started {
            proc, addr, admin, ..
        } = start_gateway_under(
            None,
            gateway_exe,
            &control_plane,
            &file,
            "warn,pinecone_gateway=info,pinecone_gateway::api::record=warn",
        )?;
        let received = received.clone();
        measure_arm(
            Arm {
                name: name.into(),
                proc: Some(proc),
                target: grpc(addr),
                // The gateway's own counts, scraped before it is stopped, beside what the receiver got.
                after: Some((
                    "traces_both_workloads",
                    Box::new(move || trace_counts(&admin, &received)),
                )),
            },
            &mut results,
        )?;
    }

    // An arm by its name, else by the start of it ("floor" is the HTTP/1.1 floor).
    let find = |arm: &str, workload: &str| {
        let of = |exact: bool| {
            results.iter().find(move |a| {
                a["arm"]
                    .as_str()
                    .is_some_and(|n| if exact { n == arm } else { n.starts_with(arm) })
                    && a["workload"] == workload
            })
        };
        of(true).or_else(|| of(false))
    };
    let get =
        |arm: &str, workload: &str, key: &str| find(arm, workload).and_then(|x| x[key].as_f64());
    let ratio = |a: &str, b: &str, workload: &str, key: &str| -> Value {
        match (get(a, workload, key), get(b, workload, key)) {
            (Some(x), Some(y)) if y > 0.0 => json!((x / y * 100.0).round() / 100.0),
            _ => Value::Null,
        }
    };
    let minus =
        |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| ((a - b) * 10.0).round() / 10.0);
    let p99 = |arm: &str| find(arm, FETCH).and_then(|x| x["at_rate"]["p99_us"].as_f64());
    const GW: &str = "gateway, limits and coalescing off, logs at warn";
    const GW_LOGS: &str = "gateway, limits and coalescing off, a log line per call";
    const GW_ALL: &str = "gateway, limits, coalescing and ordering on, a log line per call";
    const FETCH: &str = "fetch 1 ID";
    const UPSERT: &str = "upsert 100 x 1536";
    // Bodies, configurations and h2load's per-request logs; kept when the run fails, to look at.
    let _ = std::fs::remove_dir_all(&plan.dir);
    Ok(json!({
        "scenario": "proxies: the gateway beside straight REST, nginx and the floor arm",
        "arms": results,
        "fetch_cpu_per_call_vs_floor": ratio(GW, "floor", FETCH, "load_cpu_us_per_call"),
        "fetch_cpu_per_call_vs_nginx": ratio(GW, "nginx", FETCH, "load_cpu_us_per_call"),
        "rest_fetch_cpu_per_call_vs_nginx": ratio(GW_REST, "nginx", FETCH, "load_cpu_us_per_call"),
        "rest_upsert_cpu_per_call_vs_nginx": ratio(GW_REST, "nginx", UPSERT, "load_cpu_us_per_call"),
        "rest_fetch_cpu_per_call_vs_grpc_door": ratio(GW_REST, GW, FETCH, "load_cpu_us_per_call"),
        "rest_fetch_serial_minus_nginx_us": minus(get(GW_REST, FETCH, "serial_mean_us"), get("nginx", FETCH, "serial_mean_us")),
        "rest_upsert_serial_minus_nginx_us": minus(get(GW_REST, UPSERT, "serial_mean_us"), get("nginx", UPSERT, "serial_mean_us")),
        "fetch_cpu_per_call_vs_floor_both_http2": ratio(GW_H2, FLOOR_H2, FETCH, "load_cpu_us_per_call"),
        "fetch_cpu_per_call_http2_vs_nginx": ratio(GW_H2, "nginx", FETCH, "load_cpu_us_per_call"),
        "fetch_serial_minus_floor_both_http2_us": minus(get(GW_H2, FETCH, "serial_mean_us"), get(FLOOR_H2, FETCH, "serial_mean_us")),
        "upsert_cpu_per_call_vs_floor_both_http2": ratio(GW_H2, FLOOR_H2, UPSERT, "load_cpu_us_per_call"),
        "fetch_cpu_per_call_with_logs_vs_nginx_with_logs": ratio(GW_LOGS, "nginx + access log", FETCH, "load_cpu_us_per_call"),
        "fetch_cpu_per_call_everything_on_vs_floor": ratio(GW_ALL, "floor", FETCH, "load_cpu_us_per_call"),
        "fetch_cpu_per_call_callers_vs_everything_on": ratio(GW_CALLERS, GW_ALL, FETCH, "load_cpu_us_per_call"),
        "fetch_cpu_us_per_call_callers_minus_everything_on": minus(get(GW_CALLERS, FETCH, "load_cpu_us_per_call"), get(GW_ALL, FETCH, "load_cpu_us_per_call")),
        "fetch_cpu_us_per_call_budgets_minus_callers": minus(get(GW_BUDGETS, FETCH, "load_cpu_us_per_call"), get(GW_CALLERS, FETCH, "load_cpu_us_per_call")),
        "fetch_cpu_per_call_budgets_vs_floor": ratio(GW_BUDGETS, "floor", FETCH, "load_cpu_us_per_call"),
        "fetch_cpu_us_per_call_traced_minus_untraced": minus(get(GW_H2_TRACED, FETCH, "load_cpu_us_per_call"), get(GW_H2, FETCH, "load_cpu_us_per_call")),
        "fetch_cpu_us_per_call_1pc_traced_minus_untraced": minus(get(GW_H2_TRACED_1PC, FETCH, "load_cpu_us_per_call"), get(GW_H2, FETCH, "load_cpu_us_per_call")),
        "fetch_serial_us_traced_minus_untraced": minus(get(GW_H2_TRACED, FETCH, "serial_mean_us"), get(GW_H2, FETCH, "serial_mean_us")),
        "fetch_p99_us_at_rate_traced_minus_untraced": minus(p99(GW_H2_TRACED), p99(GW_H2)),
        "fetch_serial_minus_floor_us": minus(get(GW, FETCH, "serial_mean_us"), get("floor", FETCH, "serial_mean_us")),
        "fetch_serial_minus_straight_us": minus(get(GW, FETCH, "serial_mean_us"), get("straight", FETCH, "serial_mean_us")),
        "fetch_added_p99_us_at_rate": minus(p99(GW), p99("straight")),
        "fetch_everything_on_added_p99_us_at_rate": minus(p99(GW_ALL), p99("straight")),
        "upsert_cpu_per_call_vs_floor": ratio(GW, "floor", UPSERT, "load_cpu_us_per_call"),
        "upsert_serial_minus_floor_us": minus(get(GW, UPSERT, "serial_mean_us"), get("floor", UPSERT, "serial_mean_us")),
        "gateway_memory": memory,
    }))
}

/// Calls, spans exported and spans dropped so far, from the gateway's `/metrics`; spans the receiver got.
fn trace_counts(admin: &str, received: &std::sync::atomic::AtomicU64) -> anyhow::Result<Value> {
    let text = tokio::runtime::Handle::current().block_on(async {
        reqwest::get(format!("http://{admin}/metrics"))
            .await?
            .text()
            .await
    })?;
    let sum = |name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let calls = sum("pinecone_gateway_calls_total");
    let exported = sum("pinecone_gateway_trace_spans_exported_total");
    let dropped = sum("pinecone_gateway_trace_spans_dropped_total");
    Ok(json!({
        "calls": calls,
        "spans_exported": exported,
        "spans_dropped": dropped,
        "spans_received": received.swap(0, std::sync::atomic::Ordering::Relaxed),
        "spans_per_call": if calls > 0.0 { json!(((exported + dropped) / calls * 1000.0).round() / 1000.0) } else { Value::Null },
    }))
}

/// An OTLP/gRPC receiver on this process's runtime that counts the spans it is sent: its URL and the count.
fn otlp_sink() -> anyhow::Result<(String, std::sync::Arc<std::sync::atomic::AtomicU64>)> {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    struct Sink(std::sync::Arc<std::sync::atomic::AtomicU64>);
    #[tonic::async_trait]
    impl TraceService for Sink {
        async fn export(
            &self,
            req: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let n: usize = req
                .get_ref()
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            self.0
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let rt = tokio::runtime::Handle::current();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!("http://{}", listener.local_addr()?);
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Sink(count.clone())))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    Ok((url, count))
}

/// The biggest upsert a caller may send (1,000 vectors of 1,536 dimensions: about 6 MB of protobuf, 17 MB of JSON,
/// which the gateway sends as about nine requests under Pinecone's 2 MB cap). The gateway alone (no other arm can
/// split it), serially: CPU per call, latency, memory after. With `heaptrack`, the gateway runs under heaptrack
/// instead (no CPU figures: heaptrack's own cost would be in them) and the result is the bytes it allocated per call,
/// start-up included; it must be a build with the system allocator (`--no-default-features`), which heaptrack sees.
pub fn upsert_large(
    gateway_exe: &Path,
    dir: &Path,
    calls: u64,
    heaptrack: bool,
) -> anyhow::Result<Value> {
    tool("h2load")?;
    std::fs::create_dir_all(dir)?;
    let (emulator, lines) = spawn_pinned(
        1,
        gateway_exe,
        &["emulator", "--listen", "127.0.0.1:0"],
        Some("control plane at"),
    )?;
    let control_plane = lines
        .last()
        .and_then(|l| l.rsplit(' ').next())
        .context("the emulator's address")?
        .to_string();
    let _keep = &emulator;
    create_wide_index(&control_plane)?;
    let body = dir.join("upsert-1000.grpc");
    std::fs::write(&body, frame(&wide_upsert(1000)))?;
    let config = dir.join("gateway.toml");
    std::fs::write(&config, NO_LIMITS)?;
    let profile = dir.join("heaptrack");
    let profile_arg = profile.display().to_string();
    let heaptrack_exe = if heaptrack {
        Some(tool("heaptrack")?)
    } else {
        None
    };
    let wrapper = heaptrack_exe
        .as_deref()
        .map(|h| (h, vec!["-o", profile_arg.as_str()]));
    let Started {
        proc: gateway,
        addr,
        ..
    } = start_gateway_under(
        wrapper.as_ref().map(|(h, a)| (*h, a.as_slice())),
        gateway_exe,
        &control_plane,
        &config,
        "warn,pinecone_gateway=info,pinecone_gateway::api::record=warn",
    )?;
    let target = Target::Grpc {
        url: format!("http://{addr}/VectorService/Upsert"),
        index: WIDE_INDEX.into(),
        body,
    };
    let n = |k: u64| k.to_string();
    let serial = |k: u64| -> Vec<String> {
        vec![
            "-n".into(),
            n(k),
            "-c".into(),
            "1".into(),
            "-m".into(),
            "1".into(),
        ]
    };
    if heaptrack {
        let run = h2load(&serial(calls), &target)?;
        anyhow::ensure!(run.failed == 0, "{} upserts failed", run.failed);
        // Stop the gateway (heaptrack's child) gracefully so heaptrack writes its file, then read the histogram of
        // allocation sizes: the sum of size × count is every byte allocated.
        let children = std::fs::read_to_string(format!(
            "/proc/{}/task/{}/children",
            gateway.pid, gateway.pid
        ))?;
        // Its other children (heaptrack_interpret, zstd) write the file: only the gateway is told to stop.
        let exe_name = gateway_exe
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("pinecone-gateway");
        for child in children.split_whitespace() {
            let comm = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
            // The kernel keeps 15 characters of a command's name.
            if !comm.trim().is_empty() && exe_name.starts_with(comm.trim()) {
                Command::new("kill").args(["-TERM", child]).status()?;
            }
        }
        let mut gateway = gateway;
        gateway.wait()?;
        let file = std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("heaptrack."))
            })
            .context("heaptrack wrote no file")?;
        let histogram = dir.join("sizes.txt");
        let printed = Command::new("heaptrack_print")
            .arg("-H")
            .arg(&histogram)
            .arg(&file)
            .output()?;
        let text = String::from_utf8_lossy(&printed.stdout);
        let calls_line = text
            .lines()
            .find(|l| l.starts_with("calls to allocation functions:"))
            .map(str::to_string);
        let bytes: u64 = std::fs::read_to_string(&histogram)?
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                Some(f.next()?.parse::<u64>().ok()? * f.next()?.parse::<u64>().ok()?)
            })
            .sum();
        let _ = std::fs::remove_dir_all(dir);
        return Ok(json!({
            "scenario": "upsert 1,000 x 1,536 through the gateway: bytes allocated (heaptrack)",
            "calls": calls,
            "allocated_mb_per_call": (bytes as f64 / calls as f64 / 1e5).round() / 10.0,
            "heaptrack": calls_line,
        }));
    }
    h2load(&serial(3), &target)?;
    let before = cpu_ns(gateway.pid)?;
    let run = h2load(&serial(calls), &target)?;
    let cpu = (cpu_ns(gateway.pid)? - before) as f64 / run.done.max(1) as f64 / 1e3;
    anyhow::ensure!(run.failed == 0, "{} upserts failed", run.failed);
    let rss = rss_kib(gateway.pid)?;
    let _ = std::fs::remove_dir_all(dir);
    Ok(json!({
        "scenario": "upsert 1,000 x 1,536 through the gateway, one caller",
        "calls": run.done,
        "cpu_ms_per_call": (cpu / 100.0).round() / 10.0,
        "serial_mean_ms": (run.mean_us / 100.0).round() / 10.0,
        "rss_after_mb": (rss as f64 / 102.4).round() / 10.0,
    }))
}

/// An upsert of `count` records of [`WIDE_DIMENSION`] values into namespace `bench`; values vary so that no
/// encoder can take a short cut.
fn wide_upsert(count: usize) -> pinecone_gateway::pb::pinecone::UpsertRequest {
    use pinecone_gateway::pb::pinecone as p;
    p::UpsertRequest {
        vectors: (0..count)
            .map(|i| p::Vector {
                id: format!("vec-{i}"),
                values: (0..WIDE_DIMENSION)
                    .map(|d| ((i * 31 + d) % 997) as f32 / 997.0 - 0.5)
                    .collect(),
                ..Default::default()
            })
            .collect(),
        namespace: "bench".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h2load_times_read_in_microseconds() {
        assert_eq!(parse_time("35us"), Some(35.0));
        assert_eq!(parse_time("2.83ms"), Some(2830.0));
        assert_eq!(parse_time("1.5s"), Some(1_500_000.0));
    }
}
