//! protobuf messages ↔ REST JSON wire types. `google.protobuf.Struct` ↔ JSON object: Struct numbers are doubles, so
//! an integer comes back as a double, as it does with Pinecone's own gRPC API.

use crate::pb::gateway as g;
use crate::pb::pinecone as p;
use crate::wire::{control as c, data as w};
use prost_types::value::Kind;
use serde_json::{Map, Number, Value};

pub fn struct_to_json(s: &prost_types::Struct) -> Map<String, Value> {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), value_to_json(v)))
        .collect()
}

fn value_to_json(v: &prost_types::Value) -> Value {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        // Non-finite doubles have no JSON form; the validator rejects them before this matters.
        Some(Kind::NumberValue(n)) => Number::from_f64(*n)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::StructValue(s)) => Value::Object(struct_to_json(s)),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(value_to_json).collect()),
    }
}

pub fn json_to_struct(m: &Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: m
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

fn json_to_value(v: &Value) -> prost_types::Value {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(json_to_value).collect(),
        }),
        Value::Object(o) => Kind::StructValue(json_to_struct(o)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// An empty Struct means "no metadata" / "no filter": 7.x/8.x clients always send one on upsert.
pub fn opt_struct(s: &Option<prost_types::Struct>) -> Option<Map<String, Value>> {
    s.as_ref()
        .filter(|s| !s.fields.is_empty())
        .map(struct_to_json)
}

pub fn sparse_to_wire(s: &p::SparseValues) -> w::SparseValues {
    w::SparseValues {
        indices: s.indices.clone(),
        values: s.values.clone(),
    }
}

fn sparse_from_wire(s: w::SparseValues) -> p::SparseValues {
    p::SparseValues {
        indices: s.indices,
        values: s.values,
    }
}

/// A sparse vector with no entries is treated as absent, as protobuf clients cannot tell the two apart.
pub fn opt_sparse(s: &Option<p::SparseValues>) -> Option<w::SparseValues> {
    s.as_ref()
        .filter(|s| !s.indices.is_empty() || !s.values.is_empty())
        .map(sparse_to_wire)
}

pub fn vector_to_wire(v: &p::Vector) -> w::Vector {
    w::Vector {
        id: v.id.clone(),
        values: v.values.clone(),
        sparse_values: opt_sparse(&v.sparse_values),
        metadata: opt_struct(&v.metadata),
    }
}

pub fn vector_from_wire(v: w::Vector) -> p::Vector {
    p::Vector {
        id: v.id,
        values: v.values,
        sparse_values: v.sparse_values.map(sparse_from_wire),
        metadata: v.metadata.as_ref().map(json_to_struct),
    }
}

pub fn usage(u: Option<w::Usage>) -> Option<p::Usage> {
    u.map(|u| p::Usage {
        read_units: u.read_units,
    })
}

pub fn pagination(pg: Option<w::Pagination>) -> Option<p::Pagination> {
    pg.map(|pg| p::Pagination { next: pg.next })
}

pub fn scored_from_wire(m: w::ScoredVector) -> p::ScoredVector {
    p::ScoredVector {
        id: m.id,
        score: m.score,
        values: m.values.unwrap_or_default(),
        sparse_values: m.sparse_values.map(sparse_from_wire),
        metadata: m.metadata.as_ref().map(json_to_struct),
    }
}

pub fn schema_to_wire(s: &p::MetadataSchema) -> w::MetadataSchema {
    w::MetadataSchema {
        fields: s
            .fields
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    w::MetadataFieldProperties {
                        filterable: v.filterable,
                    },
                )
            })
            .collect(),
    }
}

pub fn namespace_from_wire(n: w::NamespaceDescription) -> p::NamespaceDescription {
    p::NamespaceDescription {
        name: n.name,
        record_count: n.record_count,
        schema: n.schema.map(|s| p::MetadataSchema {
            fields: s
                .fields
                .into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        p::MetadataFieldProperties {
                            filterable: v.filterable,
                        },
                    )
                })
                .collect(),
        }),
        indexed_fields: n
            .indexed_fields
            .map(|f| p::IndexedFields { fields: f.fields }),
    }
}

pub fn backup_from_wire(b: c::BackupModel) -> g::Backup {
    g::Backup {
        backup_id: b.backup_id,
        source_index_name: b.source_index_name,
        source_index_id: b.source_index_id,
        name: b.name,
        description: b.description,
        status: b.status,
        cloud: b.cloud,
        region: b.region,
        dimension: b.dimension,
        metric: b.metric,
        record_count: b.record_count,
        namespace_count: b.namespace_count,
        size_bytes: b.size_bytes,
        tags: b.tags.into_iter().collect(),
        created_at: b.created_at,
    }
}

pub fn restore_job_from_wire(j: c::RestoreJobModel) -> g::RestoreJob {
    g::RestoreJob {
        restore_job_id: j.restore_job_id,
        backup_id: j.backup_id,
        target_index_name: j.target_index_name,
        target_index_id: j.target_index_id,
        status: j.status,
        created_at: j.created_at,
        completed_at: j.completed_at,
        percent_complete: j.percent_complete,
    }
}

pub fn index_from_wire(i: c::IndexModel) -> g::Index {
    let serverless = i.spec.serverless;
    g::Index {
        name: i.name,
        metric: i.metric,
        host: i.host,
        dimension: i.dimension,
        vector_type: i.vector_type,
        ready: i.status.ready,
        state: i.status.state,
        deletion_protection: i.deletion_protection,
        tags: i.tags.unwrap_or_default().into_iter().collect(),
        cloud: serverless.as_ref().map(|s| s.cloud.clone()),
        region: serverless.map(|s| s.region),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn struct_round_trips_through_json() {
        let m = json!({"genre": "drama", "year": 2020.5, "tags": ["a"], "ok": true})
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(struct_to_json(&json_to_struct(&m)), m);
    }

    #[test]
    fn empty_struct_is_no_metadata() {
        assert_eq!(opt_struct(&Some(prost_types::Struct::default())), None);
    }
}
