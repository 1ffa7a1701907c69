//! OpenTelemetry traces, exported over OTLP/gRPC when `[tracing] otlp_endpoint` is set (off by default).
//!
//! Each sampled call is a span (kind SERVER) whose parent is the caller's `traceparent`/`tracestate`; its children
//! are the waits and requests the call took: the ordering wait, the limiter wait (with the limit keys and class),
//! the Redis decision in redis mode, the coalesced batch a fetch or delete joined (a span of its own, linked from
//! the span of every caller that joined it), and each upstream attempt (kind CLIENT; the upstream request's
//! `traceparent` names it). Sampling is the SDK's parent-based sampler with `sample_ratio` for calls that come
//! without a sampled or unsampled parent; it is decided once, when the call starts, and an unsampled call records
//! nothing at all.
//!
//! Spans are not built through `tracing` spans: each part of the stack already takes its start and end instants
//! for its metrics, so a span here is a plain value ([`OpenSpan`]) made at the start and turned into the SDK's
//! `SpanData` at the end, with no subscriber machinery on the path of a call. Finished spans go into a bounded
//! queue (`queue_spans`) that one task drains into the OTLP exporter in batches (`export_batch_spans`, at least
//! every `export_interval_ms`, each export bounded by `export_timeout_ms`). Exporting never holds up a call: when
//! the queue is full (the collector is down or slow) a span is dropped and counted in
//! `pinecone_gateway_trace_spans_dropped_total{reason="queue_full"}`; a batch the collector refuses or does not
//! take in time is counted with `reason="export_failed"`.

use crate::telemetry::metrics as m;
use opentelemetry::trace::{
    Link, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{
    Sampler, SamplingDecision, ShouldSample, SpanData, SpanExporter as _, SpanLinks,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

/// The validated `[tracing]` section.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceSettings {
    /// The collector's OTLP/gRPC endpoint, e.g. `http://127.0.0.1:4317`.
    pub otlp_endpoint: String,
    pub service_name: String,
    /// The share of calls without a parent decision that are sampled, 0 to 1.
    pub sample_ratio: f64,
    /// Extra resource attributes (`deployment.environment`, `k8s.pod.name`, …).
    pub resource_attributes: BTreeMap<String, String>,
    /// Finished spans waiting for export; more are dropped and counted.
    pub queue_spans: usize,
    /// Spans per export request.
    pub export_batch_spans: usize,
    /// The longest a finished span waits before it is exported.
    pub export_interval: Duration,
    /// The longest one export may take.
    pub export_timeout: Duration,
    /// With an `https://` endpoint: a CA (PEM) trusted besides the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    pub ca_file: Option<std::path::PathBuf>,
    /// gRPC metadata sent with every export (a vendor's API key: secrets, never printed).
    pub headers: Secrets,
}

/// Header values that are secrets: compared, never shown.
#[derive(Clone, Default, PartialEq)]
pub struct Secrets(pub BTreeMap<String, String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "*** (masked)")))
            .finish()
    }
}

impl TraceSettings {
    pub const DEFAULT_SERVICE_NAME: &'static str = "pinecone-gateway";
    pub const DEFAULT_QUEUE_SPANS: usize = 8192;
    pub const DEFAULT_EXPORT_BATCH_SPANS: usize = 512;
    pub const DEFAULT_EXPORT_INTERVAL: Duration = Duration::from_secs(1);
    pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP exporter for {endpoint}: {detail}")]
pub struct TraceError {
    endpoint: String,
    detail: String,
}

/// Starts spans and queues finished ones for export. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Tracer(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    sampler: Sampler,
    queue: mpsc::Sender<SpanData>,
    scope: InstrumentationScope,
}

/// The export task; [`Exporting::flush`] exports what is queued and ends it (at shutdown).
pub struct Exporting {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Exporting {
    /// Exports the spans queued so far and stops, waiting at most `timeout`; spans ended later are dropped.
    pub async fn flush(self, timeout: Duration) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(timeout, self.task).await;
    }
}

impl Tracer {
    /// Builds the exporter and starts its task; needs a Tokio runtime. The collector need not be up.
    pub fn start(settings: &TraceSettings) -> Result<(Tracer, Exporting), TraceError> {
        use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
        let fail = |detail: String| TraceError {
            endpoint: settings.otlp_endpoint.clone(),
            detail,
        };
        let mut metadata = tonic::metadata::MetadataMap::new();
        for (k, v) in &settings.headers.0 {
            let key = tonic::metadata::MetadataKey::from_bytes(k.as_bytes())
                .map_err(|_| fail(format!("`{k}` is not a gRPC metadata key")))?;
            let value = tonic::metadata::MetadataValue::try_from(v.as_str())
                .map_err(|_| fail(format!("the value of `{k}` is not a metadata value")))?;
            metadata.insert(key, value);
        }
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(settings.otlp_endpoint.clone())
            .with_timeout(settings.export_timeout)
            .with_metadata(metadata);
        if settings.otlp_endpoint.starts_with("https://") {
            let mut tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
            if let Some(pem) = &settings.ca_pem {
                tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
            }
            builder = builder.with_tls_config(tls);
        }
        let mut exporter = builder.build().map_err(|e| fail(e.to_string()))?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(settings.service_name.clone())
            .with_attributes(
                settings
                    .resource_attributes
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            )
            .build();
        exporter.set_resource(&resource);
        // The series exist from the start (at 0), so that a rate over them is defined before the first drop.
        m::counter(m::TRACE_SPANS_EXPORTED, &[]).increment(0);
        for reason in ["queue_full", "export_failed"] {
            m::counter(m::TRACE_SPANS_DROPPED, &[("reason", reason)]).increment(0);
        }
        let (queue, rx) = mpsc::channel(settings.queue_spans);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(export(
            rx,
            exporter,
            settings.export_batch_spans,
            settings.export_interval,
            settings.export_timeout,
            stopped,
        ));
        let tracer = Tracer(Arc::new(Inner {
            sampler: Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                settings.sample_ratio,
            ))),
            queue,
            scope: InstrumentationScope::builder("pinecone-gateway")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        }));
        Ok((tracer, Exporting { stop, task }))
    }

    /// The span of a call named `name`, if the call is sampled: a child of `parent` (the caller's span context,
    /// remote) when the caller sent one.
    pub fn start_call(&self, name: &'static str, parent: Option<SpanContext>) -> Option<SpanScope> {
        let parent = parent.filter(SpanContext::is_valid);
        let trace_id = match &parent {
            Some(p) => p.trace_id(),
            None => TraceId::from_bytes(rand::random::<u128>().to_be_bytes()),
        };
        let parent_cx = parent
            .clone()
            .map(|p| Context::new().with_remote_span_context(p));
        let decision = self.0.sampler.should_sample(
            parent_cx.as_ref(),
            trace_id,
            name,
            &SpanKind::Server,
            &[],
            &[],
        );
        if decision.decision != SamplingDecision::RecordAndSample {
            return None;
        }
        Some(SpanScope {
            tracer: self.clone(),
            trace_id,
            span_id: new_span_id(),
            trace_state: parent
                .as_ref()
                .map(|p| p.trace_state().clone())
                .unwrap_or_default(),
            parent: parent.as_ref().map(SpanContext::span_id),
            started: SystemTime::now(),
        })
    }

    fn emit(&self, span: SpanData) {
        if let Err(e) = self.0.queue.try_send(span) {
            let reason = match e {
                mpsc::error::TrySendError::Full(_) => "queue_full",
                mpsc::error::TrySendError::Closed(_) => "shut_down",
            };
            m::counter(m::TRACE_SPANS_DROPPED, &[("reason", reason)]).increment(1);
        }
    }
}

fn span_links(links: Vec<Link>) -> SpanLinks {
    let mut all = SpanLinks::default();
    all.links = links;
    all
}

fn new_span_id() -> SpanId {
    loop {
        let id = SpanId::from_bytes(rand::random::<u64>().to_be_bytes());
        if id != SpanId::INVALID {
            return id;
        }
    }
}

/// A sampled span that other spans hang off: a call's span, or the span of a coalesced batch. Its own span is
/// emitted by [`SpanScope::end`]; children by [`OpenSpan::end`].
#[derive(Clone, Debug)]
pub struct SpanScope {
    tracer: Tracer,
    trace_id: TraceId,
    span_id: SpanId,
    trace_state: TraceState,
    /// The parent's span id; remote (the caller's) for a call.
    parent: Option<SpanId>,
    started: SystemTime,
}

impl SpanScope {
    /// A child span starting now.
    pub fn child(&self, name: &'static str, kind: SpanKind) -> OpenSpan {
        OpenSpan {
            name,
            kind,
            span_id: new_span_id(),
            start: SystemTime::now(),
            attributes: Vec::new(),
            links: Vec::new(),
        }
    }

    /// A child span over an interval that has already passed (`elapsed` long, ending now).
    pub fn child_since(&self, name: &'static str, elapsed: Duration) -> OpenSpan {
        let mut span = self.child(name, SpanKind::Internal);
        span.start = span.start.checked_sub(elapsed).unwrap_or(span.start);
        span
    }

    /// A scope for `span`'s children: the coalesced batch's upstream attempts hang off the batch span.
    pub fn scope_of(&self, span: &OpenSpan) -> SpanScope {
        SpanScope {
            tracer: self.tracer.clone(),
            trace_id: self.trace_id,
            span_id: span.span_id,
            trace_state: self.trace_state.clone(),
            parent: Some(self.span_id),
            started: span.start,
        }
    }

    /// This span's context, for links and for propagation.
    pub fn context(&self) -> SpanContext {
        self.context_of(self.span_id)
    }

    fn context_of(&self, span_id: SpanId) -> SpanContext {
        SpanContext::new(
            self.trace_id,
            span_id,
            TraceFlags::SAMPLED,
            false,
            self.trace_state.clone(),
        )
    }

    /// The W3C `traceparent` naming `span` (a child of this scope) as the parent of what the request causes.
    pub fn traceparent(&self, span: &OpenSpan) -> String {
        format!("00-{}-{}-01", self.trace_id, span.span_id)
    }

    /// The W3C `tracestate` to pass on, if the caller sent one.
    pub fn tracestate(&self) -> Option<String> {
        let s = self.trace_state.header();
        (!s.is_empty()).then_some(s)
    }

    /// Emits this scope's own span: a call's (SERVER) or a batch's (INTERNAL, via [`OpenSpan::end`] instead).
    pub fn end(
        &self,
        name: &'static str,
        attributes: Vec<KeyValue>,
        links: Vec<Link>,
        status: Status,
    ) {
        self.tracer.emit(SpanData {
            span_context: self.context(),
            parent_span_id: self.parent.unwrap_or(SpanId::INVALID),
            parent_span_is_remote: self.parent.is_some(),
            span_kind: SpanKind::Server,
            name: name.into(),
            start_time: self.started,
            end_time: SystemTime::now(),
            attributes,
            dropped_attributes_count: 0,
            events: Default::default(),
            links: span_links(links),
            status,
            instrumentation_scope: self.tracer.0.scope.clone(),
        });
    }
}

/// A child span being timed: started, given attributes, then ended once.
#[derive(Debug)]
pub struct OpenSpan {
    name: &'static str,
    kind: SpanKind,
    span_id: SpanId,
    start: SystemTime,
    attributes: Vec<KeyValue>,
    links: Vec<Link>,
}

impl OpenSpan {
    pub fn attribute(&mut self, kv: KeyValue) {
        self.attributes.push(kv);
    }

    pub fn link(&mut self, to: SpanContext) {
        self.links.push(Link::new(to, Vec::new(), 0));
    }

    /// Ends the span now, as a child of `scope`.
    pub fn end(self, scope: &SpanScope, status: Status) {
        scope.tracer.emit(SpanData {
            span_context: scope.context_of(self.span_id),
            parent_span_id: scope.span_id,
            parent_span_is_remote: false,
            span_kind: self.kind,
            name: self.name.into(),
            start_time: self.start,
            end_time: SystemTime::now(),
            attributes: self.attributes,
            dropped_attributes_count: 0,
            events: Default::default(),
            links: span_links(self.links),
            status,
            instrumentation_scope: scope.tracer.0.scope.clone(),
        });
    }
}

/// Drains the queue into the exporter in batches; when told to stop (or when every [`Tracer`] is gone), exports
/// what is queued and ends.
async fn export(
    mut rx: mpsc::Receiver<SpanData>,
    exporter: opentelemetry_otlp::SpanExporter,
    batch_spans: usize,
    interval: Duration,
    timeout: Duration,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut batch = Vec::with_capacity(batch_spans);
    loop {
        // Wait for a first span, then gather until the batch is full or the interval has passed.
        let mut last = tokio::select! {
            n = rx.recv_many(&mut batch, batch_spans) => n == 0,
            _ = &mut stop => true,
        };
        let due = tokio::time::Instant::now() + interval;
        while !last && batch.len() < batch_spans {
            let room = batch_spans - batch.len();
            tokio::select! {
                r = tokio::time::timeout_at(due, rx.recv_many(&mut batch, room)) => match r {
                    Ok(0) => last = true,
                    Ok(_) => {}
                    Err(_) => break,
                },
                _ = &mut stop => last = true,
            }
        }
        if last {
            while let Ok(span) = rx.try_recv() {
                batch.push(span);
            }
        }
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(batch_spans));
            let n = batch.len() as u64;
            let sent = tokio::time::timeout(
                timeout,
                exporter.export(std::mem::replace(&mut batch, rest)),
            )
            .await;
            match sent {
                Ok(Ok(())) => m::counter(m::TRACE_SPANS_EXPORTED, &[]).increment(n),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, spans = n, "trace export failed");
                    m::counter(m::TRACE_SPANS_DROPPED, &[("reason", "export_failed")]).increment(n);
                }
                Err(_) => {
                    tracing::debug!(spans = n, "trace export timed out");
                    m::counter(m::TRACE_SPANS_DROPPED, &[("reason", "export_failed")]).increment(n);
                }
            }
        }
        if last {
            return;
        }
    }
}

/// The caller's span context from its `traceparent` and `tracestate`, through the SDK's W3C propagator.
pub fn parent_from(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<SpanContext> {
    use opentelemetry::propagation::TextMapPropagator;
    let traceparent = traceparent?;
    let mut carrier = std::collections::HashMap::with_capacity(2);
    carrier.insert("traceparent".to_string(), traceparent.to_string());
    if let Some(ts) = tracestate {
        carrier.insert("tracestate".to_string(), ts.to_string());
    }
    let cx = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracer(ratio: f64) -> (Tracer, mpsc::Receiver<SpanData>) {
        let (queue, rx) = mpsc::channel(4);
        let t = Tracer(Arc::new(Inner {
            sampler: Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))),
            queue,
            scope: InstrumentationScope::builder("t").build(),
        }));
        (t, rx)
    }

    const SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

    #[test]
    fn the_callers_decision_wins_and_the_ratio_decides_the_rest() {
        let (none, _rx) = tracer(0.0);
        assert!(none.start_call("Fetch", None).is_none());
        let parent = parent_from(Some(SAMPLED), Some("vendor=x"));
        let s = none
            .start_call("Fetch", parent)
            .expect("a sampled parent is followed");
        assert_eq!(s.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            s.parent.map(|p| p.to_string()).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert_eq!(s.tracestate().as_deref(), Some("vendor=x"));
        let (all, _rx) = tracer(1.0);
        assert!(all.start_call("Fetch", None).is_some());
        assert!(
            all.start_call("Fetch", parent_from(Some(UNSAMPLED), None))
                .is_none(),
            "an unsampled parent is followed"
        );
        assert!(parent_from(Some("00-zz-00f067aa0ba902b7-01"), None).is_none());
    }

    #[test]
    fn children_name_their_scope_and_a_full_queue_drops() {
        let (t, mut rx) = tracer(1.0);
        let call = t
            .start_call("Fetch", parent_from(Some(SAMPLED), None))
            .unwrap();
        let mut wait = call.child("limit wait", SpanKind::Internal);
        wait.attribute(KeyValue::new("class", "fetch"));
        let tp = call.traceparent(&wait);
        wait.end(&call, Status::Unset);
        call.end("Fetch", vec![], vec![], Status::Ok);
        let child = rx.try_recv().unwrap();
        let parent = rx.try_recv().unwrap();
        assert_eq!(child.parent_span_id, parent.span_context.span_id());
        assert!(
            tp.contains(&child.span_context.span_id().to_string()),
            "{tp}"
        );
        assert!(parent.parent_span_is_remote);
        for _ in 0..10 {
            call.end("Fetch", vec![], vec![], Status::Ok);
        }
        assert_eq!(
            rx.len(),
            4,
            "the queue holds 4; the rest are dropped, not waited for"
        );
    }
}
