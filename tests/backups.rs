//! Backups and restores: create, describe, list with limit and pagination (per index and per project), delete,
//! restore into a new index (which initializes with no host, as Pinecone's do) and read from it once it is ready,
//! restore jobs (without a timestamp while pending), describe index.
mod common;
use common::*;
use pinecone_gateway::pb::gateway as g;
use pinecone_gateway::pb::pinecone as p;

#[tokio::test]
async fn backup_lifecycle_and_restore() {
    let env = Env::start_with(EnvOptions {
        // Long enough that the test sees it; ended by `finish_restores` below.
        restore_init: std::time::Duration::from_secs(600),
        ..Default::default()
    })
    .await;
    env.seed("ns-a", "r", 5).await;
    env.seed("ns-b", "s", 2).await;
    let mut backups = env.backups();

    let created = backups
        .create_backup(g::CreateBackupRequest {
            index_name: INDEX.into(),
            name: Some("nightly-1".into()),
            description: Some("first".into()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.source_index_name, INDEX);
    assert_eq!(created.record_count, Some(7));
    assert_eq!(created.namespace_count, Some(2));
    assert_eq!(created.status, "Ready");
    assert!(!created.created_at.is_empty());
    assert!(created.tags.is_empty(), "Pinecone's `tags: null`");

    let described = backups
        .describe_backup(g::DescribeBackupRequest {
            backup_id: created.backup_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described, created);

    // Pinecone documents no rule for backup names; its own examples use `_`.
    for name in ["nightly_2", "nightly_3"] {
        backups
            .create_backup(g::CreateBackupRequest {
                index_name: INDEX.into(),
                name: Some(name.into()),
                description: None,
            })
            .await
            .unwrap();
    }
    // Walk the index's backups two at a time.
    let page1 = backups
        .list_index_backups(g::ListIndexBackupsRequest {
            index_name: INDEX.into(),
            limit: Some(2),
            pagination_token: None,
            include_deleted: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page1.backups.len(), 2);
    let token = page1.next_pagination_token.clone().expect("a second page");
    let page2 = backups
        .list_index_backups(g::ListIndexBackupsRequest {
            index_name: INDEX.into(),
            limit: Some(2),
            pagination_token: Some(token),
            include_deleted: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page2.backups.len(), 1);
    assert!(page2.next_pagination_token.is_none());
    let names: Vec<_> = page1
        .backups
        .iter()
        .chain(&page2.backups)
        .map(|b| b.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["nightly-1", "nightly_2", "nightly_3"]);

    let project = backups
        .list_project_backups(g::ListProjectBackupsRequest {
            limit: None,
            pagination_token: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(project.backups.len(), 3);

    // Restore into a new index, then read through the gateway from it.
    let restore = backups
        .create_index_from_backup(g::CreateIndexFromBackupRequest {
            backup_id: created.backup_id.clone(),
            name: "restored".into(),
            tags: Default::default(),
            deletion_protection: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!restore.restore_job_id.is_empty());
    let describe = |name: &str| {
        let mut b = env.backups();
        let name = name.to_string();
        async move {
            b.describe_index(g::DescribeIndexRequest { name })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let job = |backups: &mut pinecone_gateway::pb::gateway::backup_service_client::BackupServiceClient<_>| {
        let mut b = backups.clone();
        let job_id = restore.restore_job_id.clone();
        async move {
            b.describe_restore_job(g::DescribeRestoreJobRequest { job_id })
                .await
                .unwrap()
                .into_inner()
        }
    };

    // While it initializes, Pinecone reports no host and a job with no timestamp.
    let index = describe("restored").await;
    assert!(!index.ready);
    assert_eq!(
        (index.host.as_str(), index.state.as_str()),
        ("", "Initializing")
    );
    let pending = job(&mut backups).await;
    assert_eq!(
        (pending.status.as_str(), pending.created_at.as_str()),
        ("Pending", "")
    );
    let early = env
        .vectors()
        .fetch(req_for(
            "restored",
            p::FetchRequest {
                ids: vec!["r-0004".into()],
                namespace: "ns-a".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(early.code(), tonic::Code::Unavailable, "{early:?}");
    assert!(
        early.message().contains("`restored`") && early.message().contains("Initializing"),
        "{early:?}"
    );
    let jobs = backups
        .list_restore_jobs(g::ListRestoreJobsRequest {
            limit: Some(10),
            pagination_token: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        jobs.restore_jobs.len(),
        1,
        "a job without a timestamp is listed"
    );

    env.emulator.finish_restores();
    let index = describe("restored").await;
    assert!(index.ready);
    assert!(!index.host.is_empty());
    assert_eq!(index.dimension, Some(4));
    let done = job(&mut backups).await;
    assert_eq!(done.target_index_name, "restored");
    assert_eq!(done.backup_id, created.backup_id);
    assert_eq!(done.status, "Completed");
    assert!(!done.created_at.is_empty());

    let fetched = env
        .vectors()
        .fetch(req_for(
            "restored",
            p::FetchRequest {
                ids: vec!["r-0004".into(), "s-0001".into()],
                namespace: "ns-a".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.vectors.keys().collect::<Vec<_>>(), vec!["r-0004"]);
    let stats = env
        .vectors()
        .describe_index_stats(req_for("restored", p::DescribeIndexStatsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.total_vector_count, 7);

    // A restore into an existing name is refused by Pinecone, and mapped.
    let dup = backups
        .create_index_from_backup(g::CreateIndexFromBackupRequest {
            backup_id: created.backup_id.clone(),
            name: "restored".into(),
            tags: Default::default(),
            deletion_protection: None,
        })
        .await
        .unwrap_err();
    assert_eq!(dup.code(), tonic::Code::AlreadyExists, "{dup:?}");

    backups
        .delete_backup(g::DeleteBackupRequest {
            backup_id: created.backup_id.clone(),
        })
        .await
        .unwrap();
    let gone = backups
        .describe_backup(g::DescribeBackupRequest {
            backup_id: created.backup_id,
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
    assert_eq!(env.emulator.count("control", "create_backup"), 3);
}
