//! The records of one emulated index and every data-plane operation on them, as plain functions over memory.
//!
//! Errors carry the HTTP status and Pinecone's message; the HTTP layer (data.rs) only decodes and encodes.

use crate::filter::{self, Filter};
use crate::wire::data::{self as w, Metadata, normalize_namespace};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::BTreeMap;

/// An error answer: HTTP status and message.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreError {
    pub status: u16,
    pub message: String,
    /// Sent as `Retry-After` (whole seconds, rounded up).
    pub retry_after: Option<std::time::Duration>,
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub fn bad(message: impl Into<String>) -> StoreError {
    StoreError {
        status: 400,
        message: message.into(),
        retry_after: None,
    }
}

pub fn not_found(message: impl Into<String>) -> StoreError {
    StoreError {
        status: 404,
        message: message.into(),
        retry_after: None,
    }
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

#[derive(Clone, Debug, Default)]
pub struct Namespace {
    pub records: BTreeMap<String, w::Vector>,
    pub schema: Option<w::MetadataSchema>,
}

/// The data of one index. Cloning it is how backups snapshot an index.
#[derive(Clone, Debug)]
pub struct IndexData {
    pub dimension: Option<u32>,
    pub metric: Metric,
    pub sparse: bool,
    pub namespaces: BTreeMap<String, Namespace>,
}

const MAX_IDS: usize = 1000;
const MAX_TOP_K: u32 = 10_000;
const MAX_PAGE: u32 = 100;
const MAX_FETCH_BY_METADATA: u32 = 10_000;

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

fn parse_filter(filter: &Option<Metadata>, what: &str) -> Result<Option<Filter>> {
    match filter {
        None => Ok(None),
        Some(f) if filter::is_empty(f) => Err(bad(format!(
            "{what} with empty metadata filter is not allowed"
        ))),
        Some(f) => filter::parse("filter", f)
            .map(Some)
            .map_err(|e| bad(format!("Invalid filter: {e}"))),
    }
}

fn matches(f: &Option<Filter>, v: &w::Vector) -> bool {
    f.as_ref().is_none_or(|f| f.matches(v.metadata.as_ref()))
}

impl IndexData {
    pub fn new(dimension: Option<u32>, metric: Metric, sparse: bool) -> Self {
        IndexData {
            dimension,
            metric,
            sparse,
            namespaces: BTreeMap::new(),
        }
    }

    fn ns(&self, ns: &str) -> Option<&Namespace> {
        self.namespaces.get(normalize_namespace(ns))
    }

    pub fn record_count(&self) -> u64 {
        self.namespaces
            .values()
            .map(|n| n.records.len() as u64)
            .sum()
    }

    fn check_dense(
        &self,
        id: &str,
        values: &[f32],
        sparse: Option<&w::SparseValues>,
    ) -> Result<()> {
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

    pub fn upsert(&mut self, req: w::UpsertRequest) -> Result<w::UpsertResponse> {
        if req.vectors.is_empty() || req.vectors.len() > MAX_IDS {
            return Err(bad(format!(
                "Upsert takes 1 to {MAX_IDS} vectors; got {}",
                req.vectors.len()
            )));
        }
        for v in &req.vectors {
            if v.id.is_empty() {
                return Err(bad("Vector id must not be empty"));
            }
            self.check_dense(&v.id, &v.values, v.sparse_values.as_ref())?;
        }
        let count = req.vectors.len() as u32;
        let ns = self
            .namespaces
            .entry(normalize_namespace(&req.namespace).to_string())
            .or_default();
        for mut v in req.vectors {
            // An empty metadata object is "no metadata" (7.x/8.x gRPC clients always send one).
            if v.metadata.as_ref().is_some_and(|m| m.is_empty()) {
                v.metadata = None;
            }
            ns.records.insert(v.id.clone(), v);
        }
        Ok(w::UpsertResponse {
            upserted_count: count,
        })
    }

    pub fn fetch(&self, ids: &[String], namespace: &str) -> Result<w::FetchResponse> {
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
                if let Some(v) = ns.records.get(id) {
                    vectors.insert(id.clone(), v.clone());
                }
            }
        }
        Ok(w::FetchResponse {
            vectors,
            namespace: namespace.to_string(),
            usage: Some(w::Usage {
                read_units: Some(1),
            }),
        })
    }

    pub fn fetch_by_metadata(
        &self,
        req: &w::FetchByMetadataRequest,
    ) -> Result<w::FetchByMetadataResponse> {
        let filter = match &req.filter {
            None => return Err(bad("Empty filter provided for fetch by metadata request")),
            Some(f) if filter::is_empty(f) => {
                return Err(bad("Empty filter provided for fetch by metadata request"));
            }
            f => parse_filter(f, "Fetch")?,
        };
        let limit = req.limit.unwrap_or(100);
        if !(1..=MAX_FETCH_BY_METADATA).contains(&limit) {
            return Err(bad(format!(
                "limit must be 1 to {MAX_FETCH_BY_METADATA}; got {limit}"
            )));
        }
        let empty = Namespace::default();
        let ns = self.ns(&req.namespace).unwrap_or(&empty);
        let matching = ns.records.iter().filter(|(_, v)| matches(&filter, v));
        let (page, next) = page(matching, limit as usize, req.pagination_token.as_deref())?;
        Ok(w::FetchByMetadataResponse {
            vectors: page
                .into_iter()
                .map(|v| (v.id.clone(), v.clone()))
                .collect(),
            namespace: req.namespace.clone(),
            usage: Some(w::Usage {
                read_units: Some(1),
            }),
            pagination: next.map(|next| w::Pagination { next }),
        })
    }

    pub fn delete(&mut self, req: &w::DeleteRequest) -> Result<()> {
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
        let filter = parse_filter(&req.filter, "Delete")?;
        let Some(ns) = self.namespaces.get_mut(normalize_namespace(&req.namespace)) else {
            return Ok(());
        };
        if req.delete_all {
            ns.records.clear();
        } else if let Some(f) = filter {
            ns.records.retain(|_, v| !f.matches(v.metadata.as_ref()));
        } else {
            for id in &req.ids {
                ns.records.remove(id);
            }
        }
        Ok(())
    }

    pub fn list(&self, p: &w::ListParams) -> Result<w::ListResponse> {
        let limit = p.limit.unwrap_or(MAX_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(bad(format!("limit must be 1 to {MAX_PAGE}; got {limit}")));
        }
        let empty = Namespace::default();
        let ns = self.ns(&p.namespace).unwrap_or(&empty);
        let prefix = p.prefix.clone().unwrap_or_default();
        let ids = ns
            .records
            .range(prefix.clone()..)
            .take_while(|(id, _)| id.starts_with(&prefix))
            .map(|(id, _)| (id, id));
        let (page, next) = page(ids, limit as usize, p.pagination_token.as_deref())?;
        Ok(w::ListResponse {
            vectors: page
                .into_iter()
                .map(|id| w::ListItem { id: id.clone() })
                .collect(),
            pagination: next.map(|next| w::Pagination { next }),
            namespace: p.namespace.clone(),
            usage: Some(w::Usage {
                read_units: Some(1),
            }),
        })
    }

    pub fn query(&self, req: &w::QueryRequest) -> Result<w::QueryResponse> {
        if !(1..=MAX_TOP_K).contains(&req.top_k) {
            return Err(bad(format!(
                "topK must be 1 to {MAX_TOP_K}; got {}",
                req.top_k
            )));
        }
        let filter = match &req.filter {
            Some(f) if filter::is_empty(f) => None,
            f => parse_filter(f, "Query")?,
        };
        let empty = Namespace::default();
        let ns = self.ns(&req.namespace).unwrap_or(&empty);
        let (dense, sparse) = match (&req.id, &req.vector, &req.sparse_vector) {
            (Some(id), None, None) => match ns.records.get(id) {
                Some(v) => (v.values.clone(), v.sparse_values.clone()),
                None => {
                    return Ok(w::QueryResponse {
                        matches: vec![],
                        namespace: req.namespace.clone(),
                        usage: Some(w::Usage {
                            read_units: Some(1),
                        }),
                    });
                }
            },
            (None, v, s) if v.is_some() || s.is_some() => {
                (v.clone().unwrap_or_default(), s.clone())
            }
            _ => {
                return Err(bad(
                    "Query takes exactly one of vector (and/or sparseVector) and id",
                ));
            }
        };
        self.check_dense("query", &dense, sparse.as_ref())?;
        let mut scored: Vec<(f32, &w::Vector)> = ns
            .records
            .values()
            .filter(|v| matches(&filter, v))
            .map(|v| (self.score(&dense, sparse.as_ref(), v), v))
            .collect();
        let ascending = self.metric == Metric::Euclidean;
        scored.sort_by(|a, b| {
            let o = a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal);
            let o = if ascending { o } else { o.reverse() };
            o.then_with(|| a.1.id.cmp(&b.1.id))
        });
        let matches = scored
            .into_iter()
            .take(req.top_k as usize)
            .map(|(score, v)| w::ScoredVector {
                id: v.id.clone(),
                score,
                values: req.include_values.then(|| v.values.clone()),
                sparse_values: if req.include_values {
                    v.sparse_values.clone()
                } else {
                    None
                },
                metadata: if req.include_metadata {
                    v.metadata.clone()
                } else {
                    None
                },
            })
            .collect();
        Ok(w::QueryResponse {
            matches,
            namespace: req.namespace.clone(),
            usage: Some(w::Usage {
                read_units: Some(5),
            }),
        })
    }

    fn score(&self, q: &[f32], qs: Option<&w::SparseValues>, v: &w::Vector) -> f32 {
        let sparse_dot = match (qs, v.sparse_values.as_ref()) {
            (Some(a), Some(b)) => sparse_dot(a, b),
            _ => 0.0,
        };
        if self.sparse {
            return sparse_dot;
        }
        let dot: f32 = q.iter().zip(&v.values).map(|(a, b)| a * b).sum();
        match self.metric {
            Metric::Dotproduct => dot + sparse_dot,
            Metric::Cosine => {
                let na = q.iter().map(|x| x * x).sum::<f32>().sqrt();
                let nb = v.values.iter().map(|x| x * x).sum::<f32>().sqrt();
                if na == 0.0 || nb == 0.0 {
                    0.0
                } else {
                    dot / (na * nb)
                }
            }
            // Pinecone reports the squared distance; smaller is closer.
            Metric::Euclidean => q
                .iter()
                .zip(&v.values)
                .map(|(a, b)| (a - b) * (a - b))
                .sum(),
        }
    }

    pub fn update(&mut self, req: &w::UpdateRequest) -> Result<w::UpdateResponse> {
        let ns_key = normalize_namespace(&req.namespace).to_string();
        match (&req.id, &req.filter) {
            (Some(id), None) if !id.is_empty() => {
                if let Some(values) = &req.values {
                    self.check_dense(id, values, req.sparse_values.as_ref())?;
                }
                let Some(v) = self
                    .namespaces
                    .get_mut(&ns_key)
                    .and_then(|n| n.records.get_mut(id))
                else {
                    return Ok(w::UpdateResponse {
                        matched_records: Some(0),
                    });
                };
                if let Some(values) = &req.values {
                    v.values = values.clone();
                }
                if let Some(s) = &req.sparse_values {
                    v.sparse_values = Some(s.clone());
                }
                if let Some(set) = &req.set_metadata {
                    let m = v.metadata.get_or_insert_with(Default::default);
                    for (k, val) in set {
                        m.insert(k.clone(), val.clone());
                    }
                }
                Ok(w::UpdateResponse {
                    matched_records: Some(1),
                })
            }
            (None, Some(_)) => {
                let filter = parse_filter(&req.filter, "Update")?;
                if req.values.is_some() || req.sparse_values.is_some() {
                    return Err(bad("Update by filter can only set metadata"));
                }
                let dry = req.dry_run.unwrap_or(false);
                let Some(ns) = self.namespaces.get_mut(&ns_key) else {
                    return Ok(w::UpdateResponse {
                        matched_records: Some(0),
                    });
                };
                let mut n = 0;
                for v in ns.records.values_mut() {
                    if matches(&filter, v) {
                        n += 1;
                        if !dry && let Some(set) = &req.set_metadata {
                            let m = v.metadata.get_or_insert_with(Default::default);
                            for (k, val) in set {
                                m.insert(k.clone(), val.clone());
                            }
                        }
                    }
                }
                Ok(w::UpdateResponse {
                    matched_records: Some(n),
                })
            }
            _ => Err(bad("Update takes exactly one of id and filter")),
        }
    }

    pub fn stats(
        &self,
        req: &w::DescribeIndexStatsRequest,
    ) -> Result<w::DescribeIndexStatsResponse> {
        let filter = match &req.filter {
            Some(f) if filter::is_empty(f) => None,
            f => parse_filter(f, "Describe index stats")?,
        };
        let mut namespaces = BTreeMap::new();
        let mut total = 0u32;
        for (name, ns) in &self.namespaces {
            let count = ns.records.values().filter(|v| matches(&filter, v)).count() as u32;
            total += count;
            // The OAS example reports the default namespace as "".
            let key = if name == w::DEFAULT_NAMESPACE {
                ""
            } else {
                name.as_str()
            };
            namespaces.insert(
                key.to_string(),
                w::NamespaceSummary {
                    vector_count: count,
                },
            );
        }
        Ok(w::DescribeIndexStatsResponse {
            namespaces,
            dimension: self.dimension,
            index_fullness: 0.0,
            total_vector_count: total,
            metric: Some(self.metric.as_str().to_string()),
            vector_type: Some(if self.sparse { "sparse" } else { "dense" }.to_string()),
            memory_fullness: Some(0.0),
            storage_fullness: Some(0.0),
        })
    }

    fn describe_ns(name: &str, ns: &Namespace) -> w::NamespaceDescription {
        w::NamespaceDescription {
            name: name.to_string(),
            record_count: ns.records.len() as u64,
            schema: ns.schema.clone(),
            indexed_fields: ns.schema.as_ref().map(|s| w::IndexedFields {
                fields: s.fields.keys().cloned().collect(),
            }),
        }
    }

    pub fn list_namespaces(
        &self,
        p: &w::ListNamespacesParams,
    ) -> Result<w::ListNamespacesResponse> {
        let limit = p.limit.unwrap_or(MAX_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(bad(format!("limit must be 1 to {MAX_PAGE}; got {limit}")));
        }
        let prefix = p.prefix.clone().unwrap_or_default();
        let all = self
            .namespaces
            .iter()
            .filter(|(n, _)| n.starts_with(&prefix))
            .map(|(k, ns)| (k, (k, ns)));
        let total = all.clone().count() as i32;
        let (page, next) = page(all, limit as usize, p.pagination_token.as_deref())?;
        let namespaces = page
            .into_iter()
            .map(|(k, ns)| Self::describe_ns(k, ns))
            .collect();
        Ok(w::ListNamespacesResponse {
            namespaces,
            pagination: next.map(|next| w::Pagination { next }),
            total_count: total,
        })
    }

    pub fn describe_namespace(&self, name: &str) -> Result<w::NamespaceDescription> {
        let key = normalize_namespace(name);
        self.namespaces
            .get(key)
            .map(|ns| Self::describe_ns(key, ns))
            .ok_or_else(|| not_found(format!("Namespace {name} not found")))
    }

    pub fn create_namespace(
        &mut self,
        req: &w::CreateNamespaceRequest,
    ) -> Result<w::NamespaceDescription> {
        if req.name.is_empty() || req.name == w::DEFAULT_NAMESPACE {
            return Err(bad(format!(
                "Namespace name `{}` is reserved or empty",
                req.name
            )));
        }
        if self.namespaces.contains_key(&req.name) {
            return Err(StoreError {
                status: 409,
                message: format!("Namespace {} already exists", req.name),
                retry_after: None,
            });
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
            .remove(normalize_namespace(name))
            .map(|_| ())
            .ok_or_else(|| not_found(format!("Namespace {name} not found")))
    }
}

fn sparse_dot(a: &w::SparseValues, b: &w::SparseValues) -> f32 {
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

    fn vec(id: &str, values: Vec<f32>) -> w::Vector {
        w::Vector {
            id: id.into(),
            values,
            ..Default::default()
        }
    }

    #[test]
    fn pages_walk_every_id_once_in_order() {
        let mut d = IndexData::new(Some(1), Metric::Cosine, false);
        let vectors = (0..250)
            .map(|i| vec(&format!("id-{i:03}"), vec![1.0]))
            .collect::<Vec<_>>();
        for chunk in vectors.chunks(100) {
            d.upsert(w::UpsertRequest {
                vectors: chunk.to_vec(),
                namespace: String::new(),
            })
            .unwrap();
        }
        let mut seen = vec![];
        let mut token = None;
        loop {
            let r = d
                .list(&w::ListParams {
                    pagination_token: token.clone(),
                    limit: Some(100),
                    ..Default::default()
                })
                .unwrap();
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
        d.upsert(w::UpsertRequest {
            vectors: vec![vec("far", vec![10.0, 10.0]), vec("near", vec![1.0, 1.0])],
            namespace: "ns".into(),
        })
        .unwrap();
        let r = d
            .query(&w::QueryRequest {
                namespace: "ns".into(),
                top_k: 2,
                vector: Some(vec![0.0, 0.0]),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(r.matches[0].id, "near");
        assert_eq!(r.matches[0].score, 2.0);
    }
}
