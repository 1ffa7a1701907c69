//! Pinecone's control-plane REST bodies (API 2025-10): indexes, backups, restore jobs, errors.
//!
//! snake_case throughout, except `paginationToken` in query strings. Absent optionals are omitted: SDK 8.1.2 rejects
//! `null` for optional fields and `"pagination": {}`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub type Tags = BTreeMap<String, String>;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ServerlessSpec {
    pub cloud: String,
    pub region: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct IndexSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverless: Option<ServerlessSpec>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct IndexStatus {
    pub ready: bool,
    pub state: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct IndexModel {
    pub name: String,
    pub metric: String,
    /// A bare host name (`host:port` for the emulator), without scheme.
    pub host: String,
    pub spec: IndexSpec,
    pub status: IndexStatus,
    #[serde(default = "dense")]
    pub vector_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<u32>,
    #[serde(default = "disabled")]
    pub deletion_protection: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
}

fn dense() -> String {
    "dense".into()
}

fn disabled() -> String {
    "disabled".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct IndexList {
    #[serde(default)]
    pub indexes: Vec<IndexModel>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CreateIndexRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    pub spec: IndexSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_protection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CreateBackupRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct BackupModel {
    pub backup_id: String,
    pub source_index_name: String,
    pub source_index_id: String,
    pub status: String,
    pub cloud: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    #[serde(default)]
    pub tags: Tags,
    #[serde(default)]
    pub created_at: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PaginationResponse {
    pub next: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct BackupList {
    #[serde(default)]
    pub data: Vec<BackupModel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<PaginationResponse>,
}

/// Query parameters of the paginated control-plane lists.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PageParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination_token: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CreateIndexFromBackupRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_protection: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CreateIndexFromBackupResponse {
    pub restore_job_id: String,
    pub index_id: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RestoreJobModel {
    pub restore_job_id: String,
    pub backup_id: String,
    pub target_index_name: String,
    pub target_index_id: String,
    pub status: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent_complete: Option<f32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RestoreJobList {
    pub data: Vec<RestoreJobModel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<PaginationResponse>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// The control plane's error body: `{"error":{"code":"NOT_FOUND","message":"…"},"status":404}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ErrorResponse {
    pub error: ErrorDetail,
    pub status: u16,
}
