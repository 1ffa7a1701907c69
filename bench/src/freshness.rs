//! (g) Read your writes: under a 300 ms index lag (the emulator's `index_lag`), a caller writes a record and queries
//! for it straight after, `rounds` times per arm: how often the read reflects the write, its latency and the upstream
//! reads per read, with plain reads (Pinecone as it is) and with `x-consistency: read-your-writes` (the default
//! backoff, and a shorter one: fewer milliseconds past the lag for more reads).

use super::{Args, INDEX, client, gateway, summary};
use hdrhistogram::Histogram;
use pinecone_gateway::emulator::{Emulator, EmulatorOptions};
use pinecone_gateway::pb::pinecone as p;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const LAG: Duration = Duration::from_millis(300);

pub async fn run(a: &Args) -> anyhow::Result<Value> {
    let emu = Emulator::start(
        "127.0.0.1:0".parse()?,
        EmulatorOptions {
            index_lag: LAG,
            ..Default::default()
        },
    )
    .await?;
    emu.create_index(INDEX, 8, "cosine")
        .await
        .map_err(anyhow::Error::msg)?;
    // Five rounds a second of measurement asked for (each "on" round takes about the lag).
    let rounds = (a.duration_secs * 5).max(5);
    let mut arms = Vec::new();
    for (arm, on, config) in [
        ("plain reads", false, ""),
        ("x-consistency: read-your-writes (defaults)", true, ""),
        (
            "x-consistency: read-your-writes, consistency.max_backoff_ms = 50",
            true,
            "[consistency]\nmax_backoff_ms = 50\n",
        ),
    ] {
        let gw = gateway(a, &emu.url(), config)?;
        let c = client(&gw.addr).await?;
        let mut latency = Histogram::<u64>::new(3)?;
        let mut reflected = 0u64;
        let before = emu.count(INDEX, "query");
        for round in 0..rounds {
            // A namespace per round: the query's one match is this round's record, or nothing.
            let namespace = format!("{}-{round}", arms.len());
            let values = vec![1.0, round as f32, 0.5, 0.25, 0.0, 0.0, 0.0, 1.0];
            let mut w = tonic::Request::new(p::UpsertRequest {
                vectors: vec![p::Vector {
                    id: "written".into(),
                    values: values.clone(),
                    ..Default::default()
                }],
                namespace: namespace.clone(),
            });
            w.metadata_mut().insert("x-caller", "bench".parse()?);
            c.clone().upsert(w).await?;
            let mut r = tonic::Request::new(p::QueryRequest {
                top_k: 1,
                vector: values,
                namespace,
                ..Default::default()
            });
            r.metadata_mut().insert("x-caller", "bench".parse()?);
            if on {
                r.metadata_mut()
                    .insert("x-consistency", "read-your-writes".parse()?);
            }
            let started = Instant::now();
            let answer = c.clone().query(r).await?;
            latency.record(started.elapsed().as_micros() as u64)?;
            if answer.get_ref().matches.iter().any(|m| m.id == "written") {
                reflected += 1;
            }
        }
        let reads = emu.count(INDEX, "query") - before;
        arms.push(json!({
            "arm": arm,
            "rounds": rounds,
            "reflected_share": reflected as f64 / rounds as f64,
            "read_latency": summary(&latency),
            "upstream_reads_per_read": ((reads as f64 / rounds as f64) * 100.0).round() / 100.0,
        }));
    }
    Ok(json!({
        "scenario": "(g) read your writes: a write, then a query for it straight after, under a 300 ms index lag",
        "index_lag_ms": LAG.as_millis() as u64,
        "arms": arms,
    }))
}
