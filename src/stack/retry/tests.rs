//! Retries under tokio's paused clock, over the fake upstream answering from a script.

use super::*;
use crate::call::Reply;
use crate::pb::pinecone as w;
use crate::stack::Stacked;
use crate::stack::limit::Rejection;
use crate::stack::testing::{Fake, status};
use crate::wire::control as c;
use tower::ServiceExt;

/// The fake upstream, answering `answers` in turn and then `Reply::Empty`.
fn scripted(answers: Vec<Result<Reply, CallError>>) -> Fake {
    let fake = Fake::default();
    fake.script(answers);
    fake
}

fn connect() -> Result<Reply, CallError> {
    Err(CallError::Upstream(UpstreamError::Connect {
        host: "h".into(),
        detail: "refused".into(),
    }))
}

fn broken() -> Result<Reply, CallError> {
    Err(CallError::Upstream(UpstreamError::Broken {
        host: "h".into(),
        detail: "reset".into(),
    }))
}

fn call(op: Op, deadline_ms: u64) -> UpstreamCall {
    UpstreamCall {
        index: "i".into(),
        op,
        deadline: Instant::now() + Duration::from_millis(deadline_ms),
        ctx: Default::default(),
    }
}

fn fetch() -> Op {
    Op::Fetch {
        ids: vec!["a".into()],
        namespace: String::new(),
    }
}

fn create_backup() -> Op {
    Op::CreateBackup(c::CreateBackupRequest::default())
}

fn delete_by_filter() -> Op {
    let filter: pbjson_types::Struct = [("a".to_string(), pbjson_types::Value::from(1.0))]
        .into_iter()
        .collect();
    Op::Delete(w::DeleteRequest {
        filter: Some(filter),
        ..Default::default()
    })
}

fn retry(script: &Fake, settings: RetrySettings) -> Stacked<Retry<Fake>> {
    RetryLayer::new(settings).layer(script.clone())
}

#[tokio::test(start_paused = true)]
async fn idempotent_calls_are_retried_with_capped_jittered_backoff() {
    let script = scripted(vec![status(503, None), status(500, None), Ok(Reply::Empty)]);
    let start = Instant::now();
    retry(&script, RetrySettings::default())
        .oneshot(call(fetch(), 10_000))
        .await
        .unwrap();
    let t = script.times_ms(start);
    assert_eq!(t.len(), 3);
    // Full jitter: each wait is at most base × 2^attempt (50 ms, then 100 ms).
    assert!(t[1] <= 50, "{t:?}");
    assert!(t[2] - t[1] <= 100, "{t:?}");
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_coalesced_request_is_retried_like_a_broken_connection() {
    // A fetch may be repeated: it goes again and succeeds.
    let script = scripted(vec![Err(CallError::Abandoned), Ok(Reply::Empty)]);
    retry(&script, RetrySettings::default())
        .oneshot(call(fetch(), 10_000))
        .await
        .unwrap();
    assert_eq!(script.arrivals().len(), 2);
    // A write that may have been applied is not repeated.
    let script = scripted(vec![Err(CallError::Abandoned), Ok(Reply::Empty)]);
    let e = retry(&script, RetrySettings::default())
        .oneshot(call(create_backup(), 10_000))
        .await;
    assert_eq!(e, Err(CallError::Abandoned));
    assert_eq!(script.arrivals().len(), 1);
    // A wait that ran out in the gateway is not retried: the deadline has passed.
    let waited = CallError::DeadlineWhileWaiting {
        waiting_for: "its coalesced request",
    };
    let script = scripted(vec![Err(waited.clone()), Ok(Reply::Empty)]);
    let e = retry(&script, RetrySettings::default())
        .oneshot(call(fetch(), 10_000))
        .await;
    assert_eq!(e, Err(waited));
    assert_eq!(script.arrivals().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn calls_that_may_have_been_applied_are_not_retried() {
    for op in [create_backup(), delete_by_filter()] {
        let script = scripted(vec![status(503, None), Ok(Reply::Empty)]);
        let e = retry(&script, RetrySettings::default())
            .oneshot(call(op.clone(), 10_000))
            .await;
        assert!(e.is_err(), "{op:?}");
        assert_eq!(script.arrivals().len(), 1, "{op:?}");
        let script = scripted(vec![broken(), Ok(Reply::Empty)]);
        assert!(
            retry(&script, RetrySettings::default())
                .oneshot(call(op.clone(), 10_000))
                .await
                .is_err()
        );
        assert_eq!(script.arrivals().len(), 1, "{op:?}");
    }
    // Opt in for filter deletes.
    let script = scripted(vec![status(503, None), Ok(Reply::Empty)]);
    let settings = RetrySettings {
        retry_unsafe_writes: true,
        ..Default::default()
    };
    retry(&script, settings)
        .oneshot(call(delete_by_filter(), 10_000))
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn refused_calls_are_retried_whatever_the_operation() {
    // Never connected: nothing reached Pinecone.
    let script = scripted(vec![connect(), Ok(Reply::Empty)]);
    retry(&script, RetrySettings::default())
        .oneshot(call(create_backup(), 10_000))
        .await
        .unwrap();
    assert_eq!(script.arrivals().len(), 2);
    // A 429: Pinecone refused it; wait at least its Retry-After.
    let script = scripted(vec![
        status(429, Some(Duration::from_millis(700))),
        Ok(Reply::Empty),
    ]);
    let start = Instant::now();
    retry(&script, RetrySettings::default())
        .oneshot(call(create_backup(), 10_000))
        .await
        .unwrap();
    let t = script.times_ms(start);
    assert!(t[1] >= 700, "{t:?}");
}

#[tokio::test(start_paused = true)]
async fn retries_stay_inside_the_deadline() {
    let script = scripted(vec![
        status(429, Some(Duration::from_secs(2))),
        Ok(Reply::Empty),
    ]);
    let start = Instant::now();
    let e = retry(&script, RetrySettings::default())
        .oneshot(call(fetch(), 1_000))
        .await;
    assert!(e.is_err());
    assert_eq!(script.arrivals().len(), 1);
    assert_eq!(Instant::now(), start, "gave up without waiting");
}

#[tokio::test(start_paused = true)]
async fn attempts_are_capped_and_other_errors_are_final() {
    let script = scripted((0..10).map(|_| status(503, None)).collect());
    assert!(
        retry(&script, RetrySettings::default())
            .oneshot(call(fetch(), 60_000))
            .await
            .is_err()
    );
    assert_eq!(script.arrivals().len(), 4);
    for final_error in [
        status(400, None),
        status(404, None),
        Err(CallError::Upstream(UpstreamError::Timeout)),
        Err(CallError::Limited(Rejection {
            message: "local".into(),
            retry_after: Duration::from_millis(10),
        })),
    ] {
        let script = scripted(vec![final_error, Ok(Reply::Empty)]);
        assert!(
            retry(&script, RetrySettings::default())
                .oneshot(call(fetch(), 60_000))
                .await
                .is_err()
        );
        assert_eq!(script.arrivals().len(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn the_budget_bounds_retries_during_an_outage() {
    let settings = RetrySettings {
        budget_percent: 20.0,
        budget_min_per_second: 0,
        max_attempts: 10,
        ..Default::default()
    };
    let layer = RetryLayer::new(settings);
    // Pinecone is down: every attempt fails.
    let script = scripted((0..10_000).map(|_| status(503, None)).collect());
    let svc = layer.layer(script.clone());
    for _ in 0..100 {
        let _ = svc.clone().oneshot(call(fetch(), 60_000)).await;
    }
    let attempts = script.arrivals().len();
    // 100 calls, and retries at most ~20% of them, not 9 retries each.
    assert!(attempts <= 125, "{attempts} attempts for 100 calls");
    assert!(attempts > 100, "some retries were allowed");
}
