//! Read your writes through the gateway, against an emulator whose index lags its writes as Pinecone's does: the LSN
//! of a write (the highest batch's for a split one) comes back in metadata, as does the applied LSN of a query; a
//! read with read-your-writes after a write waits for the lag and then reflects it; a read whose wait runs out comes
//! back stale with the flag, or FAILED_PRECONDITION when required; the repeated reads keep to the rate limits.
mod common;
use common::*;
use pinecone_gateway::emulator::LsnSpelling;
use pinecone_gateway::pb::pinecone as p;
use std::time::Duration;

/// An LSN of the answer's metadata, which must say the same under its other spelling (the gateway returns both:
/// the freshness guide's names and the ones Pinecone's current SDK reads).
fn lsn(md: &tonic::metadata::MetadataMap, key: &str) -> Option<u64> {
    let twin = match key {
        "x-pinecone-request-lsn" => "x-pinecone-lsn-committed",
        "x-pinecone-max-indexed-lsn" => "x-pinecone-lsn-reconciled",
        other => panic!("not an LSN header: {other}"),
    };
    let read = |k: &str| -> Option<u64> { md.get(k).map(|v| v.to_str().unwrap().parse().unwrap()) };
    assert_eq!(read(key), read(twin), "{key} and {twin} differ");
    read(key)
}

/// Runs a scenario against an emulator that spells its LSN headers as Pinecone's freshness guide does, and against
/// one that spells them as Pinecone's current SDK reads them: read your writes must work with either alone.
macro_rules! under_each_spelling {
    ($scenario:ident) => {
        mod $scenario {
            use pinecone_gateway::emulator::LsnSpelling;

            #[tokio::test]
            async fn guide_names() {
                super::$scenario(LsnSpelling::Guide).await;
            }

            #[tokio::test]
            async fn current_names() {
                super::$scenario(LsnSpelling::Current).await;
            }
        }
    };
}

under_each_spelling!(writes_return_their_lsn_and_queries_the_applied_one);
under_each_spelling!(read_your_writes_waits_for_the_lag_and_then_reflects_the_write);
under_each_spelling!(a_read_whose_wait_runs_out_is_stale_or_refused_when_required);
under_each_spelling!(a_repeat_the_limiter_cannot_fit_leaves_the_last_answer_stale);

fn vector(id: &str, x: f32) -> p::Vector {
    p::Vector {
        id: id.into(),
        values: vec![x, 1.0, 0.0, 0.0],
        ..Default::default()
    }
}

/// A request of caller `who` with the given extra metadata.
fn from<T>(who: &str, msg: T, extra: &[(&'static str, &str)]) -> tonic::Request<T> {
    let mut r = req(msg);
    r.metadata_mut().insert("x-caller", who.parse().unwrap());
    for (k, v) in extra {
        r.metadata_mut().insert(*k, v.parse().unwrap());
    }
    r.set_timeout(Duration::from_secs(10));
    r
}

fn upsert(ids: &[&str]) -> p::UpsertRequest {
    p::UpsertRequest {
        vectors: ids.iter().map(|id| vector(id, 1.0)).collect(),
        namespace: "ns".into(),
    }
}

fn query() -> p::QueryRequest {
    p::QueryRequest {
        top_k: 100,
        vector: vec![1.0, 1.0, 0.0, 0.0],
        namespace: "ns".into(),
        ..Default::default()
    }
}

fn ids(r: &p::QueryResponse) -> Vec<String> {
    let mut v: Vec<String> = r.matches.iter().map(|m| m.id.clone()).collect();
    v.sort();
    v
}

const RYW: (&str, &str) = ("x-consistency", "read-your-writes");

async fn writes_return_their_lsn_and_queries_the_applied_one(lsn_spelling: LsnSpelling) {
    let env = Env::start_with(EnvOptions {
        lsn_spelling,
        ..Default::default()
    })
    .await;
    let mut c = env.vectors();
    let r = c.upsert(from("a", upsert(&["x"]), &[])).await.unwrap();
    assert_eq!(lsn(r.metadata(), "x-pinecone-request-lsn"), Some(1));
    // 2,500 vectors go as three batches (LSNs 2, 3, 4): the call answers with the highest.
    let many: Vec<String> = (0..2500).map(|i| format!("v{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let r = c.upsert(from("a", upsert(&many), &[])).await.unwrap();
    assert_eq!(lsn(r.metadata(), "x-pinecone-request-lsn"), Some(4));
    let r = c
        .delete(from(
            "a",
            p::DeleteRequest {
                ids: vec!["x".into()],
                namespace: "ns".into(),
                ..Default::default()
            },
            &[],
        ))
        .await
        .unwrap();
    assert_eq!(lsn(r.metadata(), "x-pinecone-request-lsn"), Some(5));
    let r = c.query(from("a", query(), &[])).await.unwrap();
    assert_eq!(lsn(r.metadata(), "x-pinecone-max-indexed-lsn"), Some(5));
    assert!(
        r.metadata().get("x-consistency-stale").is_none(),
        "not asked"
    );
    // A namespace of its own counts on its own.
    let r = c
        .upsert(from(
            "a",
            p::UpsertRequest {
                namespace: "other".into(),
                ..upsert(&["y"])
            },
            &[],
        ))
        .await
        .unwrap();
    assert_eq!(lsn(r.metadata(), "x-pinecone-request-lsn"), Some(1));
}

async fn read_your_writes_waits_for_the_lag_and_then_reflects_the_write(lsn_spelling: LsnSpelling) {
    let env = Env::start_with(EnvOptions {
        index_lag: Duration::from_millis(300),
        lsn_spelling,
        ..Default::default()
    })
    .await;
    let mut c = env.vectors();
    let w = c.upsert(from("svc", upsert(&["mine"]), &[])).await.unwrap();
    let written = lsn(w.metadata(), "x-pinecone-request-lsn").unwrap();
    // Pinecone as it is: a read straight after the write misses it.
    let plain = c.query(from("svc", query(), &[])).await.unwrap();
    assert!(
        ids(plain.get_ref()).is_empty(),
        "{:?}",
        ids(plain.get_ref())
    );
    assert!(lsn(plain.metadata(), "x-pinecone-max-indexed-lsn").unwrap() < written);
    // Another caller's read-your-writes does not wait for this caller's write.
    let other = c
        .query(from("someone-else", query(), &[RYW]))
        .await
        .unwrap();
    assert!(other.metadata().get("x-consistency-stale").is_none());
    let before = env.emulator.count(INDEX, "query");
    let started = tokio::time::Instant::now();
    let fresh = c.query(from("svc", query(), &[RYW])).await.unwrap();
    assert_eq!(ids(fresh.get_ref()), ["mine"]);
    assert_eq!(
        fresh.metadata().get("x-consistency-stale").unwrap(),
        "false"
    );
    assert!(lsn(fresh.metadata(), "x-pinecone-max-indexed-lsn").unwrap() >= written);
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "answered in {:?}, before the write could be applied",
        started.elapsed()
    );
    let reads = env.emulator.count(INDEX, "query") - before;
    assert!(reads > 1, "{reads} upstream queries");
    // An explicit floor works for any caller.
    let r = c
        .query(from(
            "anyone",
            query(),
            &[("x-pinecone-min-lsn", &written.to_string())],
        ))
        .await
        .unwrap();
    assert_eq!(r.metadata().get("x-consistency-stale").unwrap(), "false");
    let text = scrape(env.gateway.as_ref().unwrap().admin_addr.unwrap()).await;
    assert!(
        metric(
            &text,
            "pinecone_gateway_consistency_reads_total{outcome=\"fresh\"}"
        ) >= 2.0
    );
    assert!(metric(&text, "pinecone_gateway_consistency_repeated_reads_total") >= 1.0);
}

async fn a_read_whose_wait_runs_out_is_stale_or_refused_when_required(lsn_spelling: LsnSpelling) {
    let env = Env::start_with(EnvOptions {
        index_lag: Duration::from_secs(60),
        lsn_spelling,
        ..Default::default()
    })
    .await;
    let mut c = env.vectors();
    c.upsert(from("svc", upsert(&["mine"]), &[])).await.unwrap();
    // A second of wait against a minute of lag: the wait runs out, with room for a busy host's first read.
    let mut short = from("svc", query(), &[RYW]);
    short.set_timeout(Duration::from_millis(1000));
    let stale = c.query(short).await.unwrap();
    assert_eq!(stale.metadata().get("x-consistency-stale").unwrap(), "true");
    assert!(ids(stale.get_ref()).is_empty());
    let mut required = from("svc", query(), &[RYW, ("x-consistency-required", "true")]);
    required.set_timeout(Duration::from_millis(1000));
    let e = c.query(required).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message().contains("applied LSN 0") && e.message().contains("the 1 this read requires"),
        "{}",
        e.message()
    );
    let e = c
        .query(from("svc", query(), &[("x-consistency", "strong")]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("x-consistency"), "{}", e.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_reads_keep_to_the_rate_limits() {
    let env = Env::start_with(EnvOptions {
        index_lag: Duration::from_millis(1500),
        config: Some(
            "[limits.rates.query]\nindex_requests_per_second = 10\n[consistency]\nmax_wait_ms = 8000\n".into(),
        ),
        ..Default::default()
    })
    .await;
    let mut c = env.vectors();
    let w = c.upsert(from("svc", upsert(&["mine"]), &[])).await.unwrap();
    let written = lsn(w.metadata(), "x-pinecone-request-lsn")
        .unwrap()
        .to_string();
    let mut readers = Vec::new();
    for _ in 0..8 {
        let mut c = env.vectors();
        let floor = written.clone();
        readers.push(tokio::spawn(async move {
            let r = c
                .query(from("reader", query(), &[("x-pinecone-min-lsn", &floor)]))
                .await
                .unwrap();
            r.metadata()
                .get("x-consistency-stale")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        }));
    }
    for r in readers {
        assert_eq!(r.await.unwrap(), "false");
    }
    assert_within_limit(&env.emulator, "query", 10);
}

/// Redis mode: a caller's write through one replica is read back through another with read-your-writes (the write
/// LSNs are shared through Redis); a replica that does not share (local mode) does not know the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_redis_mode_a_write_through_one_replica_is_read_through_another() {
    let url = std::env::var("PINECONE_GATEWAY_TEST_REDIS_URL").expect(
        "PINECONE_GATEWAY_TEST_REDIS_URL names a running redis-server (./scripts/test starts one)",
    );
    let redis = format!(
        "[limits]\nmode = \"redis\"\n[limits.redis]\nurl = \"{url}\"\nkey_prefix = \"fresh-{}-{}\"\ntimeout_ms = 500\n",
        std::process::id(),
        rand::random::<u32>()
    );
    let env = Env::start_with(EnvOptions {
        index_lag: Duration::from_millis(300),
        config: Some(redis.clone()),
        ..Default::default()
    })
    .await;
    let (sharing, mut other) = env.replica(&redis).await;
    let (alone, mut local) = env.replica("").await;
    env.vectors()
        .upsert(from("svc", upsert(&["mine"]), &[]))
        .await
        .unwrap();
    let elsewhere = local.query(from("svc", query(), &[RYW])).await.unwrap();
    assert!(
        elsewhere.metadata().get("x-consistency-stale").is_none(),
        "a replica that does not share knows no write of this caller"
    );
    let fresh = other.query(from("svc", query(), &[RYW])).await.unwrap();
    assert_eq!(ids(fresh.get_ref()), ["mine"]);
    assert_eq!(
        fresh.metadata().get("x-consistency-stale").unwrap(),
        "false"
    );
    sharing.shutdown().await.unwrap();
    alone.shutdown().await.unwrap();
}

/// A repeated read that the rate limiter cannot fit before the deadline does not turn the call into a refusal: the
/// last answer stands, flagged stale.
async fn a_repeat_the_limiter_cannot_fit_leaves_the_last_answer_stale(lsn_spelling: LsnSpelling) {
    let env = Env::start_with(EnvOptions {
        index_lag: Duration::from_secs(60),
        lsn_spelling,
        config: Some("[limits.rates.query]\nindex_requests_per_second = 1\n".into()),
        ..Default::default()
    })
    .await;
    let mut c = env.vectors();
    c.upsert(from("svc", upsert(&["mine"]), &[])).await.unwrap();
    let mut r = from("svc", query(), &[RYW]);
    r.set_timeout(Duration::from_millis(500));
    let stale = c.query(r).await.unwrap();
    assert_eq!(stale.metadata().get("x-consistency-stale").unwrap(), "true");
    assert_eq!(lsn(stale.metadata(), "x-pinecone-max-indexed-lsn"), Some(0));
    assert_eq!(
        env.emulator.count(INDEX, "query"),
        1,
        "the repeat never went out"
    );
}

/// Redis mode with Redis unreachable: read your writes still works within the replica (its own memory of the
/// caller's writes): the read waits for the lagging write and reflects it, and is not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_a_replica_still_reads_its_own_callers_writes() {
    let env = Env::start_with(EnvOptions {
        index_lag: Duration::from_millis(300),
        config: Some(
            "[limits]\nmode = \"redis\"\n[limits.redis]\nurl = \"redis://127.0.0.1:1/\"\ntimeout_ms = 50\n".into(),
        ),
        ..Default::default()
    })
    .await;
    let mut c = env.vectors();
    c.upsert(from("svc", upsert(&["mine"]), &[])).await.unwrap();
    let fresh = c.query(from("svc", query(), &[RYW])).await.unwrap();
    assert_eq!(ids(fresh.get_ref()), ["mine"]);
    assert_eq!(
        fresh.metadata().get("x-consistency-stale").unwrap(),
        "false"
    );
}
