//! Standard gRPC surfaces: grpc.health.v1 for the server and each service (NOT_SERVING once Pinecone has been
//! unreachable past the threshold), and server reflection v1 and v1alpha listing every service.
mod common;
use common::*;
use pinecone_gateway::pb::pinecone as p;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test]
async fn every_service_reports_serving() {
    let env = Env::start().await;
    let mut health = HealthClient::new(env.channel());
    for service in [
        "",
        "VectorService",
        "pinecone_gateway.v1.BackupService",
        "pinecone_gateway.v1.ListService",
    ] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "{service:?}");
    }
    let e = health
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
}

/// Both surfaces an orchestrator reads: the health stream of every service and the admin listener's /readyz.
#[tokio::test]
async fn health_and_readyz_follow_pinecone_reachability() {
    let env = Env::start_with(EnvOptions {
        config: Some("[server]\nupstream_unhealthy_after_ms = 200\n".into()),
        ..Default::default()
    })
    .await;
    let admin = env.gateway.as_ref().unwrap().admin_addr.unwrap();
    let readyz = || async move {
        reqwest::get(format!("http://{admin}/readyz"))
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let mut health = HealthClient::new(env.channel());
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "VectorService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );
    assert_eq!(readyz().await, 200);
    // Pinecone goes away; a call finds it unreachable, and past the threshold both surfaces say so.
    env.emulator.shutdown().await;
    let _ = env
        .vectors()
        .fetch(req(p::FetchRequest {
            ids: vec!["a".into()],
            namespace: "".into(),
        }))
        .await;
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), watch.message())
        .await
        .unwrap();
    assert_eq!(next.unwrap().unwrap().status(), ServingStatus::NotServing);
    let server = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(server.status(), ServingStatus::NotServing);
    assert_eq!(readyz().await, 503);
    // /healthz only says the process is alive.
    assert_eq!(
        reqwest::get(format!("http://{admin}/healthz"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    // Pinecone comes back (on the same control-plane address, the index at a new host): the next call finds it,
    // and both surfaces say SERVING again.
    let back = pinecone_gateway::emulator::Emulator::start(
        env.emulator.addr(),
        pinecone_gateway::emulator::EmulatorOptions {
            api_key: Some(KEY.into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    back.create_index(INDEX, 4, "cosine").await.unwrap();
    env.vectors()
        .describe_index_stats(req(p::DescribeIndexStatsRequest::default()))
        .await
        .unwrap();
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), watch.message())
        .await
        .unwrap();
    assert_eq!(next.unwrap().unwrap().status(), ServingStatus::Serving);
    assert_eq!(readyz().await, 200);
}

#[tokio::test]
async fn reflection_lists_every_service_in_both_versions() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let env = Env::start().await;
    let mut client = ServerReflectionClient::new(env.channel());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        stream.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "VectorService",
        "pinecone_gateway.v1.BackupService",
        "pinecone_gateway.v1.ListService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    // The older v1alpha, which Python's grpcio-reflection speaks.
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest as AlphaReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as AlphaClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
    let mut alpha = AlphaClient::new(env.channel());
    let request = AlphaReflectionRequest {
        host: String::new(),
        message_request: Some(AlphaRequest::FileContainingSymbol("VectorService".into())),
    };
    let mut stream = alpha
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let reply = stream.message().await.unwrap().unwrap();
    assert!(reply.message_response.is_some());
}
