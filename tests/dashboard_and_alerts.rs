//! deploy/observability/: promtool accepts the alert rules and their unit tests pass (alerts.test.yaml has a firing
//! and a quiet case for every alert); promtool accepts every query of the Grafana dashboard (dashboard.json); and
//! every metric the rules and the dashboard use is in a running gateway's /metrics once the events they watch happen.
mod common;
use common::pki::temp_dir;
use common::*;
use pinecone_gateway::pb::pinecone as p;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/observability");

/// promtool, from the Debian package the README's test command installs; under CI a missing one fails.
fn promtool() -> Option<&'static str> {
    let found = std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    match found {
        true => Some("promtool"),
        false if std::env::var("CI").is_ok() => {
            panic!("promtool is missing; run the README's test command")
        }
        false => {
            eprintln!("skipped: promtool is not on the PATH (scripts/test installs it)");
            None
        }
    }
}

/// The gateway's metrics named in `text` (rules or queries), each once, a histogram's series by its name.
fn metrics_in(text: &str) -> Vec<&str> {
    let mut used: Vec<&str> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("pinecone_gateway_"))
        .map(|w| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| w.strip_suffix(s))
                .unwrap_or(w)
        })
        .collect();
    used.sort();
    used.dedup();
    used
}

#[test]
fn promtool_checks_the_rules_and_passes_their_unit_tests() {
    let Some(promtool) = promtool() else { return };
    run_program(promtool, &["check", "rules", &format!("{DIR}/alerts.yaml")]);
    let out = std::process::Command::new(promtool)
        .args(["test", "rules", "alerts.test.yaml"])
        .current_dir(DIR)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_alert_has_a_unit_test_and_uses_metrics_the_gateway_exports() {
    let rules = std::fs::read_to_string(format!("{DIR}/alerts.yaml")).unwrap();
    let tests = std::fs::read_to_string(format!("{DIR}/alerts.test.yaml")).unwrap();
    let exported = include_str!("../src/telemetry/metrics.rs");
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(alerts.len(), 8);
    for a in &alerts {
        assert!(
            tests.contains(&format!("alertname: {a}")),
            "{a} has no unit test"
        );
    }
    let used = metrics_in(&rules);
    assert!(used.len() >= 4, "{used:?}");
    for metric in used {
        assert!(
            exported.contains(&format!("\"{metric}\"")),
            "{metric} is not a metric of src/telemetry/metrics.rs"
        );
    }
}

/// The dashboard's queries, with Grafana's variables replaced by what Prometheus would receive.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(format!("{DIR}/dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap().to_string();
        assert!(
            panel["description"].as_str().is_some_and(|d| !d.is_empty()),
            "panel {title} says nothing of what it shows"
        );
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "5m")
                .replace("$instance", ".*");
            queries.push((title.clone(), expr));
        }
    }
    queries
}

#[test]
fn promtool_accepts_every_query_of_the_dashboard() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 12, "{queries:?}");
    let all: String = queries.iter().map(|(_, q)| q.as_str()).collect();
    // What the issue asks the dashboard to show.
    for metric in [
        "pinecone_gateway_calls_total",
        "pinecone_gateway_call_duration_seconds",
        "pinecone_gateway_rate_limit_waits_total",
        "pinecone_gateway_rate_limit_rejections_total",
        "pinecone_gateway_upstream_requests_total",
        "pinecone_gateway_retries_total",
        "pinecone_gateway_retry_budget_exhausted_total",
        "pinecone_gateway_coalesced_callers",
        "pinecone_gateway_rate_limit_degraded",
        "pinecone_gateway_ready",
        "pinecone_gateway_read_units_total",
        "pinecone_gateway_write_units_total",
        "pinecone_gateway_budget_spent_ratio",
    ] {
        assert!(
            metrics_in(&all).contains(&metric),
            "no panel shows {metric}"
        );
    }
    let Some(promtool) = promtool() else { return };
    // Each query as a recording rule: `promtool check rules` parses it as Prometheus would.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, q)) in queries.iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(q).unwrap()
        ));
    }
    let dir = temp_dir("dashboard");
    let file = dir.join("dashboard-queries.yaml");
    std::fs::write(&file, rules).unwrap();
    run_program(promtool, &["check", "rules", file.to_str().unwrap()]);
}

fn fetch(
    id: &str,
    timeout_ms: u64,
) -> tonic::Request<pinecone_gateway::pb::pinecone::FetchRequest> {
    let mut r = req(pinecone_gateway::pb::pinecone::FetchRequest {
        ids: vec![id.into()],
        namespace: String::new(),
    });
    r.set_timeout(std::time::Duration::from_millis(timeout_ms));
    r
}

/// Redis mode with Redis unreachable (degraded), every answer a 5xx and no retry budget: a 5xx not retried for the
/// budget, a limit's refusal.
async fn degraded_and_failing() {
    let env = Env::start_with(EnvOptions {
        default_index: Some(INDEX.into()),
        faults: pinecone_gateway::emulator::faults::Faults {
            error_percent: 100.0,
            ..Default::default()
        },
        config: Some(
            "[limits]\nmode = \"redis\"\nreplicas = 2\n\
             [limits.redis]\nurl = \"redis://127.0.0.1:1/\"\n\
             [limits.rates.fetch]\nindex_requests_per_second = 1\n\
             [retry]\nbudget_percent = 0\nbudget_min_per_second = 0\n[coalescing]\nfetch = false\n"
                .into(),
        ),
        ..Default::default()
    })
    .await;
    let mut v = env.vectors();
    // Waits out the window the degraded replica counts as spent, reaches Pinecone, gets a 5xx, is not retried.
    let e = v.fetch(fetch("a", 10_000)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    // The next turn is a second away: refused by the limit.
    let e = v.fetch(fetch("b", 200)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
}

/// Pinecone's monthly write-unit cap met once.
async fn capped() {
    let env = Env::start_with(EnvOptions {
        default_index: Some(INDEX.into()),
        faults: pinecone_gateway::emulator::faults::Faults {
            monthly_cap: Some("write".into()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let e = env.vectors().fetch(fetch("c", 5_000)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
}

/// Redis mode with a real Redis, a caller configured, coalescing on, half the answers 5xx (retried): concurrent
/// fetches that wait for turns and are coalesced.
async fn busy_and_retrying() -> String {
    let url = std::env::var("PINECONE_GATEWAY_TEST_REDIS_URL").expect(
        "PINECONE_GATEWAY_TEST_REDIS_URL names a running redis-server (./scripts/test starts one)",
    );
    let env = Env::start_with(EnvOptions {
        default_index: Some(INDEX.into()),
        faults: pinecone_gateway::emulator::faults::Faults {
            error_percent: 50.0,
            ..Default::default()
        },
        config: Some(format!(
            "[limits]\nmode = \"redis\"\n\
             [limits.redis]\nurl = \"{url}\"\nkey_prefix = \"dashboard-{}-{}\"\n\
             [limits.rates.fetch]\nindex_requests_per_second = 5\n\
             [callers.dashboard]\npriority = \"interactive\"\nread_units_per_day = 1000000\n",
            std::process::id(),
            rand::random::<u32>()
        )),
        ..Default::default()
    })
    .await;
    let calls = (0..20).map(|i| {
        let mut v = env.vectors();
        async move {
            let mut r = fetch(&format!("id-{i}"), 10_000);
            r.metadata_mut()
                .insert("x-caller", "dashboard".parse().unwrap());
            v.fetch(r).await
        }
    });
    let ended = futures::future::join_all(calls).await;
    assert_eq!(ended.len(), 20);
    scrape(env.gateway.as_ref().unwrap().admin_addr.unwrap()).await
}

/// A read that waits for its caller's write under an index lag, on a gateway exporting traces to a collector that is
/// not there.
async fn fresh_and_traced() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let env = Env::start_with(EnvOptions {
        default_index: Some(INDEX.into()),
        index_lag: std::time::Duration::from_millis(100),
        config: Some(format!("[tracing]\notlp_endpoint = \"{endpoint}\"\n")),
        ..Default::default()
    })
    .await;
    let mut v = env.vectors();
    let mut w = tonic::Request::new(p::UpsertRequest {
        vectors: vec![p::Vector {
            id: "mine".into(),
            values: vec![1.0, 0.0, 0.0, 0.0],
            ..Default::default()
        }],
        namespace: "ns".into(),
    });
    w.metadata_mut()
        .insert("x-caller", "writer".parse().unwrap());
    v.upsert(w).await.unwrap();
    let mut r = tonic::Request::new(p::QueryRequest {
        top_k: 1,
        vector: vec![1.0, 0.0, 0.0, 0.0],
        namespace: "ns".into(),
        ..Default::default()
    });
    r.metadata_mut()
        .insert("x-caller", "writer".parse().unwrap());
    r.metadata_mut()
        .insert("x-consistency", "read-your-writes".parse().unwrap());
    let fresh = v.query(r).await.unwrap();
    assert_eq!(
        fresh.metadata().get("x-consistency-stale").unwrap(),
        "false"
    );
}

/// The metrics the rules and the dashboard name, once the events they watch have happened on running gateways (the
/// recorder is the test process's, so the second scrape holds both): a call, an answer from Pinecone, a retry and one
/// the budget did not allow, a wait for a limit's turn and a refusal, coalescing, redis mode degraded and healthy, a
/// configured caller, a read that waited for its write, traces exported to nowhere, Pinecone's monthly cap met. A rule or a panel on a metric the gateway never exports would never show anything.
#[tokio::test]
async fn every_metric_the_rules_and_the_dashboard_use_appears_in_a_running_gateways_metrics() {
    degraded_and_failing().await;
    capped().await;
    fresh_and_traced().await;
    let metrics = busy_and_retrying().await;
    let rules = std::fs::read_to_string(format!("{DIR}/alerts.yaml")).unwrap();
    let queries: String = dashboard_queries().into_iter().map(|(_, q)| q).collect();
    let mut used = metrics_in(&rules);
    used.extend(metrics_in(&queries));
    for metric in used {
        assert!(
            metrics.lines().any(|l| {
                ["{", " ", "_bucket{", "_sum ", "_sum{", "_count "]
                    .iter()
                    .any(|s| l.starts_with(&format!("{metric}{s}")))
            }),
            "{metric} is not in /metrics:\n{metrics}"
        );
    }
}
