//! Clients other than the Rust one, each through the gateway: the official Python client 7.3.0 (API 2025-04) next to
//! 8.1.2 (tests/official_client.rs), a Python client generated from proto/ with grpcio-tools, and a Node.js client
//! with @grpc/grpc-js and @grpc/proto-loader.
//!
//! `PINECONE_GATEWAY_PYTHON7` names the Python of the 7.x environment and `PINECONE_GATEWAY_NODE_DIR` the folder
//! with the Node packages; the README's test command sets both. Without them the tests fail under CI and say how to
//! run them elsewhere.
mod common;
use common::*;

const PROTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_7_3_works_through_the_gateway() {
    let Some(py) = tool("PINECONE_GATEWAY_PYTHON7") else {
        return;
    };
    let env = Env::start_for_clients().await;
    let host = env.addr.to_string();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/official_client.py"
    );
    let out = tokio::task::spawn_blocking(move || run_program(&py, &[script, &host, INDEX]))
        .await
        .unwrap();
    assert!(out.contains("pinecone[grpc]==7.3.0"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_generated_from_proto_works() {
    let Some(py) = tool("PINECONE_GATEWAY_PYTHON7") else {
        return;
    };
    let env = Env::start_for_clients().await;
    let host = env.addr.to_string();
    let out_dir = std::env::temp_dir().join(format!("pgw-py-gen-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let out_str = out_dir.to_str().unwrap().to_string();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/generated_client.py"
    );
    let out = tokio::task::spawn_blocking(move || {
        run_program(&py, &[script, &host, INDEX, PROTO, &out_str])
    })
    .await
    .unwrap();
    let _ = std::fs::remove_dir_all(&out_dir);
    assert!(out.contains("checks passed"), "{out}");
    assert!(env.emulator.count("control", "create_backup") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_client_works() {
    let Some(dir) = tool("PINECONE_GATEWAY_NODE_DIR") else {
        return;
    };
    let env = Env::start_for_clients().await;
    let host = env.addr.to_string();
    let script = format!("{dir}/client.js");
    let out =
        tokio::task::spawn_blocking(move || run_program("node", &[&script, &host, INDEX, PROTO]))
            .await
            .unwrap();
    assert!(out.contains("checks passed"), "{out}");
    assert!(env.emulator.count(INDEX, "upsert") >= 1);
}
