//! Spend and budgets in redis mode: kept in Redis, so a budget holds across replicas and restarts; with Redis down a
//! replica counts locally and adds its count once Redis is back.
//!
//! Needs `redis-server` (the README's test command installs it): PINECONE_GATEWAY_TEST_REDIS_URL names a running one;
//! the test that stops Redis starts its own.
mod common;
use common::redis::RedisServer;
use common::*;
use pinecone_gateway::pb::pinecone as p;
use serde_json::Value;

fn test_redis() -> String {
    std::env::var("PINECONE_GATEWAY_TEST_REDIS_URL").expect(
        "PINECONE_GATEWAY_TEST_REDIS_URL names a running redis-server (./scripts/test starts one)",
    )
}

/// Redis mode with its own key prefix; caller `a` may read 2 units a day. The periodic sync is a minute apart, so
/// what reaches Redis in these tests is what a report, a first call or a drain sends.
fn config(url: &str, extra: &str) -> String {
    format!(
        "[limits]\nmode = \"redis\"\n\
         [limits.redis]\nurl = \"{url}\"\nkey_prefix = \"spend-{}-{}\"\nspend_sync_ms = 60000\n{extra}\
         [callers.a]\nread_units_per_day = 2\n",
        std::process::id(),
        rand::random::<u32>()
    )
}

fn fetch_by_a() -> tonic::Request<p::FetchRequest> {
    let mut r = req(p::FetchRequest {
        ids: vec!["x".into()],
        namespace: "ns".into(),
    });
    r.metadata_mut().insert("x-caller", "a".parse().unwrap());
    r.set_timeout(std::time::Duration::from_secs(10));
    r
}

/// Caller a's read units today in a report.
fn a_read_today(report: &Value) -> u64 {
    report["spend"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["caller"] == "a")
        .map(|r| r["today"]["read_units"].as_u64().unwrap())
        .sum()
}

fn assert_refused_for_budget(e: &tonic::Status) {
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(
        e.message().contains("callers.a.read_units_per_day"),
        "{}",
        e.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_is_shared_by_two_replicas() {
    let config = config(&test_redis(), "");
    let env = Env::start_with(EnvOptions {
        config: Some(config.clone()),
        ..Default::default()
    })
    .await;
    let mut first = env.vectors();
    first.fetch(fetch_by_a()).await.unwrap();
    first.fetch(fetch_by_a()).await.unwrap();
    assert_refused_for_budget(&first.fetch(fetch_by_a()).await.unwrap_err());
    // The report adds this replica's units to Redis before it reads them back.
    let admin = env.gateway.as_ref().unwrap().admin_addr.unwrap();
    let report = spend_report(admin).await;
    assert_eq!(report["source"], "redis: every replica", "{report}");
    assert_eq!(a_read_today(&report), 2, "{report}");
    assert_eq!(
        report["budgets"][0]["left"], 0,
        "the budget is spent: {report}"
    );

    // A second replica has not served `a` yet: it reads a's spend from Redis before a's first call, and refuses it.
    let (second, mut client) = env.replica(&config).await;
    assert_refused_for_budget(&client.fetch(fetch_by_a()).await.unwrap_err());
    assert_eq!(env.emulator.count(INDEX, "fetch"), 2, "nothing more sent");
    assert_eq!(
        a_read_today(&spend_report(second.admin_addr.unwrap()).await),
        2
    );
    second.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_units_are_kept_across_a_restart() {
    let env = Env::start().await;
    let config = config(&test_redis(), "");
    let (before, mut client) = env.replica(&config).await;
    client.fetch(fetch_by_a()).await.unwrap();
    client.fetch(fetch_by_a()).await.unwrap();
    // A drain sends what the replica charged since its last sync.
    before.drain().await.unwrap();

    let (after, mut client) = env.replica(&config).await;
    assert_refused_for_budget(&client.fetch(fetch_by_a()).await.unwrap_err());
    assert_eq!(env.emulator.count(INDEX, "fetch"), 2, "nothing more sent");
    after.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_a_replica_counts_locally_and_adds_its_count_when_redis_is_back() {
    let redis = RedisServer::start();
    let env = Env::start().await;
    let config = config(
        &redis.url(),
        "timeout_ms = 200\nreconnect_interval_ms = 100\n",
    );
    let (gw, mut client) = env.replica(&config).await;
    let port = redis.kill();
    client.fetch(fetch_by_a()).await.unwrap();
    client.fetch(fetch_by_a()).await.unwrap();
    // Held to its budget by this replica's own count meanwhile.
    assert_refused_for_budget(&client.fetch(fetch_by_a()).await.unwrap_err());
    let admin = gw.admin_addr.unwrap();
    let report = spend_report(admin).await;
    assert_eq!(
        report["source"], "this replica only (Redis cannot be reached)",
        "{report}"
    );
    assert_eq!(a_read_today(&report), 2, "{report}");

    // A new, empty Redis on the same port: the replica adds the units it counted while Redis was away.
    let back = RedisServer::start_on(port);
    let mut report = spend_report(admin).await;
    let mut asked = 1;
    while report["source"] != "redis: every replica" {
        asked += 1;
        assert!(
            asked < 5_000,
            "the replica never went back to Redis: {report}"
        );
        tokio::task::yield_now().await;
        report = spend_report(admin).await;
    }
    assert_eq!(a_read_today(&report), 2, "{report}");
    let kept = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--scan", "--pattern", "spend-*"])
        .output()
        .unwrap();
    let keys = String::from_utf8_lossy(&kept.stdout);
    assert!(
        keys.contains("{spend:a}:day:") && keys.contains("{spend:a}:month:"),
        "{keys}"
    );
    gw.shutdown().await.unwrap();
    drop(back);
}
