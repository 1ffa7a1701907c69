//! The emulator's own JSON: what it accepts and what it answers, written from Pinecone's documents and from what
//! Pinecone is known to send, independently of the gateway's decoder (`crate::wire`), so that a mistake in either
//! shows up as a failing test instead of two copies agreeing.
//!
//! Requests: the data plane accepts the protobuf JSON mapping's lowerCamelCase names and the proto names, as
//! Pinecone's transcoder does, and refuses unknown fields (so a misspelt field the gateway sends fails loudly).
//! Answers are written as Pinecone writes them:
//! - data plane: default values omitted (no `"score": 0`, no empty `vectors`, a namespace with no records is `{}`),
//!   64-bit counts as strings (`"record_count": "5000"`), `memoryFullness`/`storageFullness` in camelCase beside
//!   snake_case `record_count`, `indexed_fields` and `total_count`, `pagination` absent on the last page;
//! - control plane: snake_case; an initializing index has `"host": null`; a backup without tags has
//!   `"tags": null`; a restore job not yet timestamped has `"created_at": null`; a restore-job list without a next
//!   page has `"pagination": null`, as the OpenAPI file's own examples do;
//! - errors: `{"code": <gRPC number>, "message", "details": []}` on a data plane, `{"error": {"code", "message"},
//!   "status"}` on the control plane, and the bare string `"Unauthorized"` for a data-plane 401.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub type Metadata = Map<String, Value>;

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_zero_f32(n: &f32) -> bool {
    *n == 0.0
}

/// 64-bit integers are JSON strings in the protobuf JSON mapping.
fn as_string<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&n.to_string())
}

// ---- data-plane requests ----

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SparseIn {
    #[serde(default)]
    pub indices: Vec<u32>,
    #[serde(default)]
    pub values: Vec<f32>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct VectorIn {
    pub id: String,
    #[serde(default)]
    pub values: Vec<f32>,
    #[serde(default, rename = "sparseValues", alias = "sparse_values")]
    pub sparse_values: Option<SparseIn>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct UpsertIn {
    pub vectors: Vec<VectorIn>,
    #[serde(default)]
    pub namespace: String,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct DeleteIn {
    #[serde(default)]
    pub ids: Vec<String>,
    #[serde(default, rename = "deleteAll", alias = "delete_all")]
    pub delete_all: bool,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub filter: Option<Metadata>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FetchByMetadataIn {
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub filter: Option<Metadata>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default, rename = "paginationToken", alias = "pagination_token")]
    pub pagination_token: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct QueryIn {
    #[serde(default)]
    pub namespace: String,
    #[serde(rename = "topK", alias = "top_k")]
    pub top_k: u32,
    #[serde(default)]
    pub filter: Option<Metadata>,
    #[serde(default, rename = "includeValues", alias = "include_values")]
    pub include_values: bool,
    #[serde(default, rename = "includeMetadata", alias = "include_metadata")]
    pub include_metadata: bool,
    #[serde(default)]
    pub vector: Vec<f32>,
    #[serde(default, rename = "sparseVector", alias = "sparse_vector")]
    pub sparse_vector: Option<SparseIn>,
    #[serde(default)]
    pub id: String,
    #[serde(default, rename = "scanFactor", alias = "scan_factor")]
    pub scan_factor: Option<f32>,
    #[serde(default, rename = "maxCandidates", alias = "max_candidates")]
    pub max_candidates: Option<u32>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateIn {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub values: Vec<f32>,
    #[serde(default, rename = "sparseValues", alias = "sparse_values")]
    pub sparse_values: Option<SparseIn>,
    #[serde(default, rename = "setMetadata", alias = "set_metadata")]
    pub set_metadata: Option<Metadata>,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub filter: Option<Metadata>,
    #[serde(default, rename = "dryRun", alias = "dry_run")]
    pub dry_run: Option<bool>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct StatsIn {
    #[serde(default)]
    pub filter: Option<Metadata>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FieldProperties {
    #[serde(default)]
    pub filterable: bool,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    #[serde(default)]
    pub fields: BTreeMap<String, FieldProperties>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateNamespaceIn {
    pub name: String,
    #[serde(default)]
    pub schema: Option<Schema>,
}

// ---- data-plane answers ----

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct SparseOut {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct VectorOut {
    pub id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<f32>,
    #[serde(rename = "sparseValues", skip_serializing_if = "Option::is_none")]
    pub sparse_values: Option<SparseOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct Usage {
    #[serde(rename = "readUnits")]
    pub read_units: u32,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct Pagination {
    pub next: String,
}

#[derive(Serialize, Debug, Default)]
pub struct UpsertOut {
    #[serde(rename = "upsertedCount", skip_serializing_if = "is_zero_u32")]
    pub upserted_count: u32,
}

#[derive(Serialize, Debug, Default)]
pub struct FetchOut {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub vectors: BTreeMap<String, VectorOut>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub usage: Usage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
}

#[derive(Serialize, Debug, Default)]
pub struct ListItem {
    pub id: String,
}

#[derive(Serialize, Debug, Default)]
pub struct ListOut {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vectors: Vec<ListItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub usage: Usage,
}

#[derive(Serialize, Debug, Default)]
pub struct MatchOut {
    pub id: String,
    #[serde(skip_serializing_if = "is_zero_f32")]
    pub score: f32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<f32>,
    #[serde(rename = "sparseValues", skip_serializing_if = "Option::is_none")]
    pub sparse_values: Option<SparseOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

#[derive(Serialize, Debug, Default)]
pub struct QueryOut {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<MatchOut>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub usage: Usage,
}

/// `matchedRecords` has explicit presence in the proto, so a zero is written.
#[derive(Serialize, Debug, Default)]
pub struct UpdateOut {
    #[serde(rename = "matchedRecords")]
    pub matched_records: i32,
}

/// A namespace with no records is `{}`: the mapping omits the zero count.
#[derive(Serialize, Debug, Default)]
pub struct NamespaceSummary {
    #[serde(rename = "vectorCount", skip_serializing_if = "is_zero_u32")]
    pub vector_count: u32,
}

#[derive(Serialize, Debug, Default)]
pub struct StatsOut {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub namespaces: BTreeMap<String, NamespaceSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimension: Option<u32>,
    #[serde(rename = "indexFullness", skip_serializing_if = "is_zero_f32")]
    pub index_fullness: f32,
    #[serde(rename = "totalVectorCount", skip_serializing_if = "is_zero_u32")]
    pub total_vector_count: u32,
    pub metric: String,
    #[serde(rename = "vectorType")]
    pub vector_type: String,
    #[serde(rename = "memoryFullness")]
    pub memory_fullness: f32,
    #[serde(rename = "storageFullness")]
    pub storage_fullness: f32,
}

#[derive(Serialize, Debug, Default, Clone)]
pub struct IndexedFields {
    pub fields: Vec<String>,
}

#[derive(Serialize, Debug, Default, Clone)]
pub struct NamespaceOut {
    pub name: String,
    #[serde(serialize_with = "as_string")]
    pub record_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<Schema>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indexed_fields: Option<IndexedFields>,
}

#[derive(Serialize, Debug, Default)]
pub struct NamespacesOut {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<NamespaceOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
    pub total_count: i32,
}

/// The data plane's error body: `code` is a gRPC status number.
#[derive(Serialize, Debug)]
pub struct RpcStatus {
    pub code: i32,
    pub message: String,
    pub details: Vec<Value>,
}

// ---- control plane ----

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
pub struct ServerlessSpec {
    pub cloud: String,
    pub region: String,
}

#[derive(Deserialize, Clone, Debug, Default)]
pub struct IndexSpecIn {
    #[serde(default)]
    pub serverless: Option<ServerlessSpec>,
}

#[derive(Deserialize, Clone, Debug, Default)]
pub struct CreateIndexIn {
    pub name: String,
    #[serde(default)]
    pub dimension: Option<u32>,
    #[serde(default)]
    pub metric: Option<String>,
    pub spec: IndexSpecIn,
    #[serde(default)]
    pub vector_type: Option<String>,
    #[serde(default)]
    pub deletion_protection: Option<String>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    /// A document index of API 2026-07 (its dense field is not the vectors API's `_values`): its data plane refuses
    /// the vectors API. Not part of Pinecone's request: set by [`super::Emulator::create_document_index`].
    #[serde(skip)]
    pub document: bool,
}

#[derive(Serialize, Clone, Debug)]
pub struct ReadCapacityStatus {
    pub state: &'static str,
}

#[derive(Serialize, Clone, Debug)]
pub struct ReadCapacity {
    pub mode: &'static str,
    pub status: ReadCapacityStatus,
}

#[derive(Serialize, Clone, Debug)]
pub struct ServerlessSpecOut {
    pub cloud: String,
    pub region: String,
    pub read_capacity: ReadCapacity,
}

#[derive(Serialize, Clone, Debug)]
pub struct IndexSpecOut {
    pub serverless: ServerlessSpecOut,
}

#[derive(Serialize, Clone, Debug)]
pub struct IndexStatus {
    pub ready: bool,
    pub state: &'static str,
}

#[derive(Serialize, Clone, Debug)]
pub struct IndexOut {
    pub name: String,
    pub metric: String,
    /// `null` while the index initializes.
    pub host: Option<String>,
    pub spec: IndexSpecOut,
    pub status: IndexStatus,
    pub vector_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimension: Option<u32>,
    pub deletion_protection: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, Debug)]
pub struct IndexListOut {
    pub indexes: Vec<IndexOut>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateBackupIn {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
pub struct BackupOut {
    pub backup_id: String,
    pub source_index_name: String,
    pub source_index_id: String,
    pub status: &'static str,
    pub cloud: String,
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimension: Option<u32>,
    pub metric: String,
    pub record_count: u64,
    pub namespace_count: u64,
    pub size_bytes: u64,
    /// `null` when the backup has none.
    pub tags: Option<BTreeMap<String, String>>,
    pub created_at: String,
}

#[derive(Serialize, Debug)]
pub struct ControlPagination {
    pub next: String,
}

#[derive(Serialize, Debug)]
pub struct BackupListOut {
    pub data: Vec<BackupOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagination: Option<ControlPagination>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateIndexFromBackupIn {
    pub name: String,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub deletion_protection: Option<String>,
}

#[derive(Serialize, Debug)]
pub struct CreateIndexFromBackupOut {
    pub restore_job_id: String,
    pub index_id: String,
}

#[derive(Serialize, Clone, Debug)]
pub struct RestoreJobOut {
    pub restore_job_id: String,
    pub backup_id: String,
    pub target_index_name: String,
    pub target_index_id: String,
    pub status: &'static str,
    /// `null` until the job is timestamped.
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    pub percent_complete: f32,
}

/// `pagination` is written as `null` on the last page, as the OpenAPI file's examples show.
#[derive(Serialize, Debug)]
pub struct RestoreJobListOut {
    pub data: Vec<RestoreJobOut>,
    pub pagination: Option<ControlPagination>,
}

#[derive(Serialize, Debug)]
pub struct ControlErrorDetail {
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize, Debug)]
pub struct ControlErrorOut {
    pub error: ControlErrorDetail,
    pub status: u16,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_omit_defaults_and_write_64_bit_counts_as_strings() {
        let ns = NamespaceOut {
            name: "a".into(),
            record_count: 5000,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&ns).unwrap(),
            json!({"name": "a", "record_count": "5000"})
        );
        let stats = StatsOut {
            namespaces: BTreeMap::from([("".into(), NamespaceSummary::default())]),
            metric: "cosine".into(),
            vector_type: "dense".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&stats).unwrap(),
            json!({"namespaces": {"": {}}, "metric": "cosine", "vectorType": "dense",
                   "memoryFullness": 0.0, "storageFullness": 0.0})
        );
    }

    #[test]
    fn requests_take_either_name_and_refuse_unknown_fields() {
        let q: QueryIn = serde_json::from_str(r#"{"top_k": 3, "includeValues": true}"#).unwrap();
        assert_eq!((q.top_k, q.include_values), (3, true));
        assert!(serde_json::from_str::<QueryIn>(r#"{"topK": 3, "topk": 1}"#).is_err());
    }
}
