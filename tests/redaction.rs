//! The Pinecone API key and callers' tokens never appear in logs or metrics, even at trace level and on errors, and the key
//! never follows a redirect to another host.
mod common;
use common::*;
use pinecone_gateway::emulator::{Emulator, EmulatorOptions};
use pinecone_gateway::pb::pinecone as p;
use pinecone_gateway::pb::pinecone::vector_service_client::VectorServiceClient;

const PINECONE_KEY: &str = "test-only-gateway-key-TESTONLY-0123456789";
const CALLER_TOKEN: &str = "caller-token-TESTONLY-987";

fn with_tokens<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("api-key", CALLER_TOKEN.parse().unwrap());
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {CALLER_TOKEN}").parse().unwrap(),
    );
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_logs_or_metrics() {
    let emulator = Emulator::start(
        "127.0.0.1:0".parse().unwrap(),
        EmulatorOptions {
            api_key: Some(PINECONE_KEY.into()),
            ..Default::default()
        },
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
        &[("PINECONE_API_KEY", PINECONE_KEY), ("RUST_LOG", "trace")],
    );
    let mut client = VectorServiceClient::connect(format!("http://{}", gw.addr))
        .await
        .unwrap();
    client
        .describe_index_stats(with_tokens(p::DescribeIndexStatsRequest::default()))
        .await
        .unwrap();
    let _ = client
        .fetch(with_tokens(p::FetchRequest {
            ids: vec![],
            namespace: "".into(),
        }))
        .await;
    let _ = client
        .describe_namespace(with_tokens(p::DescribeNamespaceRequest {
            namespace: "missing".into(),
        }))
        .await;
    // An unknown index: the error path is logged too.
    let mut r = with_tokens(p::DescribeIndexStatsRequest::default());
    r.metadata_mut()
        .insert("pinecone-index", "no-such-index".parse().unwrap());
    let _ = client.describe_index_stats(r).await;
    let metrics = reqwest::get(format!("http://{}/metrics", gw.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("pinecone_gateway_calls_total"));
    drop(client);
    gw.signal("-TERM");
    let (code, logs) = gw.exit().await;
    assert_eq!(code, Some(0));
    assert!(
        logs.contains("\"method\":\"DescribeIndexStats\""),
        "the calls were logged:\n{logs}"
    );
    for secret in [PINECONE_KEY, CALLER_TOKEN, "TESTONLY"] {
        assert!(!logs.contains(secret), "{secret} appeared in the logs");
        assert!(
            !metrics.contains(secret),
            "{secret} appeared in the metrics"
        );
    }
}

/// An answer that redirects elsewhere is not followed: the API key goes to the configured hosts only.
#[tokio::test]
async fn redirects_are_not_followed_with_the_key() {
    use std::sync::{Arc, Mutex};
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere_addr = elsewhere.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(format!("{headers:?}"));
                "{}"
            }
        });
        axum::serve(elsewhere, app).await.unwrap();
    });
    let redirecting = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirecting_addr = redirecting.local_addr().unwrap();
    tokio::spawn(async move {
        let app = axum::Router::new().fallback(move || async move {
            (
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [("location", format!("http://{elsewhere_addr}/vectors/fetch"))],
            )
        });
        axum::serve(redirecting, app).await.unwrap();
    });
    let env = Env::start_with(EnvOptions {
        gateway_key: Some("pcsk-redirect-secret".into()),
        config: Some(format!(
            "[indexes.{INDEX}]\nhost = \"{redirecting_addr}\"\n"
        )),
        ..Default::default()
    })
    .await;
    let e = env
        .vectors()
        .fetch(req(p::FetchRequest {
            ids: vec!["a".into()],
            namespace: "ns".into(),
        }))
        .await
        .unwrap_err();
    assert!(e.message().contains("307"), "{e:?}");
    assert!(!e.message().contains("pcsk-redirect-secret"));
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
}
