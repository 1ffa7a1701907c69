//! Callers (`[callers.NAME]`): a quota refusal never waits and never reaches Pinecone, an interactive caller's call
//! overtakes a batch caller's calls waiting for the same limit, `x-priority` is held to the caller's `max_priority`,
//! and calls, refusals and waits are counted per caller and priority.
mod common;
use common::*;
use pinecone_gateway::pb::gateway as g;
use pinecone_gateway::pb::pinecone as p;
use std::sync::{Arc, Mutex};
use tonic::Code;

fn fetch_as(caller: &str, priority: Option<&str>, id: &str) -> tonic::Request<p::FetchRequest> {
    let mut r = req(p::FetchRequest {
        ids: vec![id.into()],
        namespace: String::new(),
    });
    r.metadata_mut().insert("x-caller", caller.parse().unwrap());
    if let Some(level) = priority {
        r.metadata_mut()
            .insert("x-priority", level.parse().unwrap());
    }
    r
}

/// A series of the gateway's `/metrics`, e.g. `caller_calls_total{caller="search",priority="default"}`.
async fn series(env: &Env, name: &str) -> f64 {
    let metrics = scrape(env.gateway.as_ref().unwrap().admin_addr.unwrap()).await;
    metric(&metrics, &format!("pinecone_gateway_{name}"))
}

#[tokio::test]
async fn a_quota_refusal_is_immediate_names_the_quota_and_never_reaches_pinecone() {
    let env = Env::start_with(EnvOptions {
        default_index: Some(INDEX.into()),
        config: Some(
            "[callers.search]\nrequests_per_second = 1\nburst = 2\n\
             [callers.backfill]\npriority = \"batch\"\n[callers.backfill.classes.fetch]\nrequests_per_second = 1\n"
                .into(),
        ),
        ..Default::default()
    })
    .await;
    let mut v = env.vectors();
    for i in 0..2 {
        v.fetch(fetch_as("search", None, &format!("a{i}")))
            .await
            .unwrap();
    }
    let before = env.emulator.total_requests();
    let started = std::time::Instant::now();
    let e = v.fetch(fetch_as("search", None, "a3")).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
    assert!(
        e.message().contains("callers.search.requests_per_second")
            && e.message().contains("1 calls per second"),
        "{}",
        e.message()
    );
    let pushback = pushback_ms(&e);
    assert!((1..=1000).contains(&pushback), "{pushback}");
    // Refused without waiting for the quota (its next call is ~1 s away).
    assert!(started.elapsed() < std::time::Duration::from_millis(900));
    assert_eq!(
        env.emulator.total_requests(),
        before,
        "a refused call reached Pinecone"
    );
    // Per class: the backfill's fetches are limited, its stats calls are not; unknown callers have no quota.
    v.fetch(fetch_as("backfill", None, "b1")).await.unwrap();
    let e = v.fetch(fetch_as("backfill", None, "b2")).await.unwrap_err();
    assert!(
        e.message().contains("callers.backfill.classes.fetch"),
        "{}",
        e.message()
    );
    for i in 0..5 {
        v.fetch(fetch_as("someone-else", None, &format!("c{i}")))
            .await
            .unwrap();
    }
    assert_eq!(
        series(
            &env,
            "caller_refusals_total{caller=\"search\",reason=\"quota\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        series(
            &env,
            "caller_calls_total{caller=\"search\",priority=\"default\"}"
        )
        .await,
        3.0
    );
    assert_eq!(
        series(
            &env,
            "caller_calls_total{caller=\"other\",priority=\"default\"}"
        )
        .await,
        5.0,
        "callers not configured share the label `other`"
    );
}

#[tokio::test]
async fn x_priority_is_held_to_the_callers_max_priority() {
    let env = Env::start_with(EnvOptions {
        default_index: Some(INDEX.into()),
        config: Some(
            "[callers.backfill]\npriority = \"batch\"\nmax_priority = \"default\"\n".into(),
        ),
        ..Default::default()
    })
    .await;
    let mut v = env.vectors();
    let before = env.emulator.total_requests();
    let e = v
        .fetch(fetch_as("backfill", Some("interactive"), "a"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(
        e.message().contains("callers.backfill.max_priority"),
        "{}",
        e.message()
    );
    let e = v
        .fetch(fetch_as("backfill", Some("urgent"), "a"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("x-priority"), "{}", e.message());
    let e = v.fetch(fetch_as("two words", None, "a")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("x-caller"), "{}", e.message());
    assert_eq!(env.emulator.total_requests(), before);
    v.fetch(fetch_as("backfill", Some("default"), "a"))
        .await
        .unwrap();
    assert_eq!(
        series(
            &env,
            "caller_calls_total{caller=\"backfill\",priority=\"default\"}"
        )
        .await,
        1.0
    );
}

const CALLERS: &str =
    "[callers.search]\npriority = \"interactive\"\n[callers.backfill]\npriority = \"batch\"\n";

/// 12 batch fetches queue for a limit of 4/s, then one interactive fetch: the order in which the calls end.
async fn finish_order(limits: &str, callers: &str) -> Vec<String> {
    let env = Env::start_with(EnvOptions {
        default_index: Some(INDEX.into()),
        config: Some(format!(
            "[limits]\n{limits}[limits.rates.fetch]\nindex_requests_per_second = 4\n[coalescing]\nfetch = false\n{callers}"
        )),
        ..Default::default()
    })
    .await;
    let done = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (mut v, done) = (env.vectors(), done.clone());
        tasks.push(tokio::spawn(async move {
            v.fetch(fetch_as("backfill", None, &format!("b{i}")))
                .await
                .unwrap();
            done.lock().unwrap().push("backfill".to_string());
        }));
    }
    // The first window's four are through: the rest wait for the limit.
    while env.emulator.arrivals(INDEX, "fetch").len() < 4 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (mut v, d) = (env.vectors(), done.clone());
    tasks.push(tokio::spawn(async move {
        v.fetch(fetch_as("search", None, "s")).await.unwrap();
        d.lock().unwrap().push("search".to_string());
    }));
    for t in tasks {
        t.await.unwrap();
    }
    done.lock().unwrap().clone()
}

#[tokio::test]
async fn an_interactive_caller_overtakes_a_batch_callers_waiting_calls() {
    let order = finish_order("", CALLERS).await;
    let at = order.iter().position(|c| c == "search").unwrap();
    // Behind the first window's four and at most the one batch call holding the next turn (and its window-mates).
    assert!(
        at <= 8,
        "the interactive call ended {}th of 13: {order:?}",
        at + 1
    );
    // Without callers, first come, first served: it ends last.
    let order = finish_order("", "").await;
    assert_eq!(
        order.iter().position(|c| c == "search"),
        Some(12),
        "{order:?}"
    );
}

/// Redis mode, as docs/limits.md's "Callers" says: the replica orders its own waiting calls by priority before they ask
/// Redis for a turn; without callers, Redis's turns go first come, first served.
#[tokio::test]
async fn in_redis_mode_a_replica_still_serves_its_interactive_calls_first() {
    let url = std::env::var("PINECONE_GATEWAY_TEST_REDIS_URL").expect(
        "PINECONE_GATEWAY_TEST_REDIS_URL names a running redis-server (./scripts/test starts one)",
    );
    let redis = |prefix: &str| {
        format!(
            "mode = \"redis\"\n[limits.redis]\nurl = \"{url}\"\nkey_prefix = \"{prefix}-{}-{}\"\ntimeout_ms = 500\n",
            std::process::id(),
            rand::random::<u32>()
        )
    };
    let order = finish_order(&redis("callers"), CALLERS).await;
    let at = order.iter().position(|c| c == "search").unwrap();
    assert!(
        at <= 8,
        "the interactive call ended {}th of 13: {order:?}",
        at + 1
    );
    let order = finish_order(&redis("fifo"), "").await;
    assert!(
        order.iter().position(|c| c == "search").unwrap() >= 11,
        "{order:?}"
    );
}

/// Load shedding keeps room for higher priorities: batch calls may hold at most 80% of the gateway's places.
#[tokio::test]
async fn batch_calls_cannot_fill_the_gateway_and_shed_interactive_ones() {
    let env = Env::start_with(EnvOptions {
        default_index: Some(INDEX.into()),
        config: Some(format!(
            "[server]\nmax_concurrent_calls = 10\n[limits.rates.fetch]\nindex_requests_per_second = 1\n\
             [coalescing]\nfetch = false\n{CALLERS}"
        )),
        ..Default::default()
    })
    .await;
    // The window's one fetch is spent: every batch call below waits in the gateway.
    env.vectors()
        .fetch(fetch_as("search", None, "first"))
        .await
        .unwrap();
    let mut batch = Vec::new();
    for i in 0..10 {
        let mut v = env.vectors();
        let mut r = fetch_as("backfill", None, &format!("b{i}"));
        r.set_timeout(std::time::Duration::from_secs(3));
        batch.push(tokio::spawn(async move { v.fetch(r).await }));
    }
    // Eight hold places (80% of 10); the other two are shed at once.
    while batch.iter().filter(|t| t.is_finished()).count() < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let interactive = env.vectors().fetch(fetch_as("search", None, "s")).await;
    assert!(interactive.is_ok(), "{interactive:?}");
    let mut shed = 0;
    for t in batch {
        if let Err(e) = t.await.unwrap()
            && e.message().contains("all that batch calls may take")
        {
            assert_eq!(e.code(), Code::ResourceExhausted);
            shed += 1;
        }
    }
    assert_eq!(shed, 2);
}

/// Redis mode: a caller's quota is one quota for every replica (its calls spread over two replicas get the quota once,
/// not twice); a replica in local mode keeps its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_redis_mode_a_callers_quota_is_shared_by_the_replicas() {
    let url = std::env::var("PINECONE_GATEWAY_TEST_REDIS_URL").expect(
        "PINECONE_GATEWAY_TEST_REDIS_URL names a running redis-server (./scripts/test starts one)",
    );
    // One call a second with a burst of two, so three calls in a row never fit, wherever they go.
    let quota = "[callers.spread]\nrequests_per_second = 1\nburst = 2\n";
    let redis = format!(
        "{quota}[limits]\nmode = \"redis\"\n[limits.redis]\nurl = \"{url}\"\nkey_prefix = \"quota-{}-{}\"\ntimeout_ms = 500\n",
        std::process::id(),
        rand::random::<u32>()
    );
    let env = Env::start_with(EnvOptions {
        default_index: Some(INDEX.into()),
        config: Some(redis.clone()),
        ..Default::default()
    })
    .await;
    let (second, mut b) = env.replica(&redis).await;
    let (local, mut c) = env.replica(quota).await;
    let stats = || {
        let mut r = tonic::Request::new(p::DescribeIndexStatsRequest::default());
        r.metadata_mut()
            .insert("x-caller", "spread".parse().unwrap());
        r
    };
    let mut a = env.vectors();
    a.describe_index_stats(stats()).await.unwrap();
    b.describe_index_stats(stats()).await.unwrap();
    let e = a.describe_index_stats(stats()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(
        e.message().contains("callers.spread.requests_per_second"),
        "{}",
        e.message()
    );
    let e = b.describe_index_stats(stats()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    let pushback = pushback_ms(&e);
    assert!(pushback > 0 && pushback <= 1000, "{pushback}");
    // The replica that does not share has the caller's whole burst to itself.
    c.describe_index_stats(stats()).await.unwrap();
    c.describe_index_stats(stats()).await.unwrap();
    second.shutdown().await.unwrap();
    local.shutdown().await.unwrap();
}

/// A ListService.ListAll walk is one call of its caller's quota however many pages it takes: a walk of three pages
/// goes through a quota of one list call a second, and a second walk at once is refused; both walks are logged with
/// the caller's name, the refused one included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_all_walk_is_one_quota_call_and_is_logged_with_its_caller() {
    let emulator = pinecone_gateway::emulator::Emulator::start(
        "127.0.0.1:0".parse().unwrap(),
        pinecone_gateway::emulator::EmulatorOptions::default(),
    )
    .await
    .unwrap();
    emulator.create_index(INDEX, 4, "cosine").await.unwrap();
    let config = std::env::temp_dir().join(format!("pgw-walker-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        "[callers.walker.classes.list]\nrequests_per_second = 1\nburst = 1\n",
    )
    .unwrap();
    let gw = spawn_gateway(
        &[
            "--config",
            config.to_str().unwrap(),
            "--control-plane-url",
            &emulator.url(),
            "--default-index",
            INDEX,
        ],
        &[("RUST_LOG", "info")],
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", gw.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut v = p::vector_service_client::VectorServiceClient::new(channel.clone());
    v.upsert(req(p::UpsertRequest {
        vectors: (0..250)
            .map(|i| p::Vector {
                id: format!("w-{i:03}"),
                values: vec![1.0, 0.0, 0.0, 0.0],
                ..Default::default()
            })
            .collect(),
        namespace: "walk".into(),
    }))
    .await
    .unwrap();
    let walk = || {
        let mut r = req(g::ListAllRequest {
            namespace: "walk".into(),
            prefix: None,
            page_size: Some(100),
        });
        r.metadata_mut()
            .insert("x-caller", "walker".parse().unwrap());
        r
    };
    let mut lists = g::list_service_client::ListServiceClient::new(channel);
    let mut stream = lists.list_all(walk()).await.unwrap().into_inner();
    let mut ids = 0;
    while let Some(page) = stream.message().await.unwrap() {
        ids += page.ids.len();
    }
    assert_eq!(ids, 250);
    assert_eq!(
        emulator.count(INDEX, "list"),
        3,
        "three pages, one quota call"
    );
    let refused = match lists.list_all(walk()).await {
        Err(s) => s,
        Ok(resp) => resp
            .into_inner()
            .message()
            .await
            .expect_err("a second walk within the second is refused"),
    };
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("callers.walker"),
        "{}",
        refused.message()
    );
    gw.signal("-TERM");
    let (_, logs) = gw.exit().await;
    let _ = std::fs::remove_file(&config);
    let walks: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("\"method\":\"ListAll\""))
        .collect();
    assert_eq!(walks.len(), 2, "{logs}");
    for line in walks {
        assert!(line.contains("\"caller\":\"walker\""), "{line}");
    }
}

/// Redis mode with Redis unreachable: a caller's quota is not lost nor turned into a refusal of everything; each
/// replica applies the whole quota itself (here 2 calls at once, then a refusal naming the quota).
#[tokio::test]
async fn with_redis_down_each_replica_applies_the_whole_quota() {
    let env = Env::start_with(EnvOptions {
        default_index: Some(INDEX.into()),
        config: Some(
            "[limits]\nmode = \"redis\"\n[limits.redis]\nurl = \"redis://127.0.0.1:1/\"\ntimeout_ms = 50\n\
             reconnect_interval_ms = 60000\n[callers.search]\nrequests_per_second = 1\nburst = 2\n"
                .into(),
        ),
        ..Default::default()
    })
    .await;
    let mut v = env.vectors();
    // A first call finds Redis unreachable (which takes a moment); from then on the replica is degraded and asks it
    // no more until its reconnect interval, so the calls below follow one another at once.
    v.fetch(fetch_as("warm-up", None, "w")).await.unwrap();
    for i in 0..2 {
        v.fetch(fetch_as("search", None, &format!("r{i}")))
            .await
            .expect("within the quota, Redis or not");
    }
    let e = v.fetch(fetch_as("search", None, "r3")).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
    assert!(
        e.message().contains("callers.search.requests_per_second"),
        "{}",
        e.message()
    );
    // Another caller is not held by this one's quota.
    v.fetch(fetch_as("other", None, "o1")).await.unwrap();
}
