//! The production path: Pinecone is reached over HTTPS, with HTTP/2 where ALPN offers it. The emulator serves TLS
//! with a certificate from a CA made here, which the real gateway binary trusts through `SSL_CERT_FILE`: a fetch,
//! an upsert, a 429 with `Retry-After` and a dropped connection, over h2 and over HTTP/1.1; a certificate from
//! another CA ends UNAVAILABLE naming the host and the TLS failure, and nothing is ever sent in plaintext instead.
mod common;
use common::pki::{TestCa, temp_dir};
use common::{INDEX, KEY, spawn_gateway};
use pinecone_gateway::emulator::faults::Faults;
use pinecone_gateway::emulator::{Emulator, EmulatorOptions, EmulatorTls};
use pinecone_gateway::pb::pinecone as p;
use pinecone_gateway::pb::pinecone::vector_service_client::VectorServiceClient;
use tonic::transport::Channel;

async fn tls_emulator(ca: &TestCa, alpn: &[&[u8]]) -> Emulator {
    let (cert_pem, key_pem) = ca.issue(&["127.0.0.1", "localhost"]);
    let emulator = Emulator::start(
        "127.0.0.1:0".parse().unwrap(),
        EmulatorOptions {
            api_key: Some(KEY.into()),
            tls: Some(EmulatorTls {
                cert_pem,
                key_pem,
                alpn: alpn.iter().map(|p| p.to_vec()).collect(),
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    emulator.create_index(INDEX, 2, "cosine").await.unwrap();
    emulator
}

/// The real binary against `emulator`, trusting `trusted` (PEM) and nothing else; retries off, so every answer
/// reaches the caller as the upstream gave it.
fn gateway(emulator: &Emulator, trusted: &str) -> (common::GatewayProcess, std::path::PathBuf) {
    let dir = temp_dir("upstream-tls");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, trusted).unwrap();
    let config = dir.join("gateway.toml");
    std::fs::write(&config, "[retry]\nmax_attempts = 1\n").unwrap();
    let gw = spawn_gateway(
        &[
            "--control-plane-url",
            &emulator.url(),
            "--config",
            config.to_str().unwrap(),
        ],
        &[
            ("PINECONE_API_KEY", KEY),
            ("SSL_CERT_FILE", ca_file.to_str().unwrap()),
        ],
    );
    (gw, dir)
}

async fn client(gw: &common::GatewayProcess) -> VectorServiceClient<Channel> {
    VectorServiceClient::connect(format!("http://{}", gw.addr))
        .await
        .unwrap()
}

fn fetch() -> tonic::Request<p::FetchRequest> {
    common::req(p::FetchRequest {
        ids: vec!["a".into()],
        namespace: "ns".into(),
    })
}

fn upsert() -> tonic::Request<p::UpsertRequest> {
    common::req(p::UpsertRequest {
        vectors: vec![p::Vector {
            id: "a".into(),
            values: vec![1.0, 2.0],
            ..Default::default()
        }],
        namespace: "ns".into(),
    })
}

#[tokio::test]
async fn calls_work_over_tls_with_h2_and_with_http1() {
    for (alpn, version) in [
        (&[b"h2".as_slice(), b"http/1.1".as_slice()][..], "HTTP/2.0"),
        (&[b"http/1.1".as_slice()][..], "HTTP/1.1"),
    ] {
        let ca = TestCa::new();
        let emulator = tls_emulator(&ca, alpn).await;
        assert!(emulator.url().starts_with("https://"));
        let (gw, dir) = gateway(&emulator, &ca.pem);
        let mut v = client(&gw).await;

        v.upsert(upsert()).await.unwrap();
        let got = v.fetch(fetch()).await.unwrap().into_inner();
        assert_eq!(got.vectors["a"].values, [1.0, 2.0], "{version}");

        // Pinecone's 429 with Retry-After: RESOURCE_EXHAUSTED with the same advice.
        emulator.set_faults(Faults {
            throttle_percent: 100.0,
            throttle_retry_after_secs: Some(3),
            ..Default::default()
        });
        let e = v.fetch(fetch()).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{version}: {e:?}");
        assert_eq!(
            e.metadata().get("grpc-retry-pushback-ms").unwrap(),
            "3000",
            "{version}"
        );

        // The connection breaks after Pinecone applied the request: UNAVAILABLE, not retried.
        emulator.set_faults(Faults {
            drop_percent: 100.0,
            ..Default::default()
        });
        let upserts = emulator.count(INDEX, "upsert");
        let e = v.upsert(upsert()).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unavailable, "{version}: {e:?}");
        assert_eq!(emulator.count(INDEX, "upsert"), upserts + 1, "{version}");

        emulator.set_faults(Faults::default());
        v.upsert(upsert()).await.unwrap();

        let versions = emulator.http_versions();
        assert_eq!(
            versions.keys().collect::<Vec<_>>(),
            [version],
            "ALPN: {versions:?}"
        );
        drop(gw);
        emulator.shutdown().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_and_nothing_is_sent_in_plaintext() {
    let ca = TestCa::new();
    let emulator = tls_emulator(&ca, &[b"h2", b"http/1.1"]).await;
    let other = TestCa::new();
    let (gw, dir) = gateway(&emulator, &other.pem);
    let e = client(&gw).await.fetch(fetch()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    let m = e.message();
    assert!(m.contains("127.0.0.1"), "names the host: {m}");
    assert!(
        m.contains("certificate") || m.contains("UnknownIssuer"),
        "names the TLS failure: {m}"
    );
    assert_eq!(
        emulator.total_requests(),
        0,
        "no request reached Pinecone, in TLS or otherwise"
    );
    emulator.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
