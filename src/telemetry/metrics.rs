//! Prometheus metrics through the `metrics` facade. One recorder per process (the facade is global); every
//! gateway in the process renders it on its admin listener's `/metrics`.
//!
//! Names (all prefixed `pinecone_gateway_`): calls by method and gRPC code and their latency; upstream requests by
//! operation and HTTP status (or `connect_error`, `broken`, `timeout`) and their latency; rate-limit waits and
//! rejections by operation class, and calls waiting; retries; batch sizes; coalesced IDs and callers per upstream
//! request; calls held back to keep a delete in order; calls in progress; limiter keys; in redis mode, whether limits fell back to the static share, Redis errors and
//! the latency of Redis decisions.
//! Labels never carry IDs, keys or tokens.
//!
//! The recorder keeps every histogram sample until something drains it into the buckets. Rendering `/metrics` does,
//! but a gateway nobody scrapes would grow by every sample of every call (about 130 bytes a fetch, and more CPU per
//! call as the pile grows: BENCHMARKS.md, "metrics upkeep"), so a thread of its own drains them every
//! [`UPKEEP_PERIOD`] for the life of the process, as the recorder itself lives.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// How often unscraped histogram samples are folded into their buckets (the exporter's own default).
pub const UPKEEP_PERIOD: Duration = Duration::from_secs(5);

pub const CALLS: &str = "pinecone_gateway_calls_total";
pub const CALL_SECONDS: &str = "pinecone_gateway_call_duration_seconds";
pub const IN_FLIGHT: &str = "pinecone_gateway_calls_in_flight";
pub const UPSTREAM: &str = "pinecone_gateway_upstream_requests_total";
pub const UPSTREAM_SECONDS: &str = "pinecone_gateway_upstream_duration_seconds";
pub const LIMIT_WAITS: &str = "pinecone_gateway_rate_limit_waits_total";
pub const LIMIT_WAIT_SECONDS: &str = "pinecone_gateway_rate_limit_wait_seconds";
pub const LIMIT_REJECTIONS: &str = "pinecone_gateway_rate_limit_rejections_total";
pub const LIMIT_QUEUE: &str = "pinecone_gateway_rate_limit_waiting_calls";
pub const LIMIT_KEYS: &str = "pinecone_gateway_rate_limit_keys";
pub const LIMIT_DEGRADED: &str = "pinecone_gateway_rate_limit_degraded";
pub const LIMIT_REDIS_ERRORS: &str = "pinecone_gateway_rate_limit_redis_errors_total";
pub const LIMIT_REDIS_SECONDS: &str = "pinecone_gateway_rate_limit_redis_decision_seconds";
pub const RETRIES: &str = "pinecone_gateway_retries_total";
pub const BATCH_SIZE: &str = "pinecone_gateway_batch_size";
pub const COALESCE_IDS: &str = "pinecone_gateway_coalesced_ids";
pub const COALESCE_CALLERS: &str = "pinecone_gateway_coalesced_callers";
pub const ORDER_WAITS: &str = "pinecone_gateway_order_waits_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder once; later calls return the same handle (None if another recorder was installed first).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let seconds = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets(&seconds)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(BATCH_SIZE.into()),
                        &[1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 750.0, 1000.0],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(COALESCE_IDS.into()),
                        &[1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(COALESCE_CALLERS.into()),
                        &[1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0],
                    )
                });
            match builder.and_then(|b| b.install_recorder()) {
                Ok(h) => {
                    let upkeep = h.clone();
                    if let Err(e) = spawn_upkeep(UPKEEP_PERIOD, move || upkeep.run_upkeep()) {
                        tracing::warn!(error = %e, "metrics upkeep thread not started; samples are drained only when /metrics is scraped");
                    }
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .clone()
}

/// Runs `upkeep` every `period` on a thread of its own, for the life of the process. A thread, not a task: the
/// recorder is process-wide and outlives any one runtime (tests start many).
fn spawn_upkeep(
    period: Duration,
    upkeep: impl Fn() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(period);
                upkeep();
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upkeep_runs_again_and_again_without_a_scrape() {
        let (tx, rx) = std::sync::mpsc::channel();
        spawn_upkeep(Duration::from_millis(1), move || {
            let _ = tx.send(());
        })
        .unwrap();
        for _ in 0..3 {
            rx.recv_timeout(Duration::from_secs(10))
                .expect("upkeep ran");
        }
    }

    #[test]
    fn the_installed_recorder_has_its_upkeep_thread() {
        assert!(install().is_some());
        let threads = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|name| name.trim() == "metrics-upkeep")
            .count();
        assert_eq!(
            threads, 1,
            "one upkeep thread for the process's one recorder"
        );
    }
}
