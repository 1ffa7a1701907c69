//! Overload ends in fast, explicit failures: past `server.max_concurrent_calls` a call is refused at once with
//! RESOURCE_EXHAUSTED and retry advice, instead of queueing without bound.
mod common;
use common::*;
use pinecone_gateway::emulator::faults::Faults;
use pinecone_gateway::pb::pinecone as p;
use std::sync::{Arc, Mutex};

/// Calls in the order they ended, with how they ended.
type Finished = Arc<Mutex<Vec<(usize, Result<(), tonic::Status>)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_concurrency_limit_are_shed_at_once() {
    // Every upstream request takes a second, so the two admitted calls hold their places meanwhile.
    let env = Env::start_with(EnvOptions {
        config: Some("[server]\nmax_concurrent_calls = 2\n".into()),
        faults: Faults {
            delay_ms: 1000,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let finished: Finished = Arc::default();
    let mut calls = Vec::new();
    for i in 0..6 {
        let mut client = env.vectors();
        let finished = finished.clone();
        calls.push(tokio::spawn(async move {
            let r = client
                .fetch(req(p::FetchRequest {
                    ids: vec!["a".into()],
                    namespace: "".into(),
                }))
                .await;
            finished.lock().unwrap().push((i, r.map(|_| ())));
        }));
    }
    for c in calls {
        c.await.unwrap();
    }
    let finished = finished.lock().unwrap();
    let shed: Vec<_> = finished.iter().filter(|(_, r)| r.is_err()).collect();
    assert_eq!(shed.len(), 4, "{finished:?}");
    for (_, r) in &shed {
        let s = r.as_ref().unwrap_err();
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert!(
            s.message().contains("maximum of 2 concurrent calls"),
            "{}",
            s.message()
        );
        assert!(s.metadata().get("grpc-retry-pushback-ms").is_some());
    }
    // The shed calls ended before either admitted call: they did not wait for a place.
    assert!(
        finished[..4].iter().all(|(_, r)| r.is_err()),
        "{finished:?}"
    );
    assert!(finished[4..].iter().all(|(_, r)| r.is_ok()), "{finished:?}");
}
