//! `callers`: one index's fetch limit (Pinecone's 100 per second) shared by a batch caller offering ten times the
//! limit and an interactive caller offering a tenth of it, through the gateway with priorities off (no `[callers]`:
//! first come, first served) and on (`[callers]` names both). For each: the interactive caller's latency (p50, p99:
//! its added wait, since an unhindered fetch takes well under a millisecond), and each caller's share of the fetches
//! Pinecone saw. The CPU cost per call of the quota and the fair queue is the `proxies` scenario's callers arm.

use super::{Args, INDEX, client, emulator, gateway, summary};
use hdrhistogram::Histogram;
use pinecone_gateway::pb::pinecone as p;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LIMIT: u64 = 100;
const CALLERS: &str = "[callers.search]\npriority = \"interactive\"\n\
                       [callers.backfill]\npriority = \"batch\"\n";

/// What one caller got in the measured part.
#[derive(Default)]
struct Tally {
    ok: u64,
    refused: u64,
    /// The status of the first refusal, to say why.
    first_refusal: Option<String>,
    latency: Option<Histogram<u64>>,
}

/// Offers `per_second` fetches as `caller` from `start` until `end`, each with `timeout`; counts those that began
/// after `measure_from`.
async fn offer(
    c: pinecone_gateway::pb::pinecone::vector_service_client::VectorServiceClient<
        tonic::transport::Channel,
    >,
    caller: &'static str,
    per_second: u64,
    timeout: Duration,
    (start, measure_from, end): (Instant, Instant, Instant),
) -> anyhow::Result<Tally> {
    let tally = Arc::new(Mutex::new(Tally {
        latency: Some(Histogram::new(3)?),
        ..Default::default()
    }));
    let interval = Duration::from_nanos(1_000_000_000 / per_second);
    let mut next = start;
    let mut tasks = Vec::new();
    let mut n = 0u64;
    while next < end {
        tokio::time::sleep_until(next.into()).await;
        let (mut c, tally) = (c.clone(), tally.clone());
        let measured = next >= measure_from;
        n += 1;
        tasks.push(tokio::spawn(async move {
            let mut r = tonic::Request::new(p::FetchRequest {
                ids: vec![format!("{caller}-{n}")],
                namespace: String::new(),
            });
            r.set_timeout(timeout);
            if let Ok(v) = caller.parse() {
                r.metadata_mut().insert("x-caller", v);
            }
            let began = Instant::now();
            let result = c.fetch(r).await;
            if !measured {
                return;
            }
            let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
            match result {
                Ok(_) => {
                    t.ok += 1;
                    if let Some(h) = t.latency.as_mut() {
                        let _ = h.record(began.elapsed().as_micros() as u64);
                    }
                }
                Err(e) => {
                    t.refused += 1;
                    t.first_refusal
                        .get_or_insert_with(|| format!("{:?}: {}", e.code(), e.message()));
                }
            }
        }));
        next += interval;
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
    Ok(std::mem::take(&mut *t))
}

async fn one_mode(a: &Args, callers: &str) -> anyhow::Result<Value> {
    let emu = emulator(false).await?;
    let gw = gateway(
        a,
        &emu.url(),
        &format!("[coalescing]\nfetch = false\n{callers}"),
    )?;
    let c = client(&gw.addr).await?;
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(a.warmup_secs);
    let end = measure_from + Duration::from_secs(a.duration_secs);
    let window = (start, measure_from, end);
    let (batch, interactive) = tokio::join!(
        offer(
            c.clone(),
            "backfill",
            LIMIT * 10,
            Duration::from_secs(2),
            window
        ),
        offer(c, "search", LIMIT / 10, Duration::from_secs(5), window),
    );
    let (batch, interactive) = (batch?, interactive?);
    let secs = a.duration_secs as f64;
    let served = (batch.ok + interactive.ok).max(1) as f64;
    let share = |t: &Tally| (t.ok as f64 / served * 1000.0).round() / 10.0;
    Ok(json!({
        "interactive_latency": interactive.latency.as_ref().map(summary),
        "interactive_ok_per_second": (interactive.ok as f64 / secs * 10.0).round() / 10.0,
        "interactive_refused": interactive.refused,
        "interactive_first_refusal": interactive.first_refusal,
        "interactive_share_percent": share(&interactive),
        "batch_ok_per_second": (batch.ok as f64 / secs * 10.0).round() / 10.0,
        "batch_refused": batch.refused,
        "batch_first_refusal": batch.first_refusal,
        "batch_share_percent": share(&batch),
        "upstream_429s": emu.throttled(INDEX),
    }))
}

pub async fn run(a: &Args) -> anyhow::Result<Value> {
    let off = one_mode(a, "").await?;
    let on = one_mode(a, CALLERS).await?;
    let p = |v: &Value, q: &str| v["interactive_latency"][q].as_f64();
    Ok(json!({
        "scenario": "callers: a batch caller at 10x an index's fetch limit (100/s) and an interactive caller at 10% of it",
        "priorities_off": off,
        "priorities_on": on,
        "interactive_p50_us_off_vs_on": [p(&off, "p50_us"), p(&on, "p50_us")],
        "interactive_p99_us_off_vs_on": [p(&off, "p99_us"), p(&on, "p99_us")],
    }))
}
