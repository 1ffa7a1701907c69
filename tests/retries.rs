//! Retries end to end, against an emulator that injects 20% faults (503s, 429s without Retry-After, and connections
//! dropped after the request was applied): every idempotent call succeeds, and a create-backup is never repeated.
mod common;
use common::*;
use pinecone_gateway::emulator::faults::Faults;
use pinecone_gateway::pb::gateway as g;
use pinecone_gateway::pb::pinecone as p;
use std::collections::HashMap;

fn faulty() -> EnvOptions {
    EnvOptions {
        faults: Faults {
            error_percent: 10.0,
            throttle_percent: 5.0,
            throttle_retry_after_secs: None,
            drop_percent: 5.0,
            delay_ms: 0,
        },
        // With a 20% failure rate per attempt, 8 attempts make a call fail about once in 400,000; the budget is
        // opened up because a fifth of all calls need a retry here.
        config: Some("[retry]\nmax_attempts = 8\nbudget_percent = 200\n".into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_calls_succeed_through_faults() {
    let env = Env::start_with(faulty()).await;
    let mut v = env.vectors();
    for round in 0..20 {
        let vectors = (0..5)
            .map(|i| p::Vector {
                id: format!("r{round}-{i}"),
                values: vec![1.0, 2.0, 3.0, i as f32],
                ..Default::default()
            })
            .collect();
        v.upsert(req(p::UpsertRequest {
            vectors,
            namespace: "ns".into(),
        }))
        .await
        .unwrap();
        let f = v
            .fetch(req(p::FetchRequest {
                ids: vec![format!("r{round}-0"), format!("r{round}-4")],
                namespace: "ns".into(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(f.vectors.len(), 2);
        v.query(req(p::QueryRequest {
            namespace: "ns".into(),
            top_k: 3,
            vector: vec![1.0; 4],
            ..Default::default()
        }))
        .await
        .unwrap();
        v.list(req(p::ListRequest {
            namespace: "ns".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
        v.delete(req(p::DeleteRequest {
            ids: vec![format!("r{round}-1")],
            namespace: "ns".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
        v.describe_index_stats(req(p::DescribeIndexStatsRequest::default()))
            .await
            .unwrap();
    }
    assert!(
        env.emulator.faults_injected() > 10,
        "faults were injected: {}",
        env.emulator.faults_injected()
    );
    let stats = v
        .describe_index_stats(req(p::DescribeIndexStatsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.namespaces["ns"].vector_count, 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_backup_is_never_repeated() {
    let env = Env::start_with(faulty()).await;
    let mut b = env.backups();
    let mut failed = 0;
    for i in 0..60 {
        let r = b
            .create_backup(g::CreateBackupRequest {
                index_name: INDEX.into(),
                name: Some(format!("b-{i}")),
                description: None,
            })
            .await;
        if r.is_err() {
            failed += 1;
        }
    }
    // Read every backup back (listing is idempotent, so it is retried through the faults).
    let mut names: HashMap<String, u32> = HashMap::new();
    let mut token = None;
    loop {
        let page = b
            .list_project_backups(g::ListProjectBackupsRequest {
                limit: Some(100),
                pagination_token: token.take(),
            })
            .await
            .unwrap()
            .into_inner();
        for backup in page.backups {
            *names.entry(backup.name.unwrap_or_default()).or_default() += 1;
        }
        match page.next_pagination_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert!(
        names.values().all(|n| *n == 1),
        "a backup was created twice: {names:?}"
    );
    // Each create reached Pinecone at most once, except after a 429, which Pinecone refused before applying.
    assert!(failed > 0, "some creates met a fault and were not retried");
    assert!(names.len() <= 60);
}
