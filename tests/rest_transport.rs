//! The REST front door's transport: HTTP/1.1 with keep-alive and HTTP/2 over cleartext (prior knowledge) on one
//! port; with `server.tls`, both over TLS (ALPN) with the gRPC listener's certificate, plaintext refused, and with a
//! client CA a caller without a certificate from it refused at the handshake.
mod common;
use common::pki::{Pki, server_pki};
use common::*;

async fn env(config: &str) -> Env {
    Env::start_rest(config).await
}

fn rest_addr(env: &Env) -> std::net::SocketAddr {
    env.rest_addr()
}

/// One describe-index-stats through the front door; the HTTP version it was answered with.
async fn stats(http: &reqwest::Client, base: &str) -> reqwest::Result<reqwest::Version> {
    let resp = http
        .get(format!("{base}/describe_index_stats"))
        .send()
        .await?
        .error_for_status()?;
    let version = resp.version();
    let body: serde_json::Value = resp.json().await?;
    assert!(body.get("dimension").is_some(), "{body}");
    Ok(version)
}

#[tokio::test]
async fn http1_and_h2c_are_served_on_one_port() {
    let env = env("").await;
    let base = format!("http://{}", rest_addr(&env));
    let h1 = reqwest::Client::builder().http1_only().build().unwrap();
    assert_eq!(stats(&h1, &base).await.unwrap(), reqwest::Version::HTTP_11);
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    assert_eq!(stats(&h2c, &base).await.unwrap(), reqwest::Version::HTTP_2);
    assert_eq!(stats(&h2c, &base).await.unwrap(), reqwest::Version::HTTP_2);
    assert_eq!(env.emulator.count(INDEX, "describe_index_stats"), 3);
}

fn tls_client(pki: &Pki, addr: std::net::SocketAddr, with_cert: bool, h2: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap()])
        .resolve("localhost", addr);
    if with_cert {
        let pem = format!("{}{}", pki.client.0, pki.client.1);
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    if !h2 {
        b = b.http1_only();
    }
    b.build().unwrap()
}

#[tokio::test]
async fn with_server_tls_the_front_door_speaks_tls_only() {
    let pki = server_pki();
    let env = env(&pki.config(false)).await;
    let addr = rest_addr(&env);
    let base = format!("https://localhost:{}", addr.port());
    let h1 = tls_client(&pki, addr, false, false);
    assert_eq!(stats(&h1, &base).await.unwrap(), reqwest::Version::HTTP_11);
    let h2 = tls_client(&pki, addr, false, true);
    assert_eq!(
        stats(&h2, &base).await.unwrap(),
        reqwest::Version::HTTP_2,
        "ALPN h2"
    );
    let plain = reqwest::Client::new();
    assert!(stats(&plain, &format!("http://{addr}")).await.is_err());
    assert_eq!(env.emulator.count(INDEX, "describe_index_stats"), 2);
}

#[tokio::test]
async fn with_a_client_ca_a_caller_needs_a_certificate_from_it() {
    let pki = server_pki();
    let env = env(&pki.config(true)).await;
    let addr = rest_addr(&env);
    let base = format!("https://localhost:{}", addr.port());
    let with_cert = tls_client(&pki, addr, true, true);
    stats(&with_cert, &base).await.unwrap();
    let without = tls_client(&pki, addr, false, true);
    assert!(stats(&without, &base).await.is_err());
    assert_eq!(env.emulator.count(INDEX, "describe_index_stats"), 1);
}
