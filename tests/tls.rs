//! TLS and mutual TLS on the gRPC listener (rustls): TLS callers are served and plaintext ones are not; with a
//! client CA configured, a caller without a certificate from it is refused at the handshake.
mod common;
use common::*;
use pinecone_gateway::pb::pinecone as p;
use pinecone_gateway::pb::pinecone::vector_service_client::VectorServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
    dir: std::path::PathBuf,
}

fn pki() -> Pki {
    let ca = common::pki::TestCa::new();
    Pki {
        ca_pem: ca.pem.clone(),
        server: ca.issue(&["localhost"]),
        client: ca.issue(&["search-service"]),
        dir: common::pki::temp_dir("tls"),
    }
}

impl Pki {
    fn write(&self, name: &str, pem: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path.to_str().unwrap().to_string()
    }

    fn config(&self, mutual: bool) -> String {
        let cert = self.write("server.pem", &self.server.0);
        let key = self.write("server.key", &self.server.1);
        let mut c = format!("[server.tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n");
        if mutual {
            c.push_str(&format!(
                "client_ca_file = \"{}\"\n",
                self.write("ca.pem", &self.ca_pem)
            ));
        }
        c
    }

    async fn client(
        &self,
        env: &Env,
        with_cert: bool,
    ) -> Result<VectorServiceClient<Channel>, tonic::transport::Error> {
        let mut tls = ClientTlsConfig::new()
            .domain_name("localhost")
            .ca_certificate(Certificate::from_pem(&self.ca_pem));
        if with_cert {
            tls = tls.identity(Identity::from_pem(&self.client.0, &self.client.1));
        }
        let channel = Channel::from_shared(format!("https://{}", env.addr))
            .unwrap()
            .tls_config(tls)?
            .connect()
            .await?;
        Ok(VectorServiceClient::new(channel))
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
    let mut tls = pki.client(&env, false).await.unwrap();
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
    let mut with_cert = pki.client(&env, true).await.unwrap();
    with_cert.describe_index_stats(stats()).await.unwrap();
    let refused = match pki.client(&env, false).await {
        Err(_) => true,
        Ok(mut c) => c.describe_index_stats(stats()).await.is_err(),
    };
    assert!(refused, "a caller without a client certificate was served");
    assert_eq!(env.emulator.count(INDEX, "describe_index_stats"), 1);
}
