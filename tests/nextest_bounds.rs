//! Every test has a time bound: a test that hangs fails by name within minutes instead of running CI into its limit.
//! The bound is nextest's `slow-timeout` with `terminate-after` in `.config/nextest.toml`, and the test command always
//! runs the suite with nextest (installing it where the machine has none), never with a bare `cargo test`.
use std::path::Path;
use std::time::Duration;

const MOST: Duration = Duration::from_secs(5 * 60);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_test_is_killed_within_a_few_minutes() {
    let text = std::fs::read_to_string(root().join(".config/nextest.toml"))
        .expect(".config/nextest.toml is missing");
    let config: toml::Table = toml::from_str(&text).unwrap();
    let slow = config
        .get("profile")
        .and_then(|p| p.get("default"))
        .and_then(|d| d.get("slow-timeout"))
        .expect("[profile.default] has no slow-timeout");
    let period = slow
        .get("period")
        .and_then(|p| p.as_str())
        .expect("slow-timeout has no period");
    let period = humantime::parse_duration(period).unwrap();
    let after = slow
        .get("terminate-after")
        .and_then(|t| t.as_integer())
        .expect("slow-timeout has no terminate-after: a hung test would run for ever");
    assert!(after >= 1, "terminate-after = {after}");
    let bound = period * u32::try_from(after).unwrap();
    assert!(
        bound <= MOST,
        "a hung test runs {bound:?} before it fails; at most {MOST:?}"
    );
    // No override lifts the bound for some tests.
    if let Some(overrides) = config
        .get("profile")
        .and_then(|p| p.get("default"))
        .and_then(|d| d.get("overrides"))
        .and_then(|o| o.as_array())
    {
        for o in overrides {
            if let Some(slow) = o.get("slow-timeout") {
                assert!(
                    slow.get("terminate-after").is_some(),
                    "an override has a slow-timeout without terminate-after: {o}"
                );
            }
        }
    }
}

#[test]
fn the_test_command_runs_the_suite_with_nextest_only() {
    let text = std::fs::read_to_string(root().join("scripts/test")).unwrap();
    let runs: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.contains("cargo test") || l.contains("cargo nextest run"))
        .collect();
    assert!(
        runs.iter().any(|l| l.contains("cargo nextest run")),
        "scripts/test does not run nextest"
    );
    assert!(
        !runs.iter().any(|l| l.contains("cargo test")),
        "scripts/test runs `cargo test`, which has no per-test bound: {runs:?}"
    );
}
