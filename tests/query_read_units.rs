//! Pinecone's query read-unit limit (2,000 RU/s per index) end to end, against an emulator that charges each query
//! by its namespace's size as Pinecone does and answers 429 past 2,000 read units in any second of an index. The
//! gateway only learns a query's cost from its answer, so it estimates it and reconciles; the referee is the
//! emulator's log of what each query was charged, summed here over every sliding second.
mod common;
use common::*;
use pinecone_gateway::pb::pinecone as p;
use std::time::{Duration, Instant};

/// The most read units that arrived within any `window`.
fn max_units_in_any_window(charged: &[(Instant, u64)], window: Duration) -> u64 {
    let mut log = charged.to_vec();
    log.sort();
    let (mut most, mut sum, mut first) = (0, 0, 0);
    for (t, units) in &log {
        sum += units;
        while *t - log[first].0 >= window {
            sum -= log[first].1;
            first += 1;
        }
        most = most.max(sum);
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_stay_within_the_read_unit_limit_and_use_it() {
    let env = Env::start_with(EnvOptions {
        enforce_limits: true,
        // Every 20 bytes of a namespace cost a read unit: the seeded namespaces cost about 20 RU a query, so the
        // index's 2,000 RU/s binds at about 100 queries a second, below the 4 x 100 requests/s of the namespaces.
        query_bytes_per_read_unit: Some(20),
        config: Some("[limits]\nexpected_upstream_ms = 300\n".into()),
        ..Default::default()
    })
    .await;
    let namespaces = ["a", "b", "c", "d"];
    for ns in namespaces {
        env.seed(ns, "r", 10).await;
    }
    let run_for = Duration::from_secs(4);
    let started = Instant::now();
    let mut callers = Vec::new();
    // 120 callers at once: with every query counted at one read unit before its cost is known, the first second
    // alone would send more than 2,000 read units.
    for c in 0..120 {
        let mut client = env.vectors();
        let namespace = namespaces[c % namespaces.len()].to_string();
        callers.push(tokio::spawn(async move {
            let mut units = 0u64;
            while started.elapsed() < run_for {
                let mut r = req(p::QueryRequest {
                    namespace: namespace.clone(),
                    top_k: 3,
                    vector: vec![1.0, 0.0, 0.5, 0.25],
                    ..Default::default()
                });
                r.set_timeout(Duration::from_secs(5));
                match client.query(r).await {
                    Ok(a) => units += a.into_inner().usage.unwrap().read_units.unwrap() as u64,
                    Err(s) => {
                        assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
                        assert!(s.message().contains("read units"), "{}", s.message());
                    }
                }
            }
            units
        }));
    }
    let mut answered_units = 0;
    for c in callers {
        answered_units += c.await.unwrap();
    }
    assert_eq!(env.emulator.throttled(INDEX), 0, "Pinecone answered 429");
    let charged = env.emulator.query_read_units(INDEX);
    let each = charged.first().unwrap().1;
    assert!((15..=30).contains(&each), "a query costs {each} RU");
    assert_eq!(charged.iter().map(|c| c.1).sum::<u64>(), answered_units);
    let most = max_units_in_any_window(&charged, Duration::from_secs(1));
    assert!(most <= 2_000, "{most} read units arrived within one second");
    // The limit is used: from the second second to the end of the fourth, at least 90% of 2,000 RU/s.
    let t0 = charged.iter().map(|c| c.0).min().unwrap();
    let (from, to) = (t0 + Duration::from_secs(1), t0 + Duration::from_secs(3));
    let steady: u64 = charged
        .iter()
        .filter(|(t, _)| *t >= from && *t < to)
        .map(|c| c.1)
        .sum();
    let per_second = steady as f64 / 2.0;
    eprintln!(
        "{} queries of {each} RU; at most {most} RU in any second; {per_second:.0} RU/s used in seconds 2-3",
        charged.len()
    );
    assert!(
        per_second >= 1_800.0,
        "{per_second:.0} read units per second used of 2,000"
    );
}

#[tokio::test]
async fn the_limit_is_configurable_per_index() {
    let env = Env::start_with(EnvOptions {
        query_bytes_per_read_unit: Some(20),
        config: Some(format!(
            "[indexes.{INDEX}.limits.query]\nindex_read_units_per_second = 30\n"
        )),
        ..Default::default()
    })
    .await;
    env.seed("a", "r", 10).await;
    let query = || {
        req(p::QueryRequest {
            namespace: "a".into(),
            top_k: 1,
            vector: vec![1.0, 0.0, 0.5, 0.25],
            ..Default::default()
        })
    };
    let mut client = env.vectors();
    // The first query measures the namespace (about 20 RU); the second would go past 30 RU in the second and waits
    // its turn, which a short deadline cannot afford.
    client.query(query()).await.unwrap();
    let mut second = query();
    second.set_timeout(Duration::from_millis(400));
    let refused = client.query(second).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused
            .message()
            .contains("query allows 30 read units/s per index"),
        "{}",
        refused.message()
    );
    assert_eq!(env.emulator.count(INDEX, "query"), 1, "nothing was sent");
}

/// Through the REST door: the same limit, a refusal 429 with `Retry-After` naming the read units, nothing sent.
#[tokio::test]
async fn the_limit_holds_through_the_rest_door() {
    let env = Env::start_with(EnvOptions {
        rest: true,
        default_index: Some(INDEX.into()),
        query_bytes_per_read_unit: Some(20),
        config: Some(format!(
            "[limits]\nmax_queue_wait_ms = 300\n\
             [indexes.{INDEX}.limits.query]\nindex_read_units_per_second = 30\n"
        )),
        ..Default::default()
    })
    .await;
    env.seed("a", "r", 10).await;
    let http = reqwest::Client::new();
    let query = || {
        http.post(format!("http://{}/query", env.rest_addr()))
            .json(
                &serde_json::json!({"topK": 1, "vector": [1.0, 0.0, 0.5, 0.25], "namespace": "a"}),
            )
            .send()
    };
    let first = query().await.unwrap();
    assert_eq!(first.status(), 200);
    let body: serde_json::Value = first.json().await.unwrap();
    assert!(body["usage"]["readUnits"].as_u64().unwrap() > 15, "{body}");
    // The namespace is measured now (about 20 RU): a second query does not fit the second's 30 RU.
    let refused = query().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let text = refused.text().await.unwrap();
    assert!(
        text.contains("query allows 30 read units/s per index"),
        "{text}"
    );
    assert_eq!(env.emulator.count(INDEX, "query"), 1, "nothing was sent");
}
