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
    let upstream_fetches = env.emulator.count(INDEX, "fetch") as f64;
    for (series, want) in [
        (
            r#"pinecone_gateway_calls_total{method="Fetch",code="OK",protocol="grpc"}"#,
            1.0,
        ),
        (
            r#"pinecone_gateway_calls_total{method="Fetch",code="InvalidArgument",protocol="grpc"}"#,
            1.0,
        ),
        (
            r#"pinecone_gateway_calls_total{method="Upsert",code="OK",protocol="grpc"}"#,
            1.0,
        ),
        (
            r#"pinecone_gateway_upstream_requests_total{operation="fetch",status="200"}"#,
            upstream_fetches,
        ),
        // One sample per upstream request: the 1,500 IDs went in three (the URL budget), summing to 1,500.
        (
            r#"pinecone_gateway_batch_size_count{operation="fetch"}"#,
            upstream_fetches,
        ),
        (
            r#"pinecone_gateway_batch_size_sum{operation="fetch"}"#,
            1500.0,
        ),
        (
            r#"pinecone_gateway_call_duration_seconds_count{method="Fetch"}"#,
            2.0,
        ),
        ("pinecone_gateway_calls_in_flight", 0.0),
    ] {
        assert_eq!(metric(&text, series), want, "{series}:\n{text}");
    }
    assert_eq!(
        upstream_fetches, 3.0,
        "8,192 bytes of `ids=m-0000&` hold 744 IDs"
    );
    assert!(metric(&text, "pinecone_gateway_rate_limit_keys") >= 1.0);
    assert_eq!(get(format!("http://{admin}/healthz")).await.0, 200);
    assert_eq!(get(format!("http://{admin}/readyz")).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waits_counter_counts_calls_that_waited() {
    let env = Env::start_with(EnvOptions {
        enforce_limits: true,
        ..Default::default()
    })
    .await;
    let admin = env.gateway.as_ref().unwrap().admin_addr.unwrap();
    let waits = r#"pinecone_gateway_rate_limit_waits_total{class="describe_index_stats"}"#;
    env.vectors()
        .describe_index_stats(req(p::DescribeIndexStatsRequest::default()))
        .await
        .unwrap();
    assert_eq!(
        metric(&scrape(admin).await, waits),
        0.0,
        "a lone call waits for nothing"
    );
    // 150 at once against 100 per second: the first 99 have room, at least 50 wait their turn.
    let mut calls = Vec::new();
    for _ in 0..150 {
        let mut v = env.vectors();
        calls.push(tokio::spawn(async move {
            let mut r = req(p::DescribeIndexStatsRequest::default());
            r.set_timeout(std::time::Duration::from_secs(10));
            v.describe_index_stats(r).await
        }));
    }
    for c in calls {
        c.await.unwrap().unwrap();
    }
    let text = scrape(admin).await;
    let waited = metric(&text, waits);
    assert!(
        (50.0..150.0).contains(&waited),
        "{waited} waits for 150 calls"
    );
    assert_eq!(
        metric(
            &text,
            r#"pinecone_gateway_calls_total{method="DescribeIndexStats",code="OK",protocol="grpc"}"#
        ),
        151.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_its_caller_abandons_is_still_recorded() {
    let emulator = pinecone_gateway::emulator::Emulator::start(
        "127.0.0.1:0".parse().unwrap(),
        Default::default(),
    )
    .await
    .unwrap();
    emulator.create_index(INDEX, 4, "cosine").await.unwrap();
    let gw = spawn_gateway(
        &[
            "--control-plane-url",
            &emulator.url(),
            "--default-index",
            INDEX,
        ],
        &[],
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", gw.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut v = pinecone_gateway::pb::pinecone::vector_service_client::VectorServiceClient::new(
        channel.clone(),
    );
    v.describe_index_stats(p::DescribeIndexStatsRequest::default())
        .await
        .unwrap();
    emulator.set_faults(pinecone_gateway::emulator::faults::Faults {
        delay_ms: 5000,
        ..Default::default()
    });
    // The caller gives up before the gateway answers.
    let call = tokio::spawn(async move {
        let mut r = tonic::Request::new(p::DescribeIndexStatsRequest::default());
        r.set_timeout(std::time::Duration::from_secs(30));
        v.describe_index_stats(r).await
    });
    emulator
        .wait_until(|e| e.count(INDEX, "describe_index_stats") >= 2)
        .await;
    call.abort();
    gw.wait_for_log(r#""status":"Cancelled""#);
    let text = scrape(&gw.admin).await;
    assert_eq!(
        metric(
            &text,
            r#"pinecone_gateway_calls_total{method="DescribeIndexStats",code="Cancelled",protocol="grpc"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(metric(&text, "pinecone_gateway_calls_in_flight"), 0.0);
    assert_eq!(
        metric(
            &text,
            r#"pinecone_gateway_call_duration_seconds_count{method="DescribeIndexStats"}"#
        ),
        2.0
    );
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

#[tokio::test]
async fn the_admin_listener_can_be_switched_off() {
    let env = Env::start_with(EnvOptions {
        config: Some("[admin]\nenabled = false\n".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(env.gateway.as_ref().unwrap().admin_addr, None);
    env.vectors()
        .describe_index_stats(req(p::DescribeIndexStatsRequest::default()))
        .await
        .unwrap();
}
