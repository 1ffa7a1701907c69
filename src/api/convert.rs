//! What the gRPC surface converts: `google.protobuf.Struct` to JSON for the validators (Struct numbers are doubles,
//! so an integer comes back as a double, as it does with Pinecone's own gRPC API), the normalisations Pinecone's
//! REST API needs (an empty Struct or sparse vector is absent: protobuf clients cannot tell the two apart, and 7.x/8.x
//! clients always send an empty metadata Struct), and the control plane's JSON into the gateway's own messages.

use crate::pb::gateway as g;
use crate::pb::pinecone as p;
use crate::wire::control as c;
use pbjson_types::value::Kind;
use serde_json::{Map, Number, Value};

pub fn struct_to_json(s: &pbjson_types::Struct) -> Map<String, Value> {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), value_to_json(v)))
        .collect()
}

fn value_to_json(v: &pbjson_types::Value) -> Value {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        // Non-finite doubles have no JSON form: null, which every validator refuses.
        Some(Kind::NumberValue(n)) => Number::from_f64(*n)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::StructValue(s)) => Value::Object(struct_to_json(s)),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(value_to_json).collect()),
    }
}

/// An empty Struct means "no metadata" / "no filter".
pub fn non_empty_struct(s: Option<pbjson_types::Struct>) -> Option<pbjson_types::Struct> {
    s.filter(|s| !s.fields.is_empty())
}

/// A sparse vector with no entries is treated as absent.
pub fn non_empty_sparse(s: Option<p::SparseValues>) -> Option<p::SparseValues> {
    s.filter(|s| !s.indices.is_empty() || !s.values.is_empty())
}

pub fn backup_from_wire(b: c::BackupModel) -> g::Backup {
    let (dimension, metric) = b.dense();
    let schema = structure(b.schema.as_ref());
    g::Backup {
        backup_id: b.backup_id,
        source_index_name: b.source_index_name,
        source_index_id: b.source_index_id,
        name: b.name,
        description: b.description,
        status: b.status,
        cloud: b.cloud,
        region: b.region,
        dimension,
        metric,
        record_count: b.record_count,
        namespace_count: b.namespace_count,
        size_bytes: b.size_bytes,
        tags: b.tags.into_iter().collect(),
        created_at: b.created_at,
        schema,
        source_index_deleted_at: b.source_index_deleted_at,
    }
}

pub fn backups_page(list: c::BackupList) -> g::ListBackupsResponse {
    g::ListBackupsResponse {
        backups: list.data.into_iter().map(backup_from_wire).collect(),
        next_pagination_token: c::next_token(list.pagination),
    }
}

pub fn restore_from_wire(r: c::CreateIndexFromBackupResponse) -> g::CreateIndexFromBackupResponse {
    g::CreateIndexFromBackupResponse {
        restore_job_id: r.restore_job_id,
        index_id: r.index_id,
    }
}

pub fn restore_jobs_page(list: c::RestoreJobList) -> g::ListRestoreJobsResponse {
    g::ListRestoreJobsResponse {
        restore_jobs: list.data.into_iter().map(restore_job_from_wire).collect(),
        next_pagination_token: c::next_token(list.pagination),
    }
}

pub fn restore_job_from_wire(j: c::RestoreJobModel) -> g::RestoreJob {
    g::RestoreJob {
        restore_job_id: j.restore_job_id,
        backup_id: j.backup_id,
        target_index_name: j.target_index_name,
        target_index_id: j.target_index_id,
        status: j.status,
        created_at: j.created_at.unwrap_or_default(),
        completed_at: j.completed_at,
        percent_complete: j.percent_complete,
    }
}

/// A JSON object of Pinecone's as a `google.protobuf.Struct` (the protobuf JSON mapping reads any object); `None` for
/// anything else (`null`, a value that is not an object).
fn structure(v: Option<&serde_json::Value>) -> Option<pbjson_types::Struct> {
    v.filter(|v| v.is_object())
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// An index without a host (initializing) is not ready, whatever its status says.
pub fn index_from_wire(i: c::IndexModel) -> g::Index {
    let ready = i.status.ready && i.usable_host().is_some();
    let dimension = i.dense_dimension();
    let metric = i.dense_metric();
    let vector_type = i.any_vector_type();
    let schema = structure(i.any_schema());
    let read_capacity = structure(i.any_read_capacity());
    let embed = structure(i.embed.as_ref());
    let deployment = structure(i.deployment.as_ref());
    let serverless = i.spec.serverless;
    let pod = i.spec.pod.map(|p| g::PodSpec {
        environment: p.environment,
        pod_type: p.pod_type,
        pods: p.pods.unwrap_or(1),
        replicas: p.replicas.unwrap_or(1),
        shards: p.shards.unwrap_or(1),
        indexed_metadata_fields: p.metadata_config.indexed,
        source_collection: p.source_collection,
    });
    let byoc = i.spec.byoc.map(|b| g::ByocSpec {
        environment: b.environment,
    });
    // 2026-07 says where a managed index runs in `deployment`, no longer in `spec.serverless`.
    let place = |key: &str| {
        i.deployment
            .as_ref()
            .and_then(|d| d.get(key)?.as_str())
            .map(str::to_string)
    };
    let (cloud, region) = match &serverless {
        Some(s) => (Some(s.cloud.clone()), Some(s.region.clone())),
        None => (place("cloud"), place("region")),
    };
    g::Index {
        name: i.name,
        metric,
        host: i.host.unwrap_or_default(),
        dimension,
        vector_type,
        ready,
        state: i.status.state,
        deletion_protection: if i.deletion_protection.is_empty() {
            "disabled".into()
        } else {
            i.deletion_protection
        },
        tags: i.tags.into_iter().collect(),
        cloud,
        region,
        private_host: i.private_host.filter(|h| !h.is_empty()),
        pod,
        byoc,
        read_capacity,
        embed,
        schema,
        deployment,
        source_backup_id: i.source_backup_id,
        cmek_id: i.cmek_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_struct_is_no_metadata() {
        assert_eq!(
            non_empty_struct(Some(pbjson_types::Struct::default())),
            None
        );
    }

    #[test]
    fn non_finite_numbers_become_null() {
        let s: pbjson_types::Struct = [("x".to_string(), pbjson_types::Value::from(f64::NAN))]
            .into_iter()
            .collect();
        assert_eq!(struct_to_json(&s)["x"], Value::Null);
    }

    #[test]
    fn an_index_with_a_null_host_is_not_ready() {
        let i: c::IndexModel = serde_json::from_str(
            r#"{"name":"r","host":null,"status":{"ready":true,"state":"Ready"}}"#,
        )
        .unwrap();
        let g = index_from_wire(i);
        assert!(!g.ready);
        assert_eq!(g.host, "");
    }
}
