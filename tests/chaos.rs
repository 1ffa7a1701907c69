//! Chaos, bounded: against an emulator that fails 5% of requests (503), throttles 10% (429 with `Retry-After: 1`) and
//! breaks 2% of connections after applying the request, many callers upsert, delete and fetch their own records for
//! a few seconds through the gateway (Pinecone's limits enforced). Afterwards nothing acknowledged is lost and
//! nothing acknowledged as deleted has come back: every record whose last acknowledged operation was an upsert is
//! there with that upsert's values, every one whose last acknowledged operation was a delete is gone. (A call that
//! failed leaves its record's state unknown: it may or may not have been applied.) Meanwhile every caller also writes
//! to a few shared records, concurrently with the others: each ends holding what the acknowledged order allows (see
//! `may_hold`). Every call ends with a status within its deadline.
mod common;
use common::*;
use pinecone_gateway::emulator::faults::Faults;
use pinecone_gateway::pb::pinecone as p;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const CALLERS: usize = 40;
const IDS_PER_CALLER: usize = 2;
const RUN_FOR: Duration = Duration::from_secs(8);
/// Records every caller writes to, concurrently with the others.
const SHARED_IDS: usize = 3;

/// One write to a shared record: when it was sent and answered, what it writes (`Some(tag)`: an upsert whose values
/// carry `tag`; `None`: a delete), and whether it was acknowledged.
#[derive(Clone, Copy, Debug)]
struct SharedWrite {
    slot: usize,
    sent: Instant,
    ended: Instant,
    writes: Option<u32>,
    acknowledged: bool,
}

/// What a shared record may hold at the end, by the acknowledged order: a write that was sent after another was
/// acknowledged comes after it, so the record holds what one of the acknowledged writes that no acknowledged write
/// came strictly after wrote; or what a failed write wrote (it may have been applied at any time). Writes that
/// overlapped in time may have been applied in either order.
fn may_hold(writes: &[SharedWrite]) -> Vec<Option<u32>> {
    let acknowledged: Vec<&SharedWrite> = writes.iter().filter(|w| w.acknowledged).collect();
    let mut out: Vec<Option<u32>> = writes
        .iter()
        .filter(|w| !w.acknowledged || !acknowledged.iter().any(|later| later.sent > w.ended))
        .map(|w| w.writes)
        .collect();
    if acknowledged.is_empty() {
        out.push(None);
    }
    out
}

/// What a caller knows of one of its records.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Known {
    /// Upserted with this version, acknowledged.
    Present(u32),
    /// Deleted, acknowledged.
    Absent,
    /// The last call failed: either way.
    Unknown,
}

/// Every call ends with a status within its deadline: served, or refused as docs/api.md says a fault or a limit is.
fn check_status<T>(result: &Result<T, tonic::Status>, sent: Instant, deadline: Duration) {
    let took = sent.elapsed();
    assert!(
        took < deadline + Duration::from_millis(500),
        "a call outlived its deadline"
    );
    if let Err(s) = result {
        // The client's own timer may fire first (it started before the request left the client): CANCELLED at the
        // deadline is the caller's, not the gateway's.
        let own_timeout = s.code() == tonic::Code::Cancelled && took >= deadline;
        assert!(
            own_timeout
                || matches!(
                    s.code(),
                    tonic::Code::Unavailable
                        | tonic::Code::ResourceExhausted
                        | tonic::Code::DeadlineExceeded
                ),
            "{s:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_or_resurrected_under_faults() {
    let env = Env::start_with(EnvOptions {
        enforce_limits: true,
        faults: Faults {
            error_percent: 5.0,
            throttle_percent: 10.0,
            throttle_retry_after_secs: Some(1),
            drop_percent: 2.0,
            delay_ms: 0,
            monthly_cap: None,
        },
        config: Some("[limits]\nexpected_upstream_ms = 300\n".into()),
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let shared: std::sync::Arc<std::sync::Mutex<Vec<SharedWrite>>> = Default::default();
    let mut tasks = Vec::new();
    for c in 0..CALLERS {
        let mut v = env.vectors();
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut known = vec![Known::Absent; IDS_PER_CALLER];
            let mut version = 0u32;
            let mut calls = 0u32;
            while started.elapsed() < RUN_FOR {
                version += 1;
                // Any record; an upsert (with the version in its values, so an older write coming back is visible)
                // or a delete; then a fetch of the same record checks what the caller was told.
                let slot = rand::random_range(0..IDS_PER_CALLER);
                let upsert = rand::random_range(0..10) < 6;
                let id = format!("c{c}-{slot}");
                let deadline = Duration::from_secs(3);
                let sent = Instant::now();
                let written = if upsert {
                    let mut r = req(p::UpsertRequest {
                        vectors: vec![p::Vector {
                            id: id.clone(),
                            values: vec![1.0, version as f32, c as f32, 0.5],
                            ..Default::default()
                        }],
                        namespace: "chaos".into(),
                    });
                    r.set_timeout(deadline);
                    v.upsert(r).await.map(|_| Known::Present(version))
                } else {
                    let mut r = req(p::DeleteRequest {
                        ids: vec![id.clone()],
                        namespace: "chaos".into(),
                        ..Default::default()
                    });
                    r.set_timeout(deadline);
                    v.delete(r).await.map(|_| Known::Absent)
                };
                check_status(&written, sent, deadline);
                // A failed write may or may not have been applied.
                known[slot] = written.unwrap_or(Known::Unknown);
                calls += 1;

                // Now and then a write to a record every caller writes to, concurrently.
                if rand::random_range(0..10) < 3 {
                    let slot = rand::random_range(0..SHARED_IDS);
                    let id = format!("shared-{slot}");
                    let tag = (c as u32) * 100_000 + version;
                    let upsert = rand::random_range(0..10) < 6;
                    let sent = Instant::now();
                    let result = if upsert {
                        let mut r = req(p::UpsertRequest {
                            vectors: vec![p::Vector {
                                id,
                                values: vec![1.0, tag as f32, 0.0, 0.5],
                                ..Default::default()
                            }],
                            namespace: "chaos".into(),
                        });
                        r.set_timeout(deadline);
                        v.upsert(r).await.map(|_| ())
                    } else {
                        let mut r = req(p::DeleteRequest {
                            ids: vec![id],
                            namespace: "chaos".into(),
                            ..Default::default()
                        });
                        r.set_timeout(deadline);
                        v.delete(r).await.map(|_| ())
                    };
                    check_status(&result, sent, deadline);
                    shared.lock().unwrap().push(SharedWrite {
                        slot,
                        sent,
                        ended: Instant::now(),
                        writes: upsert.then_some(tag),
                        acknowledged: result.is_ok(),
                    });
                    calls += 1;
                }

                let sent = Instant::now();
                let mut r = req(p::FetchRequest {
                    ids: vec![id.clone()],
                    namespace: "chaos".into(),
                });
                r.set_timeout(deadline);
                let fetched = v.fetch(r).await;
                check_status(&fetched, sent, deadline);
                calls += 1;
                if let Ok(f) = fetched {
                    let got = f.into_inner().vectors.get(&id).map(|x| x.values[1] as u32);
                    match (known[slot], got) {
                        (Known::Present(want), Some(have)) => {
                            assert_eq!(have, want, "{id}: an older write came back")
                        }
                        (Known::Present(want), None) => panic!("{id}: version {want} was lost"),
                        (Known::Absent, Some(have)) => {
                            panic!("{id}: deleted, yet version {have} came back")
                        }
                        _ => {}
                    }
                }
            }
            (c, known, calls)
        }));
    }
    let mut expected: HashMap<String, Known> = HashMap::new();
    let mut calls = 0;
    for t in tasks {
        let (c, known, n) = t.await.unwrap();
        calls += n;
        for (slot, k) in known.into_iter().enumerate() {
            expected.insert(format!("c{c}-{slot}"), k);
        }
    }
    assert!(env.emulator.faults_injected() > 20, "faults were injected");
    assert!(calls > 200, "{calls} calls");
    assert_eq!(
        env.emulator.throttled(INDEX),
        0,
        "the gateway's own limits held"
    );

    // The final state, read without faults.
    env.emulator.set_faults(Faults::default());
    let mut ids: Vec<String> = expected.keys().cloned().collect();
    ids.extend((0..SHARED_IDS).map(|slot| format!("shared-{slot}")));
    let mut r = req(p::FetchRequest {
        ids,
        namespace: "chaos".into(),
    });
    r.set_timeout(Duration::from_secs(10));
    let stored = env.vectors().fetch(r).await.unwrap().into_inner().vectors;
    let mut checked = 0;
    for (id, k) in &expected {
        match k {
            Known::Present(version) => {
                let v = stored
                    .get(id)
                    .unwrap_or_else(|| panic!("{id}: version {version} was lost"));
                assert_eq!(
                    v.values[1] as u32, *version,
                    "{id}: an older write came back"
                );
                checked += 1;
            }
            Known::Absent => {
                assert!(!stored.contains_key(id), "{id}: deleted, yet it came back");
                checked += 1;
            }
            Known::Unknown => {}
        }
    }
    assert!(
        checked > CALLERS * IDS_PER_CALLER / 2,
        "{checked} records checked"
    );
    // Every shared record holds what the acknowledged order allows.
    let shared = shared.lock().unwrap().clone();
    let mut shared_writes = 0;
    for slot in 0..SHARED_IDS {
        let writes: Vec<SharedWrite> = shared.iter().filter(|w| w.slot == slot).copied().collect();
        shared_writes += writes.iter().filter(|w| w.acknowledged).count();
        let id = format!("shared-{slot}");
        let holds = stored.get(&id).map(|v| v.values[1] as u32);
        let allowed = may_hold(&writes);
        assert!(
            allowed.contains(&holds),
            "{id} holds {holds:?}; the acknowledged order allows only {allowed:?}"
        );
    }
    assert!(
        shared_writes > 30,
        "{shared_writes} acknowledged shared writes"
    );
}

/// The checker itself: a write that an acknowledged write came strictly after is no longer allowed; overlapping
/// writes are allowed either way; a failed write is always allowed; nothing acknowledged leaves the record absent.
#[test]
fn the_acknowledged_order_checker() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let w = |sent, ended, writes, acknowledged| SharedWrite {
        slot: 0,
        sent: at(sent),
        ended: at(ended),
        writes,
        acknowledged,
    };
    // Upsert 1 acknowledged at 10, then a delete sent at 20: only the delete's absence.
    assert_eq!(
        may_hold(&[w(0, 10, Some(1), true), w(20, 30, None, true)]),
        [None]
    );
    // Overlapping: either.
    let mut both = may_hold(&[w(0, 30, Some(1), true), w(20, 40, Some(2), true)]);
    both.sort();
    assert_eq!(both, [Some(1), Some(2)]);
    // A failed write may have been applied whenever.
    let mut failed = may_hold(&[w(0, 10, Some(1), false), w(20, 30, Some(2), true)]);
    failed.sort();
    assert_eq!(failed, [Some(1), Some(2)]);
    // Nothing acknowledged: absent, or what a failed write wrote.
    let mut none = may_hold(&[w(0, 10, Some(1), false)]);
    none.sort();
    assert_eq!(none, [None, Some(1)]);
}
