//! Property tests, bounded: the filter parser takes any JSON without panicking; and valid requests of every
//! VectorService method, mutated at random on the wire (bytes flipped, inserted, removed, the message cut short), sent
//! to a running gateway, never end INTERNAL or UNKNOWN, and none refused as INVALID_ARGUMENT reaches Pinecone.
mod common;
use common::*;
use pinecone_gateway::pb::pinecone as p;
use proptest::prelude::*;
use prost::Message;
use serde_json::{Map, Value};

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[$a-z]{0,6}".prop_map(Value::String),
        prop_oneof![
            Just("$eq"),
            Just("$in"),
            Just("$and"),
            Just("$or"),
            Just("$gt"),
            Just("$exists")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("$and".to_string()),
                    Just("$or".to_string()),
                    Just("$in".to_string()),
                    Just("$eq".to_string()),
                    Just("$gt".to_string()),
                    "[a-z]{1,4}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_filter_parser_takes_any_json(v in json()) {
        if let Value::Object(m) = v {
            let _ = pinecone_gateway::filter::parse("filter", &m);
        }
    }
}

/// A valid request of each method, encoded: what the mutations start from.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let filter: pbjson_types::Struct = [(
        "genre".to_string(),
        pbjson_types::Value::from(
            [(
                "$in".to_string(),
                pbjson_types::Value::from(vec![pbjson_types::Value::from("a")]),
            )]
            .into_iter()
            .collect::<pbjson_types::Struct>(),
        ),
    )]
    .into_iter()
    .collect();
    vec![
        (
            "/VectorService/Upsert",
            p::UpsertRequest {
                vectors: vec![p::Vector {
                    id: "a".into(),
                    values: vec![1.0, 2.0, 3.0, 4.0],
                    sparse_values: Some(p::SparseValues {
                        indices: vec![1, 2],
                        values: vec![0.5, 0.25],
                    }),
                    metadata: Some(filter.clone()),
                }],
                namespace: "ns".into(),
            }
            .encode_to_vec(),
        ),
        (
            "/VectorService/Fetch",
            p::FetchRequest {
                ids: vec!["a".into(), "b".into()],
                namespace: "ns".into(),
            }
            .encode_to_vec(),
        ),
        (
            "/VectorService/Delete",
            p::DeleteRequest {
                ids: vec!["a".into()],
                namespace: "ns".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/VectorService/Query",
            p::QueryRequest {
                namespace: "ns".into(),
                top_k: 3,
                vector: vec![1.0, 2.0, 3.0, 4.0],
                filter: Some(filter.clone()),
                include_metadata: true,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/VectorService/Update",
            p::UpdateRequest {
                id: "a".into(),
                set_metadata: Some(filter.clone()),
                namespace: "ns".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/VectorService/List",
            p::ListRequest {
                prefix: Some("a".into()),
                limit: Some(10),
                namespace: "ns".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/VectorService/FetchByMetadata",
            p::FetchByMetadataRequest {
                namespace: "ns".into(),
                filter: Some(filter),
                limit: Some(5),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/VectorService/DescribeNamespace",
            p::DescribeNamespaceRequest {
                namespace: "ns".into(),
            }
            .encode_to_vec(),
        ),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Cut(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Cut),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let n = bytes.len().max(1);
        match *m {
            Mutation::Flip(i, b) if !bytes.is_empty() => bytes[i % n] ^= b,
            Mutation::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
            Mutation::Remove(i) if !bytes.is_empty() => {
                bytes.remove(i % n);
            }
            Mutation::Cut(i) => bytes.truncate(i % n),
            _ => {}
        }
    }
    bytes
}

mod raw {
    use bytes::{Buf, BufMut};
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

    /// Sends bytes as they are; reads the answer as bytes.
    #[derive(Clone, Default)]
    pub struct Raw;
    pub struct E;
    pub struct D;

    impl Encoder for E {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
            buf.put_slice(&item);
            Ok(())
        }
    }

    impl Decoder for D {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
            Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
        }
    }

    impl Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = E;
        type Decoder = D;
        fn encoder(&mut self) -> E {
            E
        }
        fn decoder(&mut self) -> D {
            D
        }
    }
}

#[test]
fn mutated_messages_end_with_a_caller_status_and_invalid_ones_never_reach_pinecone() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = rt.block_on(Env::start());
    let seeds = seeds();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 600,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &(0..seeds.len(), prop::collection::vec(mutation(), 1..4)),
            |(which, mutations)| {
                let (path, seed) = &seeds[which];
                let bytes = mutate(seed.clone(), &mutations);
                let before = env.emulator.total_requests();
                rt.block_on(async {
                    let mut grpc = tonic::client::Grpc::new(env.channel());
                    grpc.ready().await.unwrap();
                    let mut r = req(bytes.clone());
                    r.set_timeout(std::time::Duration::from_secs(5));
                    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
                    if let Err(s) = grpc.unary(r, path, raw::Raw).await {
                        prop_assert!(
                            !matches!(s.code(), tonic::Code::Internal | tonic::Code::Unknown),
                            "{bytes:02x?}: {s:?}"
                        );
                        // Only Pinecone knows an index's dimension and can read its own pagination tokens
                        // (opaque to the gateway): a vector of another length or a mangled token is its 400,
                        // passed on as INVALID_ARGUMENT. Anything else the gateway refuses never leaves it.
                        let pinecones = s.message().starts_with("Pinecone answered 400")
                            && (s.message().contains("dimension")
                                || s.message().contains("pagination token"));
                        if s.code() == tonic::Code::InvalidArgument && !pinecones {
                            prop_assert_eq!(
                                env.emulator.total_requests(),
                                before,
                                "refused input reached Pinecone: {:?}",
                                s
                            );
                        }
                    }
                    Ok(())
                })?;
                Ok(())
            },
        )
        .unwrap();
}
