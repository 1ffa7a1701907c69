//! Limits shared across replicas through a real Redis: three gateway processes in front of an emulator that enforces
//! Pinecone's limits keep together to one limit, checked by the tests' own strict counter over the arrivals (never
//! more than 100 in any one-second window, no 429); with Redis stopped mid-run they keep serving under their static
//! share without a burst; they share again once it is back; a Redis Cluster of three masters works, one of them
//! killed mid-run included.
//!
//! Needs `redis-server` (the README's test command installs it): PINECONE_GATEWAY_TEST_REDIS_URL names a running one
//! for the sharing test; the test that kills Redis starts its own.
mod common;
use common::redis::RedisServer;
use common::*;
use pinecone_gateway::emulator::{Emulator, EmulatorOptions};
use pinecone_gateway::pb::pinecone as p;
use pinecone_gateway::pb::pinecone::vector_service_client::VectorServiceClient;
use std::process::Command;
use std::time::{Duration, Instant};

fn config_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("pgw-{name}-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

fn replica(emulator: &Emulator, config: &std::path::Path) -> GatewayProcess {
    spawn_gateway(
        &[
            "--config",
            config.to_str().unwrap(),
            "--control-plane-url",
            &emulator.url(),
            "--default-index",
            INDEX,
        ],
        &[("PINECONE_API_KEY", KEY), ("RUST_LOG", "info")],
    )
}

async fn enforcing_emulator() -> Emulator {
    let emulator = Emulator::start(
        "127.0.0.1:0".parse().unwrap(),
        EmulatorOptions {
            api_key: Some(KEY.into()),
            enforce_limits: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    emulator.create_index(INDEX, 4, "cosine").await.unwrap();
    emulator
}

async fn client(gw: &GatewayProcess) -> VectorServiceClient<tonic::transport::Channel> {
    VectorServiceClient::connect(format!("http://{}", gw.addr))
        .await
        .unwrap()
}

/// `callers` callers per gateway send describe_index_stats (100/s per index) back to back for `run_for`; every call
/// must succeed or be refused with RESOURCE_EXHAUSTED. Returns the calls served.
async fn overload(gateways: &[&GatewayProcess], callers: usize, run_for: Duration) -> u64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for gw in gateways {
        let c = client(gw).await;
        for _ in 0..callers {
            let mut c = c.clone();
            tasks.push(tokio::spawn(async move {
                let mut ok = 0u64;
                while started.elapsed() < run_for {
                    let mut r = tonic::Request::new(p::DescribeIndexStatsRequest::default());
                    r.set_timeout(Duration::from_millis(800));
                    match c.describe_index_stats(r).await {
                        Ok(_) => ok += 1,
                        Err(s) => {
                            assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
                            let advice: u64 = s
                                .metadata()
                                .get("grpc-retry-pushback-ms")
                                .expect("retry advice")
                                .to_str()
                                .unwrap()
                                .parse()
                                .unwrap();
                            tokio::time::sleep(Duration::from_millis(advice.clamp(10, 200))).await;
                        }
                    }
                }
                ok
            }));
        }
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    ok
}

async fn metric(gw: &GatewayProcess, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{}/metrics", gw.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_keep_together_to_one_limit() {
    let own;
    let url = match std::env::var("PINECONE_GATEWAY_TEST_REDIS_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            own = RedisServer::start();
            own.url()
        }
    };
    let emulator = enforcing_emulator().await;
    let prefix = format!("test-{}-{}", std::process::id(), rand::random::<u32>());
    let config = config_file(
        "shared",
        &format!(
            "[limits]\nmode = \"redis\"\nreplicas = 3\nexpected_upstream_ms = 300\n\
             [limits.redis]\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\ntimeout_ms = 500\n"
        ),
    );
    let gws = [
        replica(&emulator, &config),
        replica(&emulator, &config),
        replica(&emulator, &config),
    ];

    // All three overloaded: together they stay within the one limit.
    let before = emulator.count(INDEX, "describe_index_stats");
    let served = overload(&gws.iter().collect::<Vec<_>>(), 20, Duration::from_secs(2)).await;
    let upstream = emulator.count(INDEX, "describe_index_stats") - before;
    assert_eq!(upstream, served);
    assert_eq!(emulator.throttled(INDEX), 0, "Pinecone answered 429");
    assert_within_limit(&emulator, "describe_index_stats", 100);
    for gw in &gws {
        assert_eq!(
            metric(gw, "pinecone_gateway_rate_limit_degraded").await,
            Some(0.0)
        );
    }

    // One replica alone may use the whole limit, not a third of it: the limit is shared, not split.
    let phase = std::time::Instant::now();
    overload(&[&gws[0]], 20, Duration::from_secs(2)).await;
    assert_eq!(emulator.throttled(INDEX), 0, "Pinecone answered 429");
    assert_within_limit(&emulator, "describe_index_stats", 100);
    let alone: Vec<_> = emulator
        .arrivals(INDEX, "describe_index_stats")
        .into_iter()
        .filter(|t| *t >= phase)
        .collect();
    let most = max_in_any_window(&alone, Duration::from_secs(1));
    assert!(
        most > 34,
        "a static share of 33/s could not pass {most} in one second"
    );
    // Each replica shows its share of what Redis granted in the window before its last call: the busy one most of
    // the limit, the others part of it.
    let share = |gw| metric(gw, "pinecone_gateway_rate_limit_replica_share");
    let busy = share(&gws[0]).await.unwrap();
    assert!(busy > 0.34 && busy <= 1.0, "{busy}");
    for gw in &gws[1..] {
        let part = share(gw).await.unwrap();
        assert!(part > 0.0 && part < 0.9, "{part}");
    }
    let _ = std::fs::remove_file(config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_a_replica_keeps_serving_under_its_share_and_shares_again_when_it_is_back() {
    let redis = RedisServer::start();
    let emulator = enforcing_emulator().await;
    let config = config_file(
        "fallback",
        &format!(
            "[limits]\nmode = \"redis\"\nreplicas = 2\nexpected_upstream_ms = 300\n\
             [limits.redis]\nurl = \"{}\"\ntimeout_ms = 200\nreconnect_interval_ms = 100\n\
             grace_ms = 100\nfallback_decay_ms = 100\n",
            redis.url()
        ),
    );
    let gw = replica(&emulator, &config);
    let mut c = client(&gw).await;
    let stats = || {
        let mut r = tonic::Request::new(p::DescribeIndexStatsRequest::default());
        r.set_timeout(Duration::from_secs(2));
        r
    };
    c.describe_index_stats(stats()).await.unwrap();
    assert_eq!(
        metric(&gw, "pinecone_gateway_rate_limit_degraded").await,
        Some(0.0)
    );

    let port = redis.kill();
    // Calls go on being served, now under its own share, and the gateway says it is degraded.
    for _ in 0..20 {
        c.describe_index_stats(stats()).await.unwrap();
    }
    gw.wait_for_log("Redis unavailable");
    assert_eq!(
        metric(&gw, "pinecone_gateway_rate_limit_degraded").await,
        Some(1.0)
    );
    let ready = reqwest::get(format!("http://{}/readyz", gw.admin))
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "degraded limits do not make the replica unready"
    );
    // It kept the share Redis granted it (one call) for `grace_ms`, then moved to an equal share of the fleet its
    // heartbeat counted, itself alone (not `limits.replicas = 2`): under overload it keeps to Pinecone's limit and
    // uses it.
    let phase = std::time::Instant::now();
    overload(&[&gw], 10, Duration::from_millis(1500)).await;
    assert_eq!(emulator.throttled(INDEX), 0, "Pinecone answered 429");
    let degraded: Vec<_> = emulator
        .arrivals(INDEX, "describe_index_stats")
        .into_iter()
        .filter(|t| *t >= phase)
        .collect();
    let most = max_in_any_window(&degraded, Duration::from_secs(1));
    assert!(most <= 100, "{most} in one second under a limit of 100/s");
    assert!(most >= 80, "the replica's share was used: {most}");
    assert_eq!(
        metric(&gw, "pinecone_gateway_rate_limit_replicas_seen").await,
        Some(1.0)
    );

    // Redis back on the same port: shared limits again, by itself.
    let _redis = RedisServer::start_on(port);
    let mut served = 0;
    while metric(&gw, "pinecone_gateway_rate_limit_degraded").await != Some(0.0) {
        c.describe_index_stats(stats()).await.unwrap();
        served += 1;
        assert!(served < 2000, "the gateway never went back to Redis");
    }
    gw.wait_for_log("shared again");
    let _ = std::fs::remove_file(config);
}

/// A busy replica beside a quiet one: with Redis gone, the busy one keeps the share Redis granted it (most of the
/// limit), not half of it (`limits.replicas = 2`), and the two together still never exceed the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_a_busy_replica_keeps_the_share_it_was_granted() {
    let redis = RedisServer::start();
    let emulator = enforcing_emulator().await;
    let config = config_file(
        "granted-share",
        &format!(
            "[limits]\nmode = \"redis\"\nreplicas = 2\nexpected_upstream_ms = 300\n\
             [limits.redis]\nurl = \"{}\"\ntimeout_ms = 200\nreconnect_interval_ms = 200\ngrace_ms = 60000\n",
            redis.url()
        ),
    );
    let busy = replica(&emulator, &config);
    let quiet = replica(&emulator, &config);
    // The quiet replica's one caller: a call every 100 ms, for the whole run.
    let run_for = Duration::from_secs(5);
    let started = Instant::now();
    let mut q = client(&quiet).await;
    let quiet_calls = tokio::spawn(async move {
        while started.elapsed() < run_for {
            let mut r = tonic::Request::new(p::DescribeIndexStatsRequest::default());
            r.set_timeout(Duration::from_secs(2));
            let _ = q.describe_index_stats(r).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let busy_only = [&busy];
    let load = overload(&busy_only, 20, run_for);
    let stop = async {
        emulator
            .wait_until(|e| e.count(INDEX, "describe_index_stats") >= 200)
            .await;
        let at = std::time::Instant::now();
        redis.kill();
        at
    };
    let (_, stopped_at) = tokio::join!(load, stop);
    quiet_calls.await.unwrap();
    assert_eq!(emulator.throttled(INDEX), 0, "Pinecone answered 429");
    assert_within_limit(&emulator, "describe_index_stats", 100);
    // After the first second without Redis (the window it was last granted in), both replicas decide alone.
    let from = stopped_at + Duration::from_millis(1100);
    let after: Vec<_> = emulator
        .arrivals(INDEX, "describe_index_stats")
        .into_iter()
        .filter(|t| *t >= from)
        .collect();
    let seconds = (started + run_for)
        .saturating_duration_since(from)
        .as_secs_f64();
    let per_second = after.len() as f64 / seconds;
    assert!(
        per_second > 70.0,
        "{per_second:.0}/s without Redis: the busy replica fell to a static share"
    );
    busy.wait_for_log("Redis unavailable");
    let _ = std::fs::remove_file(config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_redis_never_granted_a_turn_gives_nothing_for_the_grace_then_its_static_share() {
    // Nothing listens there: the replica never hears from Redis.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let emulator = enforcing_emulator().await;
    let config = config_file(
        "never-granted",
        &format!(
            "[limits]\nmode = \"redis\"\nreplicas = 2\n\
             [limits.redis]\nurl = \"redis://127.0.0.1:{closed}/\"\ntimeout_ms = 50\ngrace_ms = 2500\n"
        ),
    );
    let gw = replica(&emulator, &config);
    let mut c = client(&gw).await;
    // The others may be using the whole limit through Redis: a start-up storm or a blip shorter than the grace must
    // not add a share they do not know about.
    let asked = std::time::Instant::now();
    c.describe_index_stats(p::DescribeIndexStatsRequest::default())
        .await
        .unwrap();
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(2300),
        "served after {waited:?}, within the grace"
    );
    assert_eq!(
        metric(&gw, "pinecone_gateway_rate_limit_degraded").await,
        Some(1.0)
    );
    let _ = std::fs::remove_file(config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_hold_the_limit_when_redis_stops_mid_run() {
    let redis = RedisServer::start();
    let emulator = enforcing_emulator().await;
    let config = config_file(
        "stop-mid-run",
        &format!(
            "[limits]\nmode = \"redis\"\nreplicas = 3\nexpected_upstream_ms = 300\n\
             [limits.redis]\nurl = \"{}\"\ntimeout_ms = 200\nreconnect_interval_ms = 200\n",
            redis.url()
        ),
    );
    let gws = [
        replica(&emulator, &config),
        replica(&emulator, &config),
        replica(&emulator, &config),
    ];
    let all: Vec<&GatewayProcess> = gws.iter().collect();
    let load = overload(&all, 20, Duration::from_secs(4));
    let stop = async {
        // Once the replicas have been sharing for a while, Redis goes away.
        emulator
            .wait_until(|e| e.count(INDEX, "describe_index_stats") >= 150)
            .await;
        let at = std::time::Instant::now();
        redis.kill();
        at
    };
    let (served, stopped_at) = tokio::join!(load, stop);
    assert!(served > 0);
    assert_eq!(emulator.throttled(INDEX), 0, "Pinecone answered 429");
    assert_within_limit(&emulator, "describe_index_stats", 100);
    let after = emulator
        .arrivals(INDEX, "describe_index_stats")
        .into_iter()
        .filter(|t| *t >= stopped_at)
        .count();
    assert!(after > 0, "the replicas went on serving without Redis");
    for gw in &gws {
        gw.wait_for_log("Redis unavailable");
    }
    let _ = std::fs::remove_file(config);
}

/// A call of `kind` on `buckets` that can wait `max_wait`.
fn take_on<'a>(
    buckets: &'a [pinecone_gateway::stack::limit::shared::TakeBucket],
    kind: pinecone_gateway::stack::limit::shared::TurnKind,
    max_wait: Duration,
) -> pinecone_gateway::stack::limit::shared::Take<'a> {
    pinecone_gateway::stack::limit::shared::Take {
        buckets,
        kind,
        max_wait,
        deadline: tokio::time::Instant::now() + Duration::from_secs(30),
        period: Duration::from_millis(1020),
        expected: Duration::from_millis(50),
        class: "fetch",
    }
}

/// A replica's Redis side under `prefix`, refusing nothing at home, with promises up to `answer_promise_max`.
fn limits_on(
    redis: &RedisServer,
    prefix: &str,
    answer_promise_max: Duration,
) -> pinecone_gateway::stack::limit::shared::RedisLimits {
    use pinecone_gateway::stack::limit::shared::{RedisLimits, RedisSettings};
    RedisLimits::new(RedisSettings {
        overload_ask_percent: 0,
        answer_promise_max,
        ..RedisSettings::new(&redis.url(), prefix)
    })
    .unwrap()
}

/// A default call on `buckets`, in windows of `period`, that can wait `max_wait` (its deadline 30 s on, its answer
/// expected within 50 ms).
async fn take_in(
    shared: &pinecone_gateway::stack::limit::shared::RedisLimits,
    buckets: &[pinecone_gateway::stack::limit::shared::TakeBucket],
    period: Duration,
    max_wait: Duration,
) -> Option<pinecone_gateway::stack::limit::shared::TakeVerdict> {
    use pinecone_gateway::stack::limit::shared::TurnKind;
    take_as(
        shared,
        buckets,
        TurnKind::Default,
        (period, Duration::from_millis(50)),
        max_wait,
    )
    .await
}

/// A fetch of `kind` on `buckets`, in windows of `period`, expected answered within `expected`, that can wait
/// `max_wait` (its deadline 30 s on).
async fn take_as(
    shared: &pinecone_gateway::stack::limit::shared::RedisLimits,
    buckets: &[pinecone_gateway::stack::limit::shared::TakeBucket],
    kind: pinecone_gateway::stack::limit::shared::TurnKind,
    (period, expected): (Duration, Duration),
    max_wait: Duration,
) -> Option<pinecone_gateway::stack::limit::shared::TakeVerdict> {
    shared
        .take(&pinecone_gateway::stack::limit::shared::Take {
            buckets,
            kind,
            max_wait,
            deadline: tokio::time::Instant::now() + Duration::from_secs(30),
            period,
            expected,
            class: "fetch",
        })
        .await
}

#[tokio::test]
async fn a_turn_counts_from_its_start_until_its_answer_and_one_window_more() {
    use pinecone_gateway::stack::limit::shared::{TakeBucket, TakeVerdict};
    let redis = RedisServer::start();
    // Without promises: every request counts until its deadline until its answer is stamped.
    let shared = limits_on(&redis, "take-test", Duration::ZERO);
    // One request per window of 100 ms, each expected to be answered within 50 ms.
    let bucket = [TakeBucket {
        key: shared.key("i", "fetch", "requests", None),
        limit: 1,
        cost: 1,
    }];
    let period = Duration::from_millis(100);
    let (shared, bucket) = (&shared, &bucket);
    let take = |max_wait| take_in(shared, bucket, period, max_wait);
    let Some(TakeVerdict::Go { wait, turn: first }) = take(Duration::ZERO).await else {
        panic!("the first call goes at once")
    };
    assert!(wait.is_zero() && first.confirmed);
    // The schedule expects the first answered within 50 ms: the second's turn is a window after that.
    let Some(TakeVerdict::Go {
        wait,
        turn: mut second,
    }) = take(Duration::from_secs(1)).await
    else {
        panic!("the second call has the next window's turn")
    };
    assert!(
        !second.confirmed,
        "a turn for later passes the guard when it comes"
    );
    assert!(
        wait > Duration::from_millis(140) && wait < Duration::from_millis(260),
        "{wait:?}"
    );
    assert!(
        matches!(
            take(Duration::ZERO).await,
            Some(TakeVerdict::TooLate { .. })
        ),
        "the window is taken"
    );
    tokio::time::sleep(wait).await;
    // Its turn came, but the first is not stamped: for all Redis knows it is in flight until its deadline.
    let Some(Err(wait)) = shared.guard(&mut second, period).await else {
        panic!("the first still counts")
    };
    assert!(wait > Duration::from_secs(29), "{wait:?}");
    // Stamped as answered now, it counts for one window from its answer.
    shared.close(first, true);
    shared.flush_closes(true).await;
    let Some(Err(wait)) = shared.guard(&mut second, period).await else {
        panic!("an answer counts for one window after it")
    };
    assert!(
        wait > Duration::from_millis(50) && wait <= Duration::from_millis(101),
        "{wait:?}"
    );
}

/// The score Redis keeps for each member of a sent set: (member, score in µs).
fn sent_set(port: u16, key: &str) -> Vec<(String, u64)> {
    let out = redis_cli(port, &["ZRANGE", key, "0", "-1", "WITHSCORES"]);
    let lines: Vec<&str> = out.lines().collect();
    lines
        .chunks(2)
        .filter_map(|c| Some((c.first()?.to_string(), c.get(1)?.parse().ok()?)))
        .collect()
}

/// The fetch requests of index `i` as one bucket of `limit` per window, and its key.
fn index_bucket(
    shared: &pinecone_gateway::stack::limit::shared::RedisLimits,
    limit: u64,
) -> (
    String,
    [pinecone_gateway::stack::limit::shared::TakeBucket; 1],
) {
    let key = shared.key("i", "fetch", "requests", None);
    let bucket = pinecone_gateway::stack::limit::shared::TakeBucket {
        key: key.clone(),
        limit,
        cost: 1,
    };
    (key, [bucket])
}

/// A member's field (`<ticket>:<start>:<kind>:<deadline>:<cost>`): 1 its start, 3 its deadline (µs).
fn field(member: &str, i: usize) -> u64 {
    member.split(':').nth(i).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_request_answered_within_its_promise_needs_no_stamp_of_its_own() {
    use pinecone_gateway::stack::limit::shared::TakeVerdict;
    let redis = RedisServer::start();
    let shared = limits_on(&redis, "promise-test", Duration::from_secs(1));
    let (key, bucket) = index_bucket(&shared, 1);
    let period = Duration::from_millis(100);
    let (shared, bucket) = (&shared, &bucket);
    let take = |max_wait| take_in(shared, bucket, period, max_wait);
    let first_asked = std::time::Instant::now();
    let Some(TakeVerdict::Go { wait, turn: first }) = take(Duration::ZERO).await else {
        panic!("the first call goes at once")
    };
    assert!(wait.is_zero() && first.confirmed && first.promised().is_some());
    // Before any answer, the promise is the expected 50 ms: Redis counts the request until then, not until its
    // deadline.
    let sent = sent_set(redis.port, &format!("{key}:sent"));
    let [(member, score)] = sent.as_slice() else {
        panic!("one request: {sent:?}")
    };
    assert_eq!(score - field(member, 1), 50_000, "{sent:?}");
    // Answered at once, within its promise: nothing carries its stamp, and no round trip is made for it alone.
    shared.close(first, true);
    let before = scripts_run(redis.port);
    shared.flush_closes(true).await;
    assert_eq!(scripts_run(redis.port), before, "a stamp went alone");
    // Its answer time (a few milliseconds) now makes the fetches' promises; queries, never answered, keep the
    // expected time.
    let expected = Duration::from_millis(50);
    let fetches = shared.promise("fetch", expected);
    assert!(
        fetches >= Duration::from_millis(10) && fetches < expected,
        "{fetches:?}"
    );
    assert_eq!(shared.promise("query", expected), expected);
    assert_eq!(sent_set(redis.port, &format!("{key}:sent")), sent);
    // The next turn comes one window after the promise (and in the next tenth of a window), and its guard lets it
    // go then: the answered request does not hold the limit until its deadline.
    let Some(TakeVerdict::Go {
        wait,
        turn: mut second,
    }) = take(Duration::from_secs(1)).await
    else {
        panic!("the second call has the next window's turn")
    };
    let after_first = first_asked.elapsed() + wait;
    assert!(
        after_first > Duration::from_millis(145) && after_first < Duration::from_millis(270),
        "{after_first:?}"
    );
    tokio::time::sleep(wait).await;
    let guarded = std::time::Instant::now();
    assert_eq!(shared.guard(&mut second, period).await, Some(Ok(())));
    // A turn given for later is promised from its guard: given for later, it counted until its deadline; once it
    // leaves, until the promise (the first's answer made it, at least 10 ms, from the guard on).
    assert!(second.promised().is_some());
    let sent = sent_set(redis.port, &format!("{key}:sent"));
    let (member, score) = sent.last().unwrap();
    assert_ne!(member, &sent[0].0, "{sent:?}");
    let (start, deadline) = (field(member, 1), field(member, 3));
    assert!(
        *score < deadline && score - start < guarded.elapsed().as_micros() as u64 + 60_000,
        "{sent:?}"
    );
}

/// A broken promise is taken as in time until `timeout_ms` after it (until then other replicas' checks count the
/// request until its deadline); later, the replica is told so, and the request counts until its deadline from then.
#[tokio::test]
async fn a_broken_promise_is_taken_only_until_timeout_ms_after_it() {
    use pinecone_gateway::stack::limit::shared::{Overdue, TakeVerdict};
    let redis = RedisServer::start();
    let shared = limits_on(&redis, "late-test", Duration::from_secs(1));
    let (key, bucket) = index_bucket(&shared, 10);
    let period = Duration::from_millis(100);
    let go = || async {
        match take_in(&shared, &bucket, period, Duration::from_secs(1)).await {
            Some(TakeVerdict::Go { turn, .. }) => turn,
            _ => panic!("a turn within the window"),
        }
    };
    // Promised within the expected 50 ms and reported at once: it counts until its deadline.
    let mut on_time = go().await;
    assert_eq!(shared.overdue(&mut on_time).await, Overdue::Noted);
    // Its turn within 10 ms (a tenth of the window holds one), reported more than 50 ms (timeout_ms) after its
    // promise ran out: told it is late, though it counts until its deadline from now on.
    let mut late = go().await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(shared.overdue(&mut late).await, Overdue::TooLate);
    let sent = sent_set(redis.port, &format!("{key}:sent"));
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().all(|(m, s)| *s == field(m, 3)), "{sent:?}");
}

/// An upstream that holds every request until `release` is notified.
#[derive(Clone)]
struct HeldUpstream(std::sync::Arc<tokio::sync::Notify>);

impl pinecone_gateway::stack::Inner for HeldUpstream {
    fn send(
        &self,
        _call: pinecone_gateway::call::UpstreamCall,
    ) -> pinecone_gateway::stack::CallFuture {
        let release = self.0.clone();
        Box::pin(async move {
            release.notified().await;
            Ok(pinecone_gateway::call::Reply::Fetch(Default::default()))
        })
    }
}

#[tokio::test]
async fn a_request_not_answered_by_its_promise_holds_the_limit_until_its_answer() {
    use pinecone_gateway::call::{CallContext, Op, UpstreamCall};
    use pinecone_gateway::stack::Inner;
    use pinecone_gateway::stack::limit::rates::{ClassRates, OpClass, RateTable};
    use pinecone_gateway::stack::limit::shared::{
        RedisLimits, RedisSettings, Take, TakeBucket, TakeVerdict, TurnKind,
    };
    use pinecone_gateway::stack::limit::{LimitLayer, LimitSettings, Limiter};
    use tower::Layer;
    let redis = RedisServer::start();
    let settings = RedisSettings {
        overload_ask_percent: 0,
        ..RedisSettings::new(&redis.url(), "overdue-test")
    };
    // One fetch per window on index `i`; a request is expected to take 10 ms, so it is promised answered in 10.
    let limiter = Limiter::new(LimitSettings {
        rates: RateTable {
            global: [(
                OpClass::Fetch,
                ClassRates {
                    index_requests: Some(1),
                    ..ClassRates::default()
                },
            )]
            .into(),
            per_index: Default::default(),
        },
        expected_upstream: Duration::from_millis(10),
        redis: Some(settings.clone()),
        ..LimitSettings::default()
    });
    let replica_a = limiter.redis().unwrap();
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let gateway = LimitLayer::new(limiter).layer(HeldUpstream(release.clone()));
    let call = UpstreamCall {
        index: "i".into(),
        op: Op::Fetch {
            ids: vec!["a".into()],
            namespace: "ns".into(),
        },
        deadline: tokio::time::Instant::now() + Duration::from_secs(30),
        ctx: std::sync::Arc::new(CallContext::default()),
    };
    let a = tokio::spawn(async move { gateway.send(call).await });
    // Pinecone has not answered it 10 ms on: the replica tells Redis, which counts it until its deadline.
    let key = replica_a.key("i", "fetch", "requests", None);
    let sent_key = format!("{key}:sent");
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let sent = sent_set(redis.port, &sent_key);
        if let [(member, score)] = sent.as_slice()
            && *score == field(member, 3)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "the broken promise never reached Redis: {sent:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Another replica's call: its turn comes a window on, but the first request may still reach Pinecone then,
    // so the guard decides, and holds it.
    let replica_b = RedisLimits::new(settings).unwrap();
    let bucket = [TakeBucket {
        key: key.clone(),
        limit: 1,
        cost: 1,
    }];
    let period = Duration::from_millis(1020);
    let Some(TakeVerdict::Go {
        wait,
        turn: mut later,
    }) = replica_b
        .take(&Take {
            buckets: &bucket,
            kind: TurnKind::Default,
            max_wait: Duration::from_secs(2),
            deadline: tokio::time::Instant::now() + Duration::from_secs(30),
            period,
            expected: Duration::from_millis(10),
            class: "fetch",
        })
        .await
    else {
        panic!("the schedule has a turn a window on")
    };
    assert!(
        !later.confirmed,
        "a request in flight was taken as answered"
    );
    tokio::time::sleep(wait).await;
    let Some(Err(held)) = replica_b.guard(&mut later, period).await else {
        panic!("the request in flight still counts")
    };
    assert!(held > Duration::from_secs(25), "{held:?}");
    // Answered now: its stamp ends its count one window on.
    release.notify_one();
    assert!(a.await.unwrap().is_ok());
    replica_a.flush_closes(true).await;
    let Some(Err(held)) = replica_b.guard(&mut later, period).await else {
        panic!("the answer counts for one window after it")
    };
    assert!(held <= period, "{held:?}");
}

#[tokio::test]
async fn a_turn_checked_as_it_is_given_is_never_overfilled_by_a_turn_placed_before_it() {
    use pinecone_gateway::stack::limit::shared::{
        RedisLimits, RedisSettings, TakeBucket, TakeVerdict, TurnKind,
    };
    let redis = RedisServer::start();
    let shared = RedisLimits::new(RedisSettings {
        overload_ask_percent: 0,
        ..RedisSettings::new(&redis.url(), "checked-test")
    })
    .unwrap();
    // Two requests per window of 100 ms on the index, one on its namespace, which is held back for 500 ms (a 429).
    let index = shared.key("i", "fetch", "requests", None);
    let namespace = shared.key("i", "fetch", "requests", Some("ns"));
    let bucket = |key: &String| TakeBucket {
        key: key.clone(),
        limit: if *key == index { 2 } else { 1 },
        cost: 1,
    };
    shared
        .block(std::slice::from_ref(&namespace), Duration::from_millis(500))
        .await;
    let period = Duration::from_millis(100);
    let take = |buckets: Vec<TakeBucket>, max_wait| {
        let shared = &shared;
        async move {
            let times = (period, Duration::from_millis(10));
            take_as(shared, &buckets, TurnKind::Interactive, times, max_wait).await
        }
    };
    // A request on the index leaves now, and stays in flight.
    let Some(TakeVerdict::Go { wait, turn: first }) =
        take(vec![bucket(&index)], Duration::ZERO).await
    else {
        panic!("the first call goes at once")
    };
    assert!(wait.is_zero() && first.confirmed);
    // A call on the namespace has its turn in 500 ms; counting the first until its deadline, the index holds 2 then,
    // within its limit: the turn is checked as it is given.
    let Some(TakeVerdict::Go { wait, turn: later }) = take(
        vec![bucket(&index), bucket(&namespace)],
        Duration::from_secs(1),
    )
    .await
    else {
        panic!("the namespace's call has a turn once the hold ends")
    };
    assert!(wait > Duration::from_millis(400), "{wait:?}");
    assert!(
        later.confirmed,
        "the index has room for it even if the first is late"
    );
    // Another call on the index could leave within 10 ms (the next tenth of the window), and the schedule expects it
    // (and the first) answered long before that turn; but while they are in flight they might reach Pinecone beside
    // the checked turn, which has no guard to wait for them.
    assert!(
        matches!(
            take(vec![bucket(&index)], Duration::from_millis(50)).await,
            Some(TakeVerdict::TooLate { .. })
        ),
        "a turn placed before a checked one overfills it"
    );
    let Some(TakeVerdict::Go { wait: after, turn }) =
        take(vec![bucket(&index)], Duration::from_secs(1)).await
    else {
        panic!("the index's call has a turn after the checked one")
    };
    assert!(
        after >= wait.saturating_sub(Duration::from_millis(20)),
        "{after:?} < {wait:?}"
    );
    assert!(
        !turn.confirmed,
        "the checked turn is in flight then: the guard decides"
    );
}

#[tokio::test]
async fn while_a_limit_refuses_calls_no_default_turn_is_given_further_ahead_than_the_overload_queue()
 {
    use pinecone_gateway::stack::limit::shared::{
        RedisLimits, RedisSettings, Take, TakeBucket, TakeVerdict, TurnKind,
    };
    let redis = RedisServer::start();
    let shared = RedisLimits::new(RedisSettings {
        overload_ask_percent: 0,
        overload_queue: Duration::from_millis(20),
        ..RedisSettings::new(&redis.url(), "queue-test")
    })
    .unwrap();
    // One request per window of 100 ms.
    let bucket = [TakeBucket {
        key: shared.key("i", "fetch", "requests", None),
        limit: 1,
        cost: 1,
    }];
    let (shared, bucket) = (&shared, &bucket);
    let take = |kind, max_wait| async move {
        shared
            .take(&Take {
                buckets: bucket,
                kind,
                max_wait,
                deadline: tokio::time::Instant::now() + Duration::from_secs(30),
                period: Duration::from_millis(100),
                expected: Duration::from_millis(10),
                class: "fetch",
            })
            .await
    };
    let second = Duration::from_secs(1);
    assert!(matches!(
        take(TurnKind::Default, Duration::ZERO).await,
        Some(TakeVerdict::Go { .. })
    ));
    // Nothing refused yet (a burst, as far as Redis knows): a call that can wait has a turn a window ahead.
    let Some(TakeVerdict::Go { wait, .. }) = take(TurnKind::Default, second).await else {
        panic!("a call that can wait has the next window")
    };
    assert!(wait > Duration::from_millis(50), "{wait:?}");
    // One that cannot wait is refused: now the limit refuses calls.
    assert!(matches!(
        take(TurnKind::Default, Duration::ZERO).await,
        Some(TakeVerdict::TooLate { .. })
    ));
    let Some(TakeVerdict::TooLate {
        wait: Some(wait), ..
    }) = take(TurnKind::Default, second).await
    else {
        panic!("a default call is refused at once rather than queued further ahead than 20 ms")
    };
    assert!(wait > Duration::from_millis(100), "retry advice {wait:?}");
    assert!(matches!(
        take(TurnKind::Batch, second).await,
        Some(TakeVerdict::TooLate { .. })
    ));
    assert!(
        matches!(
            take(TurnKind::Interactive, second).await,
            Some(TakeVerdict::Go { .. })
        ),
        "interactive calls wait as long as they can"
    );
}

/// Three redis-server masters in one cluster (`--cluster-enabled yes`, `redis-cli --cluster create`).
struct RedisCluster {
    nodes: Vec<Option<RedisServer>>,
}

/// A free port whose cluster bus port (10,000 above it, where a cluster node also listens) is free too: a node
/// whose bus port is taken, or past 65,535, exits at start.
fn cluster_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port <= 55_535 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl RedisCluster {
    fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                let port = cluster_port();
                RedisServer::start_with(
                    port,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "1000",
                    ],
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli is needed: run ./scripts/test, which installs it");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = RedisCluster {
            nodes: nodes.into_iter().map(Some).collect(),
        };
        // The nodes agree on the slots a moment after `create` returns: wait for every one to say so.
        for n in cluster.nodes.iter().flatten() {
            let mut tries = 0;
            while !cluster_info(n.port).contains("cluster_state:ok") {
                tries += 1;
                assert!(tries < 200, "the cluster never became ready");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }

    fn url(&self) -> String {
        self.nodes
            .iter()
            .flatten()
            .map(|n| n.url())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills the master that holds `key`'s slot.
    fn kill_owner_of(&mut self, key: &str) {
        let any = self.nodes.iter().flatten().next().unwrap().port;
        let slot: u16 = redis_cli(any, &["cluster", "keyslot", key])
            .trim()
            .parse()
            .unwrap();
        let owner = self
            .nodes
            .iter()
            .position(|n| {
                n.as_ref().is_some_and(|n| {
                    redis_cli(n.port, &["cluster", "countkeysinslot", &slot.to_string()]).trim()
                        != ""
                        && redis_cli(n.port, &["cluster", "nodes"])
                            .lines()
                            .find(|l| l.contains("myself"))
                            .is_some_and(|l| owns(l, slot))
                })
            })
            .expect("a master holds the slot");
        if let Some(n) = self.nodes[owner].take() {
            n.kill();
        }
    }
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cluster_info(port: u16) -> String {
    redis_cli(port, &["cluster", "info"])
}

/// Whether a `cluster nodes` line's slot ranges (`0-5460 …`) include `slot`.
fn owns(line: &str, slot: u16) -> bool {
    line.split_whitespace().skip(8).any(|range| {
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        match (a.parse::<u16>(), b.parse::<u16>()) {
            (Ok(a), Ok(b)) => (a..=b).contains(&slot),
            _ => false,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_shares_the_limit_and_a_killed_master_falls_back_safely() {
    let mut cluster = RedisCluster::start();
    let emulator = enforcing_emulator().await;
    let config = config_file(
        "cluster",
        &format!(
            "[limits]\nmode = \"redis\"\nreplicas = 3\nexpected_upstream_ms = 300\n\
             [limits.redis]\ncluster = true\nurl = \"{}\"\ntimeout_ms = 300\nreconnect_interval_ms = 200\n",
            cluster.url()
        ),
    );
    let gws = [
        replica(&emulator, &config),
        replica(&emulator, &config),
        replica(&emulator, &config),
    ];
    let all: Vec<&GatewayProcess> = gws.iter().collect();
    overload(&all, 20, Duration::from_secs(2)).await;
    assert_eq!(emulator.throttled(INDEX), 0, "Pinecone answered 429");
    assert_within_limit(&emulator, "describe_index_stats", 100);
    for gw in &gws {
        assert_eq!(
            metric(gw, "pinecone_gateway_rate_limit_degraded").await,
            Some(0.0),
            "shared through the cluster"
        );
    }

    // The master holding the index's keys dies mid-run: the replicas fall back to their static share.
    let load = overload(&all, 20, Duration::from_secs(3));
    let kill = async {
        emulator
            .wait_until(|e| e.count(INDEX, "describe_index_stats") >= 400)
            .await;
        cluster.kill_owner_of(&format!("{{{INDEX}}}"));
    };
    tokio::join!(load, kill);
    assert_eq!(emulator.throttled(INDEX), 0, "Pinecone answered 429");
    assert_within_limit(&emulator, "describe_index_stats", 100);
    for gw in &gws {
        gw.wait_for_log("Redis unavailable");
    }
    let _ = std::fs::remove_file(config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_the_redis_url_works_and_is_never_logged() {
    const PASSWORD: &str = "test-only-redis-password-7d1";
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _redis = RedisServer::start_with(port, &["--requirepass", PASSWORD]);
    let emulator = enforcing_emulator().await;
    let config = config_file(
        "password",
        "[limits]\nmode = \"redis\"\nreplicas = 2\n[limits.redis]\ntimeout_ms = 500\n",
    );
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{port}/0");
    let gw = spawn_gateway(
        &[
            "--config",
            config.to_str().unwrap(),
            "--control-plane-url",
            &emulator.url(),
            "--default-index",
            INDEX,
        ],
        &[
            ("PINECONE_API_KEY", KEY),
            ("PINECONE_GATEWAY_REDIS_URL", &url),
            ("RUST_LOG", "trace"),
        ],
    );
    let mut c = client(&gw).await;
    for _ in 0..5 {
        c.describe_index_stats(p::DescribeIndexStatsRequest::default())
            .await
            .unwrap();
    }
    // Shared, not degraded: Redis accepted the password.
    assert_eq!(
        metric(&gw, "pinecone_gateway_rate_limit_degraded").await,
        Some(0.0)
    );
    let metrics = reqwest::get(format!("http://{}/metrics", gw.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains(PASSWORD));
    gw.signal("-TERM");
    let (_, logs) = gw.exit().await;
    assert!(!logs.is_empty());
    assert!(
        !logs.contains(PASSWORD),
        "the Redis password reached the logs"
    );
    let _ = std::fs::remove_file(config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_redis_is_used_when_its_certificate_is_trusted() {
    let ca = common::pki::TestCa::new();
    let (server_cert, server_key) = ca.issue(&["localhost"]);
    let dir = common::pki::temp_dir("redis-tls");
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (ca, cert, key) = (
        write("ca.pem", ca.pem.clone()),
        write("redis.pem", server_cert),
        write("redis.key", server_key),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let port_arg = port.to_string();
    let _redis = RedisServer::start_with(
        port,
        &[
            "--port",
            "0",
            "--tls-port",
            &port_arg,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ],
    );
    let emulator = enforcing_emulator().await;
    let config = config_file(
        "tls",
        "[limits]\nmode = \"redis\"\nreplicas = 2\n[limits.redis]\ntimeout_ms = 500\n",
    );
    let url = format!("rediss://localhost:{port}/");
    let start = |trust: bool| {
        let mut envs = vec![
            ("PINECONE_API_KEY", KEY),
            ("PINECONE_GATEWAY_REDIS_URL", url.as_str()),
        ];
        if trust {
            // rustls-native-certs, which the redis crate's rustls support reads, honours SSL_CERT_FILE.
            envs.push(("SSL_CERT_FILE", ca.as_str()));
        }
        spawn_gateway(
            &[
                "--config",
                config.to_str().unwrap(),
                "--control-plane-url",
                &emulator.url(),
                "--default-index",
                INDEX,
            ],
            &envs,
        )
    };
    for trust in [true, false] {
        let gw = start(trust);
        let mut c = client(&gw).await;
        c.describe_index_stats(p::DescribeIndexStatsRequest::default())
            .await
            .unwrap();
        // Trusted: shared through the TLS Redis. Not trusted: the handshake fails and the static share serves.
        let want = if trust { 0.0 } else { 1.0 };
        assert_eq!(
            metric(&gw, "pinecone_gateway_rate_limit_degraded").await,
            Some(want),
            "trusted: {trust}"
        );
    }
    let _ = std::fs::remove_file(config);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The scripts Redis ran (its command statistics): the replicas' round trips.
fn scripts_run(port: u16) -> u64 {
    redis_cli(port, &["INFO", "commandstats"])
        .lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// While a shared limit refuses calls, a call whose turn is further ahead than `limits.redis.overload_queue_ms` is
/// refused at once, through the gRPC door (RESOURCE_EXHAUSTED) and the REST door (429), with the wait as retry advice
/// and the setting named, rather than waiting in a standing queue; nothing of it reaches Pinecone.
#[tokio::test]
async fn past_the_overload_queue_a_call_is_refused_at_once_through_either_door() {
    let redis = RedisServer::start();
    let env = Env::start_rest(&format!(
        "[limits]\nmode = \"redis\"\n[limits.redis]\nurl = \"{}\"\ntimeout_ms = 500\noverload_ask_percent = 0\n\
         overload_queue_ms = 50\n[limits.rates.fetch]\nindex_requests_per_second = 2\n[coalescing]\nfetch = false\n",
        redis.url()
    ))
    .await;
    let fetch = |id: &str, timeout_ms: u64| {
        let mut r = req(p::FetchRequest {
            ids: vec![id.into()],
            namespace: "ns".into(),
        });
        r.set_timeout(Duration::from_millis(timeout_ms));
        r
    };
    let mut c = env.vectors();
    // The second's two turns.
    c.fetch(fetch("a", 5000)).await.unwrap();
    c.fetch(fetch("b", 5000)).await.unwrap();
    // The next turn is about a second ahead: too late for a call that can wait 300 ms, which Redis refuses.
    let e = c.fetch(fetch("c", 300)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    // Now a call that could wait 5 s is refused at once: the limit refuses calls, and its turn is past the queue.
    let asked = Instant::now();
    let e = c.fetch(fetch("d", 5000)).await.unwrap_err();
    assert!(asked.elapsed() < Duration::from_millis(500), "it waited");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(
        e.message().contains("limits.redis.overload_queue_ms") && e.message().contains("fetch"),
        "{}",
        e.message()
    );
    let advice = pushback_ms(&e);
    assert!((100..=1100).contains(&advice), "{advice}");
    let r = reqwest::get(format!(
        "http://{}/indexes/{INDEX}/vectors/fetch?ids=e&namespace=ns",
        env.rest_addr()
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("limits.redis.overload_queue_ms"),
        "{body}"
    );
    assert_eq!(env.emulator.count(INDEX, "fetch"), 2);
}

/// While the fleet asks for far more than a limit, a replica refuses its part of the excess at home, without a
/// round trip (Redis would refuse those calls too); interactive calls always ask. Counted by Redis's own command
/// statistics.
#[tokio::test]
async fn under_overload_the_excess_is_refused_at_home_but_interactive_calls_always_ask() {
    use pinecone_gateway::stack::limit::shared::{
        RedisLimits, RedisSettings, TakeBucket, TakeVerdict, TurnKind,
    };
    let redis = RedisServer::start();
    let shared = RedisLimits::new(RedisSettings::new(&redis.url(), "home-test")).unwrap();
    let bucket = [TakeBucket {
        key: shared.key("i", "fetch", "requests", None),
        limit: 1,
        cost: 1,
    }];
    let shared = &shared;
    let bucket = &bucket;
    let take = |kind| async move {
        shared
            .take(&take_on(bucket, kind, Duration::from_millis(100)))
            .await
    };
    // The one turn of the window, then twenty calls Redis refuses: it has seen 21 calls a second for 1.
    assert!(matches!(
        take(TurnKind::Default).await,
        Some(TakeVerdict::Go { .. })
    ));
    for _ in 0..20 {
        assert!(matches!(
            take(TurnKind::Default).await,
            Some(TakeVerdict::TooLate { .. } | TakeVerdict::AtHome { .. })
        ));
    }
    let before = scripts_run(redis.port);
    let mut at_home = 0;
    for _ in 0..100 {
        match take(TurnKind::Default).await {
            Some(TakeVerdict::AtHome { wait, .. }) => {
                assert!(wait > Duration::ZERO, "retry advice");
                at_home += 1;
            }
            Some(TakeVerdict::TooLate { .. }) => {}
            _ => panic!("the limit is spent"),
        }
    }
    let asked = scripts_run(redis.port) - before;
    assert!(at_home >= 70, "{at_home} of 100 refused at home");
    assert_eq!(
        asked,
        100 - at_home,
        "each call not refused at home asks once"
    );
    let before = scripts_run(redis.port);
    for _ in 0..10 {
        assert!(matches!(
            take(TurnKind::Interactive).await,
            Some(TakeVerdict::TooLate { .. })
        ));
    }
    assert_eq!(scripts_run(redis.port) - before, 10);
}

/// Across the fleet, batch calls leave `batch_headroom_percent` of a limit to the others, in every tenth of the
/// window, and default and interactive calls take the room left at once.
#[tokio::test]
async fn batch_calls_leave_headroom_that_interactive_calls_take_at_once() {
    use pinecone_gateway::stack::limit::shared::{
        RedisLimits, RedisSettings, TakeBucket, TakeVerdict, TurnKind,
    };
    let redis = RedisServer::start();
    let shared = RedisLimits::new(RedisSettings {
        batch_headroom_percent: 20,
        overload_ask_percent: 0,
        ..RedisSettings::new(&redis.url(), "headroom-test")
    })
    .unwrap();
    let bucket = [TakeBucket {
        key: shared.key("i", "fetch", "requests", None),
        limit: 100,
        cost: 1,
    }];
    let shared = &shared;
    let bucket = &bucket;
    // The wait Redis named, and the turn's instant (each call's wait counts from its own asking).
    let take = |kind| async move {
        let asked = Instant::now();
        match shared
            .take(&take_on(bucket, kind, Duration::from_millis(500)))
            .await
        {
            Some(TakeVerdict::Go { wait, .. }) => (wait, asked + wait),
            _ => panic!("a turn within 500 ms"),
        }
    };
    // A tenth of the limit may start in a tenth of the window (102 ms), spread over it; batch calls 80% of that.
    let mut last = Instant::now();
    for _ in 0..8 {
        let wait;
        (wait, last) = take(TurnKind::Batch).await;
        assert!(wait < Duration::from_millis(102), "{wait:?}");
    }
    let (_, ninth) = take(TurnKind::Batch).await;
    assert!(
        ninth > last,
        "the ninth batch call waits for the next tenth"
    );
    assert!(
        take(TurnKind::Interactive).await.0.is_zero(),
        "an interactive call takes the headroom at once"
    );
    assert!(
        take(TurnKind::Default).await.1 < ninth,
        "a default call goes ahead of the batch call that found no room"
    );
}
