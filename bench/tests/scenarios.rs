//! Every scenario of the harness runs to the end and writes its summary. How fast is BENCHMARKS.md's business, not a
//! test's: nothing here compares a figure with a threshold, only that each figure was measured.
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// True when `name` is on the PATH; on CI (the README's test command installs everything) a missing one fails.
fn have(name: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var("CI").is_ok() {
        panic!(
            "{name} is not on the PATH; run the README's test command (scripts/test installs it)"
        );
    }
    if !found {
        eprintln!("skipped: {name} is not on the PATH (scripts/test installs it)");
    }
    found
}

/// Runs `bench SCENARIO` as briefly as it allows and returns its one result.
fn run(scenario: &str) -> Value {
    run_with(scenario, &[])
}

/// [`run`], with more arguments.
fn run_with(scenario: &str, more: &[&str]) -> Value {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_bench"));
    let gateway = bench.with_file_name("pinecone-gateway");
    assert!(
        gateway.exists(),
        "{} is missing: build the whole workspace (cargo build --workspace)",
        gateway.display()
    );
    let json = std::env::temp_dir().join(format!("bench-{scenario}-{}.json", std::process::id()));
    let out = Command::new(&bench)
        .args([scenario, "--duration-secs", "1", "--warmup-secs", "0"])
        .args(["--serial-requests", "200", "--rate", "200"])
        .args(more)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench {scenario} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{doc}");
    results[0].clone()
}

#[test]
fn proxies_measures_every_arm_and_workload() {
    if !have("h2load") || !have("nginx") || !have("taskset") {
        return;
    }
    let r = run("proxies");
    let arms = r["arms"].as_array().unwrap();
    // 14 arms × 2 workloads.
    assert_eq!(arms.len(), 28, "{r}");
    // The traced arms exported spans to the receiver, and say how many.
    let traced: Vec<&serde_json::Value> = arms
        .iter()
        .filter(|a| a["traces_both_workloads"].is_object())
        .collect();
    assert_eq!(traced.len(), 2, "{r}");
    for a in traced {
        let t = &a["traces_both_workloads"];
        assert!(t["spans_received"].as_u64().unwrap() > 0, "{a}");
        assert!(t["calls"].as_f64().unwrap() > 0.0, "{a}");
    }
    for a in arms {
        assert!(a["load_calls_per_second"].as_f64().unwrap() > 0.0, "{a}");
        assert!(a["serial_mean_us"].as_f64().unwrap() > 0.0, "{a}");
        if a["arm"] != "straight REST" {
            assert!(a["load_cpu_us_per_call"].as_f64().unwrap() > 0.0, "{a}");
        }
        if a["workload"] == "fetch 1 ID" {
            assert!(a["at_rate"]["count"].as_u64().unwrap() > 0, "{a}");
        }
    }
    for key in [
        "fetch_cpu_per_call_vs_floor",
        "fetch_cpu_per_call_vs_nginx",
        "upsert_cpu_per_call_vs_floor",
        "fetch_cpu_per_call_vs_floor_both_http2",
        "upsert_cpu_per_call_vs_floor_both_http2",
        "fetch_cpu_us_per_call_traced_minus_untraced",
    ] {
        assert!(r[key].as_f64().is_some(), "{key}: {r}");
    }
    assert!(
        r["gateway_memory"]["idle_mb"].as_f64().unwrap() > 0.0,
        "{r}"
    );
}

#[test]
fn limiter_counts_the_busiest_second() {
    if !have("taskset") {
        return;
    }
    let r = run("limiter");
    assert!(
        r["max_in_any_one_second_window"].as_u64().unwrap() > 0,
        "{r}"
    );
    assert!(r["upstream_429s"].as_u64().is_some(), "{r}");
}

#[test]
fn coalescing_measures_on_and_off() {
    if !have("taskset") {
        return;
    }
    let r = run("coalescing");
    assert!(
        r["coalescing_on"]["records_per_second"].as_f64().unwrap() > 0.0,
        "{r}"
    );
    assert!(
        r["coalescing_off"]["records_per_second"].as_f64().unwrap() > 0.0,
        "{r}"
    );
}

#[test]
fn shared_runs_three_replicas_on_redis() {
    if !have("redis-server") || !have("taskset") {
        return;
    }
    let r = run("shared");
    assert_eq!(r["replicas"], 3, "{r}");
    assert!(
        r["max_in_any_one_second_window"].as_u64().unwrap() > 0,
        "{r}"
    );
    assert!(r["redis_decision"]["count"].as_u64().unwrap() > 0, "{r}");
}

#[test]
fn fleet_runs_every_load_and_an_outage() {
    if !have("redis-server") || !have("taskset") {
        return;
    }
    let r = run_with("fleet", &["--fleet-sizes", "20"]);
    let runs = r["runs"].as_array().unwrap();
    // Uniform, skewed and bursts at 20 replicas, skewed with Redis killed half way, interactive calls under batch
    // work, and skewed on a 3-master cluster.
    assert_eq!(runs.len(), 6, "{r}");
    for run in runs {
        assert_eq!(run["replicas"], 20, "{run}");
        assert!(run["max_in_any_second"].as_u64().is_some(), "{run}");
        assert!(run["jain_fairness"].as_f64().is_some(), "{run}");
    }
    // With Redis up, the one measured second sends something (after Redis goes, a second may rightly send nothing).
    assert!(runs[0]["max_in_any_second"].as_u64().unwrap() > 0, "{r}");
    assert!(
        runs[0]["redis_work"]["commands_per_second"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{r}"
    );
    assert!(
        runs[0]["redis_work"]["round_trips_per_granted_turn_by_script"]["take"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{r}"
    );
    assert!(runs[0]["decision_p50"].is_string(), "{r}");
    assert!(runs[0]["granted_wait_p99_ms"].as_f64().is_some(), "{r}");
    assert!(
        runs[2]["load"].as_str().unwrap().starts_with("bursts"),
        "{r}"
    );
    assert!(
        runs[2]["calls_served_percent"].as_f64().unwrap() > 0.0,
        "{r}"
    );
    assert_eq!(runs[3]["redis_killed_half_way"], true, "{r}");
    assert!(
        runs[4]["interactive"]["wait_p99_ms"].as_f64().is_some(),
        "{r}"
    );
    assert_eq!(runs[5]["redis"], "cluster of 3 masters", "{r}");
    assert!(runs[5]["max_in_any_second"].as_u64().unwrap() > 0, "{r}");
}

#[test]
fn upsert_large_measures_cpu_per_call() {
    if !have("h2load") || !have("taskset") {
        return;
    }
    let r = run("upsert-large");
    assert!(r["calls"].as_u64().unwrap() > 0, "{r}");
    assert!(r["cpu_ms_per_call"].as_f64().unwrap() > 0.0, "{r}");
}

#[test]
fn callers_measures_both_callers_with_priorities_off_and_on() {
    let r = run("callers");
    for mode in ["priorities_off", "priorities_on"] {
        let m = &r[mode];
        assert!(
            m["interactive_latency"]["count"].as_u64().unwrap() > 0,
            "{r}"
        );
        assert!(m["batch_ok_per_second"].as_f64().unwrap() > 0.0, "{r}");
    }
}

#[test]
fn freshness_measures_both_arms() {
    let r = run("freshness");
    let arms = r["arms"].as_array().unwrap();
    assert_eq!(arms.len(), 3, "{r}");
    for a in arms {
        assert!(a["reflected_share"].as_f64().is_some(), "{a}");
        assert!(a["read_latency"]["count"].as_u64().unwrap() > 0, "{a}");
        assert!(a["upstream_reads_per_read"].as_f64().unwrap() >= 1.0, "{a}");
    }
}
