//! The HTTP client under [`super::Upstream`]: hyper's pooled client, with nothing between it and the call.
//!
//! It replaced reqwest, whose per-request work (a client and connector clone, a redirect policy that re-parses the
//! URL even when redirects are off, a default-header merge) was ~9% of the gateway's CPU per fetch (BENCHMARKS.md).
//! What reqwest gave is kept: TLS by rustls with the platform's roots (so `SSL_CERT_FILE` works) and ALPN offering
//! h2 and HTTP/1.1; TCP_NODELAY; a connect timeout; connections pooled per host for `pool_idle` and HTTP/2 with
//! prior knowledge for `http://` hosts when asked (h2c). Proxies come from the environment as curl reads them
//! (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, either case; an `http://` or `https://` proxy, with
//! `user:password@` sent as `Proxy-Authorization`): the gateway opens a `CONNECT` tunnel through it, so TLS stays end
//! to end and the proxy never sees the API key. Redirects are never followed: Pinecone does not send them, and
//! following one would carry `Api-Key` to whatever host it names.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::Client as Pool;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Stream = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;

/// How the client connects.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle: Duration,
    /// HTTP/2 with prior knowledge to `http://` hosts.
    pub plaintext_http2: bool,
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum HttpError {
    /// No connection was made (refused, unresolvable, TLS refused, proxy refused): nothing reached the host.
    Connect(String),
    /// The connection broke after the request may have been sent.
    Broken(String),
}

/// An answer: its status, the headers the gateway reads, and the whole body.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// The client: cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct HttpClient {
    pool: Pool<HttpsConnector<Route>, Full<Bytes>>,
    /// For `http://` hosts when `plaintext_http2` is on.
    h2c: Option<Pool<HttpsConnector<Route>, Full<Bytes>>>,
}

impl HttpClient {
    /// Reads the proxy variables now: a change to the environment later does not apply.
    pub fn new(settings: &HttpSettings) -> std::io::Result<Self> {
        Self::with_proxies(settings, Matcher::from_env())
    }

    fn with_proxies(settings: &HttpSettings, proxies: Matcher) -> std::io::Result<Self> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(settings.connect_timeout));
        let tls = || {
            let provider = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider();
            Ok::<_, std::io::Error>(
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_provider_and_platform_verifier(provider)?
                    .https_or_http()
                    .enable_http1()
                    .enable_http2(),
            )
        };
        let route = Route {
            direct: tcp.clone(),
            to_proxy: tls()?.wrap_connector(tcp),
            proxies: Arc::new(proxies),
        };
        let connector = tls()?.wrap_connector(route);
        let pool = |h2_only: bool| {
            Pool::builder(TokioExecutor::new())
                .pool_idle_timeout(settings.pool_idle)
                .http2_only(h2_only)
                .build(connector.clone())
        };
        Ok(HttpClient {
            pool: pool(false),
            h2c: settings.plaintext_http2.then(|| pool(true)),
        })
    }

    /// Sends `request` and reads the whole answer. The caller bounds it in time.
    pub async fn send(&self, request: http::Request<Full<Bytes>>) -> Result<HttpAnswer, HttpError> {
        let pool = match &self.h2c {
            Some(h2c) if request.uri().scheme() == Some(&http::uri::Scheme::HTTP) => h2c,
            _ => &self.pool,
        };
        let response = pool.request(request).await.map_err(|e| {
            let detail = describe(&e);
            if e.is_connect() {
                HttpError::Connect(detail)
            } else {
                HttpError::Broken(detail)
            }
        })?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| HttpError::Broken(describe(&e)))?
            .to_bytes();
        Ok(HttpAnswer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }
}

/// An error and its sources on one line: the top says what failed, the sources why (a refused connection, a
/// certificate from an unknown issuer, a proxy's refusal). None of them carries a header, so never the key.
fn describe(e: &dyn std::error::Error) -> String {
    let mut detail = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    detail
}

/// The connection under TLS: straight to the host, or a `CONNECT` tunnel through the proxy the environment names
/// for it. The `HttpsConnector` around it then speaks TLS to the host itself.
#[derive(Clone, Debug)]
struct Route {
    direct: HttpConnector,
    /// To the proxy, which may itself be `https://`.
    to_proxy: HttpsConnector<HttpConnector>,
    proxies: Arc<Matcher>,
}

impl tower::Service<http::Uri> for Route {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Both connectors are always ready: they open a connection per call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: http::Uri) -> Self::Future {
        match self.proxies.intercept(&dst) {
            None => {
                let mut direct = self.direct.clone();
                Box::pin(async move {
                    let tcp = direct.call(dst).await?;
                    Ok(MaybeHttpsStream::Http(tcp))
                })
            }
            Some(proxy) => {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), self.to_proxy.clone());
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Box::pin(async move { Ok(tunnel.call(dst).await?) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn settings() -> HttpSettings {
        HttpSettings {
            connect_timeout: Duration::from_secs(2),
            pool_idle: Duration::from_secs(60),
            plaintext_http2: false,
        }
    }

    fn get(uri: &str) -> http::Request<Full<Bytes>> {
        http::Request::get(uri).body(Full::default()).unwrap()
    }

    /// A one-request HTTP/1.1 server answering 204; yields the request head it read.
    async fn origin() -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let head = read_head(&mut s).await;
            s.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            head
        });
        (addr, task)
    }

    /// A server task's result, or a failure (not a hang) when the client never reached it.
    async fn within<T>(task: tokio::task::JoinHandle<T>) -> T {
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the server was never reached")
            .unwrap()
    }

    async fn read_head(s: &mut tokio::net::TcpStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
        String::from_utf8(head).unwrap()
    }

    #[tokio::test]
    async fn a_proxy_from_the_environment_tunnels_with_its_credentials() {
        let (origin, seen_by_origin) = origin().await;
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_addr = proxy.local_addr().unwrap();
        let seen_by_proxy = tokio::spawn(async move {
            let (mut s, _) = proxy.accept().await.unwrap();
            let head = read_head(&mut s).await;
            let mut upstream = tokio::net::TcpStream::connect(origin).await.unwrap();
            s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
                .unwrap();
            let _ = tokio::io::copy_bidirectional(&mut s, &mut upstream).await;
            head
        });
        let proxies = Matcher::builder()
            .http(format!("http://user:pw@{proxy_addr}"))
            .build();
        let client = HttpClient::with_proxies(&settings(), proxies).unwrap();
        let answer = client
            .send(get(&format!("http://{origin}/vectors/fetch?ids=a")))
            .await
            .unwrap();
        assert_eq!(answer.status, 204);
        let proxy_head = within(seen_by_proxy).await;
        assert!(
            proxy_head.starts_with(&format!("CONNECT {origin} HTTP/1.1\r\n")),
            "{proxy_head}"
        );
        // user:pw in base64.
        assert!(proxy_head.contains("dXNlcjpwdw=="), "{proxy_head}");
        let origin_head = within(seen_by_origin).await;
        assert!(
            origin_head.starts_with("GET /vectors/fetch?ids=a HTTP/1.1\r\n"),
            "{origin_head}"
        );
    }

    #[tokio::test]
    async fn no_proxy_hosts_are_reached_directly() {
        let (origin, seen_by_origin) = origin().await;
        let proxies = Matcher::builder()
            // Nothing listens there: using it would fail the request.
            .http("http://127.0.0.1:9")
            .no("127.0.0.1")
            .build();
        let client = HttpClient::with_proxies(&settings(), proxies).unwrap();
        let answer = client
            .send(get(&format!("http://{origin}/x")))
            .await
            .unwrap();
        assert_eq!(answer.status, 204);
        assert!(within(seen_by_origin).await.starts_with("GET /x "));
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error_and_an_early_close_is_broken() {
        let client = HttpClient::with_proxies(&settings(), Matcher::builder().build()).unwrap();
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let refused = client.send(get(&format!("http://{addr}/x"))).await;
        assert!(matches!(refused, Err(HttpError::Connect(_))), "{refused:?}");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            read_head(&mut s).await;
            // Half an answer, then the connection closes.
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
                .await
                .unwrap();
        });
        let broken = client.send(get(&format!("http://{addr}/x"))).await;
        assert!(matches!(broken, Err(HttpError::Broken(_))), "{broken:?}");
    }
}
