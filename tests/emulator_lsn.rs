//! The emulator answers with Pinecone's log sequence numbers, as the "check data freshness" guide describes: every
//! write to a namespace (upsert, update, delete) gets the next LSN of that namespace (`x-pinecone-request-lsn`, or
//! `x-pinecone-lsn-committed` as Pinecone's current SDK reads it), a write to another namespace does not move it, a
//! refused write takes none, and a query carries the highest LSN its namespace has applied
//! (`x-pinecone-max-indexed-lsn`, or `x-pinecone-lsn-reconciled`); which names, as `--lsn-headers` or a request's
//! `x-emulator-lsn-headers` says. Every answer carries an `x-pinecone-request-id`. Straight to the emulator's REST
//! API, no gateway.
#![allow(non_snake_case)] // the header names of `numbering`, as constants would be

mod common;
use common::*;
use pinecone_gateway::emulator::LsnSpelling;

async fn send(
    http: &reqwest::Client,
    host: &str,
    path: &str,
    body: serde_json::Value,
) -> reqwest::Response {
    http.post(format!("http://{host}/{path}"))
        .header("Api-Key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn header(resp: &reqwest::Response, name: &str) -> Option<u64> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().parse().unwrap())
}

async fn env_spelling(spelling: LsnSpelling) -> Env {
    Env::start_with(EnvOptions {
        lsn_spelling: spelling,
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn lsns_under_the_freshness_guides_names() {
    numbering(
        LsnSpelling::Guide,
        "x-pinecone-request-lsn",
        "x-pinecone-max-indexed-lsn",
    )
    .await;
}

#[tokio::test]
async fn lsns_under_the_current_sdks_names() {
    numbering(
        LsnSpelling::Current,
        "x-pinecone-lsn-committed",
        "x-pinecone-lsn-reconciled",
    )
    .await;
}

/// Writes get the next LSN of their namespace, and queries carry the applied one, under the names `WRITE` and
/// `APPLIED`.
async fn numbering(spelling: LsnSpelling, WRITE: &str, APPLIED: &str) {
    let env = env_spelling(spelling).await;
    let host = env.index_host().await;
    let http = reqwest::Client::new();
    let upsert = |ns: &str, id: &str| serde_json::json!({"namespace": ns, "vectors": [{"id": id, "values": [1.0, 2.0, 3.0, 4.0]}]});
    let query =
        |ns: &str| serde_json::json!({"namespace": ns, "topK": 1, "vector": [1.0, 2.0, 3.0, 4.0]});

    let r = send(&http, &host, "query", query("a")).await;
    assert_eq!((r.status().as_u16(), header(&r, APPLIED)), (200, Some(0)));
    let r = send(&http, &host, "vectors/upsert", upsert("a", "x")).await;
    assert_eq!(header(&r, WRITE), Some(1));
    let r = send(&http, &host, "vectors/upsert", upsert("a", "y")).await;
    assert_eq!(header(&r, WRITE), Some(2));
    // Another namespace counts on its own.
    let r = send(&http, &host, "vectors/upsert", upsert("b", "x")).await;
    assert_eq!(header(&r, WRITE), Some(1));
    let r = send(
        &http,
        &host,
        "vectors/update",
        serde_json::json!({"namespace": "a", "id": "x", "values": [4.0, 3.0, 2.0, 1.0]}),
    )
    .await;
    assert_eq!((r.status().as_u16(), header(&r, WRITE)), (200, Some(3)));
    let r = send(
        &http,
        &host,
        "vectors/delete",
        serde_json::json!({"namespace": "a", "ids": ["y"]}),
    )
    .await;
    assert_eq!((r.status().as_u16(), header(&r, WRITE)), (200, Some(4)));
    // A refused write (a vector of the wrong dimension) takes no LSN.
    let r = send(
        &http,
        &host,
        "vectors/upsert",
        serde_json::json!({"namespace": "a", "vectors": [{"id": "z", "values": [1.0]}]}),
    )
    .await;
    assert_eq!((r.status().as_u16(), header(&r, WRITE)), (400, None));
    let r = send(&http, &host, "query", query("a")).await;
    assert_eq!(header(&r, APPLIED), Some(4));
    let r = send(&http, &host, "query", query("b")).await;
    assert_eq!(header(&r, APPLIED), Some(1));
    // The default namespace is one namespace however it is named.
    let r = send(&http, &host, "vectors/upsert", upsert("", "x")).await;
    assert_eq!(header(&r, WRITE), Some(1));
    let r = send(&http, &host, "vectors/upsert", upsert("__default__", "y")).await;
    assert_eq!(header(&r, WRITE), Some(2));
}

/// With an index lag, a write is acknowledged (with its LSN) at once and reads see it only when it is due: a query
/// before then misses the record and carries the LSN before the write; a fetch misses it too.
#[tokio::test]
async fn a_lagging_index_shows_a_write_only_when_it_is_due() {
    let env = env_spelling(LsnSpelling::Guide).await;
    let host = env.index_host().await;
    let http = reqwest::Client::new();
    let lagged = |path: &str, lag_ms: u64, body: serde_json::Value| {
        http.post(format!("http://{host}/{path}"))
            .header("Api-Key", KEY)
            .header("x-emulator-index-lag-ms", lag_ms.to_string())
            .json(&body)
    };
    let record = serde_json::json!({"namespace": "n", "vectors": [{"id": "late", "values": [1.0, 0.0, 0.0, 0.0]}]});
    let r = lagged("vectors/upsert", 0, record.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-pinecone-request-lsn"), Some(1));
    let r = lagged("vectors/upsert", 60_000, serde_json::json!({"namespace": "n", "vectors": [{"id": "later", "values": [0.0, 1.0, 0.0, 0.0]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "x-pinecone-request-lsn"),
        Some(2),
        "acknowledged at once"
    );
    let query = serde_json::json!({"namespace": "n", "topK": 10, "vector": [1.0, 1.0, 0.0, 0.0]});
    let r = send(&http, &host, "query", query.clone()).await;
    assert_eq!(header(&r, "x-pinecone-max-indexed-lsn"), Some(1));
    let body: serde_json::Value = r.json().await.unwrap();
    let ids: Vec<&str> = body["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["late"], "the lagging write is not visible yet");
    let fetched: serde_json::Value = http
        .get(format!("http://{host}/vectors/fetch?ids=later&namespace=n"))
        .header("Api-Key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(fetched["vectors"].get("later").is_none(), "{fetched}");
    // The emulator-wide lag applies to writes without the header.
    env.emulator
        .set_index_lag(std::time::Duration::from_secs(60));
    let r = send(&http, &host, "vectors/upsert", serde_json::json!({"namespace": "m", "vectors": [{"id": "m1", "values": [1.0, 0.0, 0.0, 0.0]}]})).await;
    assert_eq!(header(&r, "x-pinecone-request-lsn"), Some(1));
    let r = send(
        &http,
        &host,
        "query",
        serde_json::json!({"namespace": "m", "topK": 1, "vector": [1.0, 0.0, 0.0, 0.0]}),
    )
    .await;
    assert_eq!(header(&r, "x-pinecone-max-indexed-lsn"), Some(0));
}

/// The current names are the default; a write's answer also says what its namespace had applied (lower than the
/// write's own while it lags, as in Pinecone's SDK tests), `both` sends every name, a request's header wins, and every
/// answer (errors too) has a request id of its own.
#[tokio::test]
async fn the_spelling_is_chosen_and_every_answer_has_a_request_id() {
    let env = Env::start().await;
    let host = env.index_host().await;
    let http = reqwest::Client::new();
    let post = |path: &str, spelling: Option<&str>, body: serde_json::Value| {
        let mut r = http
            .post(format!("http://{host}/{path}"))
            .header("Api-Key", KEY)
            .json(&body);
        if let Some(s) = spelling {
            r = r.header("x-emulator-lsn-headers", s);
        }
        r.send()
    };
    let record = |id: &str| serde_json::json!({"namespace": "s", "vectors": [{"id": id, "values": [1.0, 0.0, 0.0, 0.0]}]});
    let r = post("vectors/upsert", None, record("a")).await.unwrap();
    assert_eq!(header(&r, "x-pinecone-lsn-committed"), Some(1));
    assert_eq!(header(&r, "x-pinecone-lsn-reconciled"), Some(1));
    assert_eq!(header(&r, "x-pinecone-request-lsn"), None);
    let first_id = r.headers()["x-pinecone-request-id"].clone();
    env.emulator
        .set_index_lag(std::time::Duration::from_secs(60));
    let r = post("vectors/upsert", Some("both"), record("b"))
        .await
        .unwrap();
    assert_eq!(header(&r, "x-pinecone-lsn-committed"), Some(2));
    assert_eq!(header(&r, "x-pinecone-request-lsn"), Some(2));
    assert_eq!(
        header(&r, "x-pinecone-lsn-reconciled"),
        Some(1),
        "the lagging write is not applied yet"
    );
    assert_ne!(r.headers()["x-pinecone-request-id"], first_id);
    let query = serde_json::json!({"namespace": "s", "topK": 1, "vector": [1.0, 0.0, 0.0, 0.0]});
    let r = post("query", Some("guide"), query).await.unwrap();
    assert_eq!(header(&r, "x-pinecone-max-indexed-lsn"), Some(1));
    assert_eq!(header(&r, "x-pinecone-lsn-reconciled"), None);
    let refused = post(
        "vectors/upsert",
        None,
        serde_json::json!({"namespace": "s", "vectors": [{"id": "z", "values": [1.0]}]}),
    )
    .await
    .unwrap();
    assert_eq!(refused.status().as_u16(), 400);
    assert!(refused.headers().contains_key("x-pinecone-request-id"));
    let control = http
        .get(format!("{}/indexes/{INDEX}", env.emulator.url()))
        .header("Api-Key", KEY)
        .send()
        .await
        .unwrap();
    assert!(control.headers().contains_key("x-pinecone-request-id"));
}
