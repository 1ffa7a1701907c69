//! The emulator answers with Pinecone's log sequence numbers, as the "check data freshness" guide describes: every
//! write to a namespace (upsert, update, delete) gets the next LSN of that namespace in `x-pinecone-request-lsn`, a
//! write to another namespace does not move it, a refused write takes none, and a query carries the highest LSN its
//! namespace has applied in `x-pinecone-max-indexed-lsn`. Straight to the emulator's REST API, no gateway.
mod common;
use common::*;

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

#[tokio::test]
async fn writes_get_the_next_lsn_of_their_namespace_and_queries_carry_the_applied_one() {
    let env = Env::start().await;
    let host = env.index_host().await;
    let http = reqwest::Client::new();
    let upsert = |ns: &str, id: &str| serde_json::json!({"namespace": ns, "vectors": [{"id": id, "values": [1.0, 2.0, 3.0, 4.0]}]});
    let query =
        |ns: &str| serde_json::json!({"namespace": ns, "topK": 1, "vector": [1.0, 2.0, 3.0, 4.0]});
    const WRITE: &str = "x-pinecone-request-lsn";
    const APPLIED: &str = "x-pinecone-max-indexed-lsn";

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
