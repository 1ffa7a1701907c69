//! Shared by the integration tests: an emulator and a gateway on 127.0.0.1:0, and clients for them.
#![allow(dead_code)]

pub mod fixtures;
pub mod pki;
pub mod redis;

use pinecone_gateway::config::{FileConfig, Overrides};
use pinecone_gateway::emulator::{Emulator, EmulatorOptions};
use pinecone_gateway::pb::gateway::backup_service_client::BackupServiceClient;
use pinecone_gateway::pb::gateway::list_service_client::ListServiceClient;
use pinecone_gateway::pb::pinecone as p;
use pinecone_gateway::pb::pinecone::vector_service_client::VectorServiceClient;
use pinecone_gateway::server::{self, RunningGateway};
use std::net::SocketAddr;
use tonic::transport::Channel;

pub const INDEX: &str = "test-index";

/// What the client examples of docs/clients.md run against: the caller `guide` may make one call a second, so its
/// second call in a row is refused with retry advice.
pub const CLIENTS_CONFIG: &str = "[callers.guide]\nrequests_per_second = 1\n";
pub const KEY: &str = "test-key";

pub struct Env {
    pub emulator: Emulator,
    pub gateway: Option<RunningGateway>,
    pub addr: SocketAddr,
    channel: Channel,
}

/// Builder knobs for [`Env`].
#[derive(Default)]
pub struct EnvOptions {
    /// The key the gateway sends; defaults to the one the emulator requires.
    pub gateway_key: Option<String>,
    pub default_index: Option<String>,
    pub config: Option<String>,
    /// Emulator: enforce Pinecone's limits, and inject faults.
    pub enforce_limits: bool,
    pub faults: pinecone_gateway::emulator::faults::Faults,
    /// Emulator: how long a restored index initializes.
    pub restore_init: std::time::Duration,
    /// Emulator: how long after a write reads see it.
    pub index_lag: std::time::Duration,
    /// Emulator: the names of its LSN headers.
    pub lsn_spelling: pinecone_gateway::emulator::LsnSpelling,
    /// The gateway's REST front door on a free port.
    pub rest: bool,
    /// Emulator: how many bytes of a namespace cost one read unit per query (None: Pinecone's 1 GB).
    pub query_bytes_per_read_unit: Option<u64>,
}

impl Env {
    pub async fn start() -> Env {
        Self::start_with(EnvOptions::default()).await
    }

    /// A gateway configured with [`CLIENTS_CONFIG`].
    pub async fn start_for_clients() -> Env {
        Self::start_with(EnvOptions {
            config: Some(CLIENTS_CONFIG.into()),
            ..Default::default()
        })
        .await
    }

    /// A gateway with its REST front door on, `upstream.default_index` set, and `config`.
    pub async fn start_rest(config: &str) -> Env {
        Self::start_with(EnvOptions {
            rest: true,
            default_index: Some(INDEX.into()),
            config: Some(config.into()),
            ..Default::default()
        })
        .await
    }

    /// The REST front door's address.
    pub fn rest_addr(&self) -> std::net::SocketAddr {
        self.gateway
            .as_ref()
            .and_then(|g| g.rest_addr)
            .expect("the REST front door is on")
    }

    pub async fn start_with(o: EnvOptions) -> Env {
        let emulator = Emulator::start(
            "127.0.0.1:0".parse().unwrap(),
            EmulatorOptions {
                api_key: Some(KEY.into()),
                enforce_limits: o.enforce_limits,
                faults: o.faults.clone(),
                restore_init: o.restore_init,
                index_lag: o.index_lag,
                lsn_spelling: o.lsn_spelling,
                query_bytes_per_read_unit: o.query_bytes_per_read_unit,
                tls: None,
            },
        )
        .await
        .unwrap();
        emulator.create_index(INDEX, 4, "cosine").await.unwrap();
        let file = match &o.config {
            Some(text) => FileConfig::parse(std::path::Path::new("test.toml"), text).unwrap(),
            None => FileConfig::default(),
        };
        let settings = file
            .settings(Overrides {
                listen: Some("127.0.0.1:0".into()),
                admin_listen: Some("127.0.0.1:0".into()),
                rest_listen: o.rest.then(|| "127.0.0.1:0".into()),
                control_plane_url: Some(emulator.url()),
                default_index: o.default_index,
                api_key: Some(o.gateway_key.unwrap_or_else(|| KEY.into())),
                ..Default::default()
            })
            .unwrap();
        let gateway = server::start(&settings).await.unwrap();
        let addr = gateway.addr;
        // Lazy: a TLS gateway is reached through a channel of the test's own.
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        Env {
            emulator,
            gateway: Some(gateway),
            addr,
            channel,
        }
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub fn vectors(&self) -> VectorServiceClient<Channel> {
        VectorServiceClient::new(self.channel.clone())
    }

    pub fn backups(&self) -> BackupServiceClient<Channel> {
        BackupServiceClient::new(self.channel.clone())
    }

    pub fn lists(&self) -> ListServiceClient<Channel> {
        ListServiceClient::new(self.channel.clone())
    }

    /// Upserts `n` 4-dimensional records `prefix-0000`… with metadata `{"n": i, "parity": "even"|"odd"}`.
    pub async fn seed(&self, namespace: &str, prefix: &str, n: usize) {
        let vectors: Vec<p::Vector> = (0..n)
            .map(|i| p::Vector {
                id: format!("{prefix}-{i:04}"),
                values: vec![1.0, i as f32, 0.5, 0.25],
                sparse_values: None,
                metadata: Some(meta(&[
                    ("n", json_num(i as f64)),
                    ("parity", json_str(if i % 2 == 0 { "even" } else { "odd" })),
                ])),
            })
            .collect();
        for chunk in vectors.chunks(500) {
            let r = self
                .vectors()
                .upsert(req(p::UpsertRequest {
                    vectors: chunk.to_vec(),
                    namespace: namespace.into(),
                }))
                .await
                .unwrap();
            assert_eq!(r.get_ref().upserted_count as usize, chunk.len());
        }
    }
}

impl Env {
    /// The emulator's data-plane host of the test index.
    pub async fn index_host(&self) -> String {
        self.backups()
            .describe_index(pinecone_gateway::pb::gateway::DescribeIndexRequest {
                name: INDEX.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .host
    }
}

impl Env {
    /// Another replica in front of this environment's emulator, configured by `config` (calls name no index: the
    /// test index is the default); with its client.
    pub async fn replica(&self, config: &str) -> (RunningGateway, VectorServiceClient<Channel>) {
        let settings = FileConfig::parse(std::path::Path::new("replica.toml"), config)
            .unwrap()
            .settings(Overrides {
                listen: Some("127.0.0.1:0".into()),
                admin_listen: Some("127.0.0.1:0".into()),
                control_plane_url: Some(self.emulator.url()),
                default_index: Some(INDEX.into()),
                api_key: Some(KEY.into()),
                ..Default::default()
            })
            .unwrap();
        let gateway = server::start(&settings).await.unwrap();
        let channel = Channel::from_shared(format!("http://{}", gateway.addr))
            .unwrap()
            .connect_lazy();
        (gateway, VectorServiceClient::new(channel))
    }
}

/// The retry advice of a RESOURCE_EXHAUSTED status, from its `grpc-retry-pushback-ms` trailer.
pub fn pushback_ms(status: &tonic::Status) -> u64 {
    status
        .metadata()
        .get("grpc-retry-pushback-ms")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A request for the test index.
pub fn req<T>(msg: T) -> tonic::Request<T> {
    req_for(INDEX, msg)
}

pub fn req_for<T>(index: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("pinecone-index", index.parse().unwrap());
    r
}

pub fn json_num(n: f64) -> pbjson_types::Value {
    pbjson_types::Value {
        kind: Some(pbjson_types::value::Kind::NumberValue(n)),
    }
}

pub fn json_str(s: &str) -> pbjson_types::Value {
    pbjson_types::Value {
        kind: Some(pbjson_types::value::Kind::StringValue(s.into())),
    }
}

pub fn json_list(items: Vec<pbjson_types::Value>) -> pbjson_types::Value {
    pbjson_types::Value {
        kind: Some(pbjson_types::value::Kind::ListValue(
            pbjson_types::ListValue { values: items },
        )),
    }
}

pub fn json_obj(s: pbjson_types::Struct) -> pbjson_types::Value {
    pbjson_types::Value {
        kind: Some(pbjson_types::value::Kind::StructValue(s)),
    }
}

pub fn meta(pairs: &[(&str, pbjson_types::Value)]) -> pbjson_types::Struct {
    pbjson_types::Struct {
        fields: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

/// `{"field": {"$op": value}}`
pub fn filter_op(field: &str, op: &str, value: pbjson_types::Value) -> pbjson_types::Struct {
    meta(&[(field, json_obj(meta(&[(op, value)])))])
}

/// The real binary, `serve`d on 127.0.0.1:0 with JSON logs, its logs read as they come (a full pipe would block it).
pub struct GatewayProcess {
    /// Taken by [`GatewayProcess::exit`]; killed and reaped on drop otherwise (a failed test leaves no process).
    child: Option<std::process::Child>,
    pub addr: String,
    pub admin: String,
    /// The REST front door's address, or `off`.
    pub rest: String,
    /// Lines read while waiting for the address.
    startup: Vec<String>,
    lines: std::sync::mpsc::Receiver<String>,
}

/// Starts `pinecone-gateway serve` with extra arguments and environment, and waits for the line saying where it
/// listens.
pub fn spawn_gateway(args: &[&str], envs: &[(&str, &str)]) -> GatewayProcess {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let child = Command::new(env!("CARGO_BIN_EXE_pinecone-gateway"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .args(args)
        .envs(envs.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let mut gw = GatewayProcess {
        child: Some(child),
        addr: String::new(),
        admin: String::new(),
        rest: String::new(),
        startup: Vec::new(),
        lines,
    };
    let stderr = gw.child.as_mut().and_then(|c| c.stderr.take()).unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut first = Vec::new();
    loop {
        let line = gw
            .lines
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the gateway said nothing; it logged: {first:?}"));
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && let (Some(addr), Some(admin)) = (v["addr"].as_str(), v["admin"].as_str())
        {
            gw.addr = addr.to_string();
            gw.admin = admin.to_string();
            gw.rest = v["rest"].as_str().unwrap_or("off").to_string();
            first.push(line);
            gw.startup = first;
            return gw;
        }
        first.push(line);
    }
}

impl GatewayProcess {
    /// Sends a signal (`-TERM`, `-HUP`) with the system's `kill`.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().map(|c| c.id()).unwrap();
        let status = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for a log line containing `text`.
    pub fn wait_for_log(&self, text: &str) {
        loop {
            let line = self
                .lines
                .recv_timeout(std::time::Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no log line with {text:?}"));
            if line.contains(text) {
                return;
            }
        }
    }

    /// Waits for the process to exit; its exit code and every log line but those `wait_for_log` consumed.
    pub async fn exit(mut self) -> (Option<i32>, String) {
        let mut child = self.child.take().unwrap();
        let lines = std::mem::replace(&mut self.lines, std::sync::mpsc::channel().1);
        let startup = std::mem::take(&mut self.startup);
        tokio::task::spawn_blocking(move || {
            let code = child.wait().unwrap().code();
            let logs: Vec<String> = startup.into_iter().chain(lines.iter()).collect();
            (code, logs.join("\n"))
        })
        .await
        .unwrap()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A tool the README's test command installs (a Python or Node environment), named by an environment variable.
/// Under CI a missing one fails the test; elsewhere the test says how to run it and is skipped.
pub fn tool(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").is_ok() => {
            panic!("{var} is not set; run the README's test command")
        }
        _ => {
            eprintln!("skipped: set {var} (scripts/test does)");
            None
        }
    }
}

/// Runs a program to the end; its standard output, or a panic with both outputs when it fails.
pub fn run_program(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} does not run: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// The value of one series in Prometheus text (`name{label="v",…}` exactly as rendered), 0 when absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

/// `/metrics` of an admin listener.
pub async fn scrape(admin: impl std::fmt::Display) -> String {
    scrape_path(admin, "metrics").await
}

/// `/spend` of an admin listener.
pub async fn spend_report(admin: impl std::fmt::Display) -> serde_json::Value {
    let text = scrape_path(admin, "spend").await;
    serde_json::from_str(&text).unwrap()
}

async fn scrape_path(admin: impl std::fmt::Display, path: &str) -> String {
    reqwest::get(format!("http://{admin}/{path}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The most arrivals in any window of `window` (arrivals at `t` and `t + window` are in different windows), counted
/// by this code alone: the referee for every rate-limit test, independent of the gateway's limiter and of the
/// emulator's.
pub fn max_in_any_window(arrivals: &[std::time::Instant], window: std::time::Duration) -> usize {
    let mut times = arrivals.to_vec();
    times.sort();
    let mut most = 0;
    let mut first = 0;
    for (last, t) in times.iter().enumerate() {
        while *t - times[first] >= window {
            first += 1;
        }
        most = most.max(last - first + 1);
    }
    most
}

/// Pinecone's promise as the README states it: at most `limit` requests of `op` to the test index in any one-second
/// window, as the requests arrived.
pub fn assert_within_limit(
    emulator: &pinecone_gateway::emulator::Emulator,
    op: &str,
    limit: usize,
) {
    let arrivals = emulator.arrivals(INDEX, op);
    let most = max_in_any_window(&arrivals, std::time::Duration::from_secs(1));
    assert!(
        most <= limit,
        "{most} {op} requests arrived within one second (limit {limit}; {} in all)",
        arrivals.len()
    );
}
