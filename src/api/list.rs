//! `pinecone_gateway.v1.ListService`: walks every page of `list` for the caller and streams the IDs.
//!
//! Each page is one upstream `list` call through the same stack as any other call; the caller's deadline bounds
//! the whole walk. A caller that goes away stops the walk at the next page. Like every call it holds a place among
//! the calls in progress, returns its request id, and ends in one log line and the call metrics, written when the
//! walk ends (OK, the status it ended with, or CANCELLED when the caller went away). Each page's read units are charged
//! to the caller as it comes (`spend`), and a caller whose budget is spent is refused before the next page.

use super::record::CallRecord;
use super::validate as v;
use super::{Gateway, GatewayError, expect_reply, route, status};
use crate::call::{Op, UpstreamCall};
use crate::pb::gateway as g;
use crate::pb::gateway::list_service_server::ListService;
use crate::pb::pinecone as p;
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
        let mut record = CallRecord::new(
            "ListAll",
            req.get_ref().namespace.clone(),
            self.gw.context(req.metadata(), "ListAll"),
        );
        let deadline = self.gw.deadline(req.metadata());
        record.deadline = Some(deadline);
        let started = (|| -> Result<_, GatewayError> {
            let r = req.get_ref();
            // The walk holds its place among the calls in progress until it ends.
            let place = self.gw.admit()?;
            let token = self.gw.auth.authenticate(req.metadata())?;
            let who = self
                .gw
                .callers
                .identify(token.map(|t| t.name.as_str()), req.metadata())?;
            self.gw.shed_for(&who.caller)?;
            v::namespace("namespace", &r.namespace)?;
            v::limit("page_size", r.page_size, v::MAX_LIST_LIMIT)?;
            if let Some(prefix) = &r.prefix {
                v::namespace("prefix", prefix)?;
            }
            let index = route::index(req.metadata(), self.gw.default_index.as_deref())?;
            super::auth::Auth::authorize(token, &index)?;
            Ok((place, index, who))
        })();
        let (place, index, mut who) = match started {
            Ok(ok) => ok,
            Err(e) => return record.finish::<PageStream>(Err(e)),
        };
        // Named in the record first, so that a walk its quota refuses is logged with its caller too.
        record.set_caller(&mut who);
        record.index = index.clone();
        // The walk counts as one call of the caller's quota, however many pages it takes.
        if let Err(e) = who
            .take_quota(crate::stack::limit::rates::OpClass::List)
            .await
        {
            return record.finish::<PageStream>(Err(e));
        }
        let ctx = record.ctx.clone();
        let r = req.into_inner();
        let gw = self.gw.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        // The response (and its request id) goes now; the record is written when the walk ends.
        let mut resp = Response::new(Box::pin(ReceiverStream::new(rx)) as PageStream);
        if let Ok(id) = tonic::metadata::MetadataValue::try_from(ctx.request_id.as_str()) {
            resp.metadata_mut().insert(route::REQUEST_ID_METADATA, id);
        }
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
                // A walk whose caller spends its budget part way stops at the next page: each page is a list call.
                let page = match async {
                    gw.check_budget(&who, &call.op).await?;
                    let reply = gw.call(call).await?;
                    expect_reply!(reply, List, "list")
                }
                .await
                {
                    Ok(page) => page,
                    Err(e) => {
                        let status = status::to_status(e);
                        record.finish_stream(Err(&status));
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                let next = page.pagination.map(|p| p.next).filter(|n| !n.is_empty());
                let read_units = page.usage.and_then(|u| u.read_units);
                let units = crate::api::spend::Units {
                    read: read_units.map_or(0, u64::from),
                    write: 0,
                };
                record.units = record.units.plus(units);
                gw.charge(&who, &index, "ListAll", units).await;
                let msg = g::ListAllResponse {
                    ids: page.vectors.into_iter().map(|i| i.id).collect(),
                    read_units,
                };
                if tx.send(Ok(msg)).await.is_err() {
                    // The caller went away: dropping the record says so.
                    return;
                }
                match next {
                    Some(n) => token = Some(n),
                    None => {
                        record.finish_stream(Ok(()));
                        return;
                    }
                }
            }
        });
        Ok(resp)
    }
}
