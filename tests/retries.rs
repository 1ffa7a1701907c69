//! Retries end to end: against an emulator that injects 20% faults (503s, 429s without Retry-After, and connections
//! dropped after the request was applied) every idempotent call succeeds; a create-backup is retried after a 429
//! (Pinecone refused it) and never after a broken connection or a 503 (it may have been applied).
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
            monthly_cap: None,
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
async fn create_backup_is_retried_only_when_pinecone_refused_it() {
    let env = Env::start_with(EnvOptions {
        config: Some("[retry]\nmax_attempts = 3\nbase_backoff_ms = 1\nmax_backoff_ms = 5\n".into()),
        ..Default::default()
    })
    .await;
    let mut b = env.backups();
    let create = |name: &str| {
        let name = name.to_string();
        let mut b = b.clone();
        async move {
            b.create_backup(g::CreateBackupRequest {
                index_name: INDEX.into(),
                name: Some(name),
                description: None,
            })
            .await
        }
    };
    let creates = |env: &Env| env.emulator.count("control", "create_backup");
    let fault = |f: Faults| env.emulator.set_faults(f);

    // Applied, then the connection broke: it may have been created, so it is not sent again.
    fault(Faults {
        drop_percent: 100.0,
        ..Default::default()
    });
    let e = create("dropped").await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert_eq!(creates(&env), 1, "not retried");

    // A 503: Pinecone may have applied it, so it is not sent again either.
    fault(Faults {
        error_percent: 100.0,
        ..Default::default()
    });
    let e = create("unavailable").await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert_eq!(creates(&env), 2, "not retried");

    // A 429: Pinecone refused it before applying it, so it is retried (here until the attempts run out).
    fault(Faults {
        throttle_percent: 100.0,
        ..Default::default()
    });
    let e = create("throttled").await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert_eq!(creates(&env), 5, "three attempts");

    fault(Faults::default());
    create("clean").await.unwrap();
    let names: HashMap<String, usize> = b
        .list_project_backups(g::ListProjectBackupsRequest {
            limit: Some(100),
            pagination_token: None,
        })
        .await
        .unwrap()
        .into_inner()
        .backups
        .into_iter()
        .fold(HashMap::new(), |mut m, b| {
            *m.entry(b.name.unwrap_or_default()).or_default() += 1;
            m
        });
    assert_eq!(
        names,
        HashMap::from([("dropped".to_string(), 1), ("clean".to_string(), 1)]),
        "the dropped one was applied once, the refused ones never"
    );
}
