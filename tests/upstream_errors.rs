//! Upstream failures become the documented gRPC codes, keeping Pinecone's message: an unknown index, a wrong API
//! key, a stopped Pinecone, and Pinecone's own refusals.
mod common;
use common::*;
use pinecone_gateway::pb::pinecone as p;
use tonic::Code;

fn fetch_one() -> p::FetchRequest {
    p::FetchRequest {
        ids: vec!["a".into()],
        namespace: "".into(),
    }
}

#[tokio::test]
async fn unknown_index_is_not_found() {
    let env = Env::start().await;
    let e = env
        .vectors()
        .fetch(req_for("no-such-index", fetch_one()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("no-such-index"), "{}", e.message());
    assert_eq!(env.emulator.count("control", "describe_index"), 1);
}

#[tokio::test]
async fn wrong_api_key_is_unauthenticated_and_never_echoed() {
    let env = Env::start_with(EnvOptions {
        gateway_key: Some("wrong-key-pcsk".into()),
        ..Default::default()
    })
    .await;
    let e = env.vectors().fetch(req(fetch_one())).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(!e.message().contains("wrong-key-pcsk"));
    // A statically configured host that does not answer.
    let env = Env::start_with(EnvOptions {
        gateway_key: Some("wrong".into()),
        config: Some(format!("[indexes.{INDEX}]\nhost = \"{}\"\n", "127.0.0.1:1")),
        ..Default::default()
    })
    .await;
    let e = env.vectors().fetch(req(fetch_one())).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert_eq!(env.emulator.count("control", "describe_index"), 0);
}

#[tokio::test]
async fn data_plane_unauthorized_is_unauthenticated() {
    // Resolve the host with the right key first, then point a second gateway with a wrong key at it statically.
    let env = Env::start().await;
    let host = env.index_host().await;
    let settings = pinecone_gateway::config::FileConfig::parse(
        std::path::Path::new("t.toml"),
        &format!("[indexes.{INDEX}]\nhost = \"{host}\"\n"),
    )
    .unwrap()
    .settings(pinecone_gateway::config::Overrides {
        listen: Some("127.0.0.1:0".into()),
        control_plane_url: Some(env.emulator.url()),
        api_key: Some("wrong".into()),
        ..Default::default()
    })
    .unwrap();
    let gw = pinecone_gateway::server::start(&settings).await.unwrap();
    let mut client =
        pinecone_gateway::pb::pinecone::vector_service_client::VectorServiceClient::connect(
            format!("http://{}", gw.addr),
        )
        .await
        .unwrap();
    let e = client.fetch(req(fetch_one())).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(e.message().contains("Unauthorized"));
}

#[tokio::test]
async fn stopped_pinecone_is_unavailable() {
    let env = Env::start().await;
    env.vectors().fetch(req(fetch_one())).await.unwrap();
    env.emulator.shutdown().await;
    let e = env.vectors().fetch(req(fetch_one())).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    let e = env
        .backups()
        .list_project_backups(pinecone_gateway::pb::gateway::ListProjectBackupsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
}

#[tokio::test]
async fn pinecone_refusals_keep_their_message() {
    let env = Env::start().await;
    let e = env
        .vectors()
        .upsert(req(p::UpsertRequest {
            // Sparse values only, in a dense index: the gateway leaves that to Pinecone (a wrong dense length it
            // refuses itself: tests/bad_input.rs).
            vectors: vec![p::Vector {
                id: "a".into(),
                sparse_values: Some(p::SparseValues {
                    indices: vec![1],
                    values: vec![0.5],
                }),
                ..Default::default()
            }],
            namespace: "".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message()
            .contains("dimension 0 does not match the dimension of the index 4"),
        "{}",
        e.message()
    );
    let e = env
        .vectors()
        .describe_namespace(req(p::DescribeNamespaceRequest {
            namespace: "missing".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

/// An upstream that accepts connections and never answers: only the gateway's own deadline can end the call.
#[tokio::test]
async fn the_gateway_deadline_bounds_a_silent_upstream() {
    let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole = black_hole.local_addr().unwrap();
    let env = Env::start_with(EnvOptions {
        config: Some(format!(
            "[server]\ndefault_timeout_ms = 300\n[indexes.{INDEX}]\nhost = \"{hole}\"\n"
        )),
        ..Default::default()
    })
    .await;
    // Hold the accepted connections open without answering, and report when the gateway hangs up.
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut conn, _) = black_hole.accept().await.unwrap();
        let mut buf = vec![0u8; 65536];
        while conn.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {}
        let _ = closed_tx.send(());
    });
    // No deadline from the caller: the gateway's default (300 ms) applies.
    let started = std::time::Instant::now();
    let e = env.vectors().fetch(req(fetch_one())).await.unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "bounded by the deadline, not by a hang"
    );
    // The upstream request was abandoned, not left running.
    tokio::time::timeout(std::time::Duration::from_secs(10), closed_rx)
        .await
        .unwrap()
        .unwrap();
}

/// Pinecone's 429 for a plan's monthly write units is a cap, not a rate limit: the upsert is sent once (not
/// retried), and fails RESOURCE_EXHAUSTED without retry advice, saying the monthly limit is reached; it is counted
/// by kind. Over REST it is 429 without `Retry-After`.
#[tokio::test]
async fn a_monthly_unit_cap_is_not_retried_and_carries_no_retry_advice() {
    let env = Env::start_rest("").await;
    // Warm the host cache, then every data-plane request meets the cap.
    env.vectors()
        .describe_index_stats(req(p::DescribeIndexStatsRequest::default()))
        .await
        .unwrap();
    env.emulator
        .set_faults(pinecone_gateway::emulator::faults::Faults {
            monthly_cap: Some("write".into()),
            ..Default::default()
        });
    let e = env
        .vectors()
        .upsert(req(p::UpsertRequest {
            vectors: vec![p::Vector {
                id: "a".into(),
                values: vec![1.0, 0.0, 0.0, 0.0],
                ..Default::default()
            }],
            namespace: "".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(
        e.message().contains("monthly write unit limit"),
        "{}",
        e.message()
    );
    assert!(e.metadata().get("grpc-retry-pushback-ms").is_none());
    assert!(e.details().is_empty(), "no RetryInfo");
    assert_eq!(
        env.emulator.count(INDEX, "upsert"),
        1,
        "sent once, not retried"
    );
    let rest = env.rest_addr();
    let r = reqwest::Client::new()
        .get(format!("http://{rest}/vectors/fetch?ids=a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_none());
    assert!(r.text().await.unwrap().contains("monthly write unit limit"));
    let admin = env.gateway.as_ref().unwrap().admin_addr.unwrap();
    let text = scrape(admin).await;
    assert!(
        metric(
            &text,
            r#"pinecone_gateway_upstream_quota_exhausted_total{kind="write"}"#
        ) >= 2.0,
        "{text}"
    );
}
