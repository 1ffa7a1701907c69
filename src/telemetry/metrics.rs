//! Prometheus metrics through the `metrics` facade. One recorder per process (the facade is global); every
//! gateway in the process renders it on its admin listener's `/metrics`.
//!
//! Names (all prefixed `pinecone_gateway_`): calls by method and gRPC code and their latency; upstream requests by
//! operation and HTTP status (or `connect_error`, `broken`, `timeout`) and their latency; rate-limit waits and
//! rejections by operation class, and calls waiting; retries; batch sizes; coalesced IDs and callers per upstream
//! request; calls held back to keep a delete in order; calls in progress; limiter keys; in redis mode, whether limits fell back to the static share, Redis errors and
//! the latency of Redis decisions; reads that waited for an LSN (by outcome), their repeated reads and wait; with `[tracing]` on, spans exported and dropped.
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
pub const READY: &str = "pinecone_gateway_ready";
pub const UPSTREAM: &str = "pinecone_gateway_upstream_requests_total";
pub const UPSTREAM_SECONDS: &str = "pinecone_gateway_upstream_duration_seconds";
pub const LIMIT_WAITS: &str = "pinecone_gateway_rate_limit_waits_total";
pub const LIMIT_WAIT_SECONDS: &str = "pinecone_gateway_rate_limit_wait_seconds";
pub const LIMIT_REJECTIONS: &str = "pinecone_gateway_rate_limit_rejections_total";
pub const CALLER_CALLS: &str = "pinecone_gateway_caller_calls_total";
pub const CALLER_REFUSALS: &str = "pinecone_gateway_caller_refusals_total";
pub const CALLER_LIMIT_WAITS: &str = "pinecone_gateway_caller_rate_limit_waits_total";
pub const CALLER_LIMIT_WAIT_SECONDS: &str = "pinecone_gateway_caller_rate_limit_wait_seconds";
pub const LIMIT_QUEUE: &str = "pinecone_gateway_rate_limit_waiting_calls";
pub const LIMIT_KEYS: &str = "pinecone_gateway_rate_limit_keys";
pub const LIMIT_DEGRADED: &str = "pinecone_gateway_rate_limit_degraded";
pub const LIMIT_REDIS_ERRORS: &str = "pinecone_gateway_rate_limit_redis_errors_total";
pub const LIMIT_REDIS_SECONDS: &str = "pinecone_gateway_rate_limit_redis_decision_seconds";
/// Redis mode: the live replicas Redis counted at this replica's last heartbeat.
pub const LIMIT_REPLICAS_SEEN: &str = "pinecone_gateway_rate_limit_replicas_seen";
/// Redis mode: how long this replica last promised a request answered in (its recent answer times).
pub const LIMIT_ANSWER_PROMISE: &str = "pinecone_gateway_rate_limit_answer_promise_seconds";
/// Redis mode: this replica's share (0 to 1) of the limit of its last call: what Redis granted it of that limit in
/// the last window; while Redis is down, the share it decides alone with (what it was granted, moving to an equal
/// share of the live fleet).
pub const LIMIT_REPLICA_SHARE: &str = "pinecone_gateway_rate_limit_replica_share";
/// Redis mode: the scripts this replica ran in Redis, by script (`take`, `close`, `heartbeat`, ...): its round trips.
pub const LIMIT_REDIS_ROUND_TRIPS: &str = "pinecone_gateway_rate_limit_redis_round_trips_total";
/// Redis mode: calls refused without a round trip (the fleet asks for more than `overload_ask_percent` of the
/// limit, or the queue is known to be longer than the call can wait).
pub const LIMIT_REFUSED_AT_HOME: &str = "pinecone_gateway_rate_limit_refused_at_home_total";
pub const RETRIES: &str = "pinecone_gateway_retries_total";
pub const RETRY_BUDGET_EXHAUSTED: &str = "pinecone_gateway_retry_budget_exhausted_total";
pub const BATCH_SIZE: &str = "pinecone_gateway_batch_size";
pub const COALESCE_IDS: &str = "pinecone_gateway_coalesced_ids";
pub const COALESCE_CALLERS: &str = "pinecone_gateway_coalesced_callers";
pub const ORDER_WAITS: &str = "pinecone_gateway_order_waits_total";
pub const CONSISTENCY_READS: &str = "pinecone_gateway_consistency_reads_total";
pub const CONSISTENCY_REPEATS: &str = "pinecone_gateway_consistency_repeated_reads_total";
pub const CONSISTENCY_WAIT_SECONDS: &str = "pinecone_gateway_consistency_wait_seconds";
pub const TRACE_SPANS_EXPORTED: &str = "pinecone_gateway_trace_spans_exported_total";
pub const TRACE_SPANS_DROPPED: &str = "pinecone_gateway_trace_spans_dropped_total";
/// Read units Pinecone reported, by caller, index and operation.
pub const READ_UNITS: &str = "pinecone_gateway_read_units_total";
/// Write units estimated from requests by Pinecone's rule, by caller, index and operation.
pub const WRITE_UNITS: &str = "pinecone_gateway_write_units_total";
/// The share of each caller's budget spent (`budget`: read_units_per_day and the like), 1 when spent.
pub const BUDGET_SPENT_RATIO: &str = "pinecone_gateway_budget_spent_ratio";
/// Pinecone's monthly read- or write-unit caps met (`kind`: read, write).
pub const UPSTREAM_QUOTA_EXHAUSTED: &str = "pinecone_gateway_upstream_quota_exhausted_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The upkeep thread of the installed recorder, once started.
static UPKEEP_THREAD: OnceLock<std::thread::Thread> = OnceLock::new();

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
                    match spawn_upkeep(UPKEEP_PERIOD, move || upkeep.run_upkeep()) {
                        Ok(thread) => {
                            let _ = UPKEEP_THREAD.set(thread.thread().clone());
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "metrics upkeep thread not started; samples are drained only when /metrics is scraped");
                        }
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

/// A series: its name and at most two labels, every part `&'static str`, known by address and length (equal keys
/// are equal strings; equal strings at two addresses only make two entries for one series).
type SeriesKey = [(usize, usize); 5];

fn series_key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Option<SeriesKey> {
    if labels.len() > 2 {
        return None;
    }
    let at = |s: &'static str| (s.as_ptr() as usize, s.len());
    let mut key = [(0, 0); 5];
    key[0] = at(name);
    for (i, (k, v)) in labels.iter().enumerate() {
        key[1 + 2 * i] = at(k);
        key[2 + 2 * i] = at(v);
    }
    Some(key)
}

type Handles<H> = std::cell::RefCell<rustc_hash::FxHashMap<SeriesKey, H>>;

thread_local! {
    static COUNTERS: Handles<metrics::Counter> = Default::default();
    static HISTOGRAMS: Handles<metrics::Histogram> = Default::default();
    static GAUGES: Handles<metrics::Gauge> = Default::default();
}

/// The handle of a series every call touches, kept per thread: `metrics::counter!` and its kin look the series up
/// in the recorder's registry each time (the name and labels hashed, a lock taken: 3% of a fetch's CPU). Nothing is
/// kept before the recorder is installed, since a handle taken then stays a no-op for ever.
fn cached<H: Clone>(
    handles: &'static std::thread::LocalKey<Handles<H>>,
    name: &'static str,
    labels: &[(&'static str, &'static str)],
    register: impl FnOnce() -> H,
) -> H {
    let Some(key) = series_key(name, labels).filter(|_| installed()) else {
        return register();
    };
    handles.with(|map| {
        if let Some(h) = map.borrow().get(&key) {
            return h.clone();
        }
        let h = register();
        map.borrow_mut().insert(key, h.clone());
        h
    })
}

fn installed() -> bool {
    HANDLE.get().is_some_and(Option::is_some)
}

/// `s` as a `&'static str`, each distinct string leaked once for the life of the process: for label values from the
/// configuration (caller names), whose set is bounded by what the configurations ever named.
pub fn intern(s: &str) -> &'static str {
    static INTERNED: std::sync::Mutex<Option<std::collections::HashSet<&'static str>>> =
        std::sync::Mutex::new(None);
    let mut set = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
    let set = set.get_or_insert_with(Default::default);
    if let Some(&known) = set.get(s) {
        return known;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    set.insert(leaked);
    leaked
}

/// The counter `name` with `labels` (at most two), from the per-thread cache.
pub fn counter(name: &'static str, labels: &[(&'static str, &'static str)]) -> metrics::Counter {
    cached(&COUNTERS, name, labels, || metrics::counter!(name, labels))
}

/// The histogram `name` with `labels` (at most two), from the per-thread cache.
pub fn histogram(
    name: &'static str,
    labels: &[(&'static str, &'static str)],
) -> metrics::Histogram {
    cached(&HISTOGRAMS, name, labels, || {
        metrics::histogram!(name, labels)
    })
}

/// The gauge `name` with `labels` (at most two), from the per-thread cache.
pub fn gauge(name: &'static str, labels: &[(&'static str, &'static str)]) -> metrics::Gauge {
    cached(&GAUGES, name, labels, || metrics::gauge!(name, labels))
}

/// An HTTP status as a label, `&'static` for the statuses Pinecone answers with (so their series are cached).
pub fn status_label(status: u16) -> std::borrow::Cow<'static, str> {
    let s = match status {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        409 => "409",
        412 => "412",
        413 => "413",
        422 => "422",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        other => return other.to_string().into(),
    };
    s.into()
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
    fn cached_handles_count_into_the_installed_recorder() {
        let handle = install().unwrap();
        let count = || {
            handle
                .render()
                .lines()
                .find(|l| l.starts_with("pinecone_gateway_test_cached_total{"))
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let before = count();
        for _ in 0..3 {
            counter(
                "pinecone_gateway_test_cached_total",
                &[("operation", "fetch"), ("status", "200")],
            )
            .increment(1);
        }
        // Another thread has a cache of its own, and the same series.
        std::thread::spawn(|| {
            counter(
                "pinecone_gateway_test_cached_total",
                &[("operation", "fetch"), ("status", "200")],
            )
            .increment(1)
        })
        .join()
        .unwrap();
        assert_eq!(count(), before + 4);
        let hit = series_key("n", &[("a", "b")]);
        assert!(hit.is_some());
        assert_eq!(hit, series_key("n", &[("a", "b")]));
        assert_ne!(hit, series_key("n", &[("a", "c")]));
        assert!(series_key("n", &[("a", "b"), ("c", "d"), ("e", "f")]).is_none());
        assert_eq!(status_label(429), "429");
        assert_eq!(status_label(418), "418");
    }

    #[test]
    fn the_installed_recorder_has_its_upkeep_thread() {
        assert!(install().is_some());
        let first = UPKEEP_THREAD.get().map(|t| t.id());
        assert_eq!(
            UPKEEP_THREAD.get().and_then(|t| t.name()),
            Some("metrics-upkeep")
        );
        // (The thread names itself once it runs, so /proc/self/task may not show the name yet: asking the handle
        // does not race.) Installing again starts no second thread.
        assert!(install().is_some());
        assert_eq!(UPKEEP_THREAD.get().map(|t| t.id()), first);
    }
}
