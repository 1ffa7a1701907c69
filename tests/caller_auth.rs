//! Caller authentication: unknown or missing tokens are UNAUTHENTICATED, a token limited to some indexes gets
//! PERMISSION_DENIED elsewhere, nothing refused reaches Pinecone, and the caller's token is never forwarded. A limited
//! token may use the backups of its indexes (authorised by each backup's source index) and follow restore jobs into
//! its indexes.
mod common;
use common::*;
use pinecone_gateway::pb::gateway as g;
use pinecone_gateway::pb::pinecone as p;
use tonic::Code;

const ALL: &str = "token-for-everything-0001";
const LIMITED: &str = "token-for-test-index-0002";
const RESTORER: &str = "token-for-restores-00003";

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
             [[auth.tokens]]\nname = \"search\"\ntoken = \"{LIMITED}\"\nindexes = [\"{INDEX}\"]\n\
             [[auth.tokens]]\nname = \"restorer\"\ntoken = \"{RESTORER}\"\nindexes = [\"{INDEX}\", \"restored-here\"]\n"
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

fn keyed<T>(key: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert("api-key", key.parse().unwrap());
    r
}

async fn backup_of(env: &Env, index: &str) -> String {
    env.backups()
        .create_backup(keyed(
            ALL,
            g::CreateBackupRequest {
                index_name: index.into(),
                name: None,
                description: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .backup_id
}

fn restore(backup_id: &str, name: &str) -> g::CreateIndexFromBackupRequest {
    g::CreateIndexFromBackupRequest {
        backup_id: backup_id.into(),
        name: name.into(),
        tags: Default::default(),
        deletion_protection: None,
    }
}

/// Backups are project-wide in Pinecone's API; a limited token may describe, delete and restore the backups of its
/// own indexes (each backup's source index is described once and remembered), restore only into its own indexes,
/// and describe the restore jobs into them; another index's are PERMISSION_DENIED, and nothing of theirs changes.
#[tokio::test]
async fn limited_tokens_use_the_backups_of_their_own_indexes() {
    let env = env().await;
    let mine = backup_of(&env, INDEX).await;
    let theirs = backup_of(&env, "other").await;
    let mut b = env.backups();
    let d = b
        .describe_backup(keyed(
            LIMITED,
            g::DescribeBackupRequest {
                backup_id: mine.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.source_index_name, INDEX);
    let e = b
        .describe_backup(keyed(
            LIMITED,
            g::DescribeBackupRequest {
                backup_id: theirs.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("`other`"), "{}", e.message());

    // Deleting another index's backup: refused after one describe, and the backup is still there.
    let described = env.emulator.count("control", "describe_backup");
    let e = b
        .delete_backup(keyed(
            LIMITED,
            g::DeleteBackupRequest {
                backup_id: theirs.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert_eq!(env.emulator.count("control", "delete_backup"), 0);
    assert_eq!(
        env.emulator.count("control", "describe_backup"),
        described + 1
    );
    // Remembered: asking again describes nothing more.
    let e = b
        .delete_backup(keyed(
            LIMITED,
            g::DeleteBackupRequest {
                backup_id: theirs.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(
        env.emulator.count("control", "describe_backup"),
        described + 1
    );
    b.describe_backup(keyed(
        ALL,
        g::DescribeBackupRequest {
            backup_id: theirs.clone(),
        },
    ))
    .await
    .expect("another index's backup is still there");

    // Restores: from its own index's backup into its own index; not into an index it may not use, and not from
    // another index's backup.
    let e = b
        .create_index_from_backup(keyed(LIMITED, restore(&mine, "restored-here")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("`restored-here`"), "{}", e.message());
    let e = b
        .create_index_from_backup(keyed(RESTORER, restore(&theirs, "restored-here")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("`other`"), "{}", e.message());
    assert_eq!(env.emulator.count("control", "create_index_from_backup"), 0);
    let job = b
        .create_index_from_backup(keyed(RESTORER, restore(&mine, "restored-here")))
        .await
        .unwrap()
        .into_inner()
        .restore_job_id;
    let j = b
        .describe_restore_job(keyed(
            RESTORER,
            g::DescribeRestoreJobRequest {
                job_id: job.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(j.target_index_name, "restored-here");
    let e = b
        .describe_restore_job(keyed(LIMITED, g::DescribeRestoreJobRequest { job_id: job }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // Its own index's backup may be deleted.
    b.delete_backup(keyed(
        LIMITED,
        g::DeleteBackupRequest {
            backup_id: mine.clone(),
        },
    ))
    .await
    .unwrap();
}
