//! Pinecone's control plane (describe index, backups, restore jobs): plain JSON with no proto behind it, so these
//! types are written by hand and read what Pinecone sends, not only what its OpenAPI file promises:
//!
//! - every field Pinecone may omit or send as `null` is optional, or defaults when absent: an index's `host` is
//!   `null` while it initializes (a restore target), a restore job's `created_at` is `null` until the job is
//!   timestamped, a backup's `tags` are `null` when there are none, and 2026-07 drops `metric`, `dimension` and
//!   `spec` from the index;
//! - integers are read from numbers or numeric strings, `percent_complete` from an integer (2026-07) or a float;
//! - tag values of any JSON type become strings (`1` → `"1"`);
//! - states and statuses are text, passed through whatever new value Pinecone adds;
//! - unknown fields are ignored.
//!
//! Request bodies are written as the OpenAPI file says: snake_case, absent optionals omitted.

use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub type Tags = BTreeMap<String, String>;

/// `null` reads as the default.
fn null_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A number, a numeric string, or `null`.
fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("`{n}` is not a count"))),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("`{s}` is not a count"))),
        Some(other) => Err(D::Error::custom(format!("`{other}` is not a count"))),
    }
}

fn lenient_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    lenient_u64(d)?
        .map(|n| u32::try_from(n).map_err(|_| D::Error::custom(format!("{n} is too large"))))
        .transpose()
}

/// A number, a numeric string, or `null`.
fn lenient_f32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64().map(|f| f as f32)),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("`{s}` is not a number"))),
        Some(other) => Err(D::Error::custom(format!("`{other}` is not a number"))),
    }
}

/// Tags: `null` is none, and a value of any JSON type becomes a string (a `null` value is dropped).
fn lenient_tags<'de, D: Deserializer<'de>>(d: D) -> Result<Tags, D::Error> {
    let map = Option::<BTreeMap<String, Value>>::deserialize(d)?.unwrap_or_default();
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::Null => None,
            Value::String(s) => Some((k, s)),
            other => Some((k, other.to_string())),
        })
        .collect())
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ServerlessSpec {
    #[serde(default, deserialize_with = "null_default")]
    pub cloud: String,
    #[serde(default, deserialize_with = "null_default")]
    pub region: String,
    #[serde(default)]
    pub read_capacity: Option<Value>,
    #[serde(default)]
    pub schema: Option<Value>,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PodMetadataConfig {
    #[serde(default, deserialize_with = "null_default")]
    pub indexed: Vec<String>,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PodSpec {
    #[serde(default, deserialize_with = "null_default")]
    pub environment: String,
    #[serde(default, deserialize_with = "null_default")]
    pub pod_type: String,
    #[serde(default, deserialize_with = "lenient_u32")]
    pub pods: Option<u32>,
    #[serde(default, deserialize_with = "lenient_u32")]
    pub replicas: Option<u32>,
    #[serde(default, deserialize_with = "lenient_u32")]
    pub shards: Option<u32>,
    #[serde(default, deserialize_with = "null_default")]
    pub metadata_config: PodMetadataConfig,
    #[serde(default)]
    pub source_collection: Option<String>,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ByocSpec {
    #[serde(default, deserialize_with = "null_default")]
    pub environment: String,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct IndexSpec {
    #[serde(default)]
    pub serverless: Option<ServerlessSpec>,
    #[serde(default)]
    pub pod: Option<PodSpec>,
    #[serde(default)]
    pub byoc: Option<ByocSpec>,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct IndexStatus {
    #[serde(default, deserialize_with = "null_default")]
    pub ready: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub state: String,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct IndexModel {
    pub name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub metric: String,
    /// A bare host name (`host:port` for the emulator), without scheme; `None` while the index initializes.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub spec: IndexSpec,
    #[serde(default, deserialize_with = "null_default")]
    pub status: IndexStatus,
    #[serde(default, deserialize_with = "null_default")]
    pub vector_type: String,
    #[serde(default, deserialize_with = "lenient_u32")]
    pub dimension: Option<u32>,
    #[serde(default, deserialize_with = "null_default")]
    pub deletion_protection: String,
    #[serde(default, deserialize_with = "lenient_tags")]
    pub tags: Tags,
    #[serde(default)]
    pub private_host: Option<String>,
    #[serde(default)]
    pub embed: Option<Value>,
    /// API 2026-07: the index's fields (`schema.fields.NAME.type`: `dense_vector`, `sparse_vector`, `string`, ...).
    #[serde(default)]
    pub schema: Option<Value>,
    /// API 2026-07: how the index is deployed.
    #[serde(default)]
    pub deployment: Option<Value>,
    /// API 2026-07: top level, no longer under `spec.serverless`.
    #[serde(default)]
    pub read_capacity: Option<Value>,
    #[serde(default)]
    pub source_backup_id: Option<String>,
    #[serde(default)]
    pub cmek_id: Option<String>,
}

/// The field of a 2026-07 schema that the vector API's `values` are: `_values` (Pinecone's "classic vectors API"
/// index). An index whose dense vectors are named otherwise is a document index, which the vector API does not serve.
pub const CLASSIC_DENSE_FIELD: &str = "_values";
/// The vectors API's sparse values in a 2026-07 schema.
pub const CLASSIC_SPARSE_FIELD: &str = "_sparse_values";

impl IndexModel {
    /// The host, when the index has one (an index that is scaling or terminating still has its host and answers).
    pub fn usable_host(&self) -> Option<&str> {
        self.host.as_deref().filter(|h| !h.is_empty())
    }

    /// The dimension of the vector API's dense values: the top-level `dimension` (up to API 2026-04), else the
    /// 2026-07 schema's `_values` field when it is a `dense_vector`.
    pub fn dense_dimension(&self) -> Option<u32> {
        self.dimension.or_else(|| {
            let field = self
                .schema
                .as_ref()?
                .get("fields")?
                .get(CLASSIC_DENSE_FIELD)?;
            (field.get("type")?.as_str()? == "dense_vector")
                .then(|| field.get("dimension")?.as_u64())
                .flatten()
                .and_then(|d| u32::try_from(d).ok())
        })
    }

    /// An API 2026-07 document index: a schema whose fields name neither of the vectors API's reserved fields.
    pub fn is_document_index(&self) -> bool {
        self.schema
            .as_ref()
            .and_then(|s| s.get("fields")?.as_object())
            .is_some_and(|f| {
                !f.is_empty()
                    && !f.contains_key(CLASSIC_DENSE_FIELD)
                    && !f.contains_key(CLASSIC_SPARSE_FIELD)
            })
    }

    /// dense or sparse: the top-level `vector_type` (up to API 2026-04), else what the 2026-07 schema's reserved
    /// fields say (a dense index reports `_values` and `_sparse_values`, a sparse one only the latter).
    pub fn any_vector_type(&self) -> String {
        if !self.vector_type.is_empty() {
            return self.vector_type.clone();
        }
        let fields = self.schema.as_ref().and_then(|s| s.get("fields"));
        let has = |name: &str| fields.is_some_and(|f| f.get(name).is_some());
        if !has(CLASSIC_DENSE_FIELD) && has(CLASSIC_SPARSE_FIELD) {
            "sparse".into()
        } else {
            "dense".into()
        }
    }

    /// The metric: the top-level one (up to API 2026-04), else the 2026-07 schema's `_values` field's.
    pub fn dense_metric(&self) -> String {
        if !self.metric.is_empty() {
            return self.metric.clone();
        }
        self.schema
            .as_ref()
            .and_then(|s| {
                s.get("fields")?
                    .get(CLASSIC_DENSE_FIELD)?
                    .get("metric")?
                    .as_str()
            })
            .unwrap_or_default()
            .to_string()
    }

    /// The schema under either shape: 2026-07's top level, or `spec.serverless.schema` before.
    pub fn any_schema(&self) -> Option<&Value> {
        self.schema.as_ref().or_else(|| {
            self.spec
                .serverless
                .as_ref()
                .and_then(|s| s.schema.as_ref())
        })
    }

    /// Read capacity under either shape.
    pub fn any_read_capacity(&self) -> Option<&Value> {
        self.read_capacity.as_ref().or_else(|| {
            self.spec
                .serverless
                .as_ref()
                .and_then(|s| s.read_capacity.as_ref())
        })
    }
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct CreateBackupRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct BackupModel {
    pub backup_id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub source_index_name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub source_index_id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub status: String,
    #[serde(default, deserialize_with = "null_default")]
    pub cloud: String,
    #[serde(default, deserialize_with = "null_default")]
    pub region: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "lenient_u32")]
    pub dimension: Option<u32>,
    #[serde(default)]
    pub metric: Option<String>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub record_count: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub namespace_count: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub size_bytes: Option<u64>,
    #[serde(default, deserialize_with = "lenient_tags")]
    pub tags: Tags,
    #[serde(default, deserialize_with = "null_default")]
    pub created_at: String,
    /// API 2026-07: its index's schema (instead of `dimension` and `metric`).
    #[serde(default)]
    pub schema: Option<Value>,
    /// API 2026-07: when its source index was deleted.
    #[serde(default)]
    pub source_index_deleted_at: Option<String>,
}

impl BackupModel {
    /// The dense dimension and metric: the top-level ones (up to API 2026-04), else the 2026-07 schema's `_values`.
    pub fn dense(&self) -> (Option<u32>, Option<String>) {
        let values = self
            .schema
            .as_ref()
            .and_then(|s| s.get("fields")?.get(CLASSIC_DENSE_FIELD));
        let dimension = self.dimension.or_else(|| {
            values
                .and_then(|v| v.get("dimension")?.as_u64())
                .and_then(|d| u32::try_from(d).ok())
        });
        let metric = self.metric.clone().or_else(|| {
            values
                .and_then(|v| v.get("metric")?.as_str())
                .map(str::to_string)
        });
        (dimension, metric)
    }
}

/// `{"next": "…"}`; `null`, `{}` and `{"next": ""}` all mean no next page.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PaginationResponse {
    #[serde(default, deserialize_with = "null_default")]
    pub next: String,
}

/// The next page's token, if there is one.
pub fn next_token(p: Option<PaginationResponse>) -> Option<String> {
    p.map(|p| p.next).filter(|n| !n.is_empty())
}

/// `GET /indexes`: every index of the project.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct IndexList {
    #[serde(default, deserialize_with = "null_default")]
    pub indexes: Vec<IndexModel>,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct BackupList {
    #[serde(default, deserialize_with = "null_default")]
    pub data: Vec<BackupModel>,
    #[serde(default)]
    pub pagination: Option<PaginationResponse>,
}

/// Query parameters of the paginated control-plane lists.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PageParams {
    pub limit: Option<u32>,
    pub pagination_token: Option<String>,
    /// API 2026-07, backups of an index: also those of a deleted index of that name.
    pub include_deleted: bool,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct CreateIndexFromBackupRequest {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_protection: Option<String>,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CreateIndexFromBackupResponse {
    pub restore_job_id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub index_id: String,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RestoreJobModel {
    pub restore_job_id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub backup_id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub target_index_name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub target_index_id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub status: String,
    /// `None` until Pinecone timestamps the job.
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub completed_at: Option<String>,
    #[serde(default, deserialize_with = "lenient_f32")]
    pub percent_complete: Option<f32>,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RestoreJobList {
    #[serde(default, deserialize_with = "null_default")]
    pub data: Vec<RestoreJobModel>,
    #[serde(default)]
    pub pagination: Option<PaginationResponse>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_initializing_index_has_no_host() {
        let i: IndexModel = serde_json::from_str(
            r#"{"name":"r","host":null,"status":{"ready":false,"state":"Initializing"},"metric":"cosine",
                "spec":{"serverless":{"cloud":"aws","region":"us-east-1"}},"vector_type":"dense","tags":null}"#,
        )
        .unwrap();
        assert_eq!(i.usable_host(), None);
        assert_eq!(i.status.state, "Initializing");
        assert!(i.tags.is_empty());
    }

    #[test]
    fn a_2026_07_index_without_metric_dimension_or_spec_reads() {
        let i: IndexModel = serde_json::from_str(
            r#"{"name":"r","host":"r-1.svc.pinecone.io","status":{"ready":true,"state":"Ready"},
                "deployment":{"deployment_type":"managed","cloud":"aws","region":"us-east-1"},
                "schema":{"fields":{}},"deletion_protection":"disabled"}"#,
        )
        .unwrap();
        assert_eq!(i.usable_host(), Some("r-1.svc.pinecone.io"));
        assert_eq!(i.metric, "");
        assert_eq!(i.dimension, None);
        assert_eq!(i.dense_dimension(), None);
    }

    /// The dimension check reads a 2026-07 index's dimension from its `_values` field (the vector API's dense
    /// values); a dense field named otherwise (a document index) or a sparse one gives none.
    #[test]
    fn a_2026_07_dimension_comes_from_the_values_field() {
        let read = |fields: &str| -> IndexModel {
            serde_json::from_str(&format!(
                r#"{{"name":"r","host":"h","status":{{"ready":true,"state":"Ready"}},"schema":{{"fields":{fields}}}}}"#
            ))
            .unwrap()
        };
        let classic =
            read(r#"{"_values":{"type":"dense_vector","dimension":8,"metric":"dotproduct"}}"#);
        assert_eq!(
            (classic.dense_dimension(), classic.dense_metric().as_str()),
            (Some(8), "dotproduct")
        );
        let document =
            read(r#"{"embedding":{"type":"dense_vector","dimension":8,"metric":"cosine"}}"#);
        assert_eq!(document.dense_dimension(), None);
        let sparse = read(r#"{"_values":{"type":"sparse_vector"}}"#);
        assert_eq!(sparse.dense_dimension(), None);
        // Up to 2026-04 the top-level dimension wins.
        let old: IndexModel =
            serde_json::from_str(r#"{"name":"r","host":"h","dimension":4,"metric":"cosine"}"#)
                .unwrap();
        assert_eq!(old.dense_dimension(), Some(4));
    }

    #[test]
    fn backups_tolerate_nulls_strings_and_typed_tags() {
        let b: BackupModel = serde_json::from_str(
            r#"{"backup_id":"b","source_index_name":"i","source_index_id":"x","status":"Pending","cloud":"aws",
                "region":"us-east-1","name":null,"description":null,"dimension":null,"record_count":"12",
                "tags":{"n":1,"ok":true,"s":"x","gone":null},"created_at":null}"#,
        )
        .unwrap();
        assert_eq!(b.record_count, Some(12));
        assert_eq!(b.name, None);
        assert_eq!(b.created_at, "");
        assert_eq!(
            b.tags,
            Tags::from([
                ("n".into(), "1".into()),
                ("ok".into(), "true".into()),
                ("s".into(), "x".into())
            ])
        );
    }

    #[test]
    fn restore_jobs_without_a_timestamp_read() {
        let l: RestoreJobList = serde_json::from_str(
            r#"{"data":[{"restore_job_id":"j","backup_id":"b","target_index_name":"t","target_index_id":"i",
                "status":"Pending","created_at":null,"percent_complete":0}],"pagination":null}"#,
        )
        .unwrap();
        assert_eq!(l.data[0].created_at, None);
        assert_eq!(l.data[0].percent_complete, Some(0.0));
        assert_eq!(next_token(l.pagination), None);
        assert_eq!(
            next_token(Some(PaginationResponse { next: "t".into() })),
            Some("t".into())
        );
    }
}
