//! The one record of each call: its log line and its `calls_total` / `call_duration_seconds`, written once however
//! the call ends: with a status, or abandoned by its caller (tonic drops the handler when the caller cancels or its
//! deadline passes; the record then says CANCELLED, or DEADLINE_EXCEEDED when the deadline had passed).

use super::{GatewayError, route, status};
use crate::call::CallContext;
use crate::telemetry::metrics as m;
use std::time::Instant;

pub(crate) struct CallRecord {
    method: &'static str,
    /// As the caller named itself; empty until it is known.
    caller: String,
    pub index: String,
    namespace: String,
    started: Instant,
    pub ctx: std::sync::Arc<CallContext>,
    /// When the caller stops waiting, once known.
    pub deadline: Option<tokio::time::Instant>,
    /// Which front door the call came through: `grpc`, or `rest` (the REST front door marks its calls with
    /// [`RestCall`]).
    pub protocol: &'static str,
    /// The read and write units the call spent (write units estimated: `spend`), once it succeeded.
    pub units: super::spend::Units,
    done: bool,
}

/// The mark of a call that came through the REST front door (a request extension: callers cannot set it).
#[derive(Clone, Copy, Debug)]
pub struct RestCall;

impl CallRecord {
    pub fn new(method: &'static str, namespace: String, ctx: CallContext) -> Self {
        CallRecord {
            method,
            caller: String::new(),
            index: String::new(),
            namespace,
            started: Instant::now(),
            ctx: std::sync::Arc::new(ctx),
            deadline: None,
            protocol: "grpc",
            units: Default::default(),
            done: false,
        }
    }

    /// The caller as it named itself (empty before it is known, or when it did not).
    pub fn caller_name(&self) -> &str {
        &self.caller
    }

    /// Who makes the call: named in the log line, counted by label and priority, and carried to the limiter.
    pub fn set_caller(&mut self, who: &mut super::caller::Identified) {
        self.caller = std::mem::take(&mut who.name);
        // Before the call is sent, this record holds the only reference to its context.
        if let Some(ctx) = std::sync::Arc::get_mut(&mut self.ctx) {
            ctx.caller = who.caller.clone();
        }
    }

    fn write(&mut self, code: tonic::Code, message: &str) {
        self.done = true;
        let elapsed = self.started.elapsed();
        let method = self.method;
        let attempts = self.ctx.attempts.load(std::sync::atomic::Ordering::Relaxed);
        m::histogram(m::CALL_SECONDS, &[("method", method)]).record(elapsed.as_secs_f64());
        m::counter(
            m::CALLS,
            &[
                ("method", method),
                ("code", code_name(code)),
                ("protocol", self.protocol),
            ],
        )
        .increment(1);
        let caller = &self.ctx.caller;
        if self.units.read > 0 {
            metrics::counter!(m::READ_UNITS, "caller" => caller.label, "index" => self.index.clone(), "operation" => method)
                .increment(self.units.read);
        }
        if self.units.write > 0 {
            metrics::counter!(m::WRITE_UNITS, "caller" => caller.label, "index" => self.index.clone(), "operation" => method)
                .increment(self.units.write);
        }
        m::counter(
            m::CALLER_CALLS,
            &[
                ("caller", caller.label),
                ("priority", caller.priority.name()),
            ],
        )
        .increment(1);
        tracing::info!(
            method,
            protocol = self.protocol,
            caller = self.caller.as_str(),
            index = self.index.as_str(),
            namespace = self.namespace.as_str(),
            status = code_name(code),
            message = (!message.is_empty()).then_some(message),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            attempts,
            read_units = (self.units.read > 0).then_some(self.units.read),
            write_units = (self.units.write > 0).then_some(self.units.write),
            request_id = self.ctx.request_id.as_str(),
            pinecone_request_id = self.ctx.pinecone_request_ids.joined(),
            "call"
        );
        if let Some(scope) = &self.ctx.trace {
            self.end_span(scope, code, message, attempts);
        }
    }

    /// The call's span: every child has ended or ends on its own (a batch the call no longer waits for).
    fn end_span(
        &self,
        scope: &crate::telemetry::trace::SpanScope,
        code: tonic::Code,
        message: &str,
        attempts: u32,
    ) {
        use opentelemetry::KeyValue;
        let mut attributes = vec![
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.method", self.method),
            KeyValue::new("rpc.grpc.status_code", code as i64),
            KeyValue::new("gateway.attempts", i64::from(attempts)),
            KeyValue::new("gateway.request_id", self.ctx.request_id.clone()),
        ];
        if !self.index.is_empty() {
            attributes.push(KeyValue::new("pinecone.index", self.index.clone()));
        }
        if !self.namespace.is_empty() {
            attributes.push(KeyValue::new("pinecone.namespace", self.namespace.clone()));
        }
        if !self.caller.is_empty() {
            attributes.push(KeyValue::new("gateway.caller", self.caller.clone()));
        }
        if let Some(ids) = self.ctx.pinecone_request_ids.joined() {
            attributes.push(KeyValue::new("pinecone.request_id", ids));
        }
        if self.units.read > 0 {
            attributes.push(KeyValue::new("pinecone.read_units", self.units.read as i64));
        }
        if self.units.write > 0 {
            attributes.push(KeyValue::new(
                "pinecone.write_units",
                self.units.write as i64,
            ));
        }
        // OpenTelemetry's gRPC conventions: on a server span these codes are errors, the others the caller's doing.
        use tonic::Code::*;
        let status = match code {
            Ok => opentelemetry::trace::Status::Unset,
            Unknown | DeadlineExceeded | Unimplemented | Internal | Unavailable | DataLoss => {
                opentelemetry::trace::Status::error(message.to_string())
            }
            _ => opentelemetry::trace::Status::Unset,
        };
        scope.end(self.method, attributes, Vec::new(), status);
    }

    /// Ends the call: records it, turns an error into its Status, and returns the request id in the metadata.
    pub fn finish<T>(
        mut self,
        result: Result<T, GatewayError>,
    ) -> Result<tonic::Response<T>, tonic::Status> {
        let id = tonic::metadata::MetadataValue::try_from(self.ctx.request_id.as_str()).ok();
        match result {
            Ok(v) => {
                self.write(tonic::Code::Ok, "");
                let mut resp = tonic::Response::new(v);
                if let Some(id) = id {
                    resp.metadata_mut().insert(route::REQUEST_ID_METADATA, id);
                }
                self.lsn_metadata(resp.metadata_mut());
                Ok(resp)
            }
            Err(e) => {
                let mut status = status::to_status(e);
                self.write(status.code(), status.message());
                if let Some(id) = id {
                    status.metadata_mut().insert(route::REQUEST_ID_METADATA, id);
                }
                // A split write that failed in part: the LSN of what was applied.
                self.lsn_metadata(status.metadata_mut());
                Err(status)
            }
        }
    }

    /// The LSNs Pinecone answered with, and a waiting read's verdict (see `consistency`).
    fn lsn_metadata(&self, md: &mut tonic::metadata::MetadataMap) {
        use super::consistency as c;
        let lsns = &self.ctx.lsns;
        let number = |n: u64| tonic::metadata::MetadataValue::from(n);
        if let Some(n) = lsns.request() {
            md.insert(c::REQUEST_LSN, number(n));
            md.insert(c::LSN_COMMITTED, number(n));
        }
        if let Some(n) = lsns.indexed() {
            md.insert(c::MAX_INDEXED_LSN, number(n));
            md.insert(c::LSN_RECONCILED, number(n));
        }
        if let Some(ids) = self.ctx.pinecone_request_ids.joined()
            && let Ok(v) = tonic::metadata::MetadataValue::try_from(ids)
        {
            md.insert(c::PINECONE_REQUEST_ID, v);
        }
        if let Some(v) = lsns.verdict() {
            let stale = match v {
                crate::call::Freshness::Fresh => "false",
                crate::call::Freshness::Stale => "true",
                crate::call::Freshness::Unknown => "unknown",
            };
            md.insert(c::STALE, tonic::metadata::MetadataValue::from_static(stale));
        }
    }

    /// Ends a streaming call whose response was already sent: OK, or the status its stream ended with.
    pub fn finish_stream(mut self, result: Result<(), &tonic::Status>) {
        match result {
            Ok(()) => self.write(tonic::Code::Ok, ""),
            Err(s) => self.write(s.code(), s.message()),
        }
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let late = self
            .deadline
            .is_some_and(|d| tokio::time::Instant::now() >= d);
        if late {
            self.write(
                tonic::Code::DeadlineExceeded,
                "the caller's deadline passed before the call ended",
            );
        } else {
            self.write(
                tonic::Code::Cancelled,
                "the caller went away before the call ended",
            );
        }
    }
}

/// The code as docs/api.md and the metrics name it (`OK`, `NotFound`, …).
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Cancelled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}
