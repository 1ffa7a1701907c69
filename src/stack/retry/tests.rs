//! Retries under tokio's paused clock, with an inner service that answers from a script.

use super::*;
use crate::pb::pinecone as w;
use crate::stack::limit::Rejection;
use crate::wire::control as c;
use std::collections::VecDeque;
use std::sync::Mutex;

#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<VecDeque<Result<Reply, CallError>>>>,
    attempts: Arc<Mutex<Vec<Instant>>>,
}

impl Script {
    fn new(answers: Vec<Result<Reply, CallError>>) -> Script {
        Script {
            answers: Arc::new(Mutex::new(answers.into())),
            attempts: Arc::default(),
        }
    }

    fn attempts_ms(&self, start: Instant) -> Vec<u128> {
        self.attempts
            .lock()
            .unwrap()
            .iter()
            .map(|t| (*t - start).as_millis())
            .collect()
    }
}

impl Service<UpstreamCall> for Script {
    type Response = Reply;
    type Error = CallError;
    type Future = CallFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: UpstreamCall) -> Self::Future {
        self.attempts.lock().unwrap().push(Instant::now());
        let next = self
            .answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok(Reply::Empty));
        Box::pin(async move { next })
    }
}

fn status(code: u16, retry_after: Option<Duration>) -> Result<Reply, CallError> {
    Err(CallError::Upstream(UpstreamError::Status {
        grpc_code: None,
        status: code,
        message: "x".into(),
        retry_after,
    }))
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

fn retry(script: &Script, settings: RetrySettings) -> Retry<Script> {
    RetryLayer::new(settings).layer(script.clone())
}

#[tokio::test(start_paused = true)]
async fn idempotent_calls_are_retried_with_capped_jittered_backoff() {
    let script = Script::new(vec![status(503, None), status(500, None), Ok(Reply::Empty)]);
    let start = Instant::now();
    retry(&script, RetrySettings::default())
        .oneshot(call(fetch(), 10_000))
        .await
        .unwrap();
    let t = script.attempts_ms(start);
    assert_eq!(t.len(), 3);
    // Full jitter: each wait is at most base × 2^attempt (50 ms, then 100 ms).
    assert!(t[1] <= 50, "{t:?}");
    assert!(t[2] - t[1] <= 100, "{t:?}");
}

#[tokio::test(start_paused = true)]
async fn calls_that_may_have_been_applied_are_not_retried() {
    for op in [create_backup(), delete_by_filter()] {
        let script = Script::new(vec![status(503, None), Ok(Reply::Empty)]);
        let e = retry(&script, RetrySettings::default())
            .oneshot(call(op.clone(), 10_000))
            .await;
        assert!(e.is_err(), "{op:?}");
        assert_eq!(script.attempts.lock().unwrap().len(), 1, "{op:?}");
        let script = Script::new(vec![broken(), Ok(Reply::Empty)]);
        assert!(
            retry(&script, RetrySettings::default())
                .oneshot(call(op.clone(), 10_000))
                .await
                .is_err()
        );
        assert_eq!(script.attempts.lock().unwrap().len(), 1, "{op:?}");
    }
    // Opt in for filter deletes.
    let script = Script::new(vec![status(503, None), Ok(Reply::Empty)]);
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
    let script = Script::new(vec![connect(), Ok(Reply::Empty)]);
    retry(&script, RetrySettings::default())
        .oneshot(call(create_backup(), 10_000))
        .await
        .unwrap();
    assert_eq!(script.attempts.lock().unwrap().len(), 2);
    // A 429: Pinecone refused it; wait at least its Retry-After.
    let script = Script::new(vec![
        status(429, Some(Duration::from_millis(700))),
        Ok(Reply::Empty),
    ]);
    let start = Instant::now();
    retry(&script, RetrySettings::default())
        .oneshot(call(create_backup(), 10_000))
        .await
        .unwrap();
    let t = script.attempts_ms(start);
    assert!(t[1] >= 700, "{t:?}");
}

#[tokio::test(start_paused = true)]
async fn retries_stay_inside_the_deadline() {
    let script = Script::new(vec![
        status(429, Some(Duration::from_secs(2))),
        Ok(Reply::Empty),
    ]);
    let start = Instant::now();
    let e = retry(&script, RetrySettings::default())
        .oneshot(call(fetch(), 1_000))
        .await;
    assert!(e.is_err());
    assert_eq!(script.attempts.lock().unwrap().len(), 1);
    assert_eq!(Instant::now(), start, "gave up without waiting");
}

#[tokio::test(start_paused = true)]
async fn attempts_are_capped_and_other_errors_are_final() {
    let script = Script::new((0..10).map(|_| status(503, None)).collect());
    assert!(
        retry(&script, RetrySettings::default())
            .oneshot(call(fetch(), 60_000))
            .await
            .is_err()
    );
    assert_eq!(script.attempts.lock().unwrap().len(), 4);
    for final_error in [
        status(400, None),
        status(404, None),
        Err(CallError::Upstream(UpstreamError::Timeout)),
        Err(CallError::Limited(Rejection {
            message: "local".into(),
            retry_after: Duration::from_millis(10),
        })),
    ] {
        let script = Script::new(vec![final_error, Ok(Reply::Empty)]);
        assert!(
            retry(&script, RetrySettings::default())
                .oneshot(call(fetch(), 60_000))
                .await
                .is_err()
        );
        assert_eq!(script.attempts.lock().unwrap().len(), 1);
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
    let script = Script::new((0..10_000).map(|_| status(503, None)).collect());
    let svc = layer.layer(script.clone());
    for _ in 0..100 {
        let _ = svc.clone().oneshot(call(fetch(), 60_000)).await;
    }
    let attempts = script.attempts.lock().unwrap().len();
    // 100 calls, and retries at most ~20% of them, not 9 retries each.
    assert!(attempts <= 125, "{attempts} attempts for 100 calls");
    assert!(attempts > 100, "some retries were allowed");
}
