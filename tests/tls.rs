//! TLS and mutual TLS on the gRPC listener (rustls): TLS callers are served and plaintext ones are not; with a
//! client CA configured, a caller without a certificate from it is refused at the handshake.
mod common;
use common::*;
use pinecone_gateway::pb::pinecone as p;
use pinecone_gateway::pb::pinecone::vector_service_client::VectorServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use common::pki::{Pki, server_pki as pki};

async fn client(
    pki: &Pki,
    env: &Env,
    with_cert: bool,
) -> Result<VectorServiceClient<Channel>, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .domain_name("localhost")
        .ca_certificate(Certificate::from_pem(&pki.ca_pem));
    if with_cert {
        tls = tls.identity(Identity::from_pem(&pki.client.0, &pki.client.1));
    }
    let channel = Channel::from_shared(format!("https://{}", env.addr))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(VectorServiceClient::new(channel))
}

fn stats() -> tonic::Request<p::DescribeIndexStatsRequest> {
    req(p::DescribeIndexStatsRequest::default())
}

#[tokio::test]
async fn tls_callers_are_served_and_plaintext_ones_are_not() {
    let pki = pki();
    let env = Env::start_with(EnvOptions {
        config: Some(pki.config(false)),
        ..Default::default()
    })
    .await;
    let mut tls = client(&pki, &env, false).await.unwrap();
    tls.describe_index_stats(stats()).await.unwrap();
    assert!(
        env.vectors().describe_index_stats(stats()).await.is_err(),
        "plaintext was served"
    );
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate() {
    let pki = pki();
    let env = Env::start_with(EnvOptions {
        config: Some(pki.config(true)),
        ..Default::default()
    })
    .await;
    let mut with_cert = client(&pki, &env, true).await.unwrap();
    with_cert.describe_index_stats(stats()).await.unwrap();
    let refused = match client(&pki, &env, false).await {
        Err(_) => true,
        Ok(mut c) => c.describe_index_stats(stats()).await.is_err(),
    };
    assert!(refused, "a caller without a client certificate was served");
    assert_eq!(env.emulator.count(INDEX, "describe_index_stats"), 1);
}
