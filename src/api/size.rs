//! How much a caller can make the gateway hold: a tower layer around the gRPC server.
//!
//! - The largest message is `server.max_message_bytes` (tonic refuses a longer one from its length prefix, before
//!   reading it). tonic answers OUT_OF_RANGE; this layer turns that into RESOURCE_EXHAUSTED naming the setting, as
//!   gRPC's status-code guide prescribes for a message over the limit.
//! - Request bytes received and not yet answered are counted process-wide against
//!   `server.max_buffered_request_bytes`: each chunk of a request body is added as it arrives and the whole is given
//!   back when the call's answer is ready. A request that would go over is refused with RESOURCE_EXHAUSTED and retry
//!   advice while the others go on.

use bytes::Bytes;
use http_body::{Body, Frame};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// The bytes of requests held at once, process-wide.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    pub fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// One request's share of the budget; given back when dropped.
#[derive(Debug)]
struct Share {
    budget: Arc<Budget>,
    held: AtomicUsize,
}

impl Share {
    fn take(&self, n: usize) -> bool {
        let mut used = self.budget.used.load(Ordering::Relaxed);
        loop {
            if used + n > self.budget.limit {
                return false;
            }
            match self.budget.used.compare_exchange_weak(
                used,
                used + n,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.held.fetch_add(n, Ordering::Relaxed);
                    return true;
                }
                Err(now) => used = now,
            }
        }
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.budget
            .used
            .fetch_sub(self.held.load(Ordering::Relaxed), Ordering::AcqRel);
    }
}

/// A request body that counts its chunks against the budget.
struct Counted<B> {
    inner: B,
    share: Arc<Share>,
}

impl<B> Body for Counted<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Data = Bytes;
    type Error = tonic::codegen::StdError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => f,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref()
            && !self.share.take(data.len())
        {
            let budget = &self.share.budget;
            let status = crate::api::status::throttled(
                format!(
                    "the gateway holds {} bytes of requests, near its budget of {} (server.max_buffered_request_bytes); \
                     try again shortly",
                    budget.used(),
                    budget.limit
                ),
                std::time::Duration::from_millis(100),
            );
            return Poll::Ready(Some(Err(Box::new(status))));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[derive(Clone)]
pub struct SizeLayer {
    budget: Arc<Budget>,
}

impl SizeLayer {
    pub fn new(budget: Arc<Budget>) -> Self {
        SizeLayer { budget }
    }
}

impl<S> Layer<S> for SizeLayer {
    type Service = Size<S>;

    fn layer(&self, inner: S) -> Size<S> {
        Size {
            inner,
            budget: self.budget.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Size<S> {
    inner: S,
    budget: Arc<Budget>,
}

/// tonic's answer to a message over `max_decoding_message_size`, as RESOURCE_EXHAUSTED naming the setting.
fn over_size<B>(mut resp: http::Response<B>) -> http::Response<B> {
    let headers = resp.headers_mut();
    let is_over = headers.get("grpc-status").is_some_and(|v| v == "11")
        && headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| m.contains("message%20length%20too%20large"));
    if is_over {
        let told = headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .map(|m| {
                percent_encoding::percent_decode_str(m)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .unwrap_or_default();
        let message = format!("the message is too large for server.max_message_bytes ({told})");
        let encoded: String =
            percent_encoding::utf8_percent_encode(&message, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
        if let Ok(v) = http::HeaderValue::from_str(&encoded) {
            headers.insert("grpc-message", v);
        }
    }
    resp
}

impl<S, ResBody> Service<http::Request<tonic::body::Body>> for Size<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let share = Arc::new(Share {
            budget: self.budget.clone(),
            held: AtomicUsize::new(0),
        });
        let req = req.map(|inner| {
            tonic::body::Body::new(Counted {
                inner,
                share: share.clone(),
            })
        });
        let future = self.inner.call(req);
        Box::pin(async move {
            let resp = future.await;
            // The answer is ready: the request's bytes are no longer held.
            drop(share);
            resp.map(over_size)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_give_their_bytes_back() {
        let budget = Budget::new(100);
        let a = Share {
            budget: budget.clone(),
            held: AtomicUsize::new(0),
        };
        assert!(a.take(60));
        let b = Share {
            budget: budget.clone(),
            held: AtomicUsize::new(0),
        };
        assert!(!b.take(50), "over the budget");
        assert!(b.take(40));
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
