//! The REST API version the gateway asks for (`X-Pinecone-Api-Version`): the newest supported one by default, the
//! configured one otherwise, and a version the gateway has not been tested with is refused at start-up.
mod common;
use common::*;
use pinecone_gateway::config::{FileConfig, Overrides};
use pinecone_gateway::pb::pinecone as p;

async fn version_sent(config: Option<&str>) -> String {
    let env = Env::start_with(EnvOptions {
        config: config.map(str::to_string),
        ..Default::default()
    })
    .await;
    env.vectors()
        .describe_index_stats(req(p::DescribeIndexStatsRequest::default()))
        .await
        .unwrap();
    env.emulator.last_api_version()
}

#[tokio::test]
async fn the_newest_supported_version_is_sent_unless_configured() {
    assert_eq!(version_sent(None).await, "2026-04");
    assert_eq!(
        version_sent(Some("[upstream]\napi_version = \"2025-10\"\n")).await,
        "2025-10"
    );
}

#[test]
fn an_unsupported_version_is_refused_naming_the_key() {
    let file = FileConfig::parse(
        std::path::Path::new("t.toml"),
        "[upstream]\napi_version = \"2027-01\"\n",
    )
    .unwrap();
    let e = file
        .settings(Overrides {
            api_key: Some("k".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("upstream.api_version"), "{e}");
    assert!(e.contains("2025-10, 2026-04, 2026-07"), "{e}");
}
