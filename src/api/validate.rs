//! Checks of caller input against Pinecone's documented limits, before anything goes upstream. Every message names
//! the field and the limit, so the caller can fix the call without reading Pinecone's docs.

use crate::filter;
use serde_json::{Map, Value};

/// Input that Pinecone would refuse. The message names the field and the rule.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

pub type Checked<T = ()> = Result<T, Invalid>;

fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

/// Record IDs and namespaces: at most this many characters.
pub const MAX_ID_CHARS: usize = 512;
/// Fetch and delete by ID: at most this many IDs per call. The gateway sends them to Pinecone in batches of 1,000.
pub const MAX_IDS_PER_CALL: usize = 100_000;
/// Upsert: at most this many vectors per call, sent in batches of 1,000 vectors and 2 MB.
pub const MAX_UPSERT_VECTORS_PER_CALL: usize = 100_000;
/// Metadata per record, in bytes of JSON.
pub const MAX_METADATA_BYTES: usize = 40 * 1024;
pub const MAX_DIMENSION: usize = 20_000;
/// Sparse non-zeros: the older, stricter documented value (the 2025-10 OAS still caps the arrays at 1,000).
pub const MAX_SPARSE_VALUES: usize = 1000;
pub const MAX_TOP_K: u32 = 10_000;
pub const MAX_LIST_LIMIT: u32 = 100;
pub const MAX_FETCH_BY_METADATA_LIMIT: u32 = 10_000;
pub const MAX_BACKUP_LIST_LIMIT: u32 = 100;
pub const MAX_INDEX_NAME_CHARS: usize = 45;

/// Why a string is not a valid record ID (or namespace), if it is not.
fn identifier_problem(s: &str) -> Option<String> {
    let chars = s.chars().count();
    if chars > MAX_ID_CHARS {
        return Some(format!(
            "is {chars} characters long; the limit is {MAX_ID_CHARS}"
        ));
    }
    if !s.is_ascii() {
        return Some("must be ASCII".into());
    }
    if s.contains('\0') {
        return Some("must not contain NUL (\\0)".into());
    }
    None
}

pub fn id(field: &str, id: &str) -> Checked {
    if id.is_empty() {
        return Err(invalid(format!("{field}: a record ID must not be empty")));
    }
    match identifier_problem(id) {
        Some(p) => Err(invalid(format!("{field}: record ID {p}"))),
        None => Ok(()),
    }
}

/// A list of record IDs for fetch or delete: 1 to 100,000 valid IDs.
pub fn ids(field: &str, ids: &[String]) -> Checked {
    if ids.is_empty() {
        return Err(invalid(format!(
            "{field}: at least one record ID is required"
        )));
    }
    if ids.len() > MAX_IDS_PER_CALL {
        return Err(invalid(format!(
            "{field}: {} IDs in one call; the gateway accepts at most {MAX_IDS_PER_CALL} (it sends them 1,000 at a time)",
            ids.len()
        )));
    }
    for (i, x) in ids.iter().enumerate() {
        id(&format!("{field}[{i}]"), x)?;
    }
    Ok(())
}

/// `""` and `__default__` are both fine.
pub fn namespace(field: &str, ns: &str) -> Checked {
    match identifier_problem(ns) {
        Some(p) => Err(invalid(format!("{field}: namespace {p}"))),
        None => Ok(()),
    }
}

/// Why a name is not a valid Pinecone index name, if it is not.
pub fn index_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > MAX_INDEX_NAME_CHARS {
        return Some(format!(
            "`{name}` is {} characters long; the limit is {MAX_INDEX_NAME_CHARS}",
            name.len()
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Some(format!(
            "`{name}` may hold only lowercase letters a-z, digits and '-'"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some(format!("`{name}` must not start or end with '-'"));
    }
    None
}

/// Index names.
pub fn index_name(field: &str, name: &str) -> Checked {
    match index_name_problem(name) {
        Some(p) => Err(invalid(format!("{field}: {p}"))),
        None => Ok(()),
    }
}

/// An opaque id (backup, restore job) that goes into a URL path.
pub fn opaque_id(field: &str, id: &str) -> Checked {
    if id.is_empty() {
        return Err(invalid(format!("{field}: must not be empty")));
    }
    if id.len() > 256 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(format!(
            "{field}: must be at most 256 printable ASCII characters"
        )));
    }
    path_segment(field, id)
}

/// A value that becomes a URL path segment: `.` and `..` would be removed by URL normalisation and send the request
/// to another resource (`GET /backups/..` lists every backup), so they are refused.
pub fn path_segment(field: &str, value: &str) -> Checked {
    if crate::wire::query::is_dot_segment(value) {
        return Err(invalid(format!(
            "{field}: `{value}` cannot be used: it is a relative path segment in Pinecone's URL"
        )));
    }
    Ok(())
}

pub fn limit(field: &str, value: Option<u32>, max: u32) -> Checked {
    match value {
        Some(v) if v == 0 || v > max => Err(invalid(format!(
            "{field}: {v} is out of range; it must be 1 to {max}"
        ))),
        _ => Ok(()),
    }
}

pub fn top_k(top_k: u32) -> Checked {
    if top_k == 0 || top_k > MAX_TOP_K {
        return Err(invalid(format!(
            "top_k: {top_k} is out of range; it must be 1 to {MAX_TOP_K}"
        )));
    }
    Ok(())
}

/// A filter given by the caller: valid, and non-empty where Pinecone refuses empty filters.
pub fn filter(field: &str, f: &Map<String, Value>, empty_refused_by: Option<&str>) -> Checked {
    if filter::is_empty(f) {
        if let Some(op) = empty_refused_by {
            return Err(invalid(format!(
                "{field}: must not be empty; Pinecone refuses {op} with an empty metadata filter"
            )));
        }
        return Ok(());
    }
    filter::parse(field, f)
        .map(|_| ())
        .map_err(|e| invalid(e.to_string()))
}

pub fn dense_values(field: &str, values: &[f32]) -> Checked {
    if values.len() > MAX_DIMENSION {
        return Err(invalid(format!(
            "{field}: {} dimensions; the limit is {MAX_DIMENSION}",
            values.len()
        )));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(invalid(format!("{field}: values must be finite numbers")));
    }
    Ok(())
}

pub fn sparse(field: &str, indices: &[u32], values: &[f32]) -> Checked {
    if indices.len() != values.len() {
        return Err(invalid(format!(
            "{field}: {} indices but {} values; they must pair up",
            indices.len(),
            values.len()
        )));
    }
    if indices.len() > MAX_SPARSE_VALUES {
        return Err(invalid(format!(
            "{field}: {} non-zero values; the limit is {MAX_SPARSE_VALUES}",
            indices.len()
        )));
    }
    dense_values(&format!("{field}.values"), values)
}

/// Record metadata: string, number, boolean or list-of-strings values, at most 40 KB of JSON.
pub fn metadata(field: &str, m: &Map<String, Value>) -> Checked {
    for (k, v) in m {
        let ok = match v {
            Value::String(_) | Value::Bool(_) => true,
            Value::Number(n) => n.as_f64().is_some_and(f64::is_finite),
            Value::Array(items) => items.iter().all(Value::is_string),
            _ => false,
        };
        if !ok {
            return Err(invalid(format!(
                "{field}.{k}: metadata values must be strings, finite numbers, booleans or lists of strings"
            )));
        }
    }
    let size = serde_json::to_vec(m).map(|b| b.len()).unwrap_or(usize::MAX);
    if size > MAX_METADATA_BYTES {
        return Err(invalid(format!(
            "{field}: {size} bytes of metadata; the limit is {MAX_METADATA_BYTES} (40 KB) per record"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_follow_pinecone_rules() {
        assert!(index_name_problem("docs-example-1").is_none());
        assert!(index_name_problem("Docs").is_some());
        assert!(index_name_problem("-a").is_some());
        assert!(index_name_problem(&"a".repeat(46)).is_some());
        assert!(index_name_problem("a_b").is_some());
    }

    #[test]
    fn dot_segments_are_refused_where_values_become_paths() {
        for bad in [".", ".."] {
            assert!(path_segment("namespace", bad).is_err());
            assert!(opaque_id("backup_id", bad).is_err());
            assert!(index_name("name", bad).is_err());
        }
        assert!(path_segment("namespace", "...").is_ok());
        assert!(opaque_id("backup_id", "a.b").is_ok());
    }

    #[test]
    fn ids_name_the_position_and_the_limit() {
        let e = ids("ids", &["ok".into(), "".into()]).unwrap_err();
        assert_eq!(e.0, "ids[1]: a record ID must not be empty");
        let e = ids("ids", &["x".repeat(513)]).unwrap_err();
        assert!(
            e.0.contains("513 characters long; the limit is 512"),
            "{}",
            e.0
        );
        let e = ids("ids", &["é".into()]).unwrap_err();
        assert!(e.0.contains("ASCII"));
        let many: Vec<String> = (0..100_001).map(|i| i.to_string()).collect();
        assert!(ids("ids", &many).unwrap_err().0.contains("at most 100000"));
    }
}
