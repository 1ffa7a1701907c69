//! `upstream.plaintext_http2`: to an `http://` upstream the real binary speaks HTTP/1.1 unless told to speak HTTP/2
//! without negotiation (h2c), as `serve --emulator` does. Either way a fetch, an upsert and Pinecone's 429 with
//! `Retry-After` come through the same, and the emulator counts which protocol each request arrived on.
mod common;
use common::pki::temp_dir;
use common::{INDEX, KEY, spawn_gateway};
use pinecone_gateway::emulator::faults::Faults;
use pinecone_gateway::emulator::{Emulator, EmulatorOptions};
use pinecone_gateway::pb::pinecone as p;
use pinecone_gateway::pb::pinecone::vector_service_client::VectorServiceClient;

#[tokio::test]
async fn http_upstreams_get_http1_unless_h2c_is_asked_for() {
    for (config, version) in [
        ("", "HTTP/1.1"),
        ("[upstream]\nplaintext_http2 = false\n", "HTTP/1.1"),
        ("[upstream]\nplaintext_http2 = true\n", "HTTP/2.0"),
    ] {
        let emulator = Emulator::start(
            "127.0.0.1:0".parse().unwrap(),
            EmulatorOptions {
                api_key: Some(KEY.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(emulator.url().starts_with("http://"));
        emulator.create_index(INDEX, 2, "cosine").await.unwrap();
        let dir = temp_dir("plaintext-http2");
        let file = dir.join("gateway.toml");
        std::fs::write(&file, format!("[retry]\nmax_attempts = 1\n{config}")).unwrap();
        let gw = spawn_gateway(
            &[
                "--control-plane-url",
                &emulator.url(),
                "--config",
                file.to_str().unwrap(),
            ],
            &[("PINECONE_API_KEY", KEY)],
        );
        let mut v = VectorServiceClient::connect(format!("http://{}", gw.addr))
            .await
            .unwrap();

        v.upsert(common::req(p::UpsertRequest {
            vectors: vec![p::Vector {
                id: "a".into(),
                values: vec![1.0, 2.0],
                ..Default::default()
            }],
            namespace: "ns".into(),
        }))
        .await
        .unwrap();
        let fetch = || {
            common::req(p::FetchRequest {
                ids: vec!["a".into()],
                namespace: "ns".into(),
            })
        };
        let got = v.fetch(fetch()).await.unwrap().into_inner();
        assert_eq!(got.vectors["a"].values, [1.0, 2.0], "{version}");

        emulator.set_faults(Faults {
            throttle_percent: 100.0,
            throttle_retry_after_secs: Some(2),
            ..Default::default()
        });
        let e = v.fetch(fetch()).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{version}: {e:?}");
        assert_eq!(
            e.metadata().get("grpc-retry-pushback-ms").unwrap(),
            "2000",
            "{version}"
        );

        // The control-plane lookup and every data-plane request.
        let versions = emulator.http_versions();
        assert_eq!(
            versions.keys().collect::<Vec<_>>(),
            [version],
            "{config:?}: {versions:?}"
        );
        drop(gw);
        emulator.shutdown().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
