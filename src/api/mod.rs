//! The gRPC surface: `VectorService` (Pinecone-compatible), `pinecone_gateway.v1.BackupService` and
//! `pinecone_gateway.v1.ListService`.
//!
//! Each handler validates its request ([`validate`]; nothing invalid goes further), resolves the index ([`route`]),
//! turns the request into one [`UpstreamCall`] bounded by the caller's deadline, sends it down the tower stack, and
//! maps the typed answer back ([`convert`]). Every error becomes a gRPC `Status` in exactly one place:
//! [`status::to_status`].

pub mod auth;
pub mod backup;
pub mod caller;
pub mod codec;
pub mod consistency;
pub mod convert;
mod list;
pub mod record;
pub mod route;
pub mod size;
pub mod spend;
pub mod status;
pub mod validate;
pub mod vector;

pub use backup::BackupApi;
pub use list::ListApi;
pub use vector::VectorApi;

use crate::call::Freshness;
use crate::call::{Op, Reply, UpstreamCall};
use crate::stack::CallError;
pub use crate::stack::UpstreamService;
use crate::telemetry::metrics as m;
use record::CallRecord;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Everything that can end a call with an error.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Invalid(#[from] validate::Invalid),
    #[error(transparent)]
    Call(#[from] CallError),
    /// No token, or an unknown one (caller authentication is on).
    #[error("{0}")]
    Unauthenticated(String),
    /// The token may not use this index.
    #[error("{0}")]
    PermissionDenied(String),
    /// The gateway is shutting down.
    #[error("the gateway is shutting down; call another replica")]
    Draining,
    /// Every place for calls in progress is taken (`server.max_concurrent_calls`).
    #[error("the gateway is serving its maximum of {0} concurrent calls")]
    Overloaded(usize),
    /// The caller is over its own quota (`[callers.NAME]`); nothing was sent.
    #[error("{message}")]
    Quota {
        message: String,
        retry_after: Duration,
    },
    /// Calls of this priority hold their share of `server.max_concurrent_calls` already.
    #[error(
        "the gateway is serving its maximum of {max} concurrent calls for {priority} calls ({share_percent}%)"
    )]
    OverloadedFor {
        priority: &'static str,
        share_percent: usize,
        max: usize,
    },
    /// Pinecone answered with a shape that does not fit the operation.
    #[error("unexpected answer from Pinecone for {0}")]
    UnexpectedReply(&'static str),
    /// A read that required an LSN (`x-consistency-required: true`) did not see it applied in time.
    #[error(
        "namespace `{namespace}` had applied LSN {seen} when the wait ran out, not the {wanted} this read requires \
         ({waited_ms} ms waited, {reads} reads; consistency.max_wait_ms or the call's deadline)"
    )]
    NotFresh {
        namespace: String,
        wanted: u64,
        seen: u64,
        waited_ms: u128,
        reads: u32,
    },
}

/// Shared by every service.
#[derive(Clone)]
pub struct Gateway {
    upstream: UpstreamService,
    default_index: Option<String>,
    default_timeout: Duration,
    /// Calls in progress; a call that finds none free is shed at once.
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    /// Set when the gateway drains: new calls are refused.
    draining: Arc<std::sync::atomic::AtomicBool>,
    /// Woken each time a call in progress ends (the drain waits on it).
    call_ended: Arc<Notify>,
    auth: Arc<auth::Auth>,
    callers: caller::Callers,
    /// With `[tracing]` on: starts each call's span.
    tracer: Option<crate::telemetry::trace::Tracer>,
    /// Callers' write LSNs, for read-your-writes.
    writes: Arc<consistency::Writes>,
    /// Each backup's source index, once a limited token's call needed it (a backup's source never changes).
    backup_sources: Arc<std::sync::Mutex<lru::LruCache<String, String>>>,
    /// Read and write units per caller, index and operation (`/spend`).
    spend: Arc<spend::Ledger>,
}

/// Backups whose source index is remembered at most.
const BACKUP_SOURCES: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(10_000) {
    Some(n) => n,
    None => std::num::NonZeroUsize::MIN,
};

/// A call's place among the calls in progress; it frees the place, and says so, however the call ends.
pub(crate) struct Place {
    _permit: OwnedSemaphorePermit,
    call_ended: Arc<Notify>,
}

impl Drop for Place {
    fn drop(&mut self) {
        m::gauge(m::IN_FLIGHT, &[]).decrement(1.0);
        self.call_ended.notify_waiters();
    }
}

impl Gateway {
    pub fn new(
        upstream: UpstreamService,
        default_index: Option<String>,
        default_timeout: Duration,
        max_in_flight: usize,
    ) -> Self {
        Gateway {
            upstream,
            default_index,
            default_timeout,
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            draining: Arc::default(),
            call_ended: Arc::default(),
            auth: Arc::default(),
            callers: caller::Callers::default(),
            tracer: None,
            writes: Arc::new(consistency::Writes::new(Default::default(), None)),
            backup_sources: Arc::new(std::sync::Mutex::new(lru::LruCache::new(BACKUP_SOURCES))),
            spend: Arc::default(),
        }
    }

    /// Refuses a call whose caller has spent a budget the call would draw on (nothing goes upstream).
    async fn check_budget(&self, who: &caller::Identified, op: &Op) -> Result<(), GatewayError> {
        let Some(budget) = who.budget() else {
            return Ok(());
        };
        let now = std::time::SystemTime::now();
        let spent = self
            .spend
            .spent_by(who.caller.label, spend::Period::at(now))
            .await;
        budget.check(
            who.caller.label,
            spent,
            op.is_namespace_read(),
            spend::write_units(op),
            now,
        )
    }

    /// Charges an answered call's units to its caller, and updates the share of its budget spent.
    async fn charge(
        &self,
        who: &caller::Identified,
        index: &str,
        method: &'static str,
        units: spend::Units,
    ) {
        let now = spend::Period::now();
        self.spend
            .charge(who.caller.label, index, method, units, now);
        if let Some(budget) = who.budget() {
            budget.publish(
                who.caller.label,
                self.spend.spent_by(who.caller.label, now).await,
            );
        }
    }

    /// The `/spend` report: units per caller, index and operation today and this month, and each budget's state.
    pub async fn spend_report(&self) -> serde_json::Value {
        self.spend
            .report(spend::Period::now(), &self.callers.labels())
            .await
    }

    /// Adds this replica's spend to the shared spend (redis mode) and reads back what budgeted callers spent;
    /// sets each budget's share spent.
    pub async fn sync_spend(&self) {
        self.spend.sync(&self.callers.budgets()).await;
    }

    /// Keeps spend synced every `every` until `stop` turns true (a drain syncs last itself, and waits for it).
    pub async fn keep_spend_synced(
        self,
        every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !*stop.borrow() {
            tokio::select! {
                _ = tick.tick() => self.sync_spend().await,
                changed = stop.changed() => if changed.is_err() { break },
            }
        }
    }

    /// Reads that wait for LSNs (`[consistency]`); callers' write LSNs shared through `redis` in redis mode.
    pub fn with_consistency(
        mut self,
        settings: consistency::ConsistencySettings,
        redis: Option<Arc<crate::stack::limit::shared::RedisLimits>>,
    ) -> Self {
        self.spend = Arc::new(spend::Ledger::new(redis.clone()));
        self.writes = Arc::new(consistency::Writes::new(settings, redis));
        self
    }

    /// Traces calls (`[tracing]`).
    pub fn with_tracer(mut self, tracer: Option<crate::telemetry::trace::Tracer>) -> Self {
        self.tracer = tracer;
        self
    }

    /// The request id, trace context and span of a call named `method`.
    pub(crate) fn context(
        &self,
        md: &tonic::metadata::MetadataMap,
        method: &'static str,
    ) -> crate::call::CallContext {
        route::context(md, self.tracer.as_ref(), method)
    }

    /// Gives configured callers their priorities, weights and quotas.
    pub fn with_callers(mut self, callers: caller::Callers) -> Self {
        self.callers = callers;
        self
    }

    /// Requires caller tokens (none configured: off).
    pub fn with_auth(mut self, auth: auth::Auth) -> Self {
        self.auth = Arc::new(auth);
        self
    }

    /// Refuse new calls from now on (calls in progress go on).
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Calls in progress now (ListService walks included).
    pub fn calls_in_progress(&self) -> usize {
        self.max_in_flight - self.in_flight.available_permits()
    }

    /// Waits until no call is in progress.
    pub async fn idle(&self) {
        loop {
            let ended = self.call_ended.notified();
            if self.calls_in_progress() == 0 {
                return;
            }
            ended.await;
        }
    }

    /// A place among the calls in progress, or the overload error (load shedding: fail fast, never queue here).
    pub(crate) fn admit(&self) -> Result<Place, GatewayError> {
        if self.draining.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(GatewayError::Draining);
        }
        let permit = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| GatewayError::Overloaded(self.max_in_flight))?;
        m::gauge(m::IN_FLIGHT, &[]).increment(1.0);
        Ok(Place {
            _permit: permit,
            call_ended: self.call_ended.clone(),
        })
    }

    /// With callers configured, lower priorities may not fill the gateway: batch calls may hold at most 80% of
    /// `server.max_concurrent_calls`, default calls 90%, so that a flood of them never sheds interactive calls.
    pub(crate) fn shed_for(&self, caller: &crate::call::Caller) -> Result<(), GatewayError> {
        use crate::call::Priority;
        let share_percent = match caller.priority {
            _ if !self.callers.configured() => return Ok(()),
            Priority::Interactive => return Ok(()),
            Priority::Default => 90,
            Priority::Batch => 80,
        };
        if self.calls_in_progress() * 100 > self.max_in_flight * share_percent {
            return Err(GatewayError::OverloadedFor {
                priority: caller.priority.name(),
                share_percent,
                max: self.max_in_flight,
            });
        }
        Ok(())
    }

    /// The path every RPC takes: validate and build the operation, route, call, convert, log, map errors.
    pub(crate) async fn handle<Req, Resp>(
        &self,
        method: &'static str,
        req: tonic::Request<Req>,
        namespace: impl FnOnce(&Req) -> String,
        build: impl FnOnce(Req) -> validate::Checked<(Target, Op)>,
        convert: impl FnOnce(Reply) -> Result<Resp, GatewayError>,
    ) -> Result<tonic::Response<Resp>, tonic::Status> {
        let ns = namespace(req.get_ref());
        let (md, extensions, message) = req.into_parts();
        // Dropped with this future if the caller goes away: the record then says so.
        let mut record = CallRecord::new(method, ns, self.context(&md, method));
        if extensions.get::<record::RestCall>().is_some() {
            record.protocol = "rest";
        }
        let deadline = self.deadline(&md);
        record.deadline = Some(deadline);
        let result = async {
            let _place = self.admit()?;
            let token = self.auth.authenticate(&md)?;
            let mut who = self.callers.identify(token.map(|t| t.name.as_str()), &md)?;
            record.set_caller(&mut who);
            self.shed_for(&who.caller)?;
            let (target, op) = build(message)?;
            who.take_quota(crate::stack::limit::rates::OpClass::of(&op))
                .await?;
            self.check_budget(&who, &op).await?;
            let by_answer = matches!(target, Target::ByAnswer);
            let limited = token.is_some_and(|t| t.indexes.is_some());
            record.index = match target {
                Target::FromMetadata => route::index(&md, self.default_index.as_deref())?,
                Target::Index(name) => name,
                Target::Project | Target::ByAnswer => String::new(),
                Target::Backup(id) if limited => {
                    self.backup_source(&id, deadline, &record.ctx).await?
                }
                Target::Backup(_) => String::new(),
                Target::Restore { backup_id, index } => {
                    if limited {
                        let source = self
                            .backup_source(&backup_id, deadline, &record.ctx)
                            .await?;
                        auth::Auth::authorize(token, &source)?;
                    }
                    index
                }
            };
            // Limited tokens: a call authorised by its answer is checked once the answer says which index it is of.
            if !(by_answer && limited) {
                auth::Auth::authorize(token, &record.index)?;
            }
            // Only reads that ask for a floor and record writes pay for read your writes.
            let wanted = match (op.is_namespace_read(), consistency::asked(&md)?) {
                (true, Some(asked)) => {
                    let ns = op.namespace().unwrap_or_default();
                    let caller = record.caller_name();
                    self.writes.resolve(asked, caller, &record.index, ns).await
                }
                _ => None,
            };
            let written_ns = op
                .is_record_write()
                .then(|| op.namespace().unwrap_or_default().to_string());
            let write_units = spend::write_units(&op);
            let call = UpstreamCall {
                index: record.index.clone(),
                op,
                deadline,
                ctx: record.ctx.clone(),
            };
            let reply = match wanted {
                Some(w) => self.call_fresh(call, w).await?,
                None => self.call(call).await?,
            };
            if let (Some(ns), Some(lsn)) = (written_ns, record.ctx.lsns.request()) {
                let caller = record.caller_name();
                self.writes.remember(caller, &record.index, &ns, lsn).await;
            }
            record.units = spend::Units {
                read: reply.read_units().unwrap_or(0),
                write: write_units.unwrap_or(0),
            };
            self.charge(&who, &record.index, method, record.units).await;
            if by_answer && let Some(index) = index_of(&reply) {
                if limited {
                    auth::Auth::authorize(token, index)?;
                }
                record.index = index.to_string();
            }
            convert(reply)
        }
        .await;
        record.finish(result)
    }

    /// The index a backup was taken of, for authorising a limited token's call on the backup: remembered, else
    /// described (one DescribeBackup through the stack, so under the control-plane limit).
    async fn backup_source(
        &self,
        backup_id: &str,
        deadline: tokio::time::Instant,
        ctx: &Arc<crate::call::CallContext>,
    ) -> Result<String, GatewayError> {
        let known = self
            .backup_sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(backup_id)
            .cloned();
        if let Some(index) = known {
            return Ok(index);
        }
        let reply = self
            .call(UpstreamCall {
                index: String::new(),
                op: Op::DescribeBackup(backup_id.to_string()),
                deadline,
                ctx: ctx.clone(),
            })
            .await?;
        let index = expect_reply!(reply, Backup, "describe_backup")?.source_index_name;
        self.backup_sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(backup_id.to_string(), index.clone());
        Ok(index)
    }

    /// When the caller stops waiting.
    pub(crate) fn deadline(&self, md: &tonic::metadata::MetadataMap) -> tokio::time::Instant {
        tokio::time::Instant::now() + route::timeout(md, self.default_timeout)
    }

    /// Sends one call down the stack.
    async fn call(&self, call: UpstreamCall) -> Result<Reply, GatewayError> {
        Ok(self.upstream.send(call).await?)
    }

    /// Sends a read until its namespace has applied `want.lsn`, or the wait runs out (see `consistency`).
    async fn call_fresh(
        &self,
        call: UpstreamCall,
        want: consistency::Wanted,
    ) -> Result<Reply, GatewayError> {
        let settings = self.writes.settings();
        let started = tokio::time::Instant::now();
        let give_up = call.deadline.min(started + settings.max_wait);
        let lsns = &call.ctx.lsns;
        let mut repeats = 0;
        let mut last: Option<(Reply, u64)> = None;
        let (reply, seen) = loop {
            lsns.forget_indexed();
            let sent = tokio::time::Instant::now();
            let attempt = self.call(call.clone());
            let reply = match last.take() {
                // A repeated read failed (its turn would come too late, Pinecone failed) or is not back when the
                // caller stops waiting (it took longer than twice the one before: a busy host): the last answer
                // stands, in time.
                Some((previous, seen)) => match tokio::time::timeout_at(give_up, attempt).await {
                    Ok(Ok(reply)) => reply,
                    Ok(Err(_)) | Err(_) => {
                        lsns.note(None, Some(seen));
                        break (previous, seen);
                    }
                },
                None => attempt.await?,
            };
            let verdict = match lsns.indexed() {
                None => Freshness::Unknown,
                Some(seen) if seen >= want.lsn => Freshness::Fresh,
                Some(seen) => {
                    // Another read must have time to come back before the caller stops waiting.
                    let read_takes = sent.elapsed() * 2;
                    let pause = consistency::backoff(settings, repeats);
                    if tokio::time::Instant::now() + pause + read_takes >= give_up {
                        break (reply, seen);
                    }
                    last = Some((reply, seen));
                    repeats += 1;
                    tokio::time::sleep(pause).await;
                    continue;
                }
            };
            consistency::record(Some(verdict), repeats, started.elapsed());
            lsns.set_verdict(verdict);
            return Ok(reply);
        };
        // The wait ran out below the floor.
        if want.required {
            consistency::record(None, repeats, started.elapsed());
            return Err(GatewayError::NotFresh {
                namespace: call.op.namespace().unwrap_or_default().to_string(),
                wanted: want.lsn,
                seen,
                waited_ms: started.elapsed().as_millis(),
                reads: repeats + 1,
            });
        }
        consistency::record(Some(Freshness::Stale), repeats, started.elapsed());
        lsns.set_verdict(Freshness::Stale);
        Ok(reply)
    }
}

/// Where a call goes.
pub(crate) enum Target {
    /// The index named by the call's metadata (or the default index).
    FromMetadata,
    /// An index named in the request itself (backups of an index).
    Index(String),
    /// No index: project-wide control-plane calls.
    Project,
    /// A backup (project-wide in Pinecone's API): a token limited to some indexes may use it when it is a backup of
    /// one of them (its source index, described first and remembered).
    Backup(String),
    /// A backup restored into a new index: a limited token must have both the backup's source index and the new one.
    Restore { backup_id: String, index: String },
    /// Authorised by the answer (a backup's source index, a restore job's target index): a limited token's call goes
    /// to Pinecone, and its answer is withheld (PERMISSION_DENIED) unless it is of one of the token's indexes.
    ByAnswer,
}

/// The index an answer is of, for calls authorised by their answer.
fn index_of(reply: &Reply) -> Option<&str> {
    match reply {
        Reply::Backup(b) => Some(&b.source_index_name),
        Reply::RestoreJob(j) => Some(&j.target_index_name),
        _ => None,
    }
}

fn expect_empty(reply: Reply, op: &'static str) -> Result<(), GatewayError> {
    match reply {
        Reply::Empty => Ok(()),
        _ => Err(GatewayError::UnexpectedReply(op)),
    }
}

/// Takes the reply variant an operation expects, or fails with INTERNAL.
macro_rules! expect_reply {
    ($reply:expr, $variant:ident, $op:expr) => {
        match $reply {
            $crate::call::Reply::$variant(r) => Ok(r),
            _ => Err($crate::api::GatewayError::UnexpectedReply($op)),
        }
    };
}
pub(crate) use expect_reply;
