//! Caller authentication: unknown or missing tokens are UNAUTHENTICATED, a token limited to some indexes gets
//! PERMISSION_DENIED elsewhere, nothing refused reaches Pinecone, and the caller's token is never forwarded.
mod common;
use common::*;
use pinecone_gateway::pb::gateway as g;
use pinecone_gateway::pb::pinecone as p;
use tonic::Code;

const ALL: &str = "token-for-everything-0001";
const LIMITED: &str = "token-for-test-index-0002";

fn with_key<T>(index: &str, key: Option<&str>, msg: T) -> tonic::Request<T> {
    let mut r = req_for(index, msg);
    if let Some(k) = key {
        r.metadata_mut().insert("api-key", k.parse().unwrap());
    }
    r
}

async fn env() -> Env {
    let env = Env::start_with(EnvOptions {
        config: Some(format!(
            "[auth]\nenabled = true\n\
             [[auth.tokens]]\nname = \"ops\"\ntoken = \"{ALL}\"\n\
             [[auth.tokens]]\nname = \"search\"\ntoken = \"{LIMITED}\"\nindexes = [\"{INDEX}\"]\n"
        )),
        ..Default::default()
    })
    .await;
    env.emulator
        .create_index("other", 4, "cosine")
        .await
        .unwrap();
    env
}

fn stats() -> p::DescribeIndexStatsRequest {
    p::DescribeIndexStatsRequest::default()
}

#[tokio::test]
async fn missing_or_unknown_tokens_are_unauthenticated() {
    let env = env().await;
    let before = env.emulator.total_requests();
    let e = env
        .vectors()
        .describe_index_stats(with_key(INDEX, None, stats()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains("api-key"), "{}", e.message());
    let e = env
        .vectors()
        .describe_index_stats(with_key(INDEX, Some("not-a-token-at-all"), stats()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(!e.message().contains("not-a-token-at-all"));
    let mut l = env.lists();
    let e = l
        .list_all(with_key(
            INDEX,
            None,
            g::ListAllRequest {
                namespace: "".into(),
                prefix: None,
                page_size: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert_eq!(
        env.emulator.total_requests(),
        before,
        "nothing refused reached Pinecone"
    );
}

#[tokio::test]
async fn tokens_in_either_header_are_accepted_and_never_forwarded() {
    let env = env().await;
    // The emulator demands the gateway's own key (common::KEY), so success proves the caller's token was not sent.
    env.vectors()
        .describe_index_stats(with_key(INDEX, Some(ALL), stats()))
        .await
        .unwrap();
    let mut r = req_for(INDEX, stats());
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {LIMITED}").parse().unwrap(),
    );
    env.vectors().describe_index_stats(r).await.unwrap();
}

#[tokio::test]
async fn limited_tokens_are_held_to_their_indexes() {
    let env = env().await;
    env.vectors()
        .describe_index_stats(with_key(INDEX, Some(LIMITED), stats()))
        .await
        .unwrap();
    let before = env.emulator.total_requests();
    let e = env
        .vectors()
        .describe_index_stats(with_key("other", Some(LIMITED), stats()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(
        e.message().contains("`search` may not use index `other`"),
        "{}",
        e.message()
    );
    // Project-wide calls need an unlimited token.
    let mut r = tonic::Request::new(g::ListProjectBackupsRequest::default());
    r.metadata_mut().insert("api-key", LIMITED.parse().unwrap());
    let e = env.backups().list_project_backups(r).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // Backups of another index, named in the request.
    let mut r = tonic::Request::new(g::CreateBackupRequest {
        index_name: "other".into(),
        name: None,
        description: None,
    });
    r.metadata_mut().insert("api-key", LIMITED.parse().unwrap());
    assert_eq!(
        env.backups().create_backup(r).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert_eq!(env.emulator.total_requests(), before);
    // The unlimited token may do all of it.
    env.vectors()
        .describe_index_stats(with_key("other", Some(ALL), stats()))
        .await
        .unwrap();
    let mut r = tonic::Request::new(g::ListProjectBackupsRequest::default());
    r.metadata_mut().insert("api-key", ALL.parse().unwrap());
    env.backups().list_project_backups(r).await.unwrap();
}
