//! The command line: parse, load the configuration, start. Everything else lives in the library.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use pinecone_gateway::config::{FileConfig, LogFormat, Overrides};
use pinecone_gateway::emulator::faults::Faults;
use pinecone_gateway::emulator::{self, Emulator, EmulatorOptions};
use pinecone_gateway::{server, telemetry};
use std::net::SocketAddr;
use std::path::PathBuf;

/// A call allocates a few dozen small buffers (headers, IDs, JSON); mimalloc serves them in about half the CPU of
/// glibc's malloc, and returns memory to the system as readily (BENCHMARKS.md, "allocator").
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "pinecone-gateway",
    version,
    about = "A gRPC sidecar in front of Pinecone"
)]
struct Cli {
    /// Threads that run calls. Default: the CPUs this process may use (its CPU affinity and cgroup quota); with one,
    /// everything runs on one thread (no cross-thread wake-ups).
    #[arg(long, global = true, env = "PINECONE_GATEWAY_WORKER_THREADS")]
    worker_threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gRPC API.
    Serve(ServeArgs),
    /// Run the in-memory Pinecone emulator alone.
    Emulator(EmulatorArgs),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file with the same flags and environment as `serve`, and print the effective
    /// configuration, secrets masked. Exits non-zero on an invalid one, with one line per problem, each naming its key.
    Check {
        /// The file to check.
        file: PathBuf,
        #[command(flatten)]
        overrides: OverrideArgs,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The configuration file (TOML).
    #[arg(long, env = "PINECONE_GATEWAY_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: OverrideArgs,
    /// Start the built-in emulator with a demo index and send every call to it: no account, no network.
    #[arg(long)]
    emulator: bool,
}

/// What flags and the environment override in the configuration file (`serve` and `config check` alike).
#[derive(clap::Args)]
struct OverrideArgs {
    /// gRPC listen address [default: 127.0.0.1:5081].
    #[arg(long, env = "PINECONE_GATEWAY_LISTEN")]
    listen: Option<String>,
    /// Admin HTTP listen address (/metrics, /healthz, /readyz) [default: 127.0.0.1:9464].
    #[arg(long, env = "PINECONE_GATEWAY_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// REST front door listen address (Pinecone's REST data plane over the same stack) [default: off].
    #[arg(long, env = "PINECONE_GATEWAY_REST_LISTEN")]
    rest_listen: Option<String>,
    /// Pinecone's control-plane URL [default: https://api.pinecone.io].
    #[arg(long, env = "PINECONE_GATEWAY_CONTROL_PLANE_URL")]
    control_plane_url: Option<String>,
    /// The index of calls that name none.
    #[arg(long, env = "PINECONE_GATEWAY_DEFAULT_INDEX")]
    default_index: Option<String>,
    /// A file holding the Pinecone API key (else PINECONE_API_KEY).
    #[arg(long, env = "PINECONE_API_KEY_FILE")]
    api_key_file: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "PINECONE_GATEWAY_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// Log level or tracing filter (`info`, `pinecone_gateway=debug`); RUST_LOG wins when set.
    #[arg(long, env = "PINECONE_GATEWAY_LOG_LEVEL")]
    log_level: Option<String>,
}

impl OverrideArgs {
    /// The overrides, with the secrets that come only from the environment (the API key, the Redis URL).
    fn overrides(self) -> Overrides {
        Overrides {
            listen: self.listen,
            admin_listen: self.admin_listen,
            rest_listen: self.rest_listen,
            control_plane_url: self.control_plane_url,
            default_index: self.default_index,
            api_key_file: self.api_key_file,
            api_key: std::env::var("PINECONE_API_KEY").ok(),
            log_format: self.log_format,
            log_level: self.log_level,
            redis_url: std::env::var("PINECONE_GATEWAY_REDIS_URL").ok(),
            plaintext_http2: None,
        }
    }
}

#[derive(clap::Args)]
struct EmulatorArgs {
    /// Control-plane listen address; each index gets its own port on the same IP.
    #[arg(
        long,
        default_value = "127.0.0.1:5080",
        env = "PINECONE_EMULATOR_LISTEN"
    )]
    listen: SocketAddr,
    /// Require this API key on every request (any key is accepted when unset).
    #[arg(long, env = "PINECONE_EMULATOR_API_KEY")]
    api_key: Option<String>,
    /// Create the demo index `demo` with sample records.
    #[arg(long)]
    demo: bool,
    /// Enforce Pinecone's documented per-second limits (429 past them), as Pinecone does.
    #[arg(long)]
    enforce_limits: bool,
    /// Share of requests answered 503, in percent.
    #[arg(long, default_value_t = 0.0)]
    fault_error_percent: f64,
    /// Share of requests answered 429, in percent.
    #[arg(long, default_value_t = 0.0)]
    fault_throttle_percent: f64,
    /// `Retry-After` seconds on injected 429s (none when unset).
    #[arg(long)]
    fault_retry_after_secs: Option<u64>,
    /// Share of requests whose connection breaks after they were applied, in percent.
    #[arg(long, default_value_t = 0.0)]
    fault_drop_percent: f64,
    /// Latency added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    fault_delay_ms: u64,
    /// Answer every data-plane request with Pinecone's 429 for a plan's monthly `read` or `write` unit limit.
    #[arg(long, value_parser = ["read", "write"])]
    fault_monthly_cap: Option<String>,
    /// How long an index restored from a backup initializes (`host: null`, not ready), in milliseconds.
    #[arg(long, default_value_t = DEMO_RESTORE_INIT_MS)]
    restore_init_ms: u64,
    /// How long after a write reads (queries, fetches, stats) see it, in milliseconds, as Pinecone is eventually
    /// consistent; a write's `x-emulator-index-lag-ms` header wins.
    #[arg(long, default_value_t = 0)]
    index_lag_ms: u64,
    /// The names of the LSN headers of answers: `current` (`x-pinecone-lsn-committed` / `-reconciled`, what
    /// Pinecone's current SDK reads), `guide` (`x-pinecone-request-lsn` / `-max-indexed-lsn`, as Pinecone's freshness
    /// guide names them) or `both`; a request's `x-emulator-lsn-headers` wins.
    #[arg(long, default_value = "current")]
    lsn_headers: pinecone_gateway::emulator::LsnSpelling,
    /// How many bytes of a namespace cost one read unit per query. Pinecone charges 1 RU per GB (the default);
    /// smaller values make small namespaces cost what large ones do, so that Pinecone's 2,000 read units per second
    /// per index binds (with `--enforce-limits`).
    #[arg(long, default_value_t = 1_000_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    query_bytes_per_read_unit: u64,
}

const DEMO_INDEX: &str = "demo";
/// How long an index restored from a backup initializes in the built-in emulator (`host: null`, not ready).
const DEMO_RESTORE_INIT_MS: u64 = 2_000;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let threads = match cli.worker_threads {
        Some(0) => {
            eprintln!(
                "error: --worker-threads (PINECONE_GATEWAY_WORKER_THREADS) must be at least 1, got 0"
            );
            return std::process::ExitCode::FAILURE;
        }
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
    };
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // One clear line for an operator, not a backtrace.
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Emulator(args) => run_emulator(args).await,
        Command::Config(ConfigCommand::Check { file, overrides }) => {
            config_check(&file, overrides.overrides())
        }
    }
}

fn config_check(file: &std::path::Path, overrides: Overrides) -> anyhow::Result<()> {
    let parsed = FileConfig::read(file)?;
    // A missing key is reported, not fatal: the file itself may be fine and the key come from the pod's Secret.
    let key_missing = overrides.api_key.as_deref().unwrap_or("").is_empty()
        && parsed.upstream.api_key_file.is_none();
    let overrides = Overrides {
        api_key: overrides
            .api_key
            .filter(|k| !k.is_empty())
            .or_else(|| Some("unset".into())),
        ..overrides
    };
    let settings = parsed.settings(overrides)?;
    println!("# {}: valid", file.display());
    if key_missing && settings.upstream.control_plane.scheme() == "https" {
        println!(
            "# note: no API key yet: set PINECONE_API_KEY or upstream.api_key_file before `serve`"
        );
    }
    print!("{}", pinecone_gateway::config::effective::render(&settings));
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => FileConfig::read(path)?,
        None => FileConfig::default(),
    };
    let mut overrides = args.overrides.overrides();
    let emulator = if args.emulator {
        let options = EmulatorOptions {
            restore_init: std::time::Duration::from_millis(DEMO_RESTORE_INIT_MS),
            ..Default::default()
        };
        let emu = Emulator::start("127.0.0.1:0".parse()?, options).await?;
        emulator::seed_demo(&emu, DEMO_INDEX)
            .await
            .map_err(anyhow::Error::msg)?;
        overrides.control_plane_url = Some(emu.url());
        overrides
            .default_index
            .get_or_insert_with(|| DEMO_INDEX.into());
        overrides.api_key = Some("emulator".into());
        overrides.api_key_file = None;
        overrides.plaintext_http2 = Some(true);
        Some(emu)
    } else {
        None
    };
    let settings = file.settings(overrides.clone())?;
    let _log = telemetry::init(settings.log_format, &settings.log_level);
    let mut running = server::start(&settings).await?;
    let addr = running.addr;
    if let Some(emu) = &emulator {
        println!("pinecone-gateway listening on {addr} (gRPC, plaintext)");
        println!(
            "upstream: the built-in Pinecone emulator at {} with index `{DEMO_INDEX}`",
            emu.url()
        );
        println!("try it (grpcurl, from the repository root):");
        println!(
            "  grpcurl -plaintext -import-path proto -proto vector_service.proto -H 'pinecone-index: {DEMO_INDEX}' \\\n    -d '{{\"ids\": [\"doc1#chunk1\"], \"namespace\": \"example-namespace\"}}' {addr} VectorService/Fetch"
        );
        println!("or with the official Python client (pip install \"pinecone[grpc]==8.1.2\"):");
        println!(
            "  python3 -c 'from pinecone.grpc import PineconeGRPC, GRPCClientConfig as C; i = PineconeGRPC(api_key=\"x\").Index(name=\"{DEMO_INDEX}\", host=\"{addr}\", grpc_config=C(secure=False)); print(i.fetch(ids=[\"doc1#chunk1\"], namespace=\"example-namespace\"))'"
        );
        if let Some(rest) = running.rest_addr {
            println!("REST front door (Pinecone's REST data plane) on {rest}:");
            println!(
                "  curl 'http://{rest}/indexes/{DEMO_INDEX}/vectors/fetch?ids=doc1%23chunk1&namespace=example-namespace'"
            );
        }
    } else {
        let admin = running
            .admin_addr
            .map(|a| a.to_string())
            .unwrap_or_else(|| "off".into());
        let rest = running
            .rest_addr
            .map(|a| a.to_string())
            .unwrap_or_else(|| "off".into());
        tracing::info!(%addr, %admin, %rest, control_plane = %settings.upstream.control_plane, "pinecone-gateway listening");
    }
    let (mut shutdown, mut hangup) = signals()?;
    loop {
        tokio::select! {
            r = running.wait() => return r,
            _ = shutdown.recv() => break,
            _ = hangup.recv() => reload(&running, args.config.as_deref(), &overrides),
        }
    }
    running.drain().await?;
    if let Some(emu) = emulator {
        emu.shutdown().await;
    }
    tracing::info!("drained; exiting");
    Ok(())
}

/// SIGHUP: re-read the configuration file; apply its limits and per-index settings, or keep the old ones.
fn reload(running: &server::RunningGateway, path: Option<&std::path::Path>, overrides: &Overrides) {
    let Some(path) = path else {
        tracing::warn!("SIGHUP ignored: the gateway was started without --config");
        return;
    };
    match FileConfig::read(path).and_then(|f| f.settings(overrides.clone())) {
        Ok(settings) => {
            let done = running.reload(&settings);
            if !done.restart.is_empty() {
                tracing::warn!(
                    file = %path.display(),
                    keys = %done.restart.join(", "),
                    "changed in the file but kept as they are: they take effect at the next restart"
                );
            }
            tracing::info!(
                file = %path.display(),
                applied = %done.applied.join(", "),
                "configuration reloaded: changed limits, coalescing, callers and per-index settings applied"
            );
        }
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "configuration refused; keeping the old one")
        }
    }
}

/// SIGTERM or Ctrl-C: drain and exit.
struct Shutdown(#[cfg(unix)] tokio::signal::unix::Signal);

/// SIGHUP: reload the configuration.
struct Hangup(#[cfg(unix)] tokio::signal::unix::Signal);

fn signals() -> std::io::Result<(Shutdown, Hangup)> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        Ok((
            Shutdown(signal(SignalKind::terminate())?),
            Hangup(signal(SignalKind::hangup())?),
        ))
    }
    #[cfg(not(unix))]
    {
        Ok((Shutdown(), Hangup()))
    }
}

impl Shutdown {
    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.0.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

impl Hangup {
    async fn recv(&mut self) {
        #[cfg(unix)]
        self.0.recv().await;
        #[cfg(not(unix))]
        std::future::pending::<()>().await;
    }
}

async fn run_emulator(args: EmulatorArgs) -> anyhow::Result<()> {
    let _log = telemetry::init(LogFormat::Text, "info");
    let options = EmulatorOptions {
        api_key: args.api_key,
        enforce_limits: args.enforce_limits,
        restore_init: std::time::Duration::from_millis(args.restore_init_ms),
        index_lag: std::time::Duration::from_millis(args.index_lag_ms),
        lsn_spelling: args.lsn_headers,
        query_bytes_per_read_unit: Some(args.query_bytes_per_read_unit),
        tls: None,
        faults: Faults {
            error_percent: args.fault_error_percent,
            throttle_percent: args.fault_throttle_percent,
            throttle_retry_after_secs: args.fault_retry_after_secs,
            drop_percent: args.fault_drop_percent,
            delay_ms: args.fault_delay_ms,
            monthly_cap: args.fault_monthly_cap,
        },
    };
    let emu = Emulator::start(args.listen, options).await?;
    println!("Pinecone emulator: control plane at {}", emu.url());
    if args.demo {
        let host = emulator::seed_demo(&emu, DEMO_INDEX)
            .await
            .map_err(anyhow::Error::msg)?;
        println!("index `{DEMO_INDEX}` at http://{host}");
    }
    tokio::select! {
        _ = emu.wait() => {},
        _ = tokio::signal::ctrl_c() => emu.shutdown().await,
    }
    Ok(())
}
