//! Pinecone's data plane: its REST bodies are the protobuf JSON mapping of the data-plane proto (the one the gateway
//! serves), so requests are encoded from, and answers decoded into, the generated messages by pbjson.
//!
//! Decoding follows the mapping, which is what Pinecone sends where it differs from its OpenAPI file: 64-bit
//! integers as strings (`"record_count": "5000"`), default values omitted (a namespace with no records is `{}`),
//! lowerCamelCase or proto names (`memoryFullness` and `memory_fullness`), `null` as the default (build.rs makes
//! pbjson's generated code accept it), unknown fields ignored. Encoding omits default values, as the mapping does.

use crate::pb::pinecone as p;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The default namespace has two names since API 2025-04.
pub const DEFAULT_NAMESPACE: &str = "__default__";

/// One key for the default namespace, whichever name the caller used.
pub fn normalize_namespace(ns: &str) -> &str {
    if ns.is_empty() { DEFAULT_NAMESPACE } else { ns }
}

/// A request body. Serializing generated messages cannot fail (map keys are strings); `{}` is the fallback anyway.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    serde_json::to_vec(message).unwrap_or_else(|_| b"{}".to_vec())
}

/// An answer body.
pub fn decode<T: DeserializeOwned + Tidy>(body: &[u8]) -> Result<T, serde_json::Error> {
    let mut message: T = serde_json::from_slice(body)?;
    message.tidy();
    Ok(message)
}

/// What the mapping cannot say on its own: Pinecone's last page may carry `"pagination": {}` (the spec makes `next`
/// optional), which means no next page, as an absent `pagination` does.
pub trait Tidy {
    fn tidy(&mut self) {}
}

fn no_empty_page(pagination: &mut Option<p::Pagination>) {
    if pagination.as_ref().is_some_and(|pg| pg.next.is_empty()) {
        *pagination = None;
    }
}

impl Tidy for p::ListResponse {
    fn tidy(&mut self) {
        no_empty_page(&mut self.pagination);
    }
}

impl Tidy for p::FetchByMetadataResponse {
    fn tidy(&mut self) {
        no_empty_page(&mut self.pagination);
    }
}

impl Tidy for p::ListNamespacesResponse {
    fn tidy(&mut self) {
        no_empty_page(&mut self.pagination);
    }
}

impl Tidy for p::UpsertResponse {}
impl Tidy for p::FetchResponse {}
impl Tidy for p::QueryResponse {}
impl Tidy for p::UpdateResponse {}
impl Tidy for p::DescribeIndexStatsResponse {}
impl Tidy for p::NamespaceDescription {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_decode_by_the_json_mapping() {
        let ns: p::NamespaceDescription =
            decode(br#"{"name":"a","record_count":"5000","unknown":[1]}"#).unwrap();
        assert_eq!(ns.record_count, 5000);
        let ns: p::NamespaceDescription = decode(br#"{"name":"a","recordCount":7}"#).unwrap();
        assert_eq!(ns.record_count, 7);
        let stats: p::DescribeIndexStatsResponse = decode(
            br#"{"namespaces":{"":{},"b":{"vectorCount":"3"}},"memoryFullness":0.5,"storage_fullness":0.25,
                "totalVectorCount":3,"dimension":null}"#,
        )
        .unwrap();
        assert_eq!(stats.namespaces[""].vector_count, 0);
        assert_eq!(stats.namespaces["b"].vector_count, 3);
        assert_eq!(stats.memory_fullness, Some(0.5));
        assert_eq!(stats.storage_fullness, Some(0.25));
        assert_eq!(stats.dimension, None);
    }

    #[test]
    fn null_reads_as_the_default_for_every_kind_of_field() {
        let list: p::ListResponse =
            decode(br#"{"vectors":null,"namespace":null,"pagination":null,"usage":null}"#).unwrap();
        assert_eq!(list, p::ListResponse::default());
        let stats: p::DescribeIndexStatsResponse = decode(
            br#"{"namespaces":null,"indexFullness":null,"totalVectorCount":null,"metric":null}"#,
        )
        .unwrap();
        assert_eq!(stats, p::DescribeIndexStatsResponse::default());
        let fetch: p::FetchResponse = decode(
            br#"{"vectors":{"a":{"id":"a","values":null,"sparseValues":null,"metadata":null}}}"#,
        )
        .unwrap();
        assert!(fetch.vectors["a"].values.is_empty());
    }

    #[test]
    fn an_empty_pagination_is_the_last_page() {
        let list: p::ListResponse = decode(br#"{"vectors":[{"id":"x"}],"pagination":{}}"#).unwrap();
        assert_eq!(list.pagination, None);
        let list: p::ListResponse = decode(br#"{"pagination":{"next":"t"}}"#).unwrap();
        assert_eq!(list.pagination.unwrap().next, "t");
    }

    #[test]
    fn requests_encode_in_lower_camel_case_without_defaults() {
        let q = p::QueryRequest {
            top_k: 3,
            include_metadata: true,
            vector: vec![0.5, 1.0],
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(encode(&q)).unwrap(),
            r#"{"topK":3,"includeMetadata":true,"vector":[0.5,1.0]}"#
        );
        let d = p::DeleteRequest {
            delete_all: true,
            namespace: "ns".into(),
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(encode(&d)).unwrap(),
            r#"{"deleteAll":true,"namespace":"ns"}"#
        );
    }
}
