//! Pinecone's data-plane REST bodies (API 2025-10).
//!
//! camelCase except the documented snake_case fields (`memory_fullness`, `storage_fullness`, `record_count`,
//! `indexed_fields`, `total_count`). Absent optionals are omitted, never `null`, because the official SDKs reject
//! `null` in several places.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Metadata of a record, and the JSON form of a filter.
pub type Metadata = Map<String, Value>;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct SparseValues {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Vector {
    pub id: String,
    /// Always written: SDK 10.x rejects a fetched vector without `values`.
    #[serde(default)]
    pub values: Vec<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse_values: Option<SparseValues>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_units: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Pagination {
    pub next: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct UpsertRequest {
    pub vectors: Vec<Vector>,
    #[serde(default)]
    pub namespace: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpsertResponse {
    pub upserted_count: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeleteRequest {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_all: bool,
    #[serde(default)]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Metadata>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct FetchResponse {
    #[serde(default)]
    pub vectors: BTreeMap<String, Vector>,
    #[serde(default)]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FetchByMetadataRequest {
    #[serde(default)]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Metadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination_token: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct FetchByMetadataResponse {
    #[serde(default)]
    pub vectors: BTreeMap<String, Vector>,
    #[serde(default)]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
}

/// Query parameters of GET /vectors/list.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination_token: Option<String>,
    #[serde(default)]
    pub namespace: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ListItem {
    pub id: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ListResponse {
    #[serde(default)]
    pub vectors: Vec<ListItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
    #[serde(default)]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueryRequest {
    #[serde(default)]
    pub namespace: String,
    pub top_k: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Metadata>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_values: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_metadata: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse_vector: Option<SparseValues>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_factor: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_candidates: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScoredVector {
    pub id: String,
    #[serde(default)]
    pub score: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse_values: Option<SparseValues>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct QueryResponse {
    #[serde(default)]
    pub matches: Vec<ScoredVector>,
    #[serde(default)]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse_values: Option<SparseValues>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_metadata: Option<Metadata>,
    #[serde(default)]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Metadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpdateResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_records: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct DescribeIndexStatsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Metadata>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSummary {
    pub vector_count: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DescribeIndexStatsResponse {
    #[serde(default)]
    pub namespaces: BTreeMap<String, NamespaceSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<u32>,
    #[serde(default)]
    pub index_fullness: f32,
    #[serde(default)]
    pub total_vector_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_type: Option<String>,
    #[serde(
        rename = "memory_fullness",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_fullness: Option<f32>,
    #[serde(
        rename = "storage_fullness",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub storage_fullness: Option<f32>,
}

/// Query parameters of GET /namespaces.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListNamespacesParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct MetadataFieldProperties {
    pub filterable: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct MetadataSchema {
    pub fields: BTreeMap<String, MetadataFieldProperties>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct IndexedFields {
    #[serde(default)]
    pub fields: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct NamespaceDescription {
    pub name: String,
    #[serde(default)]
    pub record_count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<MetadataSchema>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indexed_fields: Option<IndexedFields>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ListNamespacesResponse {
    #[serde(default)]
    pub namespaces: Vec<NamespaceDescription>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
    #[serde(default)]
    pub total_count: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CreateNamespaceRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<MetadataSchema>,
}

/// The data plane's error body (grpc-gateway style): `code` is a numeric gRPC status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RpcStatus {
    pub code: i32,
    pub message: String,
    #[serde(default)]
    pub details: Vec<Value>,
}

/// The default namespace has two names since API 2025-04.
pub const DEFAULT_NAMESPACE: &str = "__default__";

/// One key for the default namespace, whichever name the caller used.
pub fn normalize_namespace(ns: &str) -> &str {
    if ns.is_empty() { DEFAULT_NAMESPACE } else { ns }
}
