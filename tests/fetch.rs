//! Fetch by ID through the gateway: present and missing IDs, the default namespace under both names.
mod common;
use common::*;
use pinecone_gateway::pb::pinecone as p;

#[tokio::test]
async fn fetch_returns_present_ids_and_omits_missing_ones() {
    let env = Env::start().await;
    env.seed("books", "doc", 3).await;
    let r = env
        .vectors()
        .fetch(req(p::FetchRequest {
            ids: vec!["doc-0001".into(), "nope".into()],
            namespace: "books".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.namespace, "books");
    assert_eq!(r.vectors.len(), 1);
    let v = &r.vectors["doc-0001"];
    assert_eq!(v.values, vec![1.0, 1.0, 0.5, 0.25]);
    let m = v.metadata.as_ref().unwrap();
    assert_eq!(m.fields["parity"], json_str("odd"));
    assert_eq!(m.fields["n"], json_num(1.0));
    assert_eq!(r.usage.unwrap().read_units, Some(1));
    assert_eq!(env.emulator.count(INDEX, "fetch"), 1);
}

#[tokio::test]
async fn default_namespace_has_two_names() {
    let env = Env::start().await;
    env.seed("", "a", 2).await;
    for ns in ["", "__default__"] {
        let r = env
            .vectors()
            .fetch(req(p::FetchRequest {
                ids: vec!["a-0000".into(), "a-0001".into()],
                namespace: ns.into(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.vectors.len(), 2, "namespace {ns:?}");
    }
    // Written under the explicit name, read under the empty one.
    env.seed("__default__", "b", 1).await;
    let r = env
        .vectors()
        .fetch(req(p::FetchRequest {
            ids: vec!["b-0000".into()],
            namespace: "".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(r.vectors.contains_key("b-0000"));
}

#[tokio::test]
async fn ids_with_url_special_characters_round_trip() {
    let env = Env::start().await;
    let ids = ["a b", "c/d", "e&f=g", "h#1", "i+j", "k%20"];
    let vectors = ids
        .iter()
        .map(|id| p::Vector {
            id: id.to_string(),
            values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        })
        .collect();
    env.vectors()
        .upsert(req(p::UpsertRequest {
            vectors,
            namespace: "x y".into(),
        }))
        .await
        .unwrap();
    let r = env
        .vectors()
        .fetch(req(p::FetchRequest {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            namespace: "x y".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let mut got: Vec<_> = r.vectors.keys().cloned().collect();
    got.sort();
    let mut want: Vec<_> = ids.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
}
