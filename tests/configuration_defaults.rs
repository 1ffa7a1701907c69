//! The defaults the Configuration table (docs/configuration.md) gives for `[server]`, `[limits]`, `[retry]` and `[consistency]` are
//! the gateway's: each is compared with the effective configuration of an empty file (and, for `[limits.redis]`, of a
//! file that only turns redis mode on), as `config check` prints it.
use pinecone_gateway::config::{FileConfig, Overrides, effective};
use std::collections::BTreeMap;

const SECTIONS: &[&str] = &["server.", "limits.", "retry.", "consistency."];

/// (key, default) pairs of the table's rows for those sections: `a` / `b` in the key column pair with `x` / `y` in
/// the default column.
fn readme_defaults() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        if cells.len() < 4 {
            continue;
        }
        let keys: Vec<String> = ticked(cells[0])
            .into_iter()
            .filter(|k| SECTIONS.iter().any(|s| k.starts_with(s)))
            .collect();
        let defaults = ticked(cells[2]);
        if keys.is_empty() || keys.len() != defaults.len() {
            continue;
        }
        out.extend(keys.into_iter().zip(defaults));
    }
    out
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        toml::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

fn effective_of(file: &str) -> BTreeMap<String, String> {
    let settings = FileConfig::parse(std::path::Path::new("t.toml"), file)
        .unwrap()
        .settings(Overrides {
            api_key: Some("k".into()),
            ..Default::default()
        })
        .unwrap();
    let table: toml::Table = toml::from_str(&effective::render(&settings)).unwrap();
    let mut out = BTreeMap::new();
    flatten("", &toml::Value::Table(table), &mut out);
    out
}

fn same(readme: &str, actual: &str) -> bool {
    match (readme.parse::<f64>(), actual.parse::<f64>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => readme == actual,
    }
}

#[test]
fn the_configuration_table_gives_the_gateways_defaults() {
    let plain = effective_of("");
    let redis = effective_of(
        "[limits]\nmode = \"redis\"\n[limits.redis]\nurl = \"redis://127.0.0.1:1/\"\n",
    );
    let rows = readme_defaults();
    let mut checked = Vec::new();
    let mut wrong = Vec::new();
    for (key, default) in &rows {
        let source = if key.starts_with("limits.redis.") {
            &redis
        } else {
            &plain
        };
        let Some(actual) = source.get(key) else {
            continue;
        };
        checked.push(key.clone());
        if !same(default, actual) {
            wrong.push(format!(
                "{key}: README says {default}, the gateway has {actual}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    for key in [
        "server.listen",
        "server.default_timeout_ms",
        "server.drain_grace_ms",
        "server.max_message_bytes",
        "limits.max_queue_wait_ms",
        "limits.mode",
        "limits.redis.timeout_ms",
        "limits.redis.key_prefix",
        "retry.max_attempts",
        "retry.max_backoff_ms",
        "retry.budget_percent",
        "consistency.max_wait_ms",
        "consistency.max_remembered",
        "consistency.max_backoff_ms",
    ] {
        assert!(
            checked.iter().any(|k| k == key),
            "{key} was not compared: the README row or the effective configuration changed shape ({checked:?})"
        );
    }
}
