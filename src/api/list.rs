//! `pinecone_gateway.v1.ListService`: walks every page of `list` for the caller and streams the IDs.
//!
//! Each page is one upstream `list` call through the same stack as any other call; the caller's deadline bounds
//! the whole walk. A caller that goes away stops the walk at the next page.

use super::validate::{self as v, Invalid};
use super::{Gateway, expect_reply, route, status};
use crate::pb::gateway as g;
use crate::pb::gateway::list_service_server::ListService;
use crate::pb::pinecone as p;
use crate::upstream::{Op, UpstreamCall};
use std::pin::Pin;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct ListApi {
    gw: Gateway,
}

impl ListApi {
    pub fn new(gw: Gateway) -> Self {
        ListApi { gw }
    }
}

type PageStream = Pin<Box<dyn Stream<Item = Result<g::ListAllResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ListService for ListApi {
    type ListAllStream = PageStream;

    async fn list_all(
        &self,
        req: Request<g::ListAllRequest>,
    ) -> Result<Response<PageStream>, Status> {
        let r = req.get_ref();
        let checked = (|| -> Result<String, Invalid> {
            v::namespace("namespace", &r.namespace)?;
            v::limit("page_size", r.page_size, v::MAX_LIST_LIMIT)?;
            if let Some(prefix) = &r.prefix {
                v::namespace("prefix", prefix)?;
            }
            route::index(req.metadata(), self.gw.default_index.as_deref())
        })();
        let caller = self
            .gw
            .auth
            .authenticate(req.metadata())
            .map_err(status::to_status)?;
        let index = checked.map_err(|e| status::to_status(e.into()))?;
        super::auth::Auth::authorize(caller, &index).map_err(status::to_status)?;
        // The walk holds its place among the calls in progress until it ends.
        let place = self.gw.admit().map_err(status::to_status)?;
        let deadline = self.gw.deadline(req.metadata());
        let ctx = route::context(req.metadata());
        let r = req.into_inner();
        let gw = self.gw.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tokio::spawn(async move {
            let _place = place;
            let mut token: Option<String> = None;
            loop {
                let call = UpstreamCall {
                    index: index.clone(),
                    op: Op::List(p::ListRequest {
                        prefix: r.prefix.clone().filter(|p| !p.is_empty()),
                        limit: Some(r.page_size.unwrap_or(v::MAX_LIST_LIMIT)),
                        pagination_token: token.take(),
                        namespace: r.namespace.clone(),
                    }),
                    deadline,
                    ctx: ctx.clone(),
                };
                let page = match gw
                    .call(call)
                    .await
                    .and_then(|reply| expect_reply!(reply, List, "list"))
                {
                    Ok(page) => page,
                    Err(e) => {
                        let _ = tx.send(Err(status::to_status(e))).await;
                        return;
                    }
                };
                let next = page.pagination.map(|p| p.next).filter(|n| !n.is_empty());
                let msg = g::ListAllResponse {
                    ids: page.vectors.into_iter().map(|i| i.id).collect(),
                    read_units: page.usage.and_then(|u| u.read_units),
                };
                if tx.send(Ok(msg)).await.is_err() {
                    tracing::debug!(index, "list walk stopped: the caller went away");
                    return;
                }
                match next {
                    Some(n) => token = Some(n),
                    None => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
