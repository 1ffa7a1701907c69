//! API 2026-07's control-plane shapes, answered when a request asks for them (`X-Pinecone-Api-Version: 2026-07`),
//! as Pinecone's 2026-07 OpenAPI file describes them:
//!
//! - an index has no top-level `dimension`, `metric`, `spec` or `vector_type`: `deployment` (`managed`, with cloud,
//!   region and environment), top-level `read_capacity`, and a typed `schema.fields`. An index of the vectors API
//!   reports its vectors under the reserved names `_values` (`dense_vector`, with dimension and metric) and
//!   `_sparse_values` (`sparse_vector`): a dense one both, a sparse one the latter; a document index names its dense
//!   field otherwise (here `embedding`). `tags` is `null` when there are none;
//! - a backup carries its index's `schema` instead of `dimension` and `metric`, and `source_index_deleted_at` once
//!   its source index is deleted; listings end with `"pagination": null`, their `limit` defaults to 100, and the
//!   backups of an index may be listed with `include_deleted` (the backups of a deleted index of that name too);
//! - creating a backup answers 200 (201 before); a restore job's `percent_complete` is an integer.

use super::model as m;
use super::{Backup, EmuIndex};
use axum::http::HeaderMap;
use serde_json::{Value, json};

pub(super) const VERSION: &str = "2026-07";

/// Whether the request asks for API 2026-07.
pub(super) fn asked(headers: &HeaderMap) -> bool {
    headers
        .get("x-pinecone-api-version")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == VERSION)
}

/// An index's schema: its vector fields.
pub(super) fn schema(i: &EmuIndex) -> Value {
    let dense = json!({"type": "dense_vector", "dimension": i.dimension, "metric": i.metric});
    let sparse = json!({"type": "sparse_vector"});
    if i.document {
        json!({"fields": {"embedding": dense}})
    } else if i.vector_type == "sparse" {
        json!({"fields": {"_sparse_values": sparse}})
    } else {
        json!({"fields": {"_values": dense, "_sparse_values": sparse}})
    }
}

pub(super) fn index(i: &EmuIndex, model: &m::IndexOut) -> Value {
    json!({
        "name": model.name,
        "host": model.host,
        "status": model.status,
        "deployment": {
            "deployment_type": "managed",
            "cloud": i.cloud,
            "region": i.region,
            "environment": "emulator",
        },
        "read_capacity": model.spec.serverless.read_capacity,
        "schema": schema(i),
        "tags": model.tags,
        "deletion_protection": model.deletion_protection,
    })
}

pub(super) fn backup(b: &Backup) -> Value {
    let mut v = serde_json::to_value(&b.model).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("dimension");
        o.remove("metric");
        o.insert("schema".into(), b.schema.clone());
        if let Some(at) = &b.source_deleted_at {
            o.insert("source_index_deleted_at".into(), at.clone().into());
        }
    }
    v
}

/// A page of a listing: `pagination` is `null` on the last page.
pub(super) fn page(data: Vec<Value>, next: Option<String>) -> Value {
    json!({
        "data": data,
        "pagination": next.map(|next| json!({"next": next})),
    })
}

pub(super) fn restore_job(job: &m::RestoreJobOut) -> Value {
    let mut v = serde_json::to_value(job).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "percent_complete".into(),
            (job.percent_complete.round() as u64).into(),
        );
    }
    v
}
