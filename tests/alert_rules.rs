//! deploy/observability/alerts.yaml: promtool accepts the rules and their unit tests pass (alerts.test.yaml has a
//! firing and a quiet case for every alert), and every metric they use is in a running gateway's /metrics.
mod common;
use common::*;

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

/// The gateway's metrics named in `rules`, each once.
fn metrics_in(rules: &str) -> Vec<&str> {
    let mut used: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("pinecone_gateway_"))
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
    assert_eq!(alerts.len(), 5);
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

/// The metrics the rules name, once the events they watch have happened on a running gateway: a call, an answer
/// from Pinecone (here a 5xx), a limit's refusal, a retry the budget did not allow, redis mode degraded (Redis
/// unreachable). A rule on a metric the gateway never exports would never fire.
#[tokio::test]
async fn every_metric_the_rules_use_appears_in_a_running_gateways_metrics() {
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
    let fetch = |id: &str, timeout_ms: u64| {
        let mut r = req(pinecone_gateway::pb::pinecone::FetchRequest {
            ids: vec![id.into()],
            namespace: String::new(),
        });
        r.set_timeout(std::time::Duration::from_millis(timeout_ms));
        r
    };
    // Waits out the window the degraded replica counts as spent, reaches Pinecone, gets a 5xx, is not retried.
    let e = v.fetch(fetch("a", 10_000)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    // The next turn is a second away: refused by the limit.
    let e = v.fetch(fetch("b", 200)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    let metrics = scrape(env.gateway.as_ref().unwrap().admin_addr.unwrap()).await;
    let rules = std::fs::read_to_string(format!("{DIR}/alerts.yaml")).unwrap();
    let used = metrics_in(&rules);
    for metric in used {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(&format!("{metric}{{"))
                    || l.starts_with(&format!("{metric} "))),
            "{metric} is not in /metrics:\n{metrics}"
        );
    }
}
