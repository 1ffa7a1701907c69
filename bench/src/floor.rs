//! The floor arm: the least our own stack can do for a fetch or an upsert. A tonic server with the gateway's
//! generated service and codec, one reqwest call per call to the upstream (the index named by the `pinecone-index`
//! metadata, looked up once), the request encoded and the answer decoded by the protobuf JSON mapping straight from
//! and into the messages, and nothing else: no validation, limits, retries, batching, coalescing, ordering, logs or
//! metrics. The gateway's cost over this is the cost of what it adds. It runs on the same runtime the gateway would
//! (one thread when it has one CPU).

use pinecone_gateway::pb::pinecone as p;
use pinecone_gateway::pb::pinecone::vector_service_server::{VectorService, VectorServiceServer};
use std::net::SocketAddr;
use tonic::{Request, Response, Status};

struct Floor {
    http: reqwest::Client,
    /// Index name → `http://host`, from the control plane at start.
    hosts: std::collections::HashMap<String, String>,
}

impl Floor {
    fn base<T>(&self, req: &Request<T>) -> Result<&str, Status> {
        let index = req
            .metadata()
            .get("pinecone-index")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("demo");
        self.hosts
            .get(index)
            .map(String::as_str)
            .ok_or_else(|| Status::not_found(index.to_string()))
    }
}

fn unavailable(e: reqwest::Error) -> Status {
    Status::unavailable(e.to_string())
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented(
        "the floor arm serves Fetch and Upsert only",
    ))
}

#[tonic::async_trait]
impl VectorService for Floor {
    async fn fetch(
        &self,
        req: Request<p::FetchRequest>,
    ) -> Result<Response<p::FetchResponse>, Status> {
        let base = self.base(&req)?.to_string();
        let r = req.into_inner();
        let mut q = pinecone_gateway::wire::query::Query::new();
        for id in &r.ids {
            q.push("ids", id);
        }
        q.push("namespace", &r.namespace);
        let url = format!("{base}/vectors/fetch?{}", q.as_str());
        let resp = self
            .http
            .get(url)
            .header("Api-Key", "bench")
            .send()
            .await
            .map_err(unavailable)?;
        let body = resp.bytes().await.map_err(unavailable)?;
        let message: p::FetchResponse =
            serde_json::from_slice(&body).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(message))
    }

    async fn upsert(
        &self,
        req: Request<p::UpsertRequest>,
    ) -> Result<Response<p::UpsertResponse>, Status> {
        let url = format!("{}/vectors/upsert", self.base(&req)?);
        let body =
            serde_json::to_vec(req.get_ref()).map_err(|e| Status::internal(e.to_string()))?;
        let resp = self
            .http
            .post(url)
            .header("Api-Key", "bench")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(unavailable)?;
        let body = resp.bytes().await.map_err(unavailable)?;
        let message: p::UpsertResponse =
            serde_json::from_slice(&body).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(message))
    }
    async fn delete(
        &self,
        _: Request<p::DeleteRequest>,
    ) -> Result<Response<p::DeleteResponse>, Status> {
        unimplemented()
    }
    async fn list(&self, _: Request<p::ListRequest>) -> Result<Response<p::ListResponse>, Status> {
        unimplemented()
    }
    async fn query(
        &self,
        _: Request<p::QueryRequest>,
    ) -> Result<Response<p::QueryResponse>, Status> {
        unimplemented()
    }
    async fn update(
        &self,
        _: Request<p::UpdateRequest>,
    ) -> Result<Response<p::UpdateResponse>, Status> {
        unimplemented()
    }
    async fn describe_index_stats(
        &self,
        _: Request<p::DescribeIndexStatsRequest>,
    ) -> Result<Response<p::DescribeIndexStatsResponse>, Status> {
        unimplemented()
    }
    async fn list_namespaces(
        &self,
        _: Request<p::ListNamespacesRequest>,
    ) -> Result<Response<p::ListNamespacesResponse>, Status> {
        unimplemented()
    }
    async fn describe_namespace(
        &self,
        _: Request<p::DescribeNamespaceRequest>,
    ) -> Result<Response<p::NamespaceDescription>, Status> {
        unimplemented()
    }
    async fn delete_namespace(
        &self,
        _: Request<p::DeleteNamespaceRequest>,
    ) -> Result<Response<p::DeleteResponse>, Status> {
        unimplemented()
    }
    async fn create_namespace(
        &self,
        _: Request<p::CreateNamespaceRequest>,
    ) -> Result<Response<p::NamespaceDescription>, Status> {
        unimplemented()
    }
    async fn fetch_by_metadata(
        &self,
        _: Request<p::FetchByMetadataRequest>,
    ) -> Result<Response<p::FetchByMetadataResponse>, Status> {
        unimplemented()
    }
}

/// Looks up every index of the control plane at `control_plane`, then serves until killed; prints `listening on
/// ADDR` once bound. `http2`: h2c to the upstream, else HTTP/1.1.
pub async fn serve(listen: SocketAddr, control_plane: &str, http2: bool) -> anyhow::Result<()> {
    let mut http = reqwest::Client::builder();
    if http2 {
        http = http.http2_prior_knowledge();
    }
    let http = http.build()?;
    let list: serde_json::Value = serde_json::from_slice(
        &http
            .get(format!("{control_plane}/indexes"))
            .header("Api-Key", "bench")
            .send()
            .await?
            .bytes()
            .await?,
    )?;
    let hosts = list["indexes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            Some((
                i["name"].as_str()?.to_string(),
                format!("http://{}", i["host"].as_str()?),
            ))
        })
        .collect();
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let floor = Floor { http, hosts };
    tonic::transport::Server::builder()
        .add_service(VectorServiceServer::new(floor))
        .serve_with_incoming(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
        )
        .await?;
    Ok(())
}
