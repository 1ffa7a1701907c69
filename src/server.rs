//! Assembles the gRPC server: the services over one shared [`Gateway`], standard health (`grpc.health.v1`) and
//! reflection (v1 and v1alpha), bound to a listener. `main.rs` and the tests both start the gateway through
//! [`start`].
//!
//! Health: SERVING for the server ("") and each service, NOT_SERVING while draining and while Pinecone has been
//! unreachable for longer than `server.upstream_unhealthy_after_ms`. Drain ([`RunningGateway::drain`]): from its
//! first moment health is NOT_SERVING and `/readyz` 503 while the listener stays open, so probes and new calls get
//! an answer (new calls: UNAVAILABLE, so clients go to another replica); calls in progress get
//! `server.drain_grace_ms` to finish; then the gRPC server closes. The admin listener (`/healthz` 200, `/metrics`)
//! serves until the very end.

use crate::api::caller::Callers;
use crate::api::{BackupApi, Gateway, ListApi, UpstreamService, VectorApi};
use crate::config::Settings;
use crate::pb::gateway::backup_service_server::BackupServiceServer;
use crate::pb::gateway::list_service_server::ListServiceServer;
use crate::pb::pinecone::vector_service_server::VectorServiceServer;
use crate::stack::{self, Reloadable, limit::Limiter};
use crate::upstream::Upstream;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// Answers may be as large as Pinecone's 7.x/8.x clients accept (128 MiB): a merged fetch of many IDs is large.
const MAX_ANSWER_BYTES: usize = 128 * 1024 * 1024;

/// The services whose health is reported, and the server as a whole ("").
const SERVICES: [&str; 4] = [
    "",
    "VectorService",
    "pinecone_gateway.v1.BackupService",
    "pinecone_gateway.v1.ListService",
];

/// A running gateway.
pub struct RunningGateway {
    pub addr: SocketAddr,
    limiter: Arc<Limiter>,
    coalescing: Reloadable<stack::coalesce::CoalesceSettings>,
    callers: Callers,
    upstream: Upstream,
    /// The admin HTTP listener, when it is on.
    pub admin_addr: Option<SocketAddr>,
    /// The REST front door, when it is on (`server.rest_listen`); it stops with the admin listener, last.
    pub rest_addr: Option<SocketAddr>,
    ready: watch::Sender<bool>,
    /// Stops the admin listener: the last thing a drain or a shutdown does.
    admin_stop: watch::Sender<bool>,
    gateway: Gateway,
    health: HealthReporter,
    draining: watch::Sender<bool>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
    grace: Duration,
    /// The span export, with `[tracing]` on: flushed last.
    exporting: Option<crate::telemetry::trace::Exporting>,
    /// The settings in force: what a reload compares the file with.
    settings: std::sync::Mutex<Settings>,
}

/// How long a stopping gateway waits for its last spans to reach the collector.
const SPAN_FLUSH: Duration = Duration::from_secs(5);

impl RunningGateway {
    /// Stops at once (tests); calls in progress are abandoned after the server's own graceful close.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        let result = self.task.await;
        let _ = self.admin_stop.send(true);
        if let Some(e) = self.exporting {
            e.flush(SPAN_FLUSH).await;
        }
        result??;
        Ok(())
    }

    /// Drains: health NOT_SERVING and `/readyz` 503 at once, new calls refused with UNAVAILABLE, calls in progress
    /// given `drain_grace_ms` to finish; then the gRPC server closes, and last the admin listener.
    pub async fn drain(self) -> anyhow::Result<()> {
        let grace_ends = tokio::time::Instant::now() + self.grace;
        let _ = self.draining.send(true);
        let _ = self.ready.send(false);
        self.gateway.start_draining();
        for s in SERVICES {
            self.health
                .set_service_status(s, ServingStatus::NotServing)
                .await;
        }
        tracing::info!(
            calls = self.gateway.calls_in_progress(),
            "draining: health NOT_SERVING, new calls refused, finishing the calls in progress"
        );
        if tokio::time::timeout_at(grace_ends, self.gateway.idle())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_ms = self.grace.as_millis() as u64,
                calls = self.gateway.calls_in_progress(),
                "drain grace period over with calls still in progress; exiting"
            );
        }
        let _ = self.stop.send(());
        // Streams that never end by themselves (a health Watch) hold the server only until the grace ends.
        let closed = tokio::time::timeout_at(grace_ends, self.task).await;
        // What this replica charged since its last sync reaches Redis (redis mode) before it exits.
        self.gateway.sync_spend().await;
        let _ = self.admin_stop.send(true);
        if let Some(e) = self.exporting {
            e.flush(SPAN_FLUSH).await;
        }
        if let Ok(r) = closed {
            r??;
        }
        Ok(())
    }

    /// Applies a reloaded configuration file: its live keys (`[limits]`, `[coalescing]`, `[callers]`,
    /// `[indexes.*]`) to calls from now on, dropping none; start-up keys stay as they are (see
    /// [`crate::config::reload`]). Returns what changed, for the log.
    pub fn reload(&self, file: &Settings) -> crate::config::reload::Reload {
        let mut current = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        let plan = crate::config::reload::plan(&current, file);
        let next = &plan.settings;
        self.limiter.reload(next.limits.clone());
        self.coalescing.set(next.coalescing.clone());
        self.callers.reload(&next.callers);
        self.upstream
            .reload_hosts(next.upstream.static_hosts.clone());
        *current = next.clone();
        plan
    }

    /// Waits until the server ends by itself (it does not, unless it fails).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.task).await??;
        Ok(())
    }
}

/// The tower stack over the REST client.
pub fn upstream_stack(
    settings: &Settings,
    client: Upstream,
    limiter: Arc<Limiter>,
    coalescing: Reloadable<stack::coalesce::CoalesceSettings>,
) -> UpstreamService {
    stack::build(
        client,
        limiter,
        settings.retry.clone(),
        settings.batching.clone(),
        coalescing,
    )
}

/// Binds `settings.server.listen` and serves.
pub async fn start(settings: &Settings) -> anyhow::Result<RunningGateway> {
    let listener = TcpListener::bind(settings.server.listen).await?;
    let addr = listener.local_addr()?;
    let client = Upstream::new(settings.upstream.clone())?;
    let limiter = Limiter::new(settings.limits.clone());
    let coalescing = Reloadable::new(settings.coalescing.clone());
    let callers = Callers::new(&settings.callers).with_redis(limiter.redis());
    let gw = Gateway::new(
        upstream_stack(
            settings,
            client.clone(),
            limiter.clone(),
            coalescing.clone(),
        ),
        settings.default_index.clone(),
        settings.server.default_timeout,
        settings.server.max_concurrent_calls,
    )
    .with_auth(settings.auth.clone())
    .with_callers(callers.clone())
    .with_consistency(settings.consistency.clone(), limiter.redis());
    let (gw, exporting) = match &settings.tracing {
        Some(t) => {
            let (tracer, exporting) = crate::telemetry::trace::Tracer::start(t)?;
            tracing::info!(endpoint = %t.otlp_endpoint, sample_ratio = t.sample_ratio, "exporting traces over OTLP");
            (gw.with_tracer(Some(tracer)), Some(exporting))
        }
        None => (gw, None),
    };
    let vector = VectorServiceServer::new(VectorApi::new(gw.clone()))
        .max_decoding_message_size(settings.server.max_message_bytes)
        .max_encoding_message_size(MAX_ANSWER_BYTES);
    let backup = BackupServiceServer::new(BackupApi::new(gw.clone()))
        .max_decoding_message_size(settings.server.max_message_bytes);
    let list = ListServiceServer::new(ListApi::new(gw.clone()))
        .max_decoding_message_size(settings.server.max_message_bytes);

    let (health, health_service) = tonic_health::server::health_reporter();
    for s in SERVICES {
        health.set_service_status(s, ServingStatus::Serving).await;
    }
    let (draining, draining_rx) = watch::channel(false);
    let (ready, ready_rx) = watch::channel(true);
    let (admin_stop, admin_stop_rx) = watch::channel(false);
    tokio::spawn(watch_upstream(
        health.clone(),
        ready.clone(),
        client.clone(),
        settings.server.upstream_unhealthy_after,
        draining_rx.clone(),
    ));
    let rest_addr = match settings.server.rest_listen {
        Some(listen) => Some(
            crate::rest::start(
                listen,
                crate::rest::Services {
                    vectors: VectorApi::new(gw.clone()),
                    backups: BackupApi::new(gw.clone()),
                },
                settings.server.max_message_bytes,
                settings.server.tls.as_ref(),
                admin_stop_rx.clone(),
            )
            .await?,
        ),
        None => None,
    };
    // Redis mode: spend shared every `spend_sync_ms`; local mode: only the budgets' shares (set at each call too)
    // are refreshed, for the day's and the month's turn.
    let spend_sync = settings
        .limits
        .redis
        .as_ref()
        .map_or(Duration::from_secs(10), |r| r.spend_sync);
    tokio::spawn(
        gw.clone()
            .keep_spend_synced(spend_sync, admin_stop_rx.clone()),
    );
    // Redis mode: this replica's heartbeat, so that every replica knows the fleet's size, and the stamps of answered
    // requests that found no round trip to ride on.
    if let Some(redis) = limiter.redis() {
        tokio::spawn(redis.maintain(admin_stop_rx.clone()));
    }
    let admin_addr = match settings.server.admin_listen {
        Some(listen) => {
            Some(crate::admin::start(listen, ready_rx, gw.clone(), admin_stop_rx).await?)
        }
        None => None,
    };

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let (stop, stopped) = oneshot::channel::<()>();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &settings.server.tls {
        use tonic::transport::{Certificate, Identity, ServerTlsConfig};
        let mut config =
            ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem));
        if let Some(ca) = &tls.client_ca_pem {
            config = config.client_ca_root(Certificate::from_pem(ca));
        }
        builder = builder.tls_config(config)?;
    }
    let server = builder
        .layer(crate::api::size::SizeLayer::new(
            crate::api::size::Budget::new(settings.server.max_buffered_request_bytes),
        ))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(vector)
        .add_service(backup)
        .add_service(list)
        // Our own listener bypasses the builder's TCP_NODELAY; without it, small answers wait for delayed ACKs
        // (~40 ms per call under concurrency, measured by the benchmark).
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            async {
                let _ = stopped.await;
            },
        );
    let task = tokio::spawn(server);
    Ok(RunningGateway {
        addr,
        admin_addr,
        rest_addr,
        limiter,
        coalescing,
        callers,
        upstream: client,
        ready,
        admin_stop,
        gateway: gw,
        health,
        draining,
        stop,
        task,
        grace: settings.server.drain_grace,
        exporting,
        settings: std::sync::Mutex::new(settings.clone()),
    })
}

/// Reports NOT_SERVING while Pinecone has been unreachable for longer than `after`, SERVING again once it answers.
async fn watch_upstream(
    health: HealthReporter,
    ready: watch::Sender<bool>,
    client: Upstream,
    after: Duration,
    mut draining: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250).min(after));
    let mut serving = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = draining.wait_for(|d| *d) => return,
        }
        let healthy = client.unreachable_for().is_none_or(|d| d < after);
        if healthy != serving {
            serving = healthy;
            let status = if healthy {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            tracing::warn!(?status, "Pinecone reachability changed");
            let _ = ready.send(healthy);
            for s in SERVICES {
                health.set_service_status(s, status).await;
            }
        }
    }
}
