//! The ordering layer under tokio's paused clock, over an upstream that holds every request until the test lets it
//! answer.

use super::*;
use crate::call::Reply;
use crate::pb::pinecone as w;
use crate::stack::Stacked;
use crate::stack::testing::Fake;
use crate::wire::upsert::UpsertBody;
use std::time::Duration;
use tokio::time::Instant;
use tower::Service;

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
    svc: &mut Stacked<Order<Fake>>,
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
    let held = Fake::builder().held().build();
    let mut svc = OrderLayer::new().layer(held.clone());
    let f = start(&mut svc, fetch(&["a", "b"]));
    let d = start(&mut svc, delete(&["b"]));
    let other = start(&mut svc, fetch(&["c"]));
    settle().await;
    assert_eq!(held.labels(), ["fetch a,b", "fetch c"]);
    held.release(1);
    f.await.unwrap().unwrap();
    settle().await;
    assert_eq!(held.labels(), ["fetch a,b", "fetch c", "delete b"]);
    held.release(2);
    d.await.unwrap().unwrap();
    other.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_fetch_or_upsert_waits_for_an_earlier_delete_and_a_later_delete_for_them() {
    let held = Fake::builder().held().build();
    let mut svc = OrderLayer::new().layer(held.clone());
    let d = start(&mut svc, delete(&["a"]));
    let u = start(&mut svc, upsert(&["a"]));
    let f = start(&mut svc, fetch(&["a"]));
    let d2 = start(&mut svc, delete(&["a"]));
    settle().await;
    // The upsert and the fetch wait for the first delete; the second delete, accepted after them, waits for them.
    assert_eq!(held.labels(), ["delete a"]);
    held.release(1);
    settle().await;
    assert_eq!(held.labels(), ["delete a", "upsert a", "fetch a"]);
    held.release(2);
    settle().await;
    assert_eq!(
        held.labels(),
        ["delete a", "upsert a", "fetch a", "delete a"]
    );
    held.release(1);
    for h in [d, u, f, d2] {
        h.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn calls_that_do_not_conflict_never_wait() {
    let held = Fake::builder().held().build();
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
    assert_eq!(held.labels().len(), 5);
    held.release(5);
    for h in handles {
        h.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_call_releases_its_ids() {
    let held = Fake::builder().held().build();
    let mut svc = OrderLayer::new().layer(held.clone());
    let f = start(&mut svc, fetch(&["a"]));
    let d = start(&mut svc, delete(&["a"]));
    settle().await;
    f.abort();
    settle().await;
    assert_eq!(held.labels(), ["fetch a", "delete a"]);
    held.release(1);
    d.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn delete_all_waits_for_every_earlier_use_of_its_namespace_and_later_ones_wait_for_it() {
    let held = Fake::builder().held().build();
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
    assert_eq!(held.labels(), ["fetch x"]);
    held.release(1);
    settle().await;
    assert_eq!(held.labels(), ["fetch x", "delete all"]);
    held.release(1);
    settle().await;
    assert_eq!(held.labels(), ["fetch x", "delete all", "upsert y"]);
    held.release(1);
    for h in [f, all, u] {
        h.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_wait_past_the_deadline_ends_the_call() {
    let held = Fake::builder().held().build();
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
    assert_eq!(held.labels(), ["fetch a"]);
}

#[tokio::test(start_paused = true)]
async fn namespaces_and_indexes_are_apart() {
    let held = Fake::builder().held().build();
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
    assert_eq!(held.labels().len(), 3);
    held.release(3);
    other_ns.await.unwrap().unwrap();
    other_index.await.unwrap().unwrap();
}
