//! `VectorService`, Pinecone's data-plane API: each RPC is validated, turned into one upstream operation, and its
//! answer mapped back exactly (vectors map, usage, pagination, namespace).

use super::convert::{self as cv, opt_sparse, opt_struct, struct_to_json};
use super::validate::{self as v, Checked, Invalid};
use super::{Gateway, GatewayError, Target, expect_empty, expect_reply};
use crate::pb::pinecone as p;
use crate::pb::pinecone::vector_service_server::VectorService;
use crate::upstream::{Op, Reply};
use crate::wire::data as w;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct VectorApi {
    gw: Gateway,
}

impl VectorApi {
    pub fn new(gw: Gateway) -> Self {
        VectorApi { gw }
    }

    /// Every VectorService call targets the index named by its metadata.
    async fn handle<Req, Resp>(
        &self,
        method: &'static str,
        req: Request<Req>,
        namespace: impl FnOnce(&Req) -> String,
        build: impl FnOnce(&Req) -> Checked<Op>,
        convert: impl FnOnce(Reply) -> Result<Resp, GatewayError>,
    ) -> Result<Response<Resp>, Status> {
        self.gw
            .handle(
                method,
                req,
                namespace,
                |r| build(r).map(|op| (Target::FromMetadata, op)),
                convert,
            )
            .await
    }
}

fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

/// The namespace as a path segment: the default namespace has a name of its own there.
fn ns_segment(ns: &str) -> String {
    w::normalize_namespace(ns).to_string()
}

fn build_upsert(r: &p::UpsertRequest) -> Checked<Op> {
    v::namespace("namespace", &r.namespace)?;
    if r.vectors.is_empty() {
        return Err(invalid("vectors: at least one vector is required"));
    }
    if r.vectors.len() > v::MAX_UPSERT_VECTORS_PER_CALL {
        return Err(invalid(format!(
            "vectors: {} vectors in one call; the gateway accepts at most {} (it sends them 1,000 at a time)",
            r.vectors.len(),
            v::MAX_UPSERT_VECTORS_PER_CALL
        )));
    }
    let mut vectors = Vec::with_capacity(r.vectors.len());
    for (i, x) in r.vectors.iter().enumerate() {
        v::id(&format!("vectors[{i}].id"), &x.id)?;
        v::dense_values(&format!("vectors[{i}].values"), &x.values)?;
        let wire = cv::vector_to_wire(x);
        if let Some(s) = &wire.sparse_values {
            v::sparse(
                &format!("vectors[{i}].sparse_values"),
                &s.indices,
                &s.values,
            )?;
        }
        if x.values.is_empty() && wire.sparse_values.is_none() {
            return Err(invalid(format!(
                "vectors[{i}]: needs values or sparse_values"
            )));
        }
        if let Some(m) = &wire.metadata {
            v::metadata(&format!("vectors[{i}].metadata"), m)?;
        }
        vectors.push(wire);
    }
    let body = w::UpsertRequest {
        vectors,
        namespace: r.namespace.clone(),
    };
    Ok(Op::Upsert(body))
}

fn build_delete(r: &p::DeleteRequest) -> Checked<Op> {
    v::namespace("namespace", &r.namespace)?;
    let filter = r.filter.as_ref().map(struct_to_json);
    let has_filter = filter.as_ref().is_some_and(|f| !f.is_empty());
    let given: Vec<&str> = [
        (!r.ids.is_empty(), "ids"),
        (r.delete_all, "delete_all"),
        (has_filter, "filter"),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| *name)
    .collect();
    match given.as_slice() {
        [] if filter.is_some() => {
            return Err(invalid(
                "filter: must not be empty; Pinecone refuses deletes with an empty metadata filter",
            ));
        }
        [] => {
            return Err(invalid(
                "delete needs exactly one of ids, filter and delete_all; none was set",
            ));
        }
        [_] => {}
        many => {
            return Err(invalid(format!(
                "delete needs exactly one of ids, filter and delete_all; got {}",
                many.join(" and ")
            )));
        }
    }
    if !r.ids.is_empty() {
        v::ids("ids", &r.ids)?;
    }
    let filter = filter.filter(|f| !f.is_empty());
    if let Some(f) = &filter {
        v::filter("filter", f, Some("deletes"))?;
    }
    Ok(Op::Delete(w::DeleteRequest {
        ids: r.ids.clone(),
        delete_all: r.delete_all,
        namespace: r.namespace.clone(),
        filter,
    }))
}

fn build_fetch(r: &p::FetchRequest) -> Checked<Op> {
    v::namespace("namespace", &r.namespace)?;
    v::ids("ids", &r.ids)?;
    Ok(Op::Fetch {
        ids: r.ids.clone(),
        namespace: r.namespace.clone(),
    })
}

fn build_list(r: &p::ListRequest) -> Checked<Op> {
    v::namespace("namespace", &r.namespace)?;
    v::limit("limit", r.limit, v::MAX_LIST_LIMIT)?;
    if let Some(prefix) = &r.prefix {
        v::namespace("prefix", prefix)?;
    }
    Ok(Op::List(w::ListParams {
        prefix: r.prefix.clone().filter(|p| !p.is_empty()),
        limit: r.limit,
        pagination_token: r.pagination_token.clone().filter(|t| !t.is_empty()),
        namespace: r.namespace.clone(),
    }))
}

fn build_query(r: &p::QueryRequest) -> Checked<Op> {
    v::namespace("namespace", &r.namespace)?;
    v::top_k(r.top_k)?;
    if !r.queries.is_empty() {
        return Err(invalid(
            "queries: deprecated by Pinecone and not part of API 2025-10; send vector, sparse_vector or id",
        ));
    }
    let sparse = opt_sparse(&r.sparse_vector);
    let by_vector = !r.vector.is_empty() || sparse.is_some();
    let by_id = !r.id.is_empty();
    if by_vector == by_id {
        return Err(invalid(
            "query needs exactly one of a vector (vector and/or sparse_vector) and an id",
        ));
    }
    v::dense_values("vector", &r.vector)?;
    if let Some(s) = &sparse {
        v::sparse("sparse_vector", &s.indices, &s.values)?;
    }
    if by_id {
        v::id("id", &r.id)?;
    }
    let filter = opt_struct(&r.filter);
    if let Some(f) = &filter {
        v::filter("filter", f, None)?;
    }
    if let Some(sf) = r.scan_factor
        && !(0.5..=4.0).contains(&sf)
    {
        return Err(invalid(format!(
            "scan_factor: {sf} is out of range; it must be 0.5 to 4.0"
        )));
    }
    if let Some(mc) = r.max_candidates
        && (mc < r.top_k || mc > 100_000)
    {
        return Err(invalid(format!(
            "max_candidates: {mc} is out of range; it must be top_k ({}) to 100000",
            r.top_k
        )));
    }
    Ok(Op::Query(w::QueryRequest {
        namespace: r.namespace.clone(),
        top_k: r.top_k,
        filter,
        include_values: r.include_values,
        include_metadata: r.include_metadata,
        vector: (!r.vector.is_empty()).then(|| r.vector.clone()),
        sparse_vector: sparse,
        id: by_id.then(|| r.id.clone()),
        scan_factor: r.scan_factor,
        max_candidates: r.max_candidates,
    }))
}

fn build_update(r: &p::UpdateRequest) -> Checked<Op> {
    v::namespace("namespace", &r.namespace)?;
    let filter = r.filter.as_ref().map(struct_to_json);
    let has_filter = filter.as_ref().is_some_and(|f| !f.is_empty());
    let by_id = !r.id.is_empty();
    match (by_id, has_filter) {
        (true, true) => return Err(invalid("update takes either id or filter, not both")),
        (false, false) if filter.is_some() => {
            return Err(invalid(
                "filter: must not be empty; Pinecone refuses updates with an empty metadata filter",
            ));
        }
        (false, false) => return Err(invalid("update needs an id or a filter")),
        _ => {}
    }
    let sparse = opt_sparse(&r.sparse_values);
    let set_metadata = opt_struct(&r.set_metadata);
    if by_id {
        v::id("id", &r.id)?;
        v::dense_values("values", &r.values)?;
        if let Some(s) = &sparse {
            v::sparse("sparse_values", &s.indices, &s.values)?;
        }
    } else {
        if let Some(f) = &filter {
            v::filter("filter", f, Some("updates"))?;
        }
        if !r.values.is_empty() || sparse.is_some() {
            return Err(invalid("values: an update by filter can only set metadata"));
        }
    }
    if let Some(m) = &set_metadata {
        v::metadata("set_metadata", m)?;
    }
    Ok(Op::Update(w::UpdateRequest {
        id: by_id.then(|| r.id.clone()),
        values: (!r.values.is_empty()).then(|| r.values.clone()),
        sparse_values: sparse,
        set_metadata,
        namespace: r.namespace.clone(),
        filter: filter.filter(|f| !f.is_empty()),
        dry_run: r.dry_run,
    }))
}

fn build_stats(r: &p::DescribeIndexStatsRequest) -> Checked<Op> {
    let filter = opt_struct(&r.filter);
    if let Some(f) = &filter {
        v::filter("filter", f, None)?;
    }
    Ok(Op::DescribeIndexStats(w::DescribeIndexStatsRequest {
        filter,
    }))
}

fn build_list_namespaces(r: &p::ListNamespacesRequest) -> Checked<Op> {
    v::limit("limit", r.limit, v::MAX_LIST_LIMIT)?;
    if let Some(prefix) = &r.prefix {
        v::namespace("prefix", prefix)?;
    }
    Ok(Op::ListNamespaces(w::ListNamespacesParams {
        limit: r.limit,
        pagination_token: r.pagination_token.clone().filter(|t| !t.is_empty()),
        prefix: r.prefix.clone().filter(|p| !p.is_empty()),
    }))
}

fn build_create_namespace(r: &p::CreateNamespaceRequest) -> Checked<Op> {
    if r.name.is_empty() {
        return Err(invalid("name: the namespace name must not be empty"));
    }
    if r.name == w::DEFAULT_NAMESPACE {
        return Err(invalid(
            "name: `__default__` always exists and cannot be created",
        ));
    }
    v::namespace("name", &r.name)?;
    Ok(Op::CreateNamespace(w::CreateNamespaceRequest {
        name: r.name.clone(),
        schema: r.schema.as_ref().map(cv::schema_to_wire),
    }))
}

fn build_fetch_by_metadata(r: &p::FetchByMetadataRequest) -> Checked<Op> {
    v::namespace("namespace", &r.namespace)?;
    let Some(filter) = r.filter.as_ref().map(struct_to_json) else {
        return Err(invalid("filter: is required for fetch by metadata"));
    };
    v::filter("filter", &filter, Some("fetch by metadata"))?;
    v::limit("limit", r.limit, v::MAX_FETCH_BY_METADATA_LIMIT)?;
    Ok(Op::FetchByMetadata(w::FetchByMetadataRequest {
        namespace: r.namespace.clone(),
        filter: Some(filter),
        limit: r.limit,
        pagination_token: r.pagination_token.clone().filter(|t| !t.is_empty()),
    }))
}

fn vectors_map(
    m: std::collections::BTreeMap<String, w::Vector>,
) -> std::collections::HashMap<String, p::Vector> {
    m.into_iter()
        .map(|(k, x)| (k, cv::vector_from_wire(x)))
        .collect()
}

#[tonic::async_trait]
impl VectorService for VectorApi {
    async fn upsert(
        &self,
        req: Request<p::UpsertRequest>,
    ) -> Result<Response<p::UpsertResponse>, Status> {
        self.handle(
            "Upsert",
            req,
            |r| r.namespace.clone(),
            build_upsert,
            |reply| {
                let r = expect_reply!(reply, Upsert, "upsert")?;
                Ok(p::UpsertResponse {
                    upserted_count: r.upserted_count,
                })
            },
        )
        .await
    }

    async fn delete(
        &self,
        req: Request<p::DeleteRequest>,
    ) -> Result<Response<p::DeleteResponse>, Status> {
        self.handle(
            "Delete",
            req,
            |r| r.namespace.clone(),
            build_delete,
            |reply| expect_empty(reply, "delete").map(|_| p::DeleteResponse {}),
        )
        .await
    }

    async fn fetch(
        &self,
        req: Request<p::FetchRequest>,
    ) -> Result<Response<p::FetchResponse>, Status> {
        self.handle(
            "Fetch",
            req,
            |r| r.namespace.clone(),
            build_fetch,
            |reply| {
                let r = expect_reply!(reply, Fetch, "fetch")?;
                Ok(p::FetchResponse {
                    vectors: vectors_map(r.vectors),
                    namespace: r.namespace,
                    usage: cv::usage(r.usage),
                })
            },
        )
        .await
    }

    async fn list(
        &self,
        req: Request<p::ListRequest>,
    ) -> Result<Response<p::ListResponse>, Status> {
        self.handle(
            "List",
            req,
            |r| r.namespace.clone(),
            build_list,
            |reply| {
                let r = expect_reply!(reply, List, "list")?;
                Ok(p::ListResponse {
                    vectors: r
                        .vectors
                        .into_iter()
                        .map(|i| p::ListItem { id: i.id })
                        .collect(),
                    pagination: cv::pagination(r.pagination),
                    namespace: r.namespace,
                    usage: cv::usage(r.usage),
                })
            },
        )
        .await
    }

    async fn query(
        &self,
        req: Request<p::QueryRequest>,
    ) -> Result<Response<p::QueryResponse>, Status> {
        self.handle(
            "Query",
            req,
            |r| r.namespace.clone(),
            build_query,
            |reply| {
                let r = expect_reply!(reply, Query, "query")?;
                Ok(p::QueryResponse {
                    results: vec![],
                    matches: r.matches.into_iter().map(cv::scored_from_wire).collect(),
                    namespace: r.namespace,
                    usage: cv::usage(r.usage),
                })
            },
        )
        .await
    }

    async fn update(
        &self,
        req: Request<p::UpdateRequest>,
    ) -> Result<Response<p::UpdateResponse>, Status> {
        self.handle(
            "Update",
            req,
            |r| r.namespace.clone(),
            build_update,
            |reply| {
                let r = expect_reply!(reply, Update, "update")?;
                Ok(p::UpdateResponse {
                    matched_records: r.matched_records,
                })
            },
        )
        .await
    }

    async fn describe_index_stats(
        &self,
        req: Request<p::DescribeIndexStatsRequest>,
    ) -> Result<Response<p::DescribeIndexStatsResponse>, Status> {
        self.handle(
            "DescribeIndexStats",
            req,
            |_| String::new(),
            build_stats,
            |reply| {
                let r = expect_reply!(reply, DescribeIndexStats, "describe_index_stats")?;
                Ok(p::DescribeIndexStatsResponse {
                    namespaces: r
                        .namespaces
                        .into_iter()
                        .map(|(k, s)| {
                            (
                                k,
                                p::NamespaceSummary {
                                    vector_count: s.vector_count,
                                },
                            )
                        })
                        .collect(),
                    dimension: r.dimension,
                    index_fullness: r.index_fullness,
                    total_vector_count: r.total_vector_count,
                    metric: r.metric,
                    vector_type: r.vector_type,
                    memory_fullness: r.memory_fullness,
                    storage_fullness: r.storage_fullness,
                })
            },
        )
        .await
    }

    async fn list_namespaces(
        &self,
        req: Request<p::ListNamespacesRequest>,
    ) -> Result<Response<p::ListNamespacesResponse>, Status> {
        self.handle(
            "ListNamespaces",
            req,
            |_| String::new(),
            build_list_namespaces,
            |reply| {
                let r = expect_reply!(reply, ListNamespaces, "list_namespaces")?;
                Ok(p::ListNamespacesResponse {
                    namespaces: r
                        .namespaces
                        .into_iter()
                        .map(cv::namespace_from_wire)
                        .collect(),
                    pagination: cv::pagination(r.pagination),
                    total_count: r.total_count,
                })
            },
        )
        .await
    }

    async fn describe_namespace(
        &self,
        req: Request<p::DescribeNamespaceRequest>,
    ) -> Result<Response<p::NamespaceDescription>, Status> {
        self.handle(
            "DescribeNamespace",
            req,
            |r| r.namespace.clone(),
            |r| {
                v::namespace("namespace", &r.namespace)?;
                Ok(Op::DescribeNamespace(ns_segment(&r.namespace)))
            },
            |reply| {
                expect_reply!(reply, Namespace, "describe_namespace").map(cv::namespace_from_wire)
            },
        )
        .await
    }

    async fn delete_namespace(
        &self,
        req: Request<p::DeleteNamespaceRequest>,
    ) -> Result<Response<p::DeleteResponse>, Status> {
        self.handle(
            "DeleteNamespace",
            req,
            |r| r.namespace.clone(),
            |r| {
                v::namespace("namespace", &r.namespace)?;
                Ok(Op::DeleteNamespace(ns_segment(&r.namespace)))
            },
            |reply| expect_empty(reply, "delete_namespace").map(|_| p::DeleteResponse {}),
        )
        .await
    }

    async fn create_namespace(
        &self,
        req: Request<p::CreateNamespaceRequest>,
    ) -> Result<Response<p::NamespaceDescription>, Status> {
        self.handle(
            "CreateNamespace",
            req,
            |r| r.name.clone(),
            build_create_namespace,
            |reply| {
                expect_reply!(reply, Namespace, "create_namespace").map(cv::namespace_from_wire)
            },
        )
        .await
    }

    async fn fetch_by_metadata(
        &self,
        req: Request<p::FetchByMetadataRequest>,
    ) -> Result<Response<p::FetchByMetadataResponse>, Status> {
        self.handle(
            "FetchByMetadata",
            req,
            |r| r.namespace.clone(),
            build_fetch_by_metadata,
            |reply| {
                let r = expect_reply!(reply, FetchByMetadata, "fetch_by_metadata")?;
                Ok(p::FetchByMetadataResponse {
                    vectors: vectors_map(r.vectors),
                    namespace: r.namespace,
                    usage: cv::usage(r.usage),
                    pagination: cv::pagination(r.pagination),
                })
            },
        )
        .await
    }
}
