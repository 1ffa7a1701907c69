//! The official Python client `pinecone[grpc]==8.1.2` works through the gateway unchanged apart from the host, and
//! our VectorService proto matches the descriptor that client ships, field for field.
//!
//! The Python interpreter comes from `PINECONE_GATEWAY_PYTHON` (the README's test command creates the virtual
//! environment and sets it). Without it the tests fail under CI, and say how to run them elsewhere.
mod common;
use common::*;
use std::process::Command;

fn python() -> Option<String> {
    match std::env::var("PINECONE_GATEWAY_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var("CI").is_ok() => {
            panic!("PINECONE_GATEWAY_PYTHON is not set; run the README's test command")
        }
        _ => {
            eprintln!(
                "skipped: set PINECONE_GATEWAY_PYTHON to a python with pinecone[grpc]==8.1.2 (scripts/test does)"
            );
            None
        }
    }
}

fn run(python: &str, args: &[&str]) {
    let out = Command::new(python)
        .args(args)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{args:?} failed:\n{stdout}\n{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_works_through_the_gateway() {
    let Some(py) = python() else { return };
    let env = Env::start().await;
    let host = env.addr.to_string();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/official_client.py"
    );
    tokio::task::spawn_blocking(move || run(&py, &[script, &host, INDEX]))
        .await
        .unwrap();
    // The client's calls reached Pinecone as REST calls, through the gateway.
    assert!(env.emulator.count(INDEX, "upsert") >= 3);
    assert!(env.emulator.count(INDEX, "fetch_by_metadata") >= 1);
}

#[test]
fn proto_matches_the_official_descriptor() {
    let Some(py) = python() else { return };
    let dir = std::env::temp_dir().join(format!("pgw-fds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("descriptor.bin");
    std::fs::write(&path, pinecone_gateway::pb::FILE_DESCRIPTOR_SET).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/conformance.py");
    run(&py, &[script, path.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
}
