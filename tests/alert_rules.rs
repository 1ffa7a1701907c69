//! deploy/observability/alerts.yaml: promtool accepts the rules and their unit tests pass (alerts.test.yaml has a
//! firing and a quiet case for every alert), and every metric they use is one the gateway exports.
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
    let mut used: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("pinecone_gateway_"))
        .collect();
    used.sort();
    used.dedup();
    assert!(used.len() >= 4, "{used:?}");
    for metric in used {
        assert!(
            exported.contains(&format!("\"{metric}\"")),
            "{metric} is not a metric of src/telemetry/metrics.rs"
        );
    }
}
