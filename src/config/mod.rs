//! One configuration tree: a TOML file (every key documented in docs/configuration.md, units in the names, unknown keys
//! rejected), overridden by environment variables and flags, validated once into typed [`Settings`].
//!
//! One file per section, each with the section as written and one function that turns it into that section's
//! typed settings. Those functions record every problem they find in [`Problems`] and carry on with the default
//! (never a silently corrected value), so that one start reports every mistake of a file, each naming its key.

mod auth;
mod batching;
mod callers;
mod coalescing;
mod consistency;
pub mod effective;
mod limits;
pub mod reload;
mod retry;
mod server;
mod tracing;
mod upstream;

pub use auth::{AuthSection, TokenSection};
pub use batching::BatchingSection;
pub use callers::{CallerSection, QuotaSection};
pub use coalescing::{CoalescingSection, IndexCoalescingSection};
pub use consistency::ConsistencySection;
pub use limits::{LimitMode, LimitsSection, RateSection, RedisSection};
pub use retry::RetrySection;
pub use server::{AdminSection, ServerSection, ServerSettings, TlsSection, TlsSettings};
pub use tracing::TracingSection;
pub use upstream::{IndexSection, UpstreamSection};

use crate::stack::batch::BatchSettings;
use crate::stack::coalesce::CoalesceSettings;
use crate::stack::limit::LimitSettings;
use crate::stack::retry::RetrySettings;
use crate::upstream::UpstreamSettings;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:5081";
pub const DEFAULT_CONTROL_PLANE_URL: &str = "https://api.pinecone.io";

/// The file, as written.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub upstream: UpstreamSection,
    /// Per-index settings, keyed by index name.
    #[serde(default)]
    pub indexes: BTreeMap<String, IndexSection>,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub tracing: TracingSection,
    #[serde(default)]
    pub consistency: ConsistencySection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub retry: RetrySection,
    #[serde(default)]
    pub batching: BatchingSection,
    #[serde(default)]
    pub coalescing: CoalescingSection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub auth: AuthSection,
    /// The services that call the gateway, by name.
    #[serde(default)]
    pub callers: BTreeMap<String, CallerSection>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// "text" (default) or "json".
    pub format: Option<LogFormat>,
    /// A tracing filter such as "info" or "pinecone_gateway=debug"; RUST_LOG wins when set.
    pub level: Option<String>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Values from flags and the environment; each wins over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    /// The REST front door's address (`--rest-listen`).
    pub rest_listen: Option<String>,
    pub control_plane_url: Option<String>,
    pub default_index: Option<String>,
    pub api_key_file: Option<PathBuf>,
    pub api_key: Option<String>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
    /// PINECONE_GATEWAY_REDIS_URL: wins over `limits.redis.url` and `url_file`.
    pub redis_url: Option<String>,
    /// Set by `serve --emulator` (its emulator speaks h2c) unless the file says otherwise.
    pub plaintext_http2: Option<bool>,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[server]` and `[admin]`.
    pub server: ServerSettings,
    pub default_index: Option<String>,
    pub upstream: UpstreamSettings,
    pub log_format: LogFormat,
    pub log_level: String,
    pub limits: LimitSettings,
    pub retry: RetrySettings,
    pub batching: BatchSettings,
    pub coalescing: CoalesceSettings,
    pub auth: crate::api::auth::Auth,
    pub callers: crate::api::caller::CallerSettings,
    /// `[tracing]`, when `otlp_endpoint` is set.
    pub tracing: Option<crate::telemetry::trace::TraceSettings>,
    pub consistency: crate::api::consistency::ConsistencySettings,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("`{key}`: {reason}")]
    Invalid { key: String, reason: String },
    /// More than one problem, in the order of the file's sections.
    #[error("{} problems:\n{}", .0.len(), .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Several(Vec<ConfigError>),
}

/// Every problem found in one configuration.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<ConfigError>);

impl Problems {
    fn push(&mut self, e: ConfigError) {
        self.0.push(e);
    }

    /// Records `e` and goes on with `fallback` (which is never used: the settings are refused).
    fn refuse<T>(&mut self, e: ConfigError, fallback: T) -> T {
        self.push(e);
        fallback
    }

    /// The value, or None with the problem recorded.
    fn take<T>(&mut self, r: Result<T, ConfigError>) -> Option<T> {
        r.map_err(|e| self.push(e)).ok()
    }

    /// The value, or `fallback` with the problem recorded.
    fn or<T>(&mut self, r: Result<T, ConfigError>, fallback: T) -> T {
        self.take(r).unwrap_or(fallback)
    }

    fn into_result<T>(mut self, value: T) -> Result<T, ConfigError> {
        match self.0.len() {
            0 => Ok(value),
            1 => Err(self.0.remove(0)),
            _ => Err(ConfigError::Several(self.0)),
        }
    }
}

/// A value with a floor: below it is an error naming the key, never silently raised.
fn at_least<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    min: T,
) -> Result<T, ConfigError> {
    if value < min {
        return Err(invalid(
            key,
            format!("{value} is too small; it must be at least {min}"),
        ));
    }
    Ok(value)
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        reason: reason.into(),
    }
}

impl FileConfig {
    pub fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses a file. An error is one line: where in the file, and what (toml's own report spans several lines
    /// with a snippet of the file).
    pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let at = e.span().map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {column}: ")
            });
            ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!(
                    "{}{}",
                    at.unwrap_or_default(),
                    e.message().split_whitespace().collect::<Vec<_>>().join(" ")
                ),
            }
        })
    }

    /// Applies the overrides and validates everything, section by section; every problem is reported at once.
    pub fn settings(self, o: Overrides) -> Result<Settings, ConfigError> {
        let mut p = Problems::default();
        let server = server::settings(&self.server, &self.admin, &o, &mut p);
        let (upstream, default_index) =
            upstream::settings(&self.upstream, &self.indexes, &o, &mut p);
        let auth = auth::settings(&self.auth, &mut p);
        let callers = callers::settings(&self.callers, &mut p);
        let mut limits = limits::settings(&self.limits, &self.indexes, o.redis_url.clone(), &mut p);
        limits.fair_queuing = !callers.is_empty();
        let retry = retry::settings(&self.retry, self.limits.expected_upstream_ms, &mut p);
        let batching = batching::settings(&self.batching, &mut p);
        let coalescing =
            coalescing::settings(&self.coalescing, &self.indexes, batching.caps, &mut p);
        let tracing = tracing::settings(&self.tracing, &mut p);
        let consistency = consistency::settings(&self.consistency, &mut p);
        p.into_result(Settings {
            server,
            default_index,
            upstream,
            log_format: o.log_format.or(self.log.format).unwrap_or_default(),
            log_level: o
                .log_level
                .or(self.log.level)
                .unwrap_or_else(|| "info".into()),
            limits,
            retry,
            batching,
            coalescing,
            auth,
            callers,
            tracing,
            consistency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        FileConfig::parse(Path::new("t.toml"), text)
    }

    #[test]
    fn the_fleet_knobs_out_of_range_are_named() {
        let key = || Overrides {
            api_key: Some("k".into()),
            ..Default::default()
        };
        for (line, name) in [
            (
                "overload_ask_percent = 50",
                "limits.redis.overload_ask_percent",
            ),
            (
                "batch_headroom_percent = 95",
                "limits.redis.batch_headroom_percent",
            ),
        ] {
            let e = parse(&format!(
                "[limits]\nmode = \"redis\"\n[limits.redis]\nurl = \"redis://127.0.0.1:1/\"\n{line}\n"
            ))
            .unwrap()
            .settings(key())
            .unwrap_err()
            .to_string();
            assert!(e.contains(name), "{e}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let key = || Overrides {
            api_key: Some("k".into()),
            ..Default::default()
        };
        let e = parse(
            "[server]\ndefault_timeout_ms = 0\nlisten = \"nowhere\"\n\
             [batching]\nmax_ids = 5000\nmax_upsert_bytes = 0\n\
             [retry]\nmax_attempts = 0\n\
             [limits.rates.nonsense]\nindex_requests_per_second = 1\n\
             [indexes.docs.limits.also-nonsense]\nindex_requests_per_second = 1\n",
        )
        .unwrap()
        .settings(key())
        .unwrap_err();
        let ConfigError::Several(all) = &e else {
            panic!("one error for seven problems: {e}");
        };
        assert_eq!(all.len(), 7, "{e}");
        let text = e.to_string();
        assert!(text.starts_with("7 problems:"), "{text}");
        for k in [
            "server.listen",
            "server.default_timeout_ms",
            "batching.max_ids",
            "batching.max_upsert_bytes",
            "retry.max_attempts",
            "limits.rates.nonsense",
            "indexes.docs.limits.also-nonsense",
        ] {
            assert!(text.contains(&format!("`{k}`")), "{k}: {text}");
        }
        // One problem reads as before: no list of one.
        let one = parse("[retry]\nmax_attempts = 0\n")
            .unwrap()
            .settings(key())
            .unwrap_err();
        assert!(matches!(one, ConfigError::Invalid { .. }), "{one}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse("[server]\nlisten_port = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen_port"), "{e}");
    }

    #[test]
    fn defaults_are_safe() {
        let s = parse("")
            .unwrap()
            .settings(Overrides {
                api_key: Some("k".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:5081");
        assert_eq!(
            s.upstream.control_plane.as_str(),
            "https://api.pinecone.io/"
        );
        assert_eq!(s.server.default_timeout, Duration::from_secs(20));
    }

    #[test]
    fn a_real_pinecone_needs_a_key() {
        let e = parse("")
            .unwrap()
            .settings(Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("PINECONE_API_KEY"), "{e}");
    }

    #[test]
    fn callers_are_validated_each_problem_named() {
        let e = parse(
            "[callers.a]\npriority = \"urgent\"\n\
             [callers.b]\npriority = \"interactive\"\nmax_priority = \"batch\"\nweight = 0\n\
             [callers.c]\nburst = 5\n[callers.c.classes.fetchez]\nrequests_per_second = 1\n\
             [callers.other]\n[callers.d]\nrequests_per_second = 0\n",
        )
        .unwrap()
        .settings(Overrides {
            api_key: Some("k".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        for key in [
            "callers.a.priority",
            "callers.b.max_priority",
            "callers.b.weight",
            "callers.c.burst",
            "callers.c.classes.fetchez",
            "`callers.other`",
            "callers.d.requests_per_second",
        ] {
            assert!(e.contains(key), "{key} missing from: {e}");
        }
        let s = parse("[callers.a]\n")
            .unwrap()
            .settings(Overrides {
                api_key: Some("k".into()),
                ..Default::default()
            })
            .unwrap();
        assert!(s.limits.fair_queuing);
        assert!(
            !parse("")
                .unwrap()
                .settings(Overrides {
                    api_key: Some("k".into()),
                    ..Default::default()
                })
                .unwrap()
                .limits
                .fair_queuing
        );
    }

    #[test]
    fn a_key_no_header_can_carry_is_refused_without_showing_it() {
        let bad = |key: &str| {
            parse("")
                .unwrap()
                .settings(Overrides {
                    api_key: Some(key.into()),
                    ..Default::default()
                })
                .err()
                .map(|e| e.to_string())
        };
        let e = bad("pc-s3cr\u{e9}t").expect("a non-ASCII key is refused");
        assert!(e.contains("cannot carry") && !e.contains("s3cr"), "{e}");
        assert!(bad("pc-s3cr\net").is_some());
        assert_eq!(bad("pcsk_abc-DEF.123"), None);
    }

    #[test]
    fn flags_win_over_the_file() {
        let f = parse("[upstream]\ndefault_index = \"from-file\"\ncontrol_plane_url = \"http://127.0.0.1:1\"\n").unwrap();
        let s = f
            .settings(Overrides {
                default_index: Some("from-flag".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(s.default_index.as_deref(), Some("from-flag"));
        let e = parse("[upstream]\ndefault_index = \"Bad\"\ncontrol_plane_url = \"http://x\"\n")
            .unwrap()
            .settings(Overrides::default())
            .unwrap_err();
        assert!(e.to_string().contains("upstream.default_index"));
    }

    #[test]
    fn limit_modes_are_validated_and_the_redis_url_never_shown() {
        let key = || Overrides {
            api_key: Some("k".into()),
            ..Default::default()
        };
        let s = parse("[limits]\nmode = \"static-share\"\nreplicas = 4\n")
            .unwrap()
            .settings(key())
            .unwrap();
        assert_eq!(s.limits.share, 4);
        assert!(s.limits.redis.is_none());
        let s = parse(
            "[limits]\nmode = \"redis\"\nreplicas = 3\n[limits.redis]\nurl = \"rediss://:hunter2@cache:6380/0\"\n",
        )
        .unwrap()
        .settings(key())
        .unwrap();
        let r = s.limits.redis.as_ref().unwrap();
        assert_eq!((s.limits.share, r.timeout.as_millis()), (3, 50));
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!crate::config::effective::render(&s).contains("hunter2"));
        for (text, names) in [
            ("[limits]\nmode = \"redis\"\n", "limits.redis.url"),
            ("[limits]\nreplicas = 3\n", "limits.replicas"),
            (
                "[limits]\nmode = \"static-share\"\nreplicas = 0\n",
                "limits.replicas",
            ),
            (
                "[limits]\nmode = \"redis\"\n[limits.redis]\nurl = \"http://:hunter2@cache\"\n",
                "limits.redis.url",
            ),
            ("[limits.redis]\nurl = \"redis://cache\"\n", "limits.redis"),
        ] {
            let e = parse(text)
                .unwrap()
                .settings(key())
                .unwrap_err()
                .to_string();
            assert!(e.contains(names) && !e.contains("hunter2"), "{text}: {e}");
        }
        let e = parse("[limits]\nmode = \"shared\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("static-share"), "{e}");
        // The environment wins over the file.
        let s = parse("[limits]\nmode = \"redis\"\n[limits.redis]\nurl = \"redis://file\"\n")
            .unwrap()
            .settings(Overrides {
                redis_url: Some("redis://env:6379".into()),
                ..key()
            })
            .unwrap();
        assert_eq!(s.limits.redis.unwrap().url, "redis://env:6379");
    }

    #[test]
    fn limits_retries_and_batching_are_validated() {
        let key = || Overrides {
            api_key: Some("k".into()),
            ..Default::default()
        };
        let e = parse("[limits.rates.fetchh]\nindex_requests_per_second = 5\n")
            .unwrap()
            .settings(key())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("limits.rates.fetchh") && e.contains("fetch_by_metadata"),
            "{e}"
        );
        let e = parse("[limits.rates.fetch]\nrequests = 5\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("requests"), "{e}");
        let e = parse("[batching]\nmax_ids = 5000\n")
            .unwrap()
            .settings(key())
            .unwrap_err()
            .to_string();
        assert!(e.contains("batching.max_ids") && e.contains("1000"), "{e}");
        let e = parse("[retry]\nbudget_percent = -1\n")
            .unwrap()
            .settings(key())
            .unwrap_err()
            .to_string();
        assert!(e.contains("retry.budget_percent"), "{e}");
        // A Dedicated Read Nodes index: exempt from the read-unit limit, and here from the request limit too.
        let s = parse(
            "[indexes.drn.limits.query]\nnamespace_requests_per_second = 0\nindex_read_units_per_second = 0\n",
        )
            .unwrap()
            .settings(key())
            .unwrap();
        use crate::stack::limit::rates::OpClass;
        assert_eq!(
            s.limits
                .rates
                .rates("drn", OpClass::Query)
                .buckets()
                .count(),
            0,
            "0 switches a limit off"
        );
    }
}
