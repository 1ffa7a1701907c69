//! `VectorService`, Pinecone's data-plane API: each RPC is validated, turned into one upstream operation carrying
//! the (normalised) request message itself, and Pinecone's answer, decoded into the response message, is returned
//! as it came (vectors map, usage, pagination, namespace).

use super::convert::{non_empty_sparse, non_empty_struct, struct_to_json};
use super::validate::{self as v, Checked, Invalid};
use super::{Gateway, GatewayError, Target, expect_empty, expect_reply};
use crate::call::{Op, Reply};
use crate::pb::pinecone as p;
use crate::pb::pinecone::vector_service_server::VectorService;
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
        build: impl FnOnce(Req) -> Checked<Op>,
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
fn ns_segment(field: &str, ns: &str) -> Checked<String> {
    v::namespace(field, ns)?;
    v::path_segment(field, ns)?;
    Ok(w::normalize_namespace(ns).to_string())
}

fn build_upsert(mut r: p::UpsertRequest) -> Checked<Op> {
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
    for (i, x) in r.vectors.iter_mut().enumerate() {
        v::id(&format!("vectors[{i}].id"), &x.id)?;
        v::dense_values(&format!("vectors[{i}].values"), &x.values)?;
        x.sparse_values = non_empty_sparse(x.sparse_values.take());
        if let Some(s) = &x.sparse_values {
            v::sparse(
                &format!("vectors[{i}].sparse_values"),
                &s.indices,
                &s.values,
            )?;
        }
        if x.values.is_empty() && x.sparse_values.is_none() {
            return Err(invalid(format!(
                "vectors[{i}]: needs values or sparse_values"
            )));
        }
        x.metadata = non_empty_struct(x.metadata.take());
        if let Some(m) = &x.metadata {
            v::metadata(&format!("vectors[{i}].metadata"), &struct_to_json(m))?;
        }
    }
    Ok(Op::Upsert(crate::wire::upsert::UpsertBody::encode(&r)))
}

fn build_delete(r: p::DeleteRequest) -> Checked<Op> {
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
    if let Some(f) = filter.as_ref().filter(|f| !f.is_empty()) {
        v::filter("filter", f, Some("deletes"))?;
    }
    Ok(Op::Delete(p::DeleteRequest {
        filter: non_empty_struct(r.filter),
        ..r
    }))
}

fn build_fetch(r: p::FetchRequest) -> Checked<Op> {
    v::namespace("namespace", &r.namespace)?;
    v::ids("ids", &r.ids)?;
    Ok(Op::Fetch {
        ids: r.ids,
        namespace: r.namespace,
    })
}

fn build_list(r: p::ListRequest) -> Checked<Op> {
    v::namespace("namespace", &r.namespace)?;
    v::limit("limit", r.limit, v::MAX_LIST_LIMIT)?;
    if let Some(prefix) = &r.prefix {
        v::namespace("prefix", prefix)?;
    }
    Ok(Op::List(p::ListRequest {
        prefix: r.prefix.filter(|p| !p.is_empty()),
        pagination_token: r.pagination_token.filter(|t| !t.is_empty()),
        ..r
    }))
}

fn build_query(r: p::QueryRequest) -> Checked<Op> {
    v::namespace("namespace", &r.namespace)?;
    v::top_k(r.top_k)?;
    if !r.queries.is_empty() {
        return Err(invalid(
            "queries: deprecated by Pinecone (its 2025-10 and 2026-04 APIs still list it, marked deprecated: use `vector` \
             or `id`), and the gateway does not send it; send one Query per query vector, each with vector (or \
             sparse_vector, or id), top_k, namespace and filter",
        ));
    }
    let sparse = non_empty_sparse(r.sparse_vector);
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
    let filter = non_empty_struct(r.filter);
    if let Some(f) = &filter {
        v::filter("filter", &struct_to_json(f), None)?;
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
    Ok(Op::Query(p::QueryRequest {
        sparse_vector: sparse,
        filter,
        ..r
    }))
}

fn build_update(r: p::UpdateRequest) -> Checked<Op> {
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
    let sparse = non_empty_sparse(r.sparse_values);
    let set_metadata = non_empty_struct(r.set_metadata);
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
        v::metadata("set_metadata", &struct_to_json(m))?;
    }
    Ok(Op::Update(p::UpdateRequest {
        sparse_values: sparse,
        set_metadata,
        filter: non_empty_struct(r.filter),
        ..r
    }))
}

fn build_stats(r: p::DescribeIndexStatsRequest) -> Checked<Op> {
    let filter = non_empty_struct(r.filter);
    if let Some(f) = &filter {
        v::filter("filter", &struct_to_json(f), None)?;
    }
    Ok(Op::DescribeIndexStats(p::DescribeIndexStatsRequest {
        filter,
    }))
}

fn build_list_namespaces(r: p::ListNamespacesRequest) -> Checked<Op> {
    v::limit("limit", r.limit, v::MAX_LIST_LIMIT)?;
    if let Some(prefix) = &r.prefix {
        v::namespace("prefix", prefix)?;
    }
    Ok(Op::ListNamespaces(p::ListNamespacesRequest {
        pagination_token: r.pagination_token.filter(|t| !t.is_empty()),
        prefix: r.prefix.filter(|p| !p.is_empty()),
        ..r
    }))
}

fn build_create_namespace(r: p::CreateNamespaceRequest) -> Checked<Op> {
    if r.name.is_empty() {
        return Err(invalid("name: the namespace name must not be empty"));
    }
    if r.name == w::DEFAULT_NAMESPACE {
        return Err(invalid(
            "name: `__default__` always exists and cannot be created",
        ));
    }
    v::namespace("name", &r.name)?;
    // The new namespace is named in paths from then on (describe, delete).
    v::path_segment("name", &r.name)?;
    Ok(Op::CreateNamespace(r))
}

fn build_fetch_by_metadata(r: p::FetchByMetadataRequest) -> Checked<Op> {
    v::namespace("namespace", &r.namespace)?;
    let Some(filter) = r.filter.as_ref().map(struct_to_json) else {
        return Err(invalid("filter: is required for fetch by metadata"));
    };
    v::filter("filter", &filter, Some("fetch by metadata"))?;
    v::limit("limit", r.limit, v::MAX_FETCH_BY_METADATA_LIMIT)?;
    Ok(Op::FetchByMetadata(p::FetchByMetadataRequest {
        pagination_token: r.pagination_token.filter(|t| !t.is_empty()),
        ..r
    }))
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
            |reply| expect_reply!(reply, Upsert, "upsert"),
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
            |reply| expect_reply!(reply, Fetch, "fetch"),
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
            |reply| expect_reply!(reply, List, "list"),
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
            |reply| expect_reply!(reply, Query, "query"),
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
            |reply| expect_reply!(reply, Update, "update"),
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
            |reply| expect_reply!(reply, DescribeIndexStats, "describe_index_stats"),
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
            |reply| expect_reply!(reply, ListNamespaces, "list_namespaces"),
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
                Ok(Op::DescribeNamespace(ns_segment(
                    "namespace",
                    &r.namespace,
                )?))
            },
            |reply| expect_reply!(reply, Namespace, "describe_namespace"),
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
            |r| Ok(Op::DeleteNamespace(ns_segment("namespace", &r.namespace)?)),
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
            |reply| expect_reply!(reply, Namespace, "create_namespace"),
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
            |reply| expect_reply!(reply, FetchByMetadata, "fetch_by_metadata"),
        )
        .await
    }
}
