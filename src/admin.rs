//! The admin HTTP listener (127.0.0.1 by default): `/metrics` in Prometheus text format, `/healthz` (the process
//! is alive), `/readyz` (ready to serve: not draining, and Pinecone reachable) and `/spend` (read and write units per
//! caller, index and operation, today and this month, as JSON: `api::spend`).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Clone)]
struct AdminState {
    metrics: Option<PrometheusHandle>,
    ready: watch::Receiver<bool>,
    gateway: crate::api::Gateway,
}

/// Binds and serves until `stop` turns true; returns the bound address.
pub async fn start(
    listen: SocketAddr,
    ready: watch::Receiver<bool>,
    gateway: crate::api::Gateway,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let state = AdminState {
        metrics: crate::telemetry::metrics::install(),
        ready,
        gateway,
    };
    let app =
        Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route(
                "/spend",
                get(|State(s): State<AdminState>| async move {
                    axum::Json(s.gateway.spend_report().await)
                }),
            )
            .with_state(state);
    tokio::spawn(async move {
        let signal = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await
        {
            tracing::warn!(error = %e, "admin listener failed");
        }
    });
    Ok(addr)
}

async fn metrics(State(s): State<AdminState>) -> (StatusCode, String) {
    match &s.metrics {
        Some(h) => {
            // Readiness as a metric, so a dashboard shows drains and unreachable spells beside the calls.
            let ready = if *s.ready.borrow() { 1.0 } else { 0.0 };
            metrics::gauge!(crate::telemetry::metrics::READY).set(ready);
            h.run_upkeep();
            (StatusCode::OK, h.render())
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable\n".into(),
        ),
    }
}

async fn readyz(State(s): State<AdminState>) -> (StatusCode, &'static str) {
    if *s.ready.borrow() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
