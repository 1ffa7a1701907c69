//! The limiter under tokio's paused clock, with an inner service that records when each call reached it.

use super::rates::{ClassRates, OpClass, RateTable};
use super::*;
use crate::call::Op;
use crate::pb::pinecone as w;
use crate::stack::Stacked;
use crate::stack::testing::{Fake, status};
use std::collections::HashMap;
use tower::ServiceExt;

fn settings(class: OpClass, rates: ClassRates) -> LimitSettings {
    LimitSettings {
        rates: RateTable {
            global: HashMap::from([(class, rates)]),
            per_index: HashMap::new(),
        },
        window_margin: Duration::ZERO,
        ..LimitSettings::default()
    }
}

fn fetch(ns: &str, deadline_ms: u64) -> UpstreamCall {
    UpstreamCall {
        index: "idx".into(),
        op: Op::Fetch {
            ids: vec!["a".into()],
            namespace: ns.into(),
        },
        deadline: Instant::now() + Duration::from_millis(deadline_ms),
        ctx: Default::default(),
    }
}

fn delete(ns: &str, ids: usize) -> UpstreamCall {
    UpstreamCall {
        index: "idx".into(),
        op: Op::Delete(w::DeleteRequest {
            ids: (0..ids).map(|i| i.to_string()).collect(),
            namespace: ns.into(),
            ..Default::default()
        }),
        deadline: Instant::now() + Duration::from_secs(60),
        ctx: Default::default(),
    }
}

fn service(s: LimitSettings) -> (Stacked<Limit<Fake>>, Fake) {
    let rec = Fake::default();
    (LimitLayer::new(Limiter::new(s)).layer(rec.clone()), rec)
}

/// Sends 25 fetches at once; when each reached the upstream, in ms.
async fn send_25_at_once(svc: Stacked<Limit<Fake>>, rec: &Fake) -> Vec<u128> {
    let start = Instant::now();
    let calls: Vec<_> = (0..25)
        .map(|_| svc.clone().oneshot(fetch("", 60_000)))
        .collect();
    for r in futures_join(calls).await {
        r.unwrap();
    }
    rec.times_ms(start)
}

/// Sends 25 fetches at once: 10 must go at 0 s, 10 at 1 s, 5 at 2 s.
async fn assert_ten_per_second(svc: Stacked<Limit<Fake>>, rec: Fake) {
    let t = send_25_at_once(svc, &rec).await;
    assert_eq!(t.iter().filter(|&&x| x == 0).count(), 10);
    assert_eq!(t.iter().filter(|&&x| x == 1000).count(), 10);
    assert_eq!(t.iter().filter(|&&x| x == 2000).count(), 5);
}

#[tokio::test(start_paused = true)]
async fn exact_rate_in_every_window() {
    let (svc, rec) = service(settings(
        OpClass::Fetch,
        ClassRates {
            index_requests: Some(10),
            ..Default::default()
        },
    ));
    assert_ten_per_second(svc, rec).await;
}

#[tokio::test(start_paused = true)]
async fn first_come_first_served() {
    let (svc, rec) = service(settings(
        OpClass::Fetch,
        ClassRates {
            index_requests: Some(1),
            ..Default::default()
        },
    ));
    let mut handles = vec![];
    for i in 0..5 {
        let mut call = fetch("", 60_000);
        call.op = Op::Fetch {
            ids: vec![i.to_string()],
            namespace: String::new(),
        };
        handles.push(tokio::spawn(svc.clone().oneshot(call)));
        tokio::task::yield_now().await;
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let order: Vec<String> = rec
        .arrivals()
        .iter()
        .map(|(_, c)| match &c.op {
            Op::Fetch { ids, .. } => ids[0].clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(order, ["0", "1", "2", "3", "4"]);
}

#[tokio::test(start_paused = true)]
async fn rejects_at_once_when_the_deadline_cannot_be_met() {
    let (svc, rec) = service(settings(
        OpClass::Fetch,
        ClassRates {
            index_requests: Some(1),
            ..Default::default()
        },
    ));
    svc.clone().oneshot(fetch("", 60_000)).await.unwrap();
    let start = Instant::now();
    let e = svc.clone().oneshot(fetch("", 500)).await.unwrap_err();
    assert_eq!(Instant::now(), start, "rejected without waiting");
    let CallError::Limited(r) = e else {
        panic!("{e:?}")
    };
    assert!(
        r.message
            .contains("fetch allows 1 requests/s per index (index `idx`)"),
        "{}",
        r.message
    );
    assert!(r.message.contains("deadline"), "{}", r.message);
    assert_eq!(r.retry_after, Duration::from_secs(1));
    assert_eq!(rec.arrivals().len(), 1);
    // With time for it, the same call waits its turn.
    svc.clone().oneshot(fetch("", 5_000)).await.unwrap();
    assert_eq!(rec.times_ms(start), vec![0, 1000]);
}

#[tokio::test(start_paused = true)]
async fn rejects_past_the_queue_limit() {
    let mut s = settings(
        OpClass::Fetch,
        ClassRates {
            index_requests: Some(1),
            ..Default::default()
        },
    );
    s.max_queue_wait = Duration::from_millis(1500);
    let (svc, _) = service(s);
    svc.clone().oneshot(fetch("", 60_000)).await.unwrap();
    let waiting = tokio::spawn(svc.clone().oneshot(fetch("", 60_000)));
    tokio::task::yield_now().await;
    // The third call's turn is 2 s away: past 1.5 s.
    let e = svc.clone().oneshot(fetch("", 60_000)).await.unwrap_err();
    let CallError::Limited(r) = e else {
        panic!("{e:?}")
    };
    assert!(r.message.contains("queue limit"), "{}", r.message);
    assert_eq!(r.retry_after, Duration::from_secs(2));
    waiting.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn all_or_nothing_across_buckets() {
    // Namespace records 100/s, index records 150/s.
    let (svc, rec) = service(settings(
        OpClass::Delete,
        ClassRates {
            namespace_records: Some(100),
            index_records: Some(150),
            ..Default::default()
        },
    ));
    let start = Instant::now();
    svc.clone().oneshot(delete("a", 100)).await.unwrap();
    // Namespace b has room (100), the index has only 50: refused by the index bucket, so it waits as a whole...
    let mut short = delete("b", 100);
    short.deadline = Instant::now() + Duration::from_millis(100);
    assert!(matches!(
        svc.clone().oneshot(short).await,
        Err(CallError::Limited(_))
    ));
    // ...and took nothing from namespace b: 50 records of b still pass at once (index: 100 + 50 = 150).
    svc.clone().oneshot(delete("b", 50)).await.unwrap();
    assert_eq!(rec.times_ms(start), vec![0, 0]);
}

#[tokio::test(start_paused = true)]
async fn a_busy_namespace_does_not_starve_the_others() {
    // Deletes: 100 records/s per namespace and per index, so one namespace alone can fill the index.
    let mut s = settings(
        OpClass::Delete,
        ClassRates {
            namespace_records: Some(100),
            index_records: Some(100),
            ..Default::default()
        },
    );
    s.max_queue_wait = Duration::from_secs(30);
    let (svc, rec) = service(s);
    let start = Instant::now();
    // Namespace a asks for 10 s worth at once; only 1 s of it may queue ahead in the shared index bucket.
    let mut busy = vec![];
    for _ in 0..10 {
        busy.push(tokio::spawn(svc.clone().oneshot(delete("a", 100))));
        tokio::task::yield_now().await;
    }
    svc.clone().oneshot(delete("b", 10)).await.unwrap();
    let b_at = *rec.times_ms(start).last().unwrap();
    assert!(
        b_at <= 2000,
        "namespace b waited {b_at} ms behind namespace a"
    );
    // A busy namespace alone is not rejected: every call of a was served, in turn, at the index rate.
    for h in busy {
        h.await.unwrap().unwrap();
    }
    let t = rec.times_ms(start);
    assert_eq!(t.len(), 11);
    for pair in t.windows(2) {
        assert!(pair[1] >= pair[0]);
    }
    assert!(*t.last().unwrap() <= 10_100, "{t:?}");
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_call_leaves_its_queue() {
    let (svc, rec) = service(settings(
        OpClass::Fetch,
        ClassRates {
            index_requests: Some(1),
            ..Default::default()
        },
    ));
    let start = Instant::now();
    svc.clone().oneshot(fetch("", 60_000)).await.unwrap();
    let waiting = tokio::spawn(svc.clone().oneshot(fetch("", 60_000)));
    tokio::task::yield_now().await;
    waiting.abort();
    let _ = waiting.await;
    // The cancelled call's turn (1 s) goes to the next caller.
    svc.clone().oneshot(fetch("", 60_000)).await.unwrap();
    assert_eq!(rec.times_ms(start), vec![0, 1000]);
}

#[tokio::test(start_paused = true)]
async fn a_pinecone_429_slows_the_whole_key() {
    let (svc, rec) = service(settings(
        OpClass::Fetch,
        ClassRates {
            index_requests: Some(100),
            ..Default::default()
        },
    ));
    let start = Instant::now();
    rec.script([status(429, Some(Duration::from_millis(700)))]);
    let e = svc.clone().oneshot(fetch("", 60_000)).await.unwrap_err();
    assert!(matches!(
        e,
        CallError::Upstream(UpstreamError::Status { status: 429, .. })
    ));
    svc.clone().oneshot(fetch("", 60_000)).await.unwrap();
    assert_eq!(rec.times_ms(start), vec![0, 700]);
}

#[tokio::test(start_paused = true)]
async fn default_namespace_is_one_key_and_calls_that_never_fit_are_refused() {
    let (svc, rec) = service(settings(
        OpClass::Delete,
        ClassRates {
            namespace_records: Some(10),
            ..Default::default()
        },
    ));
    let start = Instant::now();
    svc.clone().oneshot(delete("", 10)).await.unwrap();
    svc.clone()
        .oneshot(delete("__default__", 10))
        .await
        .unwrap();
    assert_eq!(rec.times_ms(start), vec![0, 1000]);
    let e = svc.clone().oneshot(delete("x", 11)).await.unwrap_err();
    let CallError::Limited(r) = e else { panic!() };
    assert!(r.message.contains("can never pass"), "{}", r.message);
}

#[tokio::test(start_paused = true)]
async fn idle_keys_are_evicted() {
    let mut s = settings(
        OpClass::Fetch,
        ClassRates {
            index_requests: Some(100),
            ..Default::default()
        },
    );
    s.max_keys = 16;
    let limiter = Limiter::new(s);
    let svc = LimitLayer::new(limiter.clone()).layer(Fake::default());
    for i in 0..40 {
        let mut call = fetch("", 60_000);
        call.index = format!("idx-{i}");
        svc.clone().oneshot(call).await.unwrap();
        tokio::time::advance(Duration::from_millis(1100)).await;
    }
    assert!(limiter.keys() <= 16, "{} keys", limiter.keys());
}

async fn futures_join<F>(fs: Vec<F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.into_iter().map(tokio::spawn).collect();
    let mut out = vec![];
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(start_paused = true)]
async fn a_static_share_divides_every_limit() {
    let (svc, rec) = service(LimitSettings {
        share: 3,
        ..settings(
            OpClass::Fetch,
            ClassRates {
                index_requests: Some(30),
                ..Default::default()
            },
        )
    });
    // 30/s shared by 3 replicas: 10 per second for this one.
    assert_ten_per_second(svc, rec).await;
}

#[tokio::test(start_paused = true)]
async fn a_turn_that_is_now_is_not_slept_for() {
    // tokio rounds timer deadlines up to the next millisecond: mid-millisecond, sleeping until "now" would cost up to
    // a millisecond per call.
    tokio::time::advance(Duration::from_micros(500)).await;
    let (svc, rec) = service(settings(
        OpClass::Fetch,
        ClassRates {
            index_requests: Some(10),
            ..Default::default()
        },
    ));
    let start = Instant::now();
    svc.oneshot(fetch("", 60_000)).await.unwrap();
    // A class whose limits are all switched off takes the same path.
    let off = ClassRates {
        index_requests: Some(0),
        ..Default::default()
    };
    let (unlimited, rec_unlimited) = service(settings(OpClass::Fetch, off));
    unlimited.oneshot(fetch("", 60_000)).await.unwrap();
    for r in [rec, rec_unlimited] {
        let seen: Vec<Instant> = r.arrivals().iter().map(|(t, _)| *t).collect();
        assert_eq!(seen, [start]);
    }
}

fn fetch_by(caller: &'static str, priority: crate::call::Priority) -> UpstreamCall {
    UpstreamCall {
        ctx: Arc::new(crate::call::CallContext {
            caller: crate::call::Caller {
                label: caller,
                priority,
                weight: 1,
            },
            ..Default::default()
        }),
        ..fetch("", 60_000)
    }
}

/// The limiter at 10 fetches per second on the index, with or without fair queuing.
fn fair_fetches(fair_queuing: bool) -> (Stacked<Limit<Fake>>, Fake) {
    service(LimitSettings {
        fair_queuing,
        ..settings(
            OpClass::Fetch,
            ClassRates {
                index_requests: Some(10),
                ..Default::default()
            },
        )
    })
}

/// 30 batch fetches queue for a limit of 10/s, then one interactive fetch arrives: when it reaches Pinecone, in ms.
async fn interactive_behind_batch(fair_queuing: bool) -> u128 {
    use crate::call::Priority;
    let (svc, rec) = fair_fetches(fair_queuing);
    let start = Instant::now();
    let mut calls: Vec<_> = (0..30)
        .map(|_| tokio::spawn(svc.clone().oneshot(fetch_by("backfill", Priority::Batch))))
        .collect();
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    calls.push(tokio::spawn(
        svc.clone()
            .oneshot(fetch_by("search", Priority::Interactive)),
    ));
    for c in calls {
        c.await.unwrap().unwrap();
    }
    let arrivals = rec.arrivals();
    assert_eq!(arrivals.len(), 31);
    let (at, _) = arrivals
        .iter()
        .find(|(_, c)| c.ctx.caller.label == "search")
        .unwrap();
    (*at - start).as_millis()
}

#[tokio::test(start_paused = true)]
async fn with_callers_an_interactive_call_overtakes_queued_batch_calls() {
    // First come, first served: behind all 30.
    assert_eq!(interactive_behind_batch(false).await, 3000);
    // Fair queuing: behind only the batch call already holding the next turn (sent at 1 s), one spacing after it.
    assert_eq!(interactive_behind_batch(true).await, 1100);
}

#[tokio::test(start_paused = true)]
async fn fair_queuing_keeps_the_limit_and_paces_turns_while_it_binds() {
    let (svc, rec) = fair_fetches(true);
    let times = send_25_at_once(svc, &rec).await;
    // A free window's ten at once; then, while the limit binds, one turn per spacing (100 ms), never more than ten
    // in any second.
    let mut expected = vec![0; 10];
    expected.extend((0..15).map(|i| 1000 + 100 * i));
    assert_eq!(times, expected);
}

#[tokio::test(start_paused = true)]
async fn callers_weighted_three_to_one_share_a_saturated_limit_75_25() {
    use crate::call::{CallContext, Caller, Priority};
    let (svc, rec) = fair_fetches(true);
    let end = Instant::now() + Duration::from_secs(40);
    let mut tasks = Vec::new();
    for (label, weight) in [("heavy", 3), ("light", 1)] {
        // Each caller keeps 20 calls waiting: the limit stays saturated by both.
        for _ in 0..20 {
            let svc = svc.clone();
            tasks.push(tokio::spawn(async move {
                while Instant::now() < end {
                    let call = UpstreamCall {
                        ctx: Arc::new(CallContext {
                            caller: Caller {
                                label,
                                priority: Priority::Default,
                                weight,
                            },
                            ..Default::default()
                        }),
                        ..fetch("", 60_000)
                    };
                    svc.clone().oneshot(call).await.unwrap();
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    // The first second's free window went to whoever came first; after it, the limit decides.
    let start = rec.arrivals()[0].0 + Duration::from_secs(1);
    let after: Vec<_> = rec
        .arrivals()
        .into_iter()
        .filter(|(at, _)| *at >= start && *at < end)
        .map(|(_, c)| c.ctx.caller.label)
        .collect();
    let heavy = after.iter().filter(|l| **l == "heavy").count() as f64 / after.len() as f64;
    assert!(after.len() > 300, "{}", after.len());
    assert!(
        (0.70..=0.80).contains(&heavy),
        "heavy got {heavy} of {}",
        after.len()
    );
}

fn query(ns: &str) -> UpstreamCall {
    UpstreamCall {
        index: "idx".into(),
        op: Op::Query(w::QueryRequest {
            namespace: ns.into(),
            top_k: 1,
            ..Default::default()
        }),
        deadline: Instant::now() + Duration::from_secs(60),
        ctx: Default::default(),
    }
}

/// An upstream whose queries cost `units` read units each, answered after 10 ms.
fn charging(units: u32) -> crate::stack::testing::FakeBuilder {
    Fake::builder()
        .latency(Duration::from_millis(10))
        .answer(move |_| {
            Ok(Reply::Query(w::QueryResponse {
                usage: Some(w::Usage {
                    read_units: Some(units),
                }),
                ..Default::default()
            }))
        })
}

/// The limiter with 100 read units per second of queries per index, in front of `rec`.
fn read_unit_limited(rec: &Fake) -> Stacked<Limit<Fake>> {
    LimitLayer::new(Limiter::new(settings(
        OpClass::Query,
        ClassRates {
            index_read_units: Some(100),
            ..Default::default()
        },
    )))
    .layer(rec.clone())
}

#[tokio::test(start_paused = true)]
async fn queries_are_counted_at_their_measured_read_units() {
    let rec = charging(40).build();
    let svc = read_unit_limited(&rec);
    let start = Instant::now();
    let calls: Vec<_> = (0..6).map(|_| svc.clone().oneshot(query("a"))).collect();
    for r in futures_join(calls).await {
        r.unwrap();
    }
    // The first query measures the namespace alone (the others wait for its answer at 10 ms); then 40 RU each:
    // one more fits the first second (80 of 100), two in each of the next ones.
    assert_eq!(rec.times_ms(start), [0, 10, 1010, 1020, 2020, 2030]);
}

#[tokio::test(start_paused = true)]
async fn a_namespace_is_probed_once_and_other_namespaces_keep_going() {
    let rec = charging(1).held().build();
    let svc = read_unit_limited(&rec);
    let a1 = tokio::spawn(svc.clone().oneshot(query("a")));
    let a2 = tokio::spawn(svc.clone().oneshot(query("a")));
    let b1 = tokio::spawn(svc.clone().oneshot(query("b")));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // "a" has one query in flight, its second waits for the first one's cost; "b" probes on its own.
    assert_eq!(rec.arrivals().len(), 2);
    rec.release(2);
    a1.await.unwrap().unwrap();
    b1.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(rec.arrivals().len(), 3);
    rec.release(1);
    a2.await.unwrap().unwrap();
}
