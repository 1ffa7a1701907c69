//! Messages a caller should not send: malformed protobuf (truncated, a wrong wire type, invalid UTF-8, nesting past
//! the recursion limit) is INVALID_ARGUMENT naming the message; more IDs than one call may carry are refused before
//! the message is decoded; a message over `server.max_message_bytes`, or one that would take the requests held at
//! once past `server.max_buffered_request_bytes`, is RESOURCE_EXHAUSTED naming the setting. None reaches Pinecone.
mod common;
use bytes::{Buf, BufMut};
use common::*;
use pinecone_gateway::emulator::faults::Faults;
use pinecone_gateway::pb::pinecone as p;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Sends bytes as they are.
#[derive(Clone, Default)]
struct Raw;

struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

async fn send(env: &Env, path: &'static str, bytes: Vec<u8>) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(env.channel())
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX);
    grpc.ready().await.unwrap();
    grpc.unary(
        req(bytes),
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        Raw,
    )
    .await
    .expect_err("the message must be refused")
}

/// A filter nested `depth` Structs deep.
fn nested(depth: usize) -> pbjson_types::Struct {
    let mut s: pbjson_types::Struct = [("a".to_string(), pbjson_types::Value::from(1.0))]
        .into_iter()
        .collect();
    for _ in 0..depth {
        s = [("$and".to_string(), pbjson_types::Value::from(s))]
            .into_iter()
            .collect();
    }
    s
}

#[tokio::test]
async fn malformed_protobuf_is_invalid_argument_naming_the_message() {
    let env = Env::start().await;
    for (what, path, bytes, want) in [
        (
            "truncated",
            "/VectorService/Fetch",
            vec![0x0a, 0x05, 0x64, 0x6f, 0x63],
            "FetchRequest",
        ),
        (
            "a wrong wire type",
            "/VectorService/Fetch",
            vec![0x08, 0x01],
            "FetchRequest",
        ),
        (
            "invalid UTF-8",
            "/VectorService/Delete",
            vec![0x0a, 0x02, 0xff, 0xfe],
            "DeleteRequest",
        ),
        (
            "nesting past the recursion limit",
            "/VectorService/Query",
            p::QueryRequest {
                top_k: 1,
                id: "a".into(),
                filter: Some(nested(120)),
                ..Default::default()
            }
            .encode_to_vec(),
            "100 levels",
        ),
    ] {
        let s = send(&env, path, bytes).await;
        assert_eq!(s.code(), tonic::Code::InvalidArgument, "{what}: {s:?}");
        assert!(s.message().contains(want), "{what}: {s:?}");
    }
    assert_eq!(env.emulator.total_requests(), 0);
}

#[tokio::test]
async fn more_ids_than_a_call_may_carry_are_refused_before_decoding() {
    let env = Env::start().await;
    let m = p::FetchRequest {
        ids: vec!["a".into(); 100_001],
        namespace: String::new(),
    };
    let s = send(&env, "/VectorService/Fetch", m.encode_to_vec()).await;
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("ids: 100001 in one call"), "{s:?}");
    assert!(s.message().contains("at most 100000"), "{s:?}");
    assert_eq!(env.emulator.total_requests(), 0);
}

#[tokio::test]
async fn a_message_over_the_limit_is_resource_exhausted_naming_the_setting() {
    let env = Env::start_with(EnvOptions {
        config: Some("[server]\nmax_message_bytes = 1048576\n".into()),
        ..Default::default()
    })
    .await;
    let m = p::FetchRequest {
        ids: (0..4000).map(|i| format!("{i:0>500}")).collect(),
        namespace: String::new(),
    };
    assert!(m.encoded_len() > 1_048_576);
    let s = send(&env, "/VectorService/Fetch", m.encode_to_vec()).await;
    assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
    assert!(s.message().contains("server.max_message_bytes"), "{s:?}");
    assert_eq!(env.emulator.total_requests(), 0);
}

fn upsert(prefix: &str) -> p::UpsertRequest {
    p::UpsertRequest {
        vectors: (0..600)
            .map(|i| p::Vector {
                id: format!("{prefix}-{i}"),
                values: vec![0.5; 400],
                ..Default::default()
            })
            .collect(),
        namespace: "ns".into(),
    }
}

#[tokio::test]
async fn requests_held_at_once_stay_within_the_budget() {
    let env = Env::start_with(EnvOptions {
        config: Some(
            "[server]\nmax_message_bytes = 1048576\nmax_buffered_request_bytes = 1572864\n".into(),
        ),
        ..Default::default()
    })
    .await;
    // Make the index's dimension fit, and warm the host cache.
    env.emulator
        .create_index("wide", 400, "cosine")
        .await
        .unwrap();
    let mut v = env.vectors();
    v.describe_index_stats(req_for("wide", p::DescribeIndexStatsRequest::default()))
        .await
        .unwrap();
    assert!(upsert("a").encoded_len() > 900_000);
    // The first upsert is held (Pinecone takes 2 s to answer) with its ~960 KB.
    env.emulator.set_faults(Faults {
        delay_ms: 2000,
        ..Default::default()
    });
    let first = tokio::spawn({
        let mut v = env.vectors();
        async move { v.upsert(req_for("wide", upsert("a"))).await }
    });
    env.emulator
        .wait_until(|e| e.count("wide", "upsert") >= 1)
        .await;
    let e = v.upsert(req_for("wide", upsert("b"))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(
        e.message().contains("server.max_buffered_request_bytes"),
        "{e:?}"
    );
    assert!(e.metadata().get("grpc-retry-pushback-ms").is_some());
    assert_eq!(
        env.emulator.count("wide", "upsert"),
        1,
        "nothing more went upstream"
    );
    first.await.unwrap().unwrap();
    // Once answered, its bytes are given back.
    env.emulator.set_faults(Faults::default());
    v.upsert(req_for("wide", upsert("c"))).await.unwrap();
}
