//! The coalescer over the real limiter under tokio's paused clock, with an upstream that answers fetches from a
//! fixed set of records and can be told to fail requests carrying a given ID.

use super::*;
use crate::pb::pinecone as w;
use crate::stack::Stacked;
use crate::stack::limit::Limiter;
use crate::stack::limit::rates::{ClassRates, OpClass, RateTable};
use crate::stack::limit::{LimitLayer, LimitSettings};
use crate::stack::testing::{Fake, status};
use std::sync::Mutex as StdMutex;

/// The fake upstream: a millisecond per request; a fetch finds a record (one read unit) for every ID that does not
/// start with "missing"; a request carrying the poisoned ID fails with a 503.
#[derive(Clone)]
struct Upstream {
    fake: Fake,
    poison: Arc<StdMutex<Option<String>>>,
}

impl Upstream {
    fn new() -> Self {
        let poison: Arc<StdMutex<Option<String>>> = Arc::default();
        let poisoned = poison.clone();
        let fake = Fake::builder()
            .latency(Duration::from_millis(1))
            .answer(move |call| {
                let ids = call.op.ids();
                if poisoned
                    .lock()
                    .unwrap()
                    .as_ref()
                    .is_some_and(|p| ids.contains(p))
                {
                    return status(503, None);
                }
                if !matches!(call.op, Op::Fetch { .. }) {
                    return Ok(Reply::Empty);
                }
                let vectors: HashMap<String, w::Vector> = ids
                    .iter()
                    .filter(|id| !id.starts_with("missing"))
                    .map(|id| {
                        (
                            id.clone(),
                            w::Vector {
                                id: id.clone(),
                                values: vec![1.0],
                                ..Default::default()
                            },
                        )
                    })
                    .collect();
                Ok(Reply::Fetch(w::FetchResponse {
                    usage: Some(w::Usage {
                        read_units: Some(vectors.len() as u32),
                    }),
                    vectors,
                    namespace: "ns".into(),
                }))
            })
            .build();
        Upstream { fake, poison }
    }

    fn requests(&self) -> Vec<Vec<String>> {
        self.fake.ids()
    }
}

/// The coalescer over a limiter allowing `per_second` fetches and deletes per index.
fn stack(
    per_second: u64,
    settings: CoalesceSettings,
) -> (
    Stacked<Coalesce<Stacked<crate::stack::limit::Limit<Fake>>>>,
    Upstream,
) {
    let limits = LimitSettings {
        rates: RateTable {
            global: HashMap::from([
                (
                    OpClass::Fetch,
                    ClassRates {
                        index_requests: Some(per_second),
                        ..Default::default()
                    },
                ),
                (
                    OpClass::Delete,
                    ClassRates {
                        index_requests: Some(per_second),
                        ..Default::default()
                    },
                ),
            ]),
            per_index: HashMap::new(),
        },
        window_margin: Duration::ZERO,
        ..LimitSettings::default()
    };
    let limiter = Limiter::new(limits);
    let upstream = Upstream::new();
    let svc = CoalesceLayer::new(limiter.clone(), settings)
        .layer(LimitLayer::new(limiter).layer(upstream.fake.clone()));
    (svc, upstream)
}

fn fetch(ids: &[&str]) -> UpstreamCall {
    UpstreamCall {
        index: "idx".into(),
        op: Op::Fetch {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            namespace: "ns".into(),
        },
        deadline: Instant::now() + Duration::from_secs(5),
        ctx: Default::default(),
    }
}

fn delete(ids: &[&str]) -> UpstreamCall {
    UpstreamCall {
        index: "idx".into(),
        op: Op::Delete(w::DeleteRequest {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            namespace: "ns".into(),
            ..Default::default()
        }),
        deadline: Instant::now() + Duration::from_secs(5),
        ctx: Default::default(),
    }
}

fn one_burst() -> CoalesceSettings {
    CoalesceSettings {
        burst_requests: 1,
        ..CoalesceSettings::default()
    }
}

fn spawn(
    svc: &impl crate::stack::Inner,
    call: UpstreamCall,
) -> tokio::task::JoinHandle<Result<Reply, CallError>> {
    tokio::spawn(svc.send(call))
}

fn fetched(r: Result<Reply, CallError>) -> w::FetchResponse {
    match r {
        Ok(Reply::Fetch(f)) => f,
        other => panic!("not a fetch answer: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_lone_call_goes_out_at_once() {
    let (svc, upstream) = stack(100, CoalesceSettings::default());
    let start = Instant::now();
    let f = fetched(spawn(&svc, fetch(&["a", "b"])).await.unwrap());
    assert_eq!(f.vectors.len(), 2);
    let seen = upstream.fake.arrivals();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, start, "no time added before sending");
}

#[tokio::test(start_paused = true)]
async fn calls_that_find_no_turn_share_the_next_request_and_get_only_their_records() {
    let (svc, upstream) = stack(10, one_burst());
    // The first takes the turn; the next 50 (one missing record among them) wait for the next one together.
    let first = spawn(&svc, fetch(&["r0"]));
    let waiting: Vec<_> = (1..=50)
        .map(|i| {
            let id = if i == 7 {
                "missing7".to_string()
            } else {
                format!("r{i}")
            };
            spawn(&svc, fetch(&[&id]))
        })
        .collect();
    fetched(first.await.unwrap());
    let mut units = 0;
    for (i, h) in waiting.into_iter().enumerate() {
        let f = fetched(h.await.unwrap());
        let want = if i + 1 == 7 {
            Vec::<String>::new()
        } else {
            vec![format!("r{}", i + 1)]
        };
        assert_eq!(f.vectors.keys().cloned().collect::<Vec<_>>(), want);
        units += f.usage.and_then(|u| u.read_units).unwrap_or(0);
    }
    assert_eq!(units, 49, "the read units of the shared request, split");
    let requests = upstream.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[1].len(), 50);
}

#[tokio::test(start_paused = true)]
async fn an_id_asked_by_several_callers_is_fetched_once() {
    let (svc, upstream) = stack(10, one_burst());
    let first = spawn(&svc, fetch(&["x"]));
    let a = spawn(&svc, fetch(&["shared", "a"]));
    let b = spawn(&svc, fetch(&["shared", "b"]));
    first.await.unwrap().unwrap();
    let fa = fetched(a.await.unwrap());
    let fb = fetched(b.await.unwrap());
    let keys = |f: &w::FetchResponse| {
        let mut k: Vec<_> = f.vectors.keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&fa), ["a", "shared"]);
    assert_eq!(keys(&fb), ["b", "shared"]);
    assert_eq!(upstream.requests()[1], ["shared", "a", "b"]);
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_cancels_is_taken_out_of_its_batch() {
    let (svc, upstream) = stack(10, one_burst());
    let first = spawn(&svc, fetch(&["x"]));
    let gone = spawn(&svc, fetch(&["gone"]));
    let kept = spawn(&svc, fetch(&["kept"]));
    tokio::time::sleep(Duration::from_millis(5)).await;
    gone.abort();
    first.await.unwrap().unwrap();
    fetched(kept.await.unwrap());
    assert_eq!(upstream.requests(), [vec!["x"], vec!["kept"]]);
}

#[tokio::test(start_paused = true)]
async fn a_batch_whose_callers_all_left_is_not_sent() {
    let (svc, upstream) = stack(10, one_burst());
    spawn(&svc, fetch(&["x"])).await.unwrap().unwrap();
    let short = UpstreamCall {
        deadline: Instant::now() + Duration::from_millis(20),
        ..fetch(&["late"])
    };
    let r = spawn(&svc, short).await.unwrap();
    assert_eq!(
        r,
        Err(CallError::DeadlineWhileWaiting {
            waiting_for: "its coalesced request"
        })
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(upstream.requests(), [vec!["x"]]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_batch_fails_only_its_own_callers() {
    let (svc, upstream) = stack(10, one_burst());
    let first = spawn(&svc, fetch(&["x"]));
    let a = spawn(&svc, fetch(&["poison"]));
    let b = spawn(&svc, fetch(&["b"]));
    *upstream.poison.lock().unwrap() = Some("poison".into());
    first.await.unwrap().unwrap();
    assert!(matches!(a.await.unwrap(), Err(CallError::Upstream(_))));
    assert!(matches!(b.await.unwrap(), Err(CallError::Upstream(_))));
    // A later batch without the poisoned ID is unaffected.
    let c = spawn(&svc, fetch(&["c"]));
    fetched(c.await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn batches_keep_to_the_id_cap() {
    let (svc, upstream) = stack(
        10,
        CoalesceSettings {
            caps: crate::stack::RequestCaps {
                max_ids: 10,
                ..Default::default()
            },
            ..one_burst()
        },
    );
    let handles: Vec<_> = (0..31)
        .map(|i| spawn(&svc, fetch(&[&format!("r{i}")])))
        .collect();
    for h in handles {
        fetched(h.await.unwrap());
    }
    let sizes: Vec<usize> = upstream.requests().iter().map(Vec::len).collect();
    assert_eq!(sizes, [1, 10, 10, 10]);
}

#[tokio::test(start_paused = true)]
async fn the_pace_spreads_turns_over_the_second() {
    let (svc, upstream) = stack(10, one_burst());
    let start = Instant::now();
    let handles: Vec<_> = (0..3)
        .map(|i| spawn(&svc, fetch(&[&format!("r{i}")])))
        .collect();
    for h in handles {
        fetched(h.await.unwrap());
    }
    let times = upstream.fake.times_ms(start);
    // The limiter alone would allow all three at 0 ms; the pace sends the first alone and the others 100 ms later.
    assert_eq!(times, [0, 100]);
}

#[tokio::test(start_paused = true)]
async fn deletes_coalesce_too() {
    let (svc, upstream) = stack(10, one_burst());
    let handles: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|id| spawn(&svc, delete(&[id])))
        .collect();
    for h in handles {
        assert_eq!(h.await.unwrap(), Ok(Reply::Empty));
    }
    assert_eq!(upstream.requests(), [vec!["a"], vec!["b", "c"]]);
}

#[tokio::test(start_paused = true)]
async fn switched_off_per_index_calls_pass_alone() {
    let off = Switches {
        fetch: false,
        delete: true,
    };
    let (svc, upstream) = stack(
        10,
        CoalesceSettings {
            per_index: HashMap::from([("idx".to_string(), off)]),
            ..one_burst()
        },
    );
    let handles: Vec<_> = (0..3)
        .map(|i| spawn(&svc, fetch(&[&format!("r{i}")])))
        .collect();
    for h in handles {
        fetched(h.await.unwrap());
    }
    assert_eq!(upstream.requests().len(), 3);
}

#[test]
fn usage_shares_add_up() {
    let member = |n: usize| Member {
        ids: (0..n).map(|i| i.to_string()).collect(),
        deadline: Instant::now(),
        ctx: Default::default(),
        tx: oneshot::channel().0,
        span: None,
    };
    let members = vec![member(1), member(1), member(1)];
    let parts = share(10, &members);
    assert_eq!(parts.iter().sum::<u32>(), 10);
    assert!(parts.iter().all(|p| *p == 3 || *p == 4), "{parts:?}");
    assert_eq!(share(6, &[member(1), member(2)]), [2, 4]);
}
