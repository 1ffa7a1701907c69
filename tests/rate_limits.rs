//! Rate limits end to end, against an emulator that enforces Pinecone's documented limits itself: under sustained
//! overload Pinecone never answers 429, never sees more than the limit in any one-second window (counted by the
//! tests' own strict counter over the arrivals), and every call is either served or rejected with retry advice
//! within its deadline.
mod common;
use common::*;
use pinecone_gateway::pb::pinecone as p;
use std::time::{Duration, Instant};
use tonic_types::StatusExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_overload_never_reaches_pinecone_as_429() {
    // A busy 2-core test machine: keep 300 ms of each deadline for the upstream call itself.
    let env = Env::start_with(EnvOptions {
        enforce_limits: true,
        // Coalescing off: this is about the limiter alone (tests/coalescing.rs has the same load with it on).
        config: Some("[limits]\nexpected_upstream_ms = 300\n[coalescing]\nfetch = false\n".into()),
        ..Default::default()
    })
    .await;
    env.seed("ns", "r", 10).await;
    let run_for = Duration::from_millis(2500);
    let started = Instant::now();
    let mut callers = Vec::new();
    for c in 0..60 {
        let mut client = env.vectors();
        callers.push(tokio::spawn(async move {
            let (mut ok, mut throttled) = (0u32, 0u32);
            while started.elapsed() < run_for {
                let mut r = req(p::FetchRequest {
                    ids: vec![format!("r-{:04}", c % 10)],
                    namespace: "ns".into(),
                });
                r.set_timeout(Duration::from_millis(800));
                let sent = Instant::now();
                match client.fetch(r).await {
                    Ok(_) => ok += 1,
                    Err(s) => {
                        assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
                        let pushback = s
                            .metadata()
                            .get("grpc-retry-pushback-ms")
                            .expect("retry advice");
                        let advice: u64 = pushback.to_str().unwrap().parse().unwrap();
                        assert!(
                            s.get_details_retry_info()
                                .and_then(|i| i.retry_delay)
                                .is_some()
                        );
                        assert!(
                            s.message()
                                .contains("fetch allows 100 requests/s per index"),
                            "{}",
                            s.message()
                        );
                        throttled += 1;
                        // A well-behaved caller follows the advice.
                        tokio::time::sleep(Duration::from_millis(advice.min(200))).await;
                    }
                }
                assert!(
                    sent.elapsed() < Duration::from_millis(800 + 500),
                    "a call outlived its deadline"
                );
            }
            (ok, throttled)
        }));
    }
    let (mut ok, mut throttled) = (0, 0);
    for c in callers {
        let (o, t) = c.await.unwrap();
        ok += o;
        throttled += t;
    }
    assert_eq!(env.emulator.throttled(INDEX), 0, "Pinecone answered 429");
    assert!(throttled > 0, "the load did exceed the limit");
    let upstream = env.emulator.count(INDEX, "fetch");
    assert_eq!(upstream, ok as u64);
    assert_within_limit(&env.emulator, "fetch", 100);
    // And the limit was used: more than 90 in some second.
    let most = max_in_any_window(
        &env.emulator.arrivals(INDEX, "fetch"),
        Duration::from_secs(1),
    );
    assert!(most > 90, "only {most} in the busiest second");
}

#[test]
fn the_strict_counter_counts_a_sliding_window() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let s = Duration::from_secs(1);
    assert_eq!(max_in_any_window(&[], s), 0);
    assert_eq!(max_in_any_window(&[at(0), at(999)], s), 2);
    assert_eq!(max_in_any_window(&[at(0), at(1000)], s), 1);
    assert_eq!(
        max_in_any_window(&[at(500), at(0), at(1400), at(900)], s),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_waits_its_turn_instead_of_failing() {
    let env = Env::start_with(EnvOptions {
        enforce_limits: true,
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let mut calls = Vec::new();
    for _ in 0..150 {
        let mut client = env.vectors();
        calls.push(tokio::spawn(async move {
            let mut r = req(p::DescribeIndexStatsRequest::default());
            r.set_timeout(Duration::from_secs(10));
            client.describe_index_stats(r).await
        }));
    }
    for c in calls {
        c.await.unwrap().unwrap();
    }
    // 150 calls at 100 per second cannot all have been sent within the first second.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(env.emulator.count(INDEX, "describe_index_stats"), 150);
    assert_eq!(env.emulator.throttled(INDEX), 0);
    assert_within_limit(&env.emulator, "describe_index_stats", 100);
}

#[tokio::test]
async fn the_emulator_itself_answers_429_past_the_limit() {
    // Straight to the emulator's data plane, no gateway: it must enforce the documented limit.
    let env = Env::start_with(EnvOptions {
        enforce_limits: true,
        ..Default::default()
    })
    .await;
    let host = env.index_host().await;
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let resp = http
            .post(format!("http://{host}/vectors/fetch_by_metadata"))
            .header("Api-Key", KEY)
            .json(&serde_json::json!({"namespace": "ns", "filter": {"a": 1}}))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            assert!(resp.headers().contains_key("retry-after"));
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["code"], 8);
        }
    }
    // fetch_by_metadata: 5 requests per second per namespace.
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(env.emulator.throttled(INDEX), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_queue_len_calls_wait_on_one_limit() {
    let env = Env::start_with(EnvOptions {
        config: Some(
            "[limits]\nmax_queue_len = 5\n[limits.rates.describe_index_stats]\nindex_requests_per_second = 2\n"
                .into(),
        ),
        ..Default::default()
    })
    .await;
    let mut calls = Vec::new();
    for _ in 0..12 {
        let mut v = env.vectors();
        calls.push(tokio::spawn(async move {
            let mut r = req(p::DescribeIndexStatsRequest::default());
            r.set_timeout(Duration::from_secs(10));
            v.describe_index_stats(r).await
        }));
    }
    let mut refused = 0;
    for c in calls {
        if let Err(s) = c.await.unwrap() {
            assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
            assert!(
                s.message().contains("5 calls already wait their turn"),
                "{s:?}"
            );
            refused += 1;
        }
    }
    // Two go at once, five wait, the rest are refused at once.
    assert_eq!(refused, 5, "{refused} refused");
}

#[tokio::test]
async fn past_max_keys_new_limit_keys_are_refused() {
    let env = Env::start_with(EnvOptions {
        config: Some("[limits]\nmax_keys = 16\n".into()),
        ..Default::default()
    })
    .await;
    let mut v = env.vectors();
    let mut refused = None;
    // A query takes from its namespace's request limit and its index's read-unit limit: the first query makes two
    // keys, each new namespace one more.
    for i in 0..40 {
        let r = v
            .query(req(p::QueryRequest {
                namespace: format!("ns-{i}"),
                top_k: 1,
                vector: vec![1.0; 4],
                ..Default::default()
            }))
            .await;
        if let Err(s) = r {
            assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
            assert!(s.message().contains("16 limiter keys"), "{s:?}");
            refused = Some(i);
            break;
        }
    }
    assert_eq!(refused, Some(15), "the 17th key is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_without_retry_after_pauses_its_limit_for_one_second() {
    let env = Env::start_with(EnvOptions {
        config: Some("[retry]\nmax_attempts = 1\n".into()),
        ..Default::default()
    })
    .await;
    let mut v = env.vectors();
    v.describe_index_stats(req(p::DescribeIndexStatsRequest::default()))
        .await
        .unwrap();
    env.emulator
        .set_faults(pinecone_gateway::emulator::faults::Faults {
            throttle_percent: 100.0,
            ..Default::default()
        });
    let e = v
        .describe_index_stats(req(p::DescribeIndexStatsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert_eq!(e.metadata().get("grpc-retry-pushback-ms").unwrap(), "1000");
    env.emulator.set_faults(Default::default());
    let started = Instant::now();
    v.describe_index_stats(req(p::DescribeIndexStatsRequest::default()))
        .await
        .unwrap();
    // The next call of that limit waited out the pause (a lower bound: a slow machine only adds to it).
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}
