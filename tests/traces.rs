//! OpenTelemetry traces end to end, received by an in-process OTLP/gRPC collector built from `opentelemetry-proto`:
//! the span tree of a coalesced fetch, of a retried call and of a refused call; the caller's trace context as the
//! parent and the attempt span's in the upstream request; an unsampled caller traced not at all; and a collector that
//! is down costs no call anything (spans dropped and counted).
mod common;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use pinecone_gateway::pb::pinecone as p;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
    resources: Arc<Mutex<Vec<(String, String)>>>,
    /// The `x-team-key` metadata of each export.
    keys: Arc<Mutex<Vec<String>>>,
    arrived: Arc<Notify>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        if let Some(k) = req.metadata().get("x-team-key") {
            self.keys
                .lock()
                .unwrap()
                .push(k.to_str().unwrap().to_string());
        }
        for rs in req.into_inner().resource_spans {
            if let Some(r) = rs.resource {
                self.resources
                    .lock()
                    .unwrap()
                    .extend(r.attributes.iter().map(|kv| (kv.key.clone(), text(kv))));
            }
            for ss in rs.scope_spans {
                self.spans.lock().unwrap().extend(ss.spans);
            }
        }
        self.arrived.notify_waiters();
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    async fn start() -> (Collector, String) {
        Self::start_with(None).await
    }

    /// With `tls` (certificate and key, PEM), the collector speaks TLS: an https:// endpoint.
    async fn start_with(tls: Option<(String, String)>) -> (Collector, String) {
        let c = Collector::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(c.clone());
        let mut server = tonic::transport::Server::builder();
        let scheme = match &tls {
            Some((cert, key)) => {
                server = server
                    .tls_config(
                        tonic::transport::ServerTlsConfig::new()
                            .identity(tonic::transport::Identity::from_pem(cert, key)),
                    )
                    .unwrap();
                "https"
            }
            None => "http",
        };
        tokio::spawn(
            server
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (c, format!("{scheme}://{addr}"))
    }

    /// Waits (at most 10 s) until the spans received satisfy `done`, and returns them.
    async fn wait_for(&self, what: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let arrived = self.arrived.notified();
            {
                let spans = self.spans.lock().unwrap();
                if done(&spans) {
                    return spans.clone();
                }
            }
            if tokio::time::timeout_at(give_up, arrived).await.is_err() {
                let spans = self.spans.lock().unwrap();
                panic!("{what}: not received in 10 s; spans: {:#?}", names(&spans));
            }
        }
    }
}

fn text(kv: &opentelemetry_proto::tonic::common::v1::KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn attr(s: &Span, key: &str) -> Option<String> {
    s.attributes.iter().find(|kv| kv.key == key).map(text)
}

fn names(spans: &[Span]) -> Vec<(String, String, String)> {
    spans
        .iter()
        .map(|s| (s.name.clone(), hex(&s.span_id), hex(&s.parent_span_id)))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn in_trace<'a>(spans: &'a [Span], trace: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| hex(&s.trace_id) == trace).collect()
}

fn children<'a>(spans: &[&'a Span], parent: &Span) -> Vec<&'a Span> {
    spans
        .iter()
        .copied()
        .filter(|s| s.parent_span_id == parent.span_id)
        .collect()
}

/// A caller's sampled trace context: a trace id and span id of its own per `n`.
fn traceparent(n: u32, sampled: bool) -> (String, String, String) {
    let trace = format!(
        "{:032x}",
        0x4bf9_2f35_0000_0000_0000_0000_0000_0000u128 + u128::from(n)
    );
    let span = format!("{:016x}", 0x00f0_67aa_0000_0000u64 + u64::from(n));
    let flags = if sampled { "01" } else { "00" };
    (format!("00-{trace}-{span}-{flags}"), trace, span)
}

fn traced<T>(msg: T, tp: &str) -> tonic::Request<T> {
    let mut r = req(msg);
    r.metadata_mut().insert("traceparent", tp.parse().unwrap());
    r.metadata_mut()
        .insert("tracestate", "vendor=abc".parse().unwrap());
    r.set_timeout(Duration::from_secs(10));
    r
}

fn one_nearest() -> p::QueryRequest {
    p::QueryRequest {
        top_k: 1,
        vector: vec![1.0, 0.0, 0.0, 0.0],
        ..Default::default()
    }
}

/// A gateway exporting to `endpoint`; `tracing` adds keys to `[tracing]`, `extra` sections of its own.
async fn env_with(endpoint: &str, tracing: &str, extra: &str) -> Env {
    Env::start_with(EnvOptions {
        config: Some(format!(
            "[tracing]\notlp_endpoint = \"{endpoint}\"\nexport_interval_ms = 20\n{tracing}\n\
             [tracing.resource_attributes]\n\"deployment.environment.name\" = \"test\"\n{extra}"
        )),
        ..Default::default()
    })
    .await
}

async fn env(endpoint: &str, extra: &str) -> Env {
    env_with(endpoint, "", extra).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coalesced_fetch_is_one_batch_span_linked_from_every_caller() {
    let (collector, endpoint) = Collector::start().await;
    // Two fetches a second, sent one at a time: the callers after the first wait for the next turn together.
    let env = env(
        &endpoint,
        "[limits.rates.fetch]\nindex_requests_per_second = 2\n[coalescing]\nburst_requests = 1\n",
    )
    .await;
    env.seed("ns", "r", 10).await;
    let mut calls = Vec::new();
    for n in 0..10u32 {
        let mut client = env.vectors();
        let (tp, _, _) = traceparent(n, true);
        calls.push(tokio::spawn(async move {
            let r = traced(
                p::FetchRequest {
                    ids: vec![format!("r-{n:04}")],
                    namespace: "ns".into(),
                },
                &tp,
            );
            client.fetch(r).await.unwrap().into_inner().vectors.len()
        }));
    }
    for c in calls {
        assert_eq!(c.await.unwrap(), 1);
    }
    let traces: Vec<(String, String, String)> = (0..10).map(|n| traceparent(n, true)).collect();
    let spans = collector
        .wait_for("ten Fetch call spans and a batch", |spans| {
            let calls = spans.iter().filter(|s| s.name == "Fetch").count();
            calls == 10 && spans.iter().any(|s| s.name == "coalesced batch")
        })
        .await;
    // Each caller's call span is the child of the caller's own span, with what the call was.
    for (_, trace, caller_span) in &traces {
        let mine = in_trace(&spans, trace);
        let call = mine
            .iter()
            .find(|s| s.name == "Fetch")
            .unwrap_or_else(|| panic!("no call span in trace {trace}: {:?}", names(&spans)));
        assert_eq!(hex(&call.parent_span_id), *caller_span);
        assert_eq!(call.kind, 2, "SERVER");
        assert_eq!(call.trace_state, "vendor=abc");
        assert_eq!(attr(call, "rpc.grpc.status_code").as_deref(), Some("0"));
        assert_eq!(attr(call, "pinecone.index").as_deref(), Some(INDEX));
        assert_eq!(attr(call, "pinecone.namespace").as_deref(), Some("ns"));
        assert!(attr(call, "gateway.request_id").is_some_and(|id| !id.is_empty()));
        // Its turn: from the limiter when it went alone, else from the batch it waited in.
        assert!(
            children(&mine, call)
                .iter()
                .any(|c| c.name == "rate limit" || c.name == "coalesce wait"),
            "trace {trace}: {:?}",
            names(&spans)
        );
    }
    // The batch: a span of its own under its first traced caller's call, with the upstream request under it; every
    // caller that joined it links to it from its wait.
    let batch = spans
        .iter()
        .filter(|s| s.name == "coalesced batch")
        .max_by_key(|s| attr(s, "gateway.callers").unwrap().parse::<u32>().unwrap())
        .unwrap();
    let joined: u32 = attr(batch, "gateway.callers").unwrap().parse().unwrap();
    assert!(joined >= 2, "{joined} callers in the largest batch");
    let batch_trace = hex(&batch.trace_id);
    let owner = in_trace(&spans, &batch_trace);
    let owner_call = owner.iter().find(|s| s.name == "Fetch").unwrap();
    assert_eq!(batch.parent_span_id, owner_call.span_id);
    let request = children(&owner, batch);
    let request = request
        .iter()
        .find(|s| s.name == "GET /vectors/fetch")
        .unwrap_or_else(|| panic!("no upstream span under the batch: {:?}", names(&spans)));
    assert_eq!(request.kind, 3, "CLIENT");
    assert_eq!(
        attr(request, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attr(request, "url.template").as_deref(),
        Some("/vectors/fetch")
    );
    // Pinecone's id of the request (what its support asks for) on the attempt, and on every call of the batch.
    let pinecone_id = attr(request, "pinecone.request_id").expect("no pinecone.request_id");
    assert!(!pinecone_id.is_empty());
    assert_eq!(
        attr(owner_call, "pinecone.request_id").as_deref(),
        Some(pinecone_id.as_str())
    );
    let waits: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "coalesce wait" && s.links.iter().any(|l| l.span_id == batch.span_id))
        .collect();
    assert_eq!(
        waits.len() as u32,
        joined,
        "one linked wait per caller of the batch"
    );
    for w in &waits {
        let call = in_trace(&spans, &hex(&w.trace_id))
            .into_iter()
            .find(|s| s.name == "Fetch")
            .unwrap();
        assert_eq!(w.parent_span_id, call.span_id, "the wait is its caller's");
        assert_eq!(hex(&w.links[0].trace_id), batch_trace);
    }
    // Pinecone was told the upstream request's span as the parent, and the caller's trace state.
    let sent = format!("00-{batch_trace}-{}-01", hex(&request.span_id));
    assert!(
        env.emulator.traces().iter().any(|(_, tp)| *tp == sent),
        "{sent} not among {:?}",
        env.emulator.traces()
    );
    let resources = collector.resources.lock().unwrap().clone();
    for (k, v) in [
        ("service.name", "pinecone-gateway"),
        ("deployment.environment.name", "test"),
    ] {
        assert!(resources.contains(&(k.into(), v.into())), "{resources:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_call_has_one_span_per_attempt() {
    let (collector, endpoint) = Collector::start().await;
    let env = env(&endpoint, "").await;
    let query = || p::QueryRequest {
        namespace: "ns".into(),
        ..one_nearest()
    };
    // The host is looked up before Pinecone starts failing.
    env.vectors().query(req(query())).await.unwrap();
    env.emulator
        .set_faults(pinecone_gateway::emulator::faults::Faults {
            error_percent: 100.0,
            ..Default::default()
        });
    let (tp, trace, _) = traceparent(100, true);
    let e = env.vectors().query(traced(query(), &tp)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    let spans = collector
        .wait_for("the failed query's span", |spans| {
            spans
                .iter()
                .any(|s| s.name == "Query" && hex(&s.trace_id) == trace)
        })
        .await;
    let mine = in_trace(&spans, &trace);
    let call = mine.iter().find(|s| s.name == "Query").unwrap();
    assert_eq!(attr(call, "rpc.grpc.status_code").as_deref(), Some("14"));
    assert_eq!(attr(call, "gateway.attempts").as_deref(), Some("4"));
    assert_eq!(call.status.as_ref().map(|s| s.code), Some(2), "ERROR");
    let mut attempts: Vec<&Span> = children(&mine, call)
        .into_iter()
        .filter(|s| s.name == "POST /query")
        .collect();
    attempts.sort_by_key(|s| s.start_time_unix_nano);
    let resends: Vec<Option<String>> = attempts
        .iter()
        .map(|s| attr(s, "http.request.resend_count"))
        .collect();
    assert_eq!(
        resends,
        [None, Some("1".into()), Some("2".into()), Some("3".into())],
        "{:?}",
        names(&spans)
    );
    for a in &attempts {
        assert_eq!(attr(a, "http.response.status_code").as_deref(), Some("503"));
        assert_eq!(a.status.as_ref().map(|s| s.code), Some(2));
    }
    // Each attempt took its turn from the limiter.
    let limits = children(&mine, call)
        .into_iter()
        .filter(|s| s.name == "rate limit")
        .count();
    assert_eq!(limits, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_call_ends_in_the_limiter_and_an_unsampled_caller_is_not_traced() {
    let (collector, endpoint) = Collector::start().await;
    let env = env(
        &endpoint,
        "[limits.rates.describe_index_stats]\nindex_requests_per_second = 1\n",
    )
    .await;
    let stats = || p::DescribeIndexStatsRequest::default();
    env.vectors()
        .describe_index_stats(req(stats()))
        .await
        .unwrap();
    let (tp, trace, _) = traceparent(200, true);
    let mut r = traced(stats(), &tp);
    r.set_timeout(Duration::from_millis(300));
    let e = env.vectors().describe_index_stats(r).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    let spans = collector
        .wait_for("the refused call's span", |spans| {
            spans
                .iter()
                .any(|s| hex(&s.trace_id) == trace && s.kind == 2)
        })
        .await;
    let mine = in_trace(&spans, &trace);
    let call = mine.iter().find(|s| s.kind == 2).unwrap();
    assert_eq!(call.name, "DescribeIndexStats");
    assert_eq!(attr(call, "rpc.grpc.status_code").as_deref(), Some("8"));
    let under: Vec<&Span> = children(&mine, call);
    assert_eq!(under.len(), 1, "only the limiter: {:?}", names(&spans));
    assert_eq!(under[0].name, "rate limit");
    assert_eq!(
        attr(under[0], "gateway.limit.decision").as_deref(),
        Some("refused")
    );
    assert_eq!(
        attr(under[0], "gateway.limit.class").as_deref(),
        Some("describe_index_stats")
    );
    assert_eq!(attr(under[0], "gateway.limit.key").as_deref(), Some(INDEX));
    assert_eq!(under[0].status.as_ref().map(|s| s.code), Some(2));

    // A caller that decided not to sample is not traced, and its context goes upstream as it came.
    let (tp, trace, _) = traceparent(201, false);
    env.vectors()
        .query(traced(one_nearest(), &tp))
        .await
        .unwrap();
    assert!(env.emulator.traces().iter().any(|(_, sent)| *sent == tp));
    // A traced call made after it is exported after it: when it arrives, the unsampled one would have too.
    let (later, later_trace, _) = traceparent(202, true);
    env.vectors()
        .query(traced(one_nearest(), &later))
        .await
        .unwrap();
    let spans = collector
        .wait_for("the later call's span", |spans| {
            spans
                .iter()
                .any(|s| hex(&s.trace_id) == later_trace && s.kind == 2)
        })
        .await;
    assert!(
        in_trace(&spans, &trace).is_empty(),
        "the unsampled call was traced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_costs_calls_nothing_and_drops_are_counted() {
    // A port with nothing listening: every export fails at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut env = env_with(&endpoint, "queue_spans = 2\nexport_timeout_ms = 200\n", "").await;
    let admin = env.gateway.as_ref().unwrap().admin_addr.unwrap();
    let before = scrape(admin).await;
    let dropped = |text: &str| {
        metric(
            text,
            "pinecone_gateway_trace_spans_dropped_total{reason=\"queue_full\"}",
        ) + metric(
            text,
            "pinecone_gateway_trace_spans_dropped_total{reason=\"export_failed\"}",
        )
    };
    let mut calls = Vec::new();
    for n in 0..30u32 {
        let mut client = env.vectors();
        let (tp, _, _) = traceparent(300 + n, true);
        calls.push(tokio::spawn(async move {
            client
                .describe_index_stats(traced(p::DescribeIndexStatsRequest::default(), &tp))
                .await
                .map(|_| ())
        }));
    }
    for c in calls {
        c.await
            .unwrap()
            .expect("every call succeeds while the collector is down");
    }
    // The shutdown flushes the export: every span is exported or counted as dropped by the time it returns.
    env.gateway.take().unwrap().shutdown().await.unwrap();
    let after = pinecone_gateway::telemetry::metrics::install()
        .map(|h| h.render())
        .unwrap_or_default();
    // 30 calls of three spans each (the call, its limiter wait, its request): none reached a collector, and each
    // is counted, whether the queue was full or its export failed.
    let lost = dropped(&after) - dropped(&before);
    assert!(lost >= 90.0, "{lost} spans counted as dropped");
}

/// A collector behind TLS, its certificate from a private CA named by `tracing.ca_file`, and a vendor's API key in
/// `tracing.headers`: the spans arrive with the key; the key is never printed by `config check`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_collector_with_a_private_ca_gets_the_spans_and_the_headers() {
    let ca = common::pki::TestCa::new();
    let (collector, endpoint) = Collector::start_with(Some(ca.issue(&["127.0.0.1"]))).await;
    let dir = common::pki::temp_dir("otlp-tls");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let env = env_with(
        &endpoint,
        &format!(
            "ca_file = \"{}\"\n[tracing.headers]\n\"x-team-key\" = \"s3cret-team-key\"\n",
            ca_file.display()
        ),
        "",
    )
    .await;
    let (tp, trace, _) = traceparent(400, true);
    env.vectors()
        .describe_index_stats(traced(p::DescribeIndexStatsRequest::default(), &tp))
        .await
        .unwrap();
    collector
        .wait_for("the call's span over TLS", |spans| {
            spans
                .iter()
                .any(|s| hex(&s.trace_id) == trace && s.kind == 2)
        })
        .await;
    let keys = collector.keys.lock().unwrap().clone();
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k == "s3cret-team-key"),
        "{keys:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
