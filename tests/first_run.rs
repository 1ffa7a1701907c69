//! The README's run command: `pinecone-gateway serve --emulator` starts, prints where it listens, and answers the
//! example call with no account, no key and no network.
use pinecone_gateway::pb::pinecone as p;
use pinecone_gateway::pb::pinecone::vector_service_client::VectorServiceClient;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_with_the_emulator_answers_the_example_call() {
    serve_and_fetch(&[]).await;
}

/// One worker thread: the gateway runs on a current-thread runtime (a sidecar given one CPU).
#[tokio::test]
async fn one_worker_thread_serves_too() {
    serve_and_fetch(&["--worker-threads", "1"]).await;
}

#[test]
fn zero_worker_threads_is_refused_by_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_pinecone-gateway"))
        .args(["serve", "--emulator", "--worker-threads", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--worker-threads") && stderr.contains("at least 1"),
        "{stderr}"
    );
}

async fn serve_and_fetch(extra: &[&str]) {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_pinecone-gateway"))
            .args([
                "serve",
                "--emulator",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env_remove("PINECONE_API_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .strip_prefix("pinecone-gateway listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    let printed: Vec<String> = lines.take(6).map(|l| l.unwrap()).collect();
    assert!(
        printed.iter().any(|l| l.contains("VectorService/Fetch")),
        "{printed:?}"
    );

    let mut client = VectorServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    // The example call names no index: the demo index is the default.
    let r = client
        .fetch(p::FetchRequest {
            ids: vec!["doc1#chunk1".into()],
            namespace: "example-namespace".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.vectors.len(), 1);
    assert!(r.vectors["doc1#chunk1"].metadata.is_some());
}

/// With `--rest-listen`, `serve --emulator` prints the REST front door's address and an example `curl` line, and that
/// line's URL answers with the demo record.
#[tokio::test]
async fn serve_with_the_rest_front_door_prints_a_curl_line_that_answers() {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_pinecone-gateway"))
            .args([
                "serve",
                "--emulator",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--rest-listen",
                "127.0.0.1:0",
            ])
            .env_remove("PINECONE_API_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let lines = BufReader::new(stdout).lines();
    let curl = lines
        .map_while(Result::ok)
        .take(12)
        .find(|l| l.trim_start().starts_with("curl "))
        .expect("no curl line printed");
    let url = curl
        .split('\'')
        .nth(1)
        .unwrap_or_else(|| panic!("no URL in {curl}"))
        .to_string();
    let answer: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert!(
        answer["vectors"]["doc1#chunk1"]["metadata"].is_object(),
        "{answer}"
    );
}
