//! The fake upstream every stack test drives, so that no layer's tests carry a service of their own.
//!
//! It records each request as it arrives (the instant and the call), answers with what the test says (a scripted
//! queue first, then its default answer: `Reply::Empty` unless given another), after an optional latency, and can
//! hold every answer until the test releases it. Use it under tokio's paused clock.

use crate::call::{Op, Reply, UpstreamCall, UpstreamError};
use crate::stack::{CallError, CallFuture};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

type Answer = Box<dyn Fn(&UpstreamCall) -> Result<Reply, CallError> + Send + Sync>;

/// A controllable inner service. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Fake(Arc<State>);

struct State {
    arrivals: Mutex<Vec<(Instant, UpstreamCall)>>,
    script: Mutex<VecDeque<Result<Reply, CallError>>>,
    answer: Answer,
    latency: Duration,
    /// Set: each answer waits for a permit the test adds with [`Fake::release`].
    gate: Option<Semaphore>,
}

/// How a [`Fake`] answers; `build` makes it.
pub struct FakeBuilder {
    answer: Answer,
    latency: Duration,
    held: bool,
}

impl FakeBuilder {
    /// The default answer, computed from the call.
    pub fn answer(
        mut self,
        f: impl Fn(&UpstreamCall) -> Result<Reply, CallError> + Send + Sync + 'static,
    ) -> Self {
        self.answer = Box::new(f);
        self
    }

    /// Time each answer takes (on the paused clock).
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Every answer waits until the test releases it.
    pub fn held(mut self) -> Self {
        self.held = true;
        self
    }

    pub fn build(self) -> Fake {
        Fake(Arc::new(State {
            arrivals: Mutex::default(),
            script: Mutex::default(),
            answer: self.answer,
            latency: self.latency,
            gate: self.held.then(|| Semaphore::new(0)),
        }))
    }
}

impl Default for Fake {
    fn default() -> Self {
        Fake::builder().build()
    }
}

impl Fake {
    pub fn builder() -> FakeBuilder {
        FakeBuilder {
            answer: Box::new(|_| Ok(Reply::Empty)),
            latency: Duration::ZERO,
            held: false,
        }
    }

    /// The next answers, in order, before the default one.
    pub fn script(&self, answers: impl IntoIterator<Item = Result<Reply, CallError>>) {
        self.0.script.lock().unwrap().extend(answers);
    }

    /// Lets `n` held answers go.
    pub fn release(&self, n: usize) {
        if let Some(gate) = &self.0.gate {
            gate.add_permits(n);
        }
    }

    /// Every request, with the instant it arrived.
    pub fn arrivals(&self) -> Vec<(Instant, UpstreamCall)> {
        self.0.arrivals.lock().unwrap().clone()
    }

    /// When each request arrived, in milliseconds since `start`.
    pub fn times_ms(&self, start: Instant) -> Vec<u128> {
        self.arrivals()
            .iter()
            .map(|(t, _)| (*t - start).as_millis())
            .collect()
    }

    /// The IDs each request carried.
    pub fn ids(&self) -> Vec<Vec<String>> {
        self.arrivals()
            .iter()
            .map(|(_, c)| c.op.ids().to_vec())
            .collect()
    }

    /// Each request as "fetch a,b", "delete a", "delete all", "upsert a" or the operation's name.
    pub fn labels(&self) -> Vec<String> {
        self.arrivals()
            .iter()
            .map(|(_, c)| match &c.op {
                Op::Delete(d) if d.delete_all => "delete all".to_string(),
                op @ (Op::Fetch { .. } | Op::Delete(_) | Op::Upsert(_)) => {
                    format!("{} {}", op.name(), op.ids().join(","))
                }
                other => other.name().to_string(),
            })
            .collect()
    }
}

impl crate::stack::Inner for Fake {
    fn send(&self, call: UpstreamCall) -> CallFuture {
        let state = self.0.clone();
        let scripted = state.script.lock().unwrap().pop_front();
        let answer = scripted.unwrap_or_else(|| (state.answer)(&call));
        state.arrivals.lock().unwrap().push((Instant::now(), call));
        Box::pin(async move {
            if !state.latency.is_zero() {
                tokio::time::sleep(state.latency).await;
            }
            if let Some(gate) = &state.gate {
                gate.acquire().await.unwrap().forget();
            }
            answer
        })
    }
}

/// Pinecone's answer with `status` (and `Retry-After`).
pub fn status(status: u16, retry_after: Option<Duration>) -> Result<Reply, CallError> {
    Err(CallError::Upstream(UpstreamError::Status {
        grpc_code: None,
        status,
        message: format!("status {status}"),
        retry_after,
    }))
}

/// A call of `op` to index `idx` whose caller waits `deadline`.
pub fn call(op: Op, deadline: Duration) -> UpstreamCall {
    UpstreamCall {
        index: "idx".into(),
        op,
        deadline: Instant::now() + deadline,
        ctx: Default::default(),
    }
}
