//! The ordering layer under tokio's paused clock, over an upstream that holds every request until the test lets it
//! answer.

use super::*;
use crate::pb::pinecone as w;
use crate::wire::upsert::UpsertBody;
use std::sync::Mutex as StdMutex;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

#[derive(Clone)]
struct Held {
    /// The name and IDs of each request, in the order they reached it.
    arrived: Arc<StdMutex<Vec<String>>>,
    answers: Arc<Semaphore>,
}

impl Held {
    fn new() -> Self {
        Held {
            arrived: Arc::default(),
            answers: Arc::new(Semaphore::new(0)),
        }
    }

    fn arrived(&self) -> Vec<String> {
        self.arrived.lock().unwrap().clone()
    }
}

impl Service<UpstreamCall> for Held {
    type Response = Reply;
    type Error = CallError;
    type Future = CallFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: UpstreamCall) -> CallFuture {
        let label = match &call.op {
            Op::Fetch { ids, .. } => format!("fetch {}", ids.join(",")),
            Op::Delete(d) if d.delete_all => "delete all".to_string(),
            Op::Delete(d) => format!("delete {}", d.ids.join(",")),
            Op::Upsert(u) => format!("upsert {}", u.ids().join(",")),
            other => other.name().to_string(),
        };
        self.arrived.lock().unwrap().push(label);
        let answers = self.answers.clone();
        Box::pin(async move {
            answers.acquire().await.unwrap().forget();
            Ok(Reply::Empty)
        })
    }
}

fn call(op: Op) -> UpstreamCall {
    UpstreamCall {
        index: "idx".into(),
        op,
        deadline: Instant::now() + Duration::from_secs(5),
        ctx: Default::default(),
    }
}

fn fetch(ids: &[&str]) -> UpstreamCall {
    call(Op::Fetch {
        ids: ids.iter().map(|s| s.to_string()).collect(),
        namespace: "ns".into(),
    })
}

fn delete(ids: &[&str]) -> UpstreamCall {
    call(Op::Delete(w::DeleteRequest {
        ids: ids.iter().map(|s| s.to_string()).collect(),
        namespace: "ns".into(),
        ..Default::default()
    }))
}

fn upsert(ids: &[&str]) -> UpstreamCall {
    call(Op::Upsert(UpsertBody::encode(&w::UpsertRequest {
        vectors: ids
            .iter()
            .map(|id| w::Vector {
                id: id.to_string(),
                values: vec![1.0],
                ..Default::default()
            })
            .collect(),
        namespace: "ns".into(),
    })))
}

fn start(
    svc: &mut Order<Held>,
    c: UpstreamCall,
) -> tokio::task::JoinHandle<Result<Reply, CallError>> {
    tokio::spawn(svc.call(c))
}

/// Lets every task run as far as it can.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_delete_waits_for_an_earlier_fetch_of_its_id() {
    let held = Held::new();
    let mut svc = OrderLayer::new().layer(held.clone());
    let f = start(&mut svc, fetch(&["a", "b"]));
    let d = start(&mut svc, delete(&["b"]));
    let other = start(&mut svc, fetch(&["c"]));
    settle().await;
    assert_eq!(held.arrived(), ["fetch a,b", "fetch c"]);
    held.answers.add_permits(1);
    f.await.unwrap().unwrap();
    settle().await;
    assert_eq!(held.arrived(), ["fetch a,b", "fetch c", "delete b"]);
    held.answers.add_permits(2);
    d.await.unwrap().unwrap();
    other.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_fetch_or_upsert_waits_for_an_earlier_delete_and_a_later_delete_for_them() {
    let held = Held::new();
    let mut svc = OrderLayer::new().layer(held.clone());
    let d = start(&mut svc, delete(&["a"]));
    let u = start(&mut svc, upsert(&["a"]));
    let f = start(&mut svc, fetch(&["a"]));
    let d2 = start(&mut svc, delete(&["a"]));
    settle().await;
    // The upsert and the fetch wait for the first delete; the second delete, accepted after them, waits for them.
    assert_eq!(held.arrived(), ["delete a"]);
    held.answers.add_permits(1);
    settle().await;
    assert_eq!(held.arrived(), ["delete a", "upsert a", "fetch a"]);
    held.answers.add_permits(2);
    settle().await;
    assert_eq!(
        held.arrived(),
        ["delete a", "upsert a", "fetch a", "delete a"]
    );
    held.answers.add_permits(1);
    for h in [d, u, f, d2] {
        h.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn calls_that_do_not_conflict_never_wait() {
    let held = Held::new();
    let mut svc = OrderLayer::new().layer(held.clone());
    let calls = [
        fetch(&["a"]),
        fetch(&["a"]),
        upsert(&["a"]),
        delete(&["b"]),
        delete(&["b"]),
    ];
    let handles: Vec<_> = calls.into_iter().map(|c| start(&mut svc, c)).collect();
    settle().await;
    assert_eq!(held.arrived().len(), 5);
    held.answers.add_permits(5);
    for h in handles {
        h.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_call_releases_its_ids() {
    let held = Held::new();
    let mut svc = OrderLayer::new().layer(held.clone());
    let f = start(&mut svc, fetch(&["a"]));
    let d = start(&mut svc, delete(&["a"]));
    settle().await;
    f.abort();
    settle().await;
    assert_eq!(held.arrived(), ["fetch a", "delete a"]);
    held.answers.add_permits(1);
    d.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn delete_all_waits_for_every_earlier_use_of_its_namespace_and_later_ones_wait_for_it() {
    let held = Held::new();
    let mut svc = OrderLayer::new().layer(held.clone());
    let f = start(&mut svc, fetch(&["x"]));
    let all = start(
        &mut svc,
        call(Op::Delete(w::DeleteRequest {
            delete_all: true,
            namespace: "ns".into(),
            ..Default::default()
        })),
    );
    let u = start(&mut svc, upsert(&["y"]));
    settle().await;
    assert_eq!(held.arrived(), ["fetch x"]);
    held.answers.add_permits(1);
    settle().await;
    assert_eq!(held.arrived(), ["fetch x", "delete all"]);
    held.answers.add_permits(1);
    settle().await;
    assert_eq!(held.arrived(), ["fetch x", "delete all", "upsert y"]);
    held.answers.add_permits(1);
    for h in [f, all, u] {
        h.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_wait_past_the_deadline_ends_the_call() {
    let held = Held::new();
    let mut svc = OrderLayer::new().layer(held.clone());
    let _f = start(&mut svc, fetch(&["a"]));
    let d = start(
        &mut svc,
        UpstreamCall {
            deadline: Instant::now() + Duration::from_millis(50),
            ..delete(&["a"])
        },
    );
    assert!(
        matches!(
            d.await.unwrap(),
            Err(CallError::DeadlineWhileWaiting { waiting_for }) if waiting_for.contains("earlier call on the same IDs")
        ),
        "a local wait, not an upstream timeout"
    );
    assert_eq!(held.arrived(), ["fetch a"]);
}

#[tokio::test(start_paused = true)]
async fn namespaces_and_indexes_are_apart() {
    let held = Held::new();
    let mut svc = OrderLayer::new().layer(held.clone());
    let _f = start(&mut svc, fetch(&["a"]));
    let other_ns = start(
        &mut svc,
        call(Op::Delete(w::DeleteRequest {
            ids: vec!["a".into()],
            namespace: "other".into(),
            ..Default::default()
        })),
    );
    let other_index = start(
        &mut svc,
        UpstreamCall {
            index: "idx2".into(),
            ..delete(&["a"])
        },
    );
    settle().await;
    assert_eq!(held.arrived().len(), 3);
    held.answers.add_permits(3);
    other_ns.await.unwrap().unwrap();
    other_index.await.unwrap().unwrap();
}
