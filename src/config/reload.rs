//! What a reload (SIGHUP) changes: the keys of the configuration that differ between the settings in force and the
//! file's, each either applied at once (live) or kept as it is until the next restart (start-up only), so that the
//! log can name every one.
//!
//! Live: `[limits]` (rates, queues, `mode` between `local` and `static-share`, `replicas`), `[coalescing]`,
//! `[callers]` and `[indexes.*]` (hosts, limits, coalescing). Start-up only: everything else: `[server]`, `[admin]`,
//! `[upstream]`, logging, `[retry]`, `[batching]`, `[auth]`, `[consistency]`, `[tracing]`, `[limits.redis]` and a
//! `limits.mode` change to or from `redis` (the Redis connection is made at start). Keys are compared on the
//! effective configuration (`config check`'s printout), secrets (the API key, caller tokens, the Redis URL) by value,
//! never printed.

use super::Settings;
use toml::{Table, Value};

/// A reload: the settings to apply now, and the keys that changed, by kind.
#[derive(Debug)]
pub struct Reload {
    /// The settings in force after the reload: the file's live keys, and the start-up keys as they were.
    pub settings: Settings,
    /// Changed keys applied now, dotted (`limits.rates.fetch.index_requests_per_second`).
    pub applied: Vec<String>,
    /// Changed keys kept as they are until the next restart.
    pub restart: Vec<String>,
}

const LIVE: &[&str] = &["limits.", "coalescing.", "callers.", "indexes."];

/// What reloading `file` over `current` does.
pub fn plan(current: &Settings, file: &Settings) -> Reload {
    let redis_mode = |s: &Settings| s.limits.redis.is_some();
    let redis_switch = redis_mode(current) != redis_mode(file);
    let is_live = |key: &str| {
        if key.starts_with("limits.redis") || (key == "limits.mode" && redis_switch) {
            return false;
        }
        LIVE.iter().any(|p| key.starts_with(p))
    };
    let (mut applied, mut restart) = (Vec::new(), Vec::new());
    for key in changed(current, file) {
        if is_live(&key) {
            applied.push(key);
        } else {
            restart.push(key);
        }
    }
    let mut settings = current.clone();
    settings.limits = file.limits.clone();
    settings.limits.redis = current.limits.redis.clone();
    if redis_switch {
        // The fall-back share of redis mode and the static share are one setting: it stays with the mode.
        settings.limits.share = current.limits.share;
        restart.extend(
            applied
                .extract_if(.., |k| k == "limits.replicas")
                .collect::<Vec<_>>(),
        );
    }
    settings.coalescing = file.coalescing.clone();
    settings.callers = file.callers.clone();
    settings.upstream.static_hosts = file.upstream.static_hosts.clone();
    Reload {
        settings,
        applied,
        restart,
    }
}

/// The dotted keys whose effective values differ, secrets compared by value.
fn changed(a: &Settings, b: &Settings) -> Vec<String> {
    let table = |s: &Settings| -> Table {
        toml::from_str(&super::effective::render(s)).unwrap_or_default()
    };
    let (mut flat_a, mut flat_b) = (Vec::new(), Vec::new());
    flatten("", &Value::Table(table(a)), &mut flat_a);
    flatten("", &Value::Table(table(b)), &mut flat_b);
    let map_a: std::collections::BTreeMap<_, _> = flat_a.into_iter().collect();
    let map_b: std::collections::BTreeMap<_, _> = flat_b.into_iter().collect();
    let mut keys: std::collections::BTreeSet<String> = map_a
        .iter()
        .filter(|(k, v)| map_b.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    keys.extend(map_b.keys().filter(|k| !map_a.contains_key(*k)).cloned());
    if a.upstream.api_key.expose() != b.upstream.api_key.expose() {
        keys.insert("upstream.api_key".into());
    }
    let redis_url = |s: &Settings| s.limits.redis.as_ref().map(|r| r.url.clone());
    if redis_url(a) != redis_url(b) {
        keys.insert("limits.redis.url".into());
    }
    let tokens = |s: &Settings| {
        s.auth
            .tokens
            .iter()
            .map(|t| (t.name.clone(), t.secret.clone()))
            .collect::<Vec<_>>()
    };
    if tokens(a) != tokens(b) {
        keys.insert("auth.tokens".into());
    }
    keys.into_iter().collect()
}

/// Leaves of a TOML value as (dotted key, value); arrays are leaves.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileConfig, Overrides};

    fn settings(text: &str) -> Settings {
        FileConfig::parse(std::path::Path::new("t.toml"), text)
            .unwrap()
            .settings(Overrides {
                api_key: Some("k".into()),
                ..Default::default()
            })
            .unwrap()
    }

    #[test]
    fn live_keys_are_applied_and_start_up_keys_kept() {
        let current = settings("[limits]\nmax_queue_wait_ms = 100\n[retry]\nmax_attempts = 3\n");
        let file = settings(
            "[limits]\nmax_queue_wait_ms = 200\nmode = \"static-share\"\nreplicas = 3\n\
             [retry]\nmax_attempts = 5\n[server]\ndefault_timeout_ms = 9000\n",
        );
        let r = plan(&current, &file);
        for key in ["limits.max_queue_wait_ms", "limits.mode", "limits.replicas"] {
            assert!(r.applied.contains(&key.to_string()), "{key}: {r:?}");
        }
        for key in ["retry.max_attempts", "server.default_timeout_ms"] {
            assert!(r.restart.contains(&key.to_string()), "{key}: {r:?}");
        }
        assert_eq!(r.settings.limits.share, 3);
        assert_eq!(r.settings.retry.max_attempts, current.retry.max_attempts);
        assert_eq!(
            r.settings.server.default_timeout,
            current.server.default_timeout
        );
    }

    #[test]
    fn redis_is_start_up_only_and_secrets_are_compared_by_value() {
        let current = settings("[limits]\nmode = \"static-share\"\nreplicas = 2\n");
        let file = settings(
            "[limits]\nmode = \"redis\"\nreplicas = 4\n[limits.redis]\nurl = \"redis://127.0.0.1:1/\"\ncluster = true\n",
        );
        let r = plan(&current, &file);
        for key in [
            "limits.mode",
            "limits.replicas",
            "limits.redis.url",
            "limits.redis.cluster",
        ] {
            assert!(r.restart.contains(&key.to_string()), "{key}: {r:?}");
        }
        assert!(r.applied.is_empty(), "{r:?}");
        assert_eq!(r.settings.limits.share, 2);
        assert!(r.settings.limits.redis.is_none());

        let a = settings(
            "[limits]\nmode = \"redis\"\n[limits.redis]\nurl = \"redis://127.0.0.1:1/\"\n",
        );
        let b = settings(
            "[limits]\nmode = \"redis\"\n[limits.redis]\nurl = \"redis://127.0.0.1:2/\"\ncluster = true\n",
        );
        let r = plan(&a, &b);
        assert_eq!(r.restart, ["limits.redis.cluster", "limits.redis.url"]);
    }
}
