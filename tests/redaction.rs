//! The Pinecone API key and callers' tokens never appear in logs or metrics, even at debug level and on errors.
mod common;
use common::*;
use pinecone_gateway::emulator::{Emulator, EmulatorOptions};
use pinecone_gateway::pb::pinecone as p;
use pinecone_gateway::pb::pinecone::vector_service_client::VectorServiceClient;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

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
    let mut child = Command::new(env!("CARGO_BIN_EXE_pinecone-gateway"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--control-plane-url",
            &emulator.url(),
        ])
        .args(["--default-index", INDEX, "--log-format", "json"])
        .env("PINECONE_API_KEY", PINECONE_KEY)
        .env("RUST_LOG", "trace")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    let (addr, admin) = loop {
        first.clear();
        stderr.read_line(&mut first).unwrap();
        let v: serde_json::Value = serde_json::from_str(&first).unwrap();
        if let (Some(a), Some(m)) = (v["addr"].as_str(), v["admin"].as_str()) {
            break (a.to_string(), m.to_string());
        }
    };
    // Read the rest of the logs as they come, or a full pipe would block the gateway's log writes.
    let reader = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    let mut client = VectorServiceClient::connect(format!("http://{addr}"))
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
    // Pinecone refuses a key: the error path is logged too.
    emulator.create_index("other", 4, "cosine").await.unwrap();
    let _ = client
        .describe_index_stats({
            let mut r = with_tokens(p::DescribeIndexStatsRequest::default());
            r.metadata_mut()
                .insert("pinecone-index", "no-such-index".parse().unwrap());
            r
        })
        .await;
    // The metrics, from the admin listener named in the logs.
    let metrics = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("pinecone_gateway_calls_total"));
    drop(client);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let logs = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    let _ = child.wait();
    assert!(
        logs.contains("\"method\":\"DescribeIndexStats\""),
        "the calls were logged:\n{logs}"
    );
    for secret in [PINECONE_KEY, CALLER_TOKEN, "TESTONLY"] {
        assert!(!logs.contains(secret), "{secret} appeared in the logs");
        assert!(!first.contains(secret));
        assert!(
            !metrics.contains(secret),
            "{secret} appeared in the metrics"
        );
    }
}
