//! The official Python clients work through the gateway unchanged apart from the host: `pinecone[grpc]==8.1.2`
//! (API 2025-10) and `pinecone==10.2.0` (its gRPC client compiled in, API 2026-07, which sends no index name: the
//! gateway routes it to `upstream.default_index`). Our VectorService proto matches the descriptor 8.1.2 ships, field
//! for field. (7.3.0 is in tests/other_clients.rs.)
//!
//! The Python interpreters come from `PINECONE_GATEWAY_PYTHON` and `PINECONE_GATEWAY_PYTHON10` (the README's test
//! command creates the virtual environments and sets them). Without them the tests fail under CI, and say how to run
//! them elsewhere.
mod common;
use common::*;

fn script(name: &str) -> String {
    format!("{}/tests/python/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_8_works_through_the_gateway() {
    let Some(py) = tool("PINECONE_GATEWAY_PYTHON") else {
        return;
    };
    let env = Env::start_for_clients().await;
    let host = env.addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        run_program(&py, &[&script("official_client.py"), &host, INDEX])
    })
    .await
    .unwrap();
    assert!(out.contains("pinecone[grpc]==8.1.2"), "{out}");
    // The client's calls reached Pinecone as REST calls, through the gateway.
    assert!(env.emulator.count(INDEX, "upsert") >= 3);
    assert!(env.emulator.count(INDEX, "fetch_by_metadata") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_10_works_through_the_gateway() {
    client_10(None).await;
}

/// 10.2.0 speaks API 2026-07 for its own control calls; a gateway that speaks it upstream too serves it the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_10_works_through_a_gateway_on_api_2026_07() {
    client_10(Some("2026-07")).await;
}

async fn client_10(api_version: Option<&str>) {
    let Some(py) = tool("PINECONE_GATEWAY_PYTHON10") else {
        return;
    };
    // The caller this client is (its user-agent's first product) may fetch once a second: its last two fetches are
    // refused once and retried by the client after the advice.
    let mut config =
        "[callers.\"python-client[grpc]\".classes.fetch]\nrequests_per_second = 1\n".to_string();
    if let Some(v) = api_version {
        config.push_str(&format!("[upstream]\napi_version = \"{v}\"\n"));
    }
    let env = Env::start_with(EnvOptions {
        default_index: Some(INDEX.into()),
        config: Some(config),
        ..Default::default()
    })
    .await;
    let host = env.addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        run_program(&py, &[&script("official_client_10.py"), &host])
    })
    .await
    .unwrap();
    assert!(out.contains("pinecone==10.2.0"), "{out}");
    let metrics = scrape(env.gateway.as_ref().unwrap().admin_addr.unwrap()).await;
    let refused = metrics.lines().find(|l| {
        l.starts_with("pinecone_gateway_caller_refusals_total{")
            && l.contains("\"python-client[grpc]\"")
            && l.contains("\"quota\"")
    });
    assert!(
        refused.is_some_and(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() >= 1.0),
        "no quota refusal of python-client[grpc]:\n{metrics}"
    );
    assert!(env.emulator.count(INDEX, "upsert") >= 3);
    assert!(env.emulator.count(INDEX, "describe_namespace") >= 1);
    assert_eq!(
        env.emulator.last_api_version(),
        api_version.unwrap_or("2026-04")
    );
}

#[test]
fn proto_matches_the_official_descriptor() {
    let Some(py) = tool("PINECONE_GATEWAY_PYTHON") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("pgw-fds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("descriptor.bin");
    std::fs::write(&path, pinecone_gateway::pb::FILE_DESCRIPTOR_SET).unwrap();
    run_program(&py, &[&script("conformance.py"), path.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
}
