//! What operators watch: /metrics on the admin listener (readiness: tests/health_and_reflection.rs), and request ids that follow a call
//! from the caller to Pinecone and back.
mod common;
use common::*;
use pinecone_gateway::pb::pinecone as p;

async fn get(url: String) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn metrics_count_calls_upstream_requests_and_batches() {
    let env = Env::start().await;
    env.seed("ns", "m", 5).await;
    let ids: Vec<String> = (0..1500).map(|i| format!("m-{i:04}")).collect();
    env.vectors()
        .fetch(req(p::FetchRequest {
            ids,
            namespace: "ns".into(),
        }))
        .await
        .unwrap();
    let _ = env
        .vectors()
        .fetch(req(p::FetchRequest {
            ids: vec![],
            namespace: "".into(),
        }))
        .await;
    let admin = env.gateway.as_ref().unwrap().admin_addr.unwrap();
    let (code, text) = get(format!("http://{admin}/metrics")).await;
    assert_eq!(code, 200);
    for want in [
        r#"pinecone_gateway_calls_total{method="Fetch",code="OK"}"#,
        r#"pinecone_gateway_calls_total{method="Fetch",code="InvalidArgument"}"#,
        r#"pinecone_gateway_upstream_requests_total{operation="fetch",status="200"}"#,
        "pinecone_gateway_call_duration_seconds_bucket",
        "pinecone_gateway_upstream_duration_seconds_bucket",
        "pinecone_gateway_batch_size_bucket",
        "pinecone_gateway_calls_in_flight",
        "pinecone_gateway_rate_limit_keys",
    ] {
        assert!(text.contains(want), "{want} missing from /metrics:\n{text}");
    }
    assert_eq!(get(format!("http://{admin}/healthz")).await.0, 200);
    assert_eq!(get(format!("http://{admin}/readyz")).await.0, 200);
}

#[tokio::test]
async fn request_ids_and_trace_context_travel_to_pinecone_and_back() {
    let env = Env::start().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut r = req(p::DescribeIndexStatsRequest::default());
    r.metadata_mut()
        .insert("x-request-id", "req-123".parse().unwrap());
    r.metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    let resp = env.vectors().describe_index_stats(r).await.unwrap();
    assert_eq!(resp.metadata().get("x-request-id").unwrap(), "req-123");
    assert!(
        env.emulator
            .traces()
            .contains(&("req-123".to_string(), traceparent.to_string()))
    );

    // The official Python clients send `request_id`; errors carry the id too.
    let mut r = req(p::DescribeNamespaceRequest {
        namespace: "missing".into(),
    });
    r.metadata_mut()
        .insert("request_id", "py-456".parse().unwrap());
    let e = env.vectors().describe_namespace(r).await.unwrap_err();
    assert_eq!(e.metadata().get("x-request-id").unwrap(), "py-456");
    assert!(env.emulator.traces().iter().any(|(id, _)| id == "py-456"));

    // None given: the gateway makes one.
    let resp = env
        .vectors()
        .describe_index_stats(req(p::DescribeIndexStatsRequest::default()))
        .await
        .unwrap();
    let made = resp
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(made.len(), 36);
    assert!(env.emulator.traces().iter().any(|(id, _)| *id == made));
}
