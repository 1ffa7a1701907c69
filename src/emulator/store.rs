//! The records of one emulated index and every data-plane operation on them, as plain functions over memory.
//!
//! Errors carry the gRPC status number Pinecone's data plane puts in its error body and the message; the HTTP layer
//! (data.rs) decodes requests and encodes answers.

use super::filter;
use super::model::{self as m, Metadata};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::BTreeMap;

/// An error answer of the data plane.
#[derive(Debug, Clone, PartialEq)]
pub struct DataError {
    /// The gRPC status number (3 INVALID_ARGUMENT, 5 NOT_FOUND, 6 ALREADY_EXISTS, 8 RESOURCE_EXHAUSTED, …).
    pub code: i32,
    pub message: String,
    /// Sent as `Retry-After` (whole seconds, rounded up).
    pub retry_after: Option<std::time::Duration>,
}

impl DataError {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        DataError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The HTTP status Pinecone's REST front end answers with for this gRPC status.
    pub fn http_status(&self) -> u16 {
        match self.code {
            3 | 9 | 11 => 400,
            16 => 401,
            7 => 403,
            5 => 404,
            6 | 10 => 409,
            8 => 429,
            12 => 501,
            14 => 503,
            4 => 504,
            _ => 500,
        }
    }
}

pub type Result<T> = std::result::Result<T, DataError>;

pub fn bad(message: impl Into<String>) -> DataError {
    DataError::new(3, message)
}

pub fn not_found(message: impl Into<String>) -> DataError {
    DataError::new(5, message)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Cosine,
    Dotproduct,
    Euclidean,
}

impl Metric {
    pub fn parse(s: &str) -> Option<Metric> {
        match s {
            "cosine" => Some(Metric::Cosine),
            "dotproduct" => Some(Metric::Dotproduct),
            "euclidean" => Some(Metric::Euclidean),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Dotproduct => "dotproduct",
            Metric::Euclidean => "euclidean",
        }
    }
}

/// One record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    pub values: Vec<f32>,
    pub sparse: Option<m::SparseIn>,
    pub metadata: Option<Metadata>,
}

impl Record {
    /// What the record takes in its namespace, by the emulator's model of Pinecone's storage: its ID, 4 bytes per
    /// dense value, 8 per sparse entry (index and value), and its metadata's keys and values.
    fn size(&self, id: &str) -> u64 {
        let sparse = self.sparse.as_ref().map_or(0, |s| s.indices.len() * 8);
        let metadata = self.metadata.as_ref().map_or(0, |m| {
            m.iter()
                .map(|(k, v)| k.len() as u64 + json_size(v))
                .sum::<u64>()
        });
        id.len() as u64 + self.values.len() as u64 * 4 + sparse as u64 + metadata
    }

    fn out(&self, id: &str, with_values: bool, with_metadata: bool) -> m::VectorOut {
        m::VectorOut {
            id: id.to_string(),
            values: if with_values {
                self.values.clone()
            } else {
                Vec::new()
            },
            sparse_values: self
                .sparse
                .as_ref()
                .filter(|_| with_values)
                .map(|s| m::SparseOut {
                    indices: s.indices.clone(),
                    values: s.values.clone(),
                }),
            metadata: self.metadata.clone().filter(|_| with_metadata),
        }
    }
}

/// The bytes a metadata value takes: strings their length, numbers 8, booleans 1, lists the sum of their items.
fn json_size(v: &serde_json::Value) -> u64 {
    use serde_json::Value;
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 8,
        Value::String(s) => s.len() as u64,
        Value::Array(a) => a.iter().map(json_size).sum(),
        Value::Object(o) => o.iter().map(|(k, v)| k.len() as u64 + json_size(v)).sum(),
    }
}

/// Pinecone charges a query 1 read unit per GB of its namespace.
pub const BYTES_PER_READ_UNIT: u64 = 1_000_000_000;

#[derive(Clone, Debug, Default)]
pub struct Namespace {
    pub records: BTreeMap<String, Record>,
    pub schema: Option<m::Schema>,
}

/// The data of one index. Cloning it is how backups snapshot an index.
#[derive(Clone, Debug)]
pub struct IndexData {
    pub dimension: Option<u32>,
    pub metric: Metric,
    pub sparse: bool,
    pub namespaces: BTreeMap<String, Namespace>,
    /// Pinecone's log sequence number of each namespace (serverless): the LSN of its last write. Kept apart from
    /// `namespaces` so that it only grows, even when the namespace is deleted and written again.
    pub lsns: BTreeMap<String, u64>,
}

const DEFAULT_NAMESPACE: &str = "__default__";
const MAX_IDS: usize = 1000;
const MAX_TOP_K: u32 = 10_000;
const MAX_PAGE: u32 = 100;
const MAX_FETCH_BY_METADATA: u32 = 10_000;
const MAX_ID_LEN: usize = 512;

pub(super) fn ns_key(ns: &str) -> &str {
    if ns.is_empty() { DEFAULT_NAMESPACE } else { ns }
}

fn encode_token(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(last.as_bytes())
}

fn decode_token(token: &str) -> Result<String> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| bad(format!("Invalid pagination token: {token}")))
}

/// Takes up to `limit` items after the token's position from an ordered iterator of (key, item), and the token for
/// the next page when more remain.
pub fn page<'a, T: 'a>(
    items: impl Iterator<Item = (&'a String, T)>,
    limit: usize,
    token: Option<&str>,
) -> Result<(Vec<T>, Option<String>)> {
    let after = token.map(decode_token).transpose()?;
    let mut out = Vec::new();
    let mut last = None;
    let mut more = false;
    for (key, item) in items {
        if after.as_ref().is_some_and(|a| key.as_str() <= a.as_str()) {
            continue;
        }
        if out.len() == limit {
            more = true;
            break;
        }
        last = Some(key.clone());
        out.push(item);
    }
    Ok((
        out,
        if more {
            last.map(|l| encode_token(&l))
        } else {
            None
        },
    ))
}

/// A filter Pinecone accepts; `what` names the operation in Pinecone's messages for empty filters.
fn checked_filter<'f>(f: &'f Option<Metadata>, what: &str) -> Result<Option<&'f Metadata>> {
    match f {
        None => Ok(None),
        Some(f) if f.is_empty() => Err(bad(format!(
            "{what} with empty metadata filter is not allowed"
        ))),
        Some(f) => filter::check(f)
            .map(|_| Some(f))
            .map_err(|e| bad(format!("Invalid filter: {e}"))),
    }
}

fn hits(f: Option<&Metadata>, r: &Record) -> bool {
    f.is_none_or(|f| filter::matches(f, r.metadata.as_ref()))
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(bad("Vector id must not be empty"));
    }
    if id.len() > MAX_ID_LEN || !id.is_ascii() || id.contains('\0') {
        return Err(bad(format!(
            "Vector id must be ASCII, without NUL, at most {MAX_ID_LEN} characters"
        )));
    }
    Ok(())
}

fn usage(read_units: u32) -> m::Usage {
    m::Usage { read_units }
}

impl IndexData {
    pub fn new(dimension: Option<u32>, metric: Metric, sparse: bool) -> Self {
        IndexData {
            dimension,
            metric,
            sparse,
            namespaces: BTreeMap::new(),
            lsns: BTreeMap::new(),
        }
    }

    /// The LSN of a write to `ns` that succeeded: the next of that namespace (a write to one namespace never moves
    /// another's), as Pinecone's "check data freshness" guide describes.
    pub fn next_lsn(&mut self, ns: &str) -> u64 {
        let lsn = self.lsns.entry(ns_key(ns).to_string()).or_insert(0);
        *lsn += 1;
        *lsn
    }

    /// The highest LSN `ns` has applied (0 before its first write). The emulator applies every write at once.
    pub fn indexed_lsn(&self, ns: &str) -> u64 {
        self.lsns.get(ns_key(ns)).copied().unwrap_or(0)
    }

    fn ns(&self, ns: &str) -> Option<&Namespace> {
        self.namespaces.get(ns_key(ns))
    }

    pub fn record_count(&self) -> u64 {
        self.namespaces
            .values()
            .map(|n| n.records.len() as u64)
            .sum()
    }

    fn check_values(&self, id: &str, values: &[f32], sparse: Option<&m::SparseIn>) -> Result<()> {
        if let Some(s) = sparse
            && s.indices.len() != s.values.len()
        {
            return Err(bad(format!(
                "Sparse vector of record {id} has {} indices and {} values",
                s.indices.len(),
                s.values.len()
            )));
        }
        if self.sparse {
            if !values.is_empty() {
                return Err(bad(format!(
                    "Record {id}: a sparse index takes no dense values"
                )));
            }
            return Ok(());
        }
        if let Some(dim) = self.dimension
            && values.len() as u32 != dim
        {
            return Err(bad(format!(
                "Vector dimension {} does not match the dimension of the index {dim}",
                values.len()
            )));
        }
        Ok(())
    }

    pub fn upsert(&mut self, req: m::UpsertIn) -> Result<m::UpsertOut> {
        if req.vectors.is_empty() || req.vectors.len() > MAX_IDS {
            return Err(bad(format!(
                "Upsert takes 1 to {MAX_IDS} vectors; got {}",
                req.vectors.len()
            )));
        }
        for v in &req.vectors {
            check_id(&v.id)?;
            self.check_values(&v.id, &v.values, v.sparse_values.as_ref())?;
        }
        let count = req.vectors.len() as u32;
        let ns = self
            .namespaces
            .entry(ns_key(&req.namespace).to_string())
            .or_default();
        for v in req.vectors {
            let record = Record {
                values: v.values,
                sparse: v.sparse_values,
                // An empty metadata object is "no metadata".
                metadata: v.metadata.filter(|m| !m.is_empty()),
            };
            ns.records.insert(v.id, record);
        }
        Ok(m::UpsertOut {
            upserted_count: count,
        })
    }

    pub fn fetch(&self, ids: &[String], namespace: &str) -> Result<m::FetchOut> {
        if ids.is_empty() {
            return Err(bad("No ids provided"));
        }
        if ids.len() > MAX_IDS {
            return Err(bad(format!(
                "Fetch takes at most {MAX_IDS} ids; got {}",
                ids.len()
            )));
        }
        let mut vectors = BTreeMap::new();
        if let Some(ns) = self.ns(namespace) {
            for id in ids {
                if let Some(r) = ns.records.get(id) {
                    vectors.insert(id.clone(), r.out(id, true, true));
                }
            }
        }
        // Pinecone's rule (understanding-cost page): 1 read unit per 10 records fetched, at least 1.
        let read_units = (vectors.len() as u32).div_ceil(10).max(1);
        Ok(m::FetchOut {
            vectors,
            namespace: namespace.to_string(),
            usage: usage(read_units),
            pagination: None,
        })
    }

    pub fn fetch_by_metadata(&self, req: &m::FetchByMetadataIn) -> Result<m::FetchOut> {
        let f = match &req.filter {
            None => return Err(bad("Empty filter provided for fetch by metadata request")),
            Some(f) if f.is_empty() => {
                return Err(bad("Empty filter provided for fetch by metadata request"));
            }
            f => checked_filter(f, "Fetch")?,
        };
        let limit = req.limit.unwrap_or(100);
        if !(1..=MAX_FETCH_BY_METADATA).contains(&limit) {
            return Err(bad(format!(
                "limit must be 1 to {MAX_FETCH_BY_METADATA}; got {limit}"
            )));
        }
        let empty = Namespace::default();
        let ns = self.ns(&req.namespace).unwrap_or(&empty);
        let matching = ns
            .records
            .iter()
            .filter(|(_, r)| hits(f, r))
            .map(|(k, r)| (k, (k, r)));
        let (page, next) = page(matching, limit as usize, req.pagination_token.as_deref())?;
        Ok(m::FetchOut {
            vectors: page
                .into_iter()
                .map(|(k, r)| (k.clone(), r.out(k, true, true)))
                .collect(),
            namespace: req.namespace.clone(),
            usage: usage(1),
            pagination: next.map(|next| m::Pagination { next }),
        })
    }

    pub fn delete(&mut self, req: &m::DeleteIn) -> Result<()> {
        let given = [!req.ids.is_empty(), req.delete_all, req.filter.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if given != 1 {
            return Err(bad("Delete takes exactly one of ids, deleteAll and filter"));
        }
        if req.ids.len() > MAX_IDS {
            return Err(bad(format!(
                "Delete takes at most {MAX_IDS} ids; got {}",
                req.ids.len()
            )));
        }
        let f = checked_filter(&req.filter, "Delete")?;
        let Some(ns) = self.namespaces.get_mut(ns_key(&req.namespace)) else {
            return Ok(());
        };
        if req.delete_all {
            ns.records.clear();
        } else if f.is_some() {
            ns.records.retain(|_, r| !hits(f, r));
        } else {
            for id in &req.ids {
                ns.records.remove(id);
            }
        }
        Ok(())
    }

    pub fn list(
        &self,
        namespace: &str,
        prefix: &str,
        limit: Option<u32>,
        token: Option<&str>,
    ) -> Result<m::ListOut> {
        let limit = limit.unwrap_or(MAX_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(bad(format!("limit must be 1 to {MAX_PAGE}; got {limit}")));
        }
        let empty = Namespace::default();
        let ns = self.ns(namespace).unwrap_or(&empty);
        let ids = ns
            .records
            .range(prefix.to_string()..)
            .take_while(|(id, _)| id.starts_with(prefix))
            .map(|(id, _)| (id, id));
        let (page, next) = page(ids, limit as usize, token)?;
        Ok(m::ListOut {
            vectors: page
                .into_iter()
                .map(|id| m::ListItem { id: id.clone() })
                .collect(),
            pagination: next.map(|next| m::Pagination { next }),
            namespace: namespace.to_string(),
            usage: usage(1),
        })
    }

    /// What a query of `namespace` costs, by Pinecone's rule: 1 read unit per `bytes_per_read_unit` of the
    /// namespace (Pinecone: 1 GB), at least 0.25; the answer reports whole read units, so at least 1.
    pub fn query_read_units(&self, namespace: &str, bytes_per_read_unit: u64) -> u64 {
        let bytes: u64 = self.ns(namespace).map_or(0, |n| {
            n.records.iter().map(|(id, r)| r.size(id)).sum::<u64>()
        });
        let quarters = (bytes * 4).div_ceil(bytes_per_read_unit.max(1)).max(1);
        quarters.div_ceil(4)
    }

    pub fn query(&self, req: &m::QueryIn, read_units: u64) -> Result<m::QueryOut> {
        if !(1..=MAX_TOP_K).contains(&req.top_k) {
            return Err(bad(format!(
                "topK must be 1 to {MAX_TOP_K}; got {}",
                req.top_k
            )));
        }
        let f = match &req.filter {
            Some(f) if f.is_empty() => None,
            f => checked_filter(f, "Query")?,
        };
        let empty = Namespace::default();
        let ns = self.ns(&req.namespace).unwrap_or(&empty);
        let by_vector = !req.vector.is_empty() || req.sparse_vector.is_some();
        let (dense, sparse) = match (req.id.is_empty(), by_vector) {
            (false, false) => match ns.records.get(&req.id) {
                Some(r) => (r.values.clone(), r.sparse.clone()),
                None => {
                    return Ok(m::QueryOut {
                        matches: vec![],
                        namespace: req.namespace.clone(),
                        usage: usage(1),
                    });
                }
            },
            (true, true) => (req.vector.clone(), req.sparse_vector.clone()),
            _ => {
                return Err(bad(
                    "Query takes exactly one of vector (and/or sparseVector) and id",
                ));
            }
        };
        self.check_values("query", &dense, sparse.as_ref())?;
        let mut scored: Vec<(f32, &String, &Record)> = ns
            .records
            .iter()
            .filter(|(_, r)| hits(f, r))
            .map(|(id, r)| (self.score(&dense, sparse.as_ref(), r), id, r))
            .collect();
        let ascending = self.metric == Metric::Euclidean;
        scored.sort_by(|a, b| {
            let o = a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal);
            let o = if ascending { o } else { o.reverse() };
            o.then_with(|| a.1.cmp(b.1))
        });
        let matches = scored
            .into_iter()
            .take(req.top_k as usize)
            .map(|(score, id, r)| {
                let v = r.out(id, req.include_values, req.include_metadata);
                m::MatchOut {
                    id: v.id,
                    score,
                    values: v.values,
                    sparse_values: v.sparse_values,
                    metadata: v.metadata,
                }
            })
            .collect();
        Ok(m::QueryOut {
            matches,
            namespace: req.namespace.clone(),
            usage: usage(u32::try_from(read_units).unwrap_or(u32::MAX)),
        })
    }

    fn score(&self, q: &[f32], qs: Option<&m::SparseIn>, r: &Record) -> f32 {
        let sparse_dot = match (qs, r.sparse.as_ref()) {
            (Some(a), Some(b)) => sparse_dot(a, b),
            _ => 0.0,
        };
        if self.sparse {
            return sparse_dot;
        }
        let dot: f32 = q.iter().zip(&r.values).map(|(a, b)| a * b).sum();
        match self.metric {
            Metric::Dotproduct => dot + sparse_dot,
            Metric::Cosine => {
                let na = q.iter().map(|x| x * x).sum::<f32>().sqrt();
                let nb = r.values.iter().map(|x| x * x).sum::<f32>().sqrt();
                if na == 0.0 || nb == 0.0 {
                    0.0
                } else {
                    dot / (na * nb)
                }
            }
            // Pinecone reports the squared distance; smaller is closer.
            Metric::Euclidean => q
                .iter()
                .zip(&r.values)
                .map(|(a, b)| (a - b) * (a - b))
                .sum(),
        }
    }

    fn set_metadata(r: &mut Record, set: &Metadata) {
        let m = r.metadata.get_or_insert_with(Default::default);
        for (k, val) in set {
            m.insert(k.clone(), val.clone());
        }
    }

    pub fn update(&mut self, req: &m::UpdateIn) -> Result<m::UpdateOut> {
        let key = ns_key(&req.namespace).to_string();
        match (req.id.is_empty(), &req.filter) {
            (false, None) => {
                if !req.values.is_empty() {
                    self.check_values(&req.id, &req.values, req.sparse_values.as_ref())?;
                }
                let Some(r) = self
                    .namespaces
                    .get_mut(&key)
                    .and_then(|n| n.records.get_mut(&req.id))
                else {
                    return Ok(m::UpdateOut { matched_records: 0 });
                };
                if !req.values.is_empty() {
                    r.values = req.values.clone();
                }
                if let Some(s) = &req.sparse_values {
                    r.sparse = Some(s.clone());
                }
                if let Some(set) = &req.set_metadata {
                    Self::set_metadata(r, set);
                }
                Ok(m::UpdateOut { matched_records: 1 })
            }
            (true, Some(_)) => {
                let f = checked_filter(&req.filter, "Update")?;
                if !req.values.is_empty() || req.sparse_values.is_some() {
                    return Err(bad("Update by filter can only set metadata"));
                }
                let dry = req.dry_run.unwrap_or(false);
                let Some(ns) = self.namespaces.get_mut(&key) else {
                    return Ok(m::UpdateOut { matched_records: 0 });
                };
                let mut n = 0;
                for r in ns.records.values_mut() {
                    if hits(f, r) {
                        n += 1;
                        if !dry && let Some(set) = &req.set_metadata {
                            Self::set_metadata(r, set);
                        }
                    }
                }
                Ok(m::UpdateOut { matched_records: n })
            }
            _ => Err(bad("Update takes exactly one of id and filter")),
        }
    }

    pub fn stats(&self, req: &m::StatsIn) -> Result<m::StatsOut> {
        let f = match &req.filter {
            Some(f) if f.is_empty() => None,
            f => checked_filter(f, "Describe index stats")?,
        };
        let mut namespaces = BTreeMap::new();
        let mut total = 0u32;
        for (name, ns) in &self.namespaces {
            let count = ns.records.values().filter(|r| hits(f, r)).count() as u32;
            total += count;
            // The OpenAPI example reports the default namespace as "".
            let key = if name == DEFAULT_NAMESPACE {
                ""
            } else {
                name.as_str()
            };
            namespaces.insert(
                key.to_string(),
                m::NamespaceSummary {
                    vector_count: count,
                },
            );
        }
        Ok(m::StatsOut {
            namespaces,
            dimension: self.dimension,
            index_fullness: 0.0,
            total_vector_count: total,
            metric: self.metric.as_str().to_string(),
            vector_type: if self.sparse { "sparse" } else { "dense" }.to_string(),
            memory_fullness: 0.0,
            storage_fullness: 0.0,
        })
    }

    fn describe_ns(name: &str, ns: &Namespace) -> m::NamespaceOut {
        m::NamespaceOut {
            name: name.to_string(),
            record_count: ns.records.len() as u64,
            schema: ns.schema.clone(),
            indexed_fields: ns.schema.as_ref().map(|s| m::IndexedFields {
                fields: s.fields.keys().cloned().collect(),
            }),
        }
    }

    pub fn list_namespaces(
        &self,
        prefix: &str,
        limit: Option<u32>,
        token: Option<&str>,
    ) -> Result<m::NamespacesOut> {
        let limit = limit.unwrap_or(MAX_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(bad(format!("limit must be 1 to {MAX_PAGE}; got {limit}")));
        }
        let all = self
            .namespaces
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(k, ns)| (k, (k, ns)));
        let total = all.clone().count() as i32;
        let (page, next) = page(all, limit as usize, token)?;
        Ok(m::NamespacesOut {
            namespaces: page
                .into_iter()
                .map(|(k, ns)| Self::describe_ns(k, ns))
                .collect(),
            pagination: next.map(|next| m::Pagination { next }),
            total_count: total,
        })
    }

    pub fn describe_namespace(&self, name: &str) -> Result<m::NamespaceOut> {
        let key = ns_key(name);
        self.namespaces
            .get(key)
            .map(|ns| Self::describe_ns(key, ns))
            .ok_or_else(|| not_found(format!("Namespace {name} not found")))
    }

    pub fn create_namespace(&mut self, req: &m::CreateNamespaceIn) -> Result<m::NamespaceOut> {
        if req.name.is_empty() || req.name == DEFAULT_NAMESPACE {
            return Err(bad(format!(
                "Namespace name `{}` is reserved or empty",
                req.name
            )));
        }
        if self.namespaces.contains_key(&req.name) {
            return Err(DataError::new(
                6,
                format!("Namespace {} already exists", req.name),
            ));
        }
        let ns = Namespace {
            records: BTreeMap::new(),
            schema: req.schema.clone(),
        };
        let out = Self::describe_ns(&req.name, &ns);
        self.namespaces.insert(req.name.clone(), ns);
        Ok(out)
    }

    pub fn delete_namespace(&mut self, name: &str) -> Result<()> {
        self.namespaces
            .remove(ns_key(name))
            .map(|_| ())
            .ok_or_else(|| not_found(format!("Namespace {name} not found")))
    }

    /// Inserts records directly (the demo index).
    pub fn insert(&mut self, namespace: &str, id: &str, record: Record) {
        self.namespaces
            .entry(ns_key(namespace).to_string())
            .or_default()
            .records
            .insert(id.to_string(), record);
    }
}

fn sparse_dot(a: &m::SparseIn, b: &m::SparseIn) -> f32 {
    let lookup: BTreeMap<u32, f32> = b
        .indices
        .iter()
        .copied()
        .zip(b.values.iter().copied())
        .collect();
    a.indices
        .iter()
        .zip(&a.values)
        .filter_map(|(i, x)| lookup.get(i).map(|y| x * y))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vec(id: &str, values: Vec<f32>) -> m::VectorIn {
        m::VectorIn {
            id: id.into(),
            values,
            ..Default::default()
        }
    }

    #[test]
    fn a_query_costs_its_namespace_size_in_whole_read_units() {
        let mut d = IndexData::new(Some(2), Metric::Cosine, false);
        // Nothing to read still costs Pinecone's least, 0.25 RU, reported as 1.
        assert_eq!(d.query_read_units("ns", 100), 1);
        // 30 records of 9 bytes (a 1-byte ID, 2 values of 4 bytes): 270 bytes at 100 a unit is 2.7, reported as 3.
        d.upsert(m::UpsertIn {
            vectors: (0..30)
                .map(|i| vec(&char::from(b'A' + i).to_string(), vec![1.0, 2.0]))
                .collect(),
            namespace: "ns".into(),
        })
        .unwrap();
        assert_eq!(d.query_read_units("ns", 100), 3);
        assert_eq!(d.query_read_units("ns", 270), 1);
        assert_eq!(d.query_read_units("ns", 269), 2);
        assert_eq!(d.query_read_units("other", 100), 1);
    }

    #[test]
    fn pages_walk_every_id_once_in_order() {
        let mut d = IndexData::new(Some(1), Metric::Cosine, false);
        let vectors = (0..250)
            .map(|i| vec(&format!("id-{i:03}"), vec![1.0]))
            .collect::<Vec<_>>();
        for chunk in vectors.chunks(100) {
            d.upsert(m::UpsertIn {
                vectors: chunk.to_vec(),
                namespace: String::new(),
            })
            .unwrap();
        }
        let mut seen = vec![];
        let mut token = None;
        loop {
            let r = d.list("", "", Some(100), token.as_deref()).unwrap();
            seen.extend(r.vectors.into_iter().map(|i| i.id));
            match r.pagination {
                Some(p) => token = Some(p.next),
                None => break,
            }
        }
        assert_eq!(seen.len(), 250);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn euclidean_ranks_nearest_first() {
        let mut d = IndexData::new(Some(2), Metric::Euclidean, false);
        d.upsert(m::UpsertIn {
            vectors: vec![vec("far", vec![10.0, 10.0]), vec("near", vec![1.0, 1.0])],
            namespace: "ns".into(),
        })
        .unwrap();
        let r = d
            .query(
                &m::QueryIn {
                    namespace: "ns".into(),
                    top_k: 2,
                    vector: vec![0.0, 0.0],
                    ..Default::default()
                },
                1,
            )
            .unwrap();
        assert_eq!(r.matches[0].id, "near");
        assert_eq!(r.matches[0].score, 2.0);
    }
}
