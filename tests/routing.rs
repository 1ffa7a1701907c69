//! Which index a call goes to: `pinecone-index` metadata, else `service-name`, else the default index, else
//! INVALID_ARGUMENT naming the metadata key.
mod common;
use common::*;
use pinecone_gateway::pb::pinecone as p;

fn stats() -> p::DescribeIndexStatsRequest {
    p::DescribeIndexStatsRequest::default()
}

#[tokio::test]
async fn no_index_anywhere_is_invalid_argument() {
    let env = Env::start().await;
    let e = env
        .vectors()
        .describe_index_stats(tonic::Request::new(stats()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("pinecone-index"), "{}", e.message());
    assert_eq!(env.emulator.total_requests(), 0);
}

#[tokio::test]
async fn service_name_routes_like_the_official_clients() {
    let env = Env::start().await;
    env.emulator
        .create_index("second", 2, "dotproduct")
        .await
        .unwrap();
    let mut r = tonic::Request::new(stats());
    r.metadata_mut()
        .insert("service-name", "second".parse().unwrap());
    let s = env
        .vectors()
        .describe_index_stats(r)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.dimension, Some(2));
    // An empty service-name (the 7.x/8.x clients with host= only) falls through to the default.
    let env = Env::start_with(EnvOptions {
        default_index: Some(INDEX.into()),
        ..Default::default()
    })
    .await;
    let mut r = tonic::Request::new(stats());
    r.metadata_mut().insert("service-name", "".parse().unwrap());
    let s = env
        .vectors()
        .describe_index_stats(r)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.dimension, Some(4));
}

#[tokio::test]
async fn pinecone_index_wins_over_service_name() {
    let env = Env::start().await;
    env.emulator
        .create_index("second", 2, "dotproduct")
        .await
        .unwrap();
    let mut r = req(stats());
    r.metadata_mut()
        .insert("service-name", "second".parse().unwrap());
    let s = env
        .vectors()
        .describe_index_stats(r)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.dimension, Some(4));
}

#[tokio::test]
async fn hosts_are_resolved_once_and_cached() {
    let env = Env::start().await;
    for _ in 0..5 {
        env.vectors()
            .describe_index_stats(req(stats()))
            .await
            .unwrap();
    }
    assert_eq!(env.emulator.count("control", "describe_index"), 1);
    assert_eq!(env.emulator.count(INDEX, "describe_index_stats"), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_calls_look_the_host_up_once() {
    let env = Env::start().await;
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let mut c = env.vectors();
            tokio::spawn(async move { c.describe_index_stats(req(stats())).await })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert_eq!(env.emulator.count("control", "describe_index"), 1);
}

#[tokio::test]
async fn a_recreated_index_is_found_at_its_new_host() {
    let env = Env::start().await;
    env.emulator
        .create_index("moving", 4, "cosine")
        .await
        .unwrap();
    env.vectors()
        .describe_index_stats(req_for("moving", stats()))
        .await
        .unwrap();
    // Delete and recreate: the old port is closed and the new index listens elsewhere.
    let http = reqwest::Client::new();
    let resp = http
        .delete(format!("{}/indexes/moving", env.emulator.url()))
        .header("Api-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    env.emulator
        .create_index("moving", 2, "cosine")
        .await
        .unwrap();
    let s = env
        .vectors()
        .describe_index_stats(req_for("moving", stats()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.dimension, Some(2));
    assert_eq!(env.emulator.count("control", "describe_index"), 2);
}

#[tokio::test]
async fn a_deleted_index_answers_not_found() {
    let env = Env::start().await;
    env.emulator
        .create_index("gone", 4, "cosine")
        .await
        .unwrap();
    env.vectors()
        .describe_index_stats(req_for("gone", stats()))
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .delete(format!("{}/indexes/gone", env.emulator.url()))
        .header("Api-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    // The cached host no longer answers; the gateway looks the index up again and Pinecone says it is gone.
    let e = env
        .vectors()
        .describe_index_stats(req_for("gone", stats()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    assert!(e.message().contains("index `gone` not found"), "{e:?}");
}
