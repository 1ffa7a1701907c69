//! The REST front door (`server.rest_listen`): Pinecone's REST data plane over the same stack. Pinecone's official
//! REST client (10.2.0) works with only its host changed; the index comes from the path (`/indexes/NAME/...`) or the
//! default index; answers are Pinecone's shapes, errors Pinecone's data-plane body with its HTTP status (a local
//! refusal 429 with `Retry-After`); a REST caller and a gRPC caller share one limit; a caller token in `Api-Key`
//! is held to its indexes and never forwarded.
mod common;
use common::*;
use pinecone_gateway::pb::pinecone as p;

async fn env(config: &str) -> Env {
    Env::start_rest(config).await
}

fn rest(env: &Env) -> String {
    env.rest_addr().to_string()
}

/// A front door before an emulator that shows writes to reads only 300 ms later.
async fn lagging_env() -> Env {
    Env::start_with(EnvOptions {
        rest: true,
        default_index: Some(INDEX.into()),
        index_lag: std::time::Duration::from_millis(300),
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_rest_client_works_through_the_front_door() {
    let Some(py) = tool("PINECONE_GATEWAY_PYTHON10") else {
        return;
    };
    // A quota for the caller `guide` (the script sees its refusal).
    let env = env(CLIENTS_CONFIG).await;
    let host = rest(&env);
    let out = tokio::task::spawn_blocking(move || {
        run_program(
            &py,
            &[
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/python/rest_client_10.py"
                ),
                &host,
                INDEX,
            ],
        )
    })
    .await
    .unwrap();
    assert!(out.contains("pinecone==10.2.0"), "{out}");
    assert!(
        env.emulator.count(INDEX, "upsert") >= 2,
        "split in batches of 100"
    );
    // The index client's fetches as `guide` were refused before its own retries got them through.
    let admin = env.gateway.as_ref().unwrap().admin_addr.unwrap();
    let refused = metric(
        &scrape(admin).await,
        r#"pinecone_gateway_calls_total{method="Fetch",code="ResourceExhausted",protocol="rest"}"#,
    );
    assert!(refused >= 1.0, "no fetch was refused: {refused}");
}

/// The 8.x line's REST client (8.1.2, API 2025-10): the same operations, by host and by name, the control plane,
/// and a quota refusal it retries on its own; then, against a lagging emulator, a read that waits for its write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_rest_client_8_works_through_the_front_door() {
    let Some(py) = tool("PINECONE_GATEWAY_PYTHON") else {
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/rest_client_8.py");
    let env = env(CLIENTS_CONFIG).await;
    let host = rest(&env);
    let out = {
        let py = py.clone();
        tokio::task::spawn_blocking(move || run_program(&py, &[script, &host, INDEX]))
            .await
            .unwrap()
    };
    assert!(out.contains("pinecone==8.1.2"), "{out}");
    let admin = env.gateway.as_ref().unwrap().admin_addr.unwrap();
    let refused = metric(
        &scrape(admin).await,
        r#"pinecone_gateway_calls_total{method="Fetch",code="ResourceExhausted",protocol="rest"}"#,
    );
    assert!(refused >= 1.0, "no guided fetch was refused: {refused}");
    let lagging = lagging_env().await;
    let host = rest(&lagging);
    let out =
        tokio::task::spawn_blocking(move || run_program(&py, &[script, &host, INDEX, "fresh"]))
            .await
            .unwrap();
    assert!(out.contains("read your writes, 3 checks passed"), "{out}");
}

/// The 10.2.0 client's reads wait for its writes (`x-consistency` sent as one of its `additional_headers`), against
/// an emulator that shows writes to reads only 300 ms later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_rest_client_reads_its_own_writes() {
    let Some(py) = tool("PINECONE_GATEWAY_PYTHON10") else {
        return;
    };
    let env = lagging_env().await;
    let host = rest(&env);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/rest_client_10.py"
    );
    let out =
        tokio::task::spawn_blocking(move || run_program(&py, &[script, &host, INDEX, "fresh"]))
            .await
            .unwrap();
    assert!(out.contains("read your writes, 3 checks passed"), "{out}");
    assert!(
        env.emulator.count(INDEX, "query") >= 2,
        "the query was sent again until fresh"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_typescript_sdk_works_through_the_front_door() {
    let Some(dir) = tool("PINECONE_GATEWAY_NODE_DIR") else {
        return;
    };
    let env = env(CLIENTS_CONFIG).await;
    let host = rest(&env);
    let script = format!("{dir}/rest_client.js");
    let out = tokio::task::spawn_blocking(move || run_program("node", &[&script, &host, INDEX]))
        .await
        .unwrap();
    assert!(out.contains("checks passed"), "{out}");
    assert!(env.emulator.count(INDEX, "upsert") >= 1);
}

#[tokio::test]
async fn answers_and_errors_have_pinecones_rest_shapes() {
    let env = env("").await;
    let base = format!("http://{}", rest(&env));
    let http = reqwest::Client::new();
    let up = http
        .post(format!("{base}/indexes/{INDEX}/vectors/upsert"))
        .json(&serde_json::json!({"vectors": [{"id": "a", "values": [1.0, 0.0, 0.0, 0.0], "metadata": {"k": "v"}}], "namespace": "ns"}))
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 200);
    assert!(up.headers().contains_key("x-pinecone-lsn-committed"));
    assert!(up.headers().contains_key("x-request-id"));
    assert_eq!(
        up.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"upsertedCount": 1})
    );
    // The default index, no path prefix.
    let f: serde_json::Value = http
        .get(format!("{base}/vectors/fetch?ids=a&namespace=ns"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(f["vectors"]["a"]["metadata"]["k"], "v", "{f}");
    assert_eq!(f["namespace"], "ns");
    let q: serde_json::Value = http
        .post(format!("{base}/query"))
        .json(&serde_json::json!({"topK": 1, "vector": [1.0, 0.0, 0.0, 0.0], "namespace": "ns", "includeMetadata": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(q["matches"][0]["id"], "a", "{q}");
    // Namespaces by path.
    let ns: serde_json::Value = http
        .get(format!("{base}/indexes/{INDEX}/namespaces/ns"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ns["name"], "ns", "{ns}");
    let listed: serde_json::Value = http
        .get(format!("{base}/namespaces"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["namespaces"][0]["name"], "ns", "{listed}");

    // Bad input: 400, Pinecone's body, the field named; nothing sent.
    let before = env.emulator.total_requests();
    let bad = http
        .post(format!("{base}/query"))
        .json(&serde_json::json!({"topK": 0, "vector": [1.0, 0.0, 0.0, 0.0]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["code"], 3, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("top_k"),
        "{body}"
    );
    let broken = http
        .post(format!("{base}/vectors/upsert"))
        .body("{\"vectors\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    assert_eq!(env.emulator.total_requests(), before, "nothing was sent");
    let unknown = http.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    // Control-plane operations other than describe index: refused in the control plane's error shape, named.
    let create = http
        .post(format!("{base}/indexes"))
        .json(&serde_json::json!({"name": "new", "dimension": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(create.status(), 501);
    let body: serde_json::Value = create.json().await.unwrap();
    assert_eq!(body["status"], 501, "{body}");
    assert_eq!(body["error"]["code"], "UNIMPLEMENTED", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("POST /indexes"),
        "{body}"
    );
    let delete_index = http
        .delete(format!("{base}/indexes/{INDEX}"))
        .send()
        .await
        .unwrap();
    assert_eq!(delete_index.status(), 501);
    assert_eq!(env.emulator.count("control", "delete_index"), 0);
    let gone = http
        .delete(format!("{base}/namespaces/ns"))
        .send()
        .await
        .unwrap();
    assert!(gone.status().is_success(), "{}", gone.status());
    let after = http
        .get(format!("{base}/namespaces/ns"))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 404);
    // Counted as REST calls.
    let metrics = scrape(env.gateway.as_ref().unwrap().admin_addr.unwrap()).await;
    assert_eq!(
        metric(
            &metrics,
            r#"pinecone_gateway_calls_total{method="Fetch",code="OK",protocol="rest"}"#
        ),
        1.0,
        "{metrics}"
    );
}

/// One limit for both doors: a gRPC fetch takes the only turn of the second, and a REST fetch straight after is
/// refused with 429, `Retry-After` and the limit named (the queue may not wait long enough here).
#[tokio::test]
async fn rest_and_grpc_callers_share_one_limit() {
    let env = env(
        "[limits]\nmax_queue_wait_ms = 10\n[limits.rates.fetch]\nindex_requests_per_second = 1\n\
         [coalescing]\nfetch = false\n",
    )
    .await;
    env.vectors()
        .fetch(req(p::FetchRequest {
            ids: vec!["g".into()],
            namespace: "ns".into(),
        }))
        .await
        .unwrap();
    let r = reqwest::get(format!(
        "http://{}/indexes/{INDEX}/vectors/fetch?ids=r&namespace=ns",
        rest(&env)
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 429);
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], 8, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("fetch"),
        "{body}"
    );
    assert_eq!(env.emulator.count(INDEX, "fetch"), 1);
}

/// With caller authentication on, the REST client's `Api-Key` is the caller's token: a token limited to another index
/// is refused (403) and an unknown one is 401; nothing reaches Pinecone, and the token is never forwarded.
#[tokio::test]
async fn the_api_key_is_the_callers_token() {
    let env = env(
        "[auth]\nenabled = true\n[[auth.tokens]]\nname = \"search\"\ntoken = \"rest-caller-token-0001\"\nindexes = [\"elsewhere\"]\n",
    )
    .await;
    let http = reqwest::Client::new();
    let url = format!(
        "http://{}/indexes/{INDEX}/vectors/fetch?ids=a&namespace=ns",
        rest(&env)
    );
    let denied = http
        .get(&url)
        .header("Api-Key", "rest-caller-token-0001")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    let unknown = http
        .get(&url)
        .header("Api-Key", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);
    assert_eq!(env.emulator.total_requests(), 0);
}

/// Read your writes through the REST door: a REST caller's query with `x-consistency: read-your-writes` waits for its
/// own lagging write and reflects it, with the LSN and freshness headers on the answers.
#[tokio::test]
async fn read_your_writes_works_through_the_rest_door() {
    let env = lagging_env().await;
    let base = format!("http://{}", rest(&env));
    let http = reqwest::Client::new();
    let written = http
        .post(format!("{base}/vectors/upsert"))
        .header("x-caller", "svc")
        .json(&serde_json::json!({"vectors": [{"id": "mine", "values": [1.0, 0.0, 0.0, 0.0]}], "namespace": "ns"}))
        .send()
        .await
        .unwrap();
    assert_eq!(written.status(), 200);
    assert_eq!(written.headers()["x-pinecone-request-lsn"], "1");
    let read = http
        .post(format!("{base}/query"))
        .header("x-caller", "svc")
        .header("x-consistency", "read-your-writes")
        .json(&serde_json::json!({"topK": 5, "vector": [1.0, 0.0, 0.0, 0.0], "namespace": "ns"}))
        .send()
        .await
        .unwrap();
    assert_eq!(read.headers()["x-consistency-stale"], "false");
    let body: serde_json::Value = read.json().await.unwrap();
    assert_eq!(body["matches"][0]["id"], "mine", "{body}");
}

/// A REST fetch and a gRPC fetch of the same namespace coalesce together: with the fetch limit's only turn of the
/// second taken, 20 fetches from each door arrive at once and go out as one upstream request at the next turn; every
/// caller gets exactly its record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_and_grpc_fetches_coalesce_together() {
    let env = env("[limits.rates.fetch]\nindex_requests_per_second = 1\n").await;
    env.seed("ns", "r", 40).await;
    // The only turn of this second.
    env.vectors()
        .fetch(req(p::FetchRequest {
            ids: vec!["warm".into()],
            namespace: "ns".into(),
        }))
        .await
        .unwrap();
    let before = env.emulator.count(INDEX, "fetch");
    let base = format!("http://{}", rest(&env));
    let mut calls = Vec::new();
    for i in 0..40 {
        let id = format!("r-{i:04}");
        if i % 2 == 0 {
            let mut c = env.vectors();
            calls.push(tokio::spawn(async move {
                let r = c
                    .fetch(req(p::FetchRequest {
                        ids: vec![id.clone()],
                        namespace: "ns".into(),
                    }))
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(r.vectors.keys().collect::<Vec<_>>(), [&id]);
            }));
        } else {
            let url = format!("{base}/vectors/fetch?ids={id}&namespace=ns");
            calls.push(tokio::spawn(async move {
                let r: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
                let got: Vec<&String> = r["vectors"].as_object().unwrap().keys().collect();
                assert_eq!(got, [&id], "{r}");
            }));
        }
    }
    for c in calls {
        c.await.unwrap();
    }
    assert_eq!(
        env.emulator.count(INDEX, "fetch") - before,
        1,
        "40 fetches from both doors went out as one request"
    );
}

/// A body sent with `Content-Encoding: gzip` is read (compressed here by the system's gzip), and the body limit counts
/// the decompressed bytes; a body past it is 400 in Pinecone's shape naming the limit.
#[tokio::test]
async fn gzip_request_bodies_are_read_and_the_limit_counts_what_they_expand_to() {
    let env = env("[server]\nmax_message_bytes = 4096\n").await;
    let gzip = |bytes: &[u8]| -> Vec<u8> {
        use std::io::Write;
        let mut child = std::process::Command::new("gzip")
            .arg("-c")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(bytes).unwrap();
        child.wait_with_output().unwrap().stdout
    };
    let url = format!("http://{}/vectors/upsert", rest(&env));
    let small = serde_json::json!({"vectors": [{"id": "z", "values": [1.0, 0.0, 0.0, 0.0]}], "namespace": "gz"});
    let r = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip(small.to_string().as_bytes()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(env.emulator.count(INDEX, "upsert"), 1);
    // 20 KB of JSON that gzip makes tiny: over the 4 KB limit once expanded, so refused; nothing sent.
    let big = serde_json::json!({"vectors": [{"id": "z", "values": [1.0, 0.0, 0.0, 0.0], "metadata": {"pad": "a".repeat(20_000)}}], "namespace": "gz"});
    let compressed = gzip(big.to_string().as_bytes());
    assert!(compressed.len() < 4096);
    let r = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(compressed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["code"], 3,
        "INVALID_ARGUMENT in Pinecone's shape: {body}"
    );
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("server.max_message_bytes (4096 bytes"),
        "{body}"
    );
    // The same body uncompressed: the same refusal.
    let r = reqwest::Client::new()
        .post(&url)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("max_message_bytes"));
    assert_eq!(
        env.emulator.count(INDEX, "upsert"),
        1,
        "nothing more was sent"
    );
}

/// A body field Pinecone's API does not define is refused, 400 naming its path, nothing sent (the JSON mapping
/// alone would drop it without a word).
#[tokio::test]
async fn an_unknown_body_field_is_refused_by_its_path() {
    let env = env("").await;
    let base = format!("http://{}", rest(&env));
    let r = reqwest::Client::new()
        .post(format!("{base}/vectors/upsert"))
        .json(&serde_json::json!({"vectors": [{"id": "a", "values": [1.0, 0.0, 0.0, 0.0], "metdata": {"k": "v"}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], 3, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("`vectors[0].metdata`"),
        "{body}"
    );
    assert_eq!(env.emulator.count(INDEX, "upsert"), 0);
}
