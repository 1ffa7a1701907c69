//! IDs, namespaces and prefixes with characters that URLs escape (space, `+`, `/`, `#`, `?`, `&`, `=`, `%`) reach
//! Pinecone as the caller wrote them. The emulator reads query strings as Pinecone does (percent-decoding only, so
//! a `+` is a plus sign): an ID with a space sent as `+` would come back missing.
mod common;
use common::*;
use pinecone_gateway::pb::pinecone as p;

const NS: &str = "my ns+1";
const IDS: [&str; 4] = ["doc 1", "doc+2", "a/b#c?d&e=f%25g", "plain"];

fn vector(id: &str) -> p::Vector {
    p::Vector {
        id: id.into(),
        values: vec![1.0, 2.0, 3.0, 4.0],
        ..Default::default()
    }
}

#[tokio::test]
async fn escaped_characters_reach_pinecone_as_written() {
    let env = Env::start().await;
    let mut v = env.vectors();
    v.upsert(req(p::UpsertRequest {
        vectors: IDS.iter().map(|id| vector(id)).collect(),
        namespace: NS.into(),
    }))
    .await
    .unwrap();

    let fetched = v
        .fetch(req(p::FetchRequest {
            ids: IDS.iter().map(|s| s.to_string()).collect(),
            namespace: NS.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let mut got: Vec<&str> = fetched.vectors.keys().map(String::as_str).collect();
    got.sort();
    let mut want = IDS.to_vec();
    want.sort();
    assert_eq!(got, want);

    for (prefix, want) in [
        ("doc ", vec!["doc 1"]),
        ("doc+", vec!["doc+2"]),
        ("a/b#", vec!["a/b#c?d&e=f%25g"]),
    ] {
        let listed = v
            .list(req(p::ListRequest {
                prefix: Some(prefix.into()),
                namespace: NS.into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        let ids: Vec<_> = listed.vectors.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, want, "prefix {prefix:?}");
    }

    let namespaces = v
        .list_namespaces(req(p::ListNamespacesRequest {
            prefix: Some("my ns".into()),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = namespaces
        .namespaces
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(names, [NS]);
    let described = v
        .describe_namespace(req(p::DescribeNamespaceRequest {
            namespace: NS.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((described.name.as_str(), described.record_count), (NS, 4));
}
