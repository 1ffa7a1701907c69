//! One configuration tree: a TOML file (every key documented in the README, units in the names, unknown keys
//! rejected), overridden by environment variables and flags, validated once into typed [`Settings`].

pub mod effective;

use crate::api::validate;
use crate::stack::batch::BatchSettings;
use crate::stack::coalesce::{CoalesceSettings, Switches};
use crate::stack::limit::LimitSettings;
use crate::stack::limit::rates::{ClassRates, OpClass, RateTable};
use crate::stack::limit::shared::RedisSettings;
use crate::stack::retry::RetrySettings;
use crate::upstream::{ApiKey, UpstreamSettings};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

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
}

/// Caller authentication. Off by default.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// true: every call must carry one of `tokens`. Default false.
    pub enabled: Option<bool>,
    #[serde(default)]
    pub tokens: Vec<TokenSection>,
}

/// One caller's token.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct TokenSection {
    /// Names the caller in logs and errors.
    pub name: String,
    /// The token itself; prefer `token_file`.
    pub token: Option<String>,
    /// A file holding the token (a mounted Secret).
    pub token_file: Option<PathBuf>,
    /// The indexes this caller may use; absent: all (and project-wide calls).
    pub indexes: Option<Vec<String>>,
}

/// The admin HTTP listener: /metrics, /healthz, /readyz.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Listen address. Default 127.0.0.1:9464.
    pub listen: Option<String>,
    /// false switches the listener off. Default true.
    pub enabled: Option<bool>,
}

/// How calls larger than one Pinecone request are split. Values above Pinecone's documented caps are refused.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct BatchingSection {
    /// IDs per upstream fetch or delete, at most 1000. Default 1000.
    pub max_ids: Option<usize>,
    /// Bytes of encoded `ids=` parameters per upstream fetch URL. Default 8192.
    pub fetch_url_budget_bytes: Option<usize>,
    /// Vectors per upstream upsert, at most 1000. Default 1000.
    pub max_upsert_vectors: Option<usize>,
    /// JSON bytes per upstream upsert, at most 2000000. Default 2000000.
    pub max_upsert_bytes: Option<usize>,
    /// Batches of one call in flight at once. Default 8.
    pub max_concurrent_batches: Option<usize>,
}

/// Merging concurrent fetches and deletes by ID of one namespace while the rate limit has no turn to spare.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct CoalescingSection {
    /// Coalesce fetch by ID. Default true.
    pub fetch: Option<bool>,
    /// Coalesce delete by ID. Default true.
    pub delete: Option<bool>,
    /// Requests one namespace may send back to back before it keeps to the even spacing of its limit. Default 10.
    pub burst_requests: Option<u32>,
}

/// Coalescing switches for one index, over the global ones.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct IndexCoalescingSection {
    /// Coalesce fetch by ID for this index. Default: `coalescing.fetch`.
    pub fetch: Option<bool>,
    /// Coalesce delete by ID for this index. Default: `coalescing.delete`.
    pub delete: Option<bool>,
}

/// When and how failed upstream calls are tried again.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RetrySection {
    /// Attempts per call, the first included; 1 switches retries off. Default 4.
    pub max_attempts: Option<u32>,
    /// First backoff cap; doubles per attempt (full jitter). Default 50.
    pub base_backoff_ms: Option<u64>,
    /// Largest backoff cap. Default 2000.
    pub max_backoff_ms: Option<u64>,
    /// Retries allowed as a share of recent calls, in percent. Default 20.
    pub budget_percent: Option<f32>,
    /// Retries allowed per second regardless of the share. Default 10.
    pub budget_min_per_second: Option<u32>,
    /// Retry deletes/updates by filter and delete-all after 5xx answers too (they may then run twice). Default false.
    pub retry_unsafe_writes: Option<bool>,
}

/// How the gateway keeps to Pinecone's rate limits.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// The longest a call waits for its turn before it is rejected. Default 10000.
    pub max_queue_wait_ms: Option<u64>,
    /// At most this many calls wait on one limit key. Default 1000.
    pub max_queue_len: Option<usize>,
    /// Time kept free for the upstream call when judging whether a turn fits the caller's deadline. Default 50.
    pub expected_upstream_ms: Option<u64>,
    /// Added to the one-second window against network jitter. Default 20.
    pub window_margin_ms: Option<u64>,
    /// How far ahead one namespace may reserve a limit it shares with the rest of its index. Default 1000.
    pub namespace_share_ms: Option<u64>,
    /// At most this many limit keys are tracked. Default 100000.
    pub max_keys: Option<usize>,
    /// Global overrides of the default rates, by operation class.
    #[serde(default)]
    pub rates: BTreeMap<String, RateSection>,
    /// "local" (one replica, the default), "static-share" (every limit divided by `replicas`) or "redis" (limits
    /// shared through Redis; the static share while Redis is unreachable).
    pub mode: Option<LimitMode>,
    /// How many replicas share the limits: the divisor of the static share. Default 1.
    pub replicas: Option<u64>,
    /// Where Redis is, in redis mode.
    pub redis: Option<RedisSection>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LimitMode {
    #[default]
    Local,
    StaticShare,
    Redis,
}

/// Redis for shared limits.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RedisSection {
    /// `redis://[:password@]host:port[/db]`, or `rediss://` for TLS. Prefer `url_file` or PINECONE_GATEWAY_REDIS_URL
    /// when it holds a password.
    pub url: Option<String>,
    /// A file holding the URL (a mounted Secret).
    pub url_file: Option<PathBuf>,
    /// The longest a limit decision may take before the replica falls back to its static share. Default 50.
    pub timeout_ms: Option<u64>,
    /// How often a replica that fell back tries Redis again. Default 1000.
    pub reconnect_interval_ms: Option<u64>,
    /// Prefixes every key. Default "pgw".
    pub key_prefix: Option<String>,
    /// A Redis Cluster (as managed Redis offerings run): `url` lists seed nodes, separated by commas, and the
    /// gateway follows the cluster's slots. Default false.
    pub cluster: Option<bool>,
}

/// Per-second rates of one operation class. 0 switches a limit off.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RateSection {
    pub namespace_requests_per_second: Option<u64>,
    pub index_requests_per_second: Option<u64>,
    pub namespace_records_per_second: Option<u64>,
    pub index_records_per_second: Option<u64>,
    pub namespace_bytes_per_second: Option<u64>,
}

fn class_rates(
    key: &str,
    table: &BTreeMap<String, RateSection>,
) -> Result<HashMap<OpClass, ClassRates>, ConfigError> {
    table
        .iter()
        .map(|(name, r)| {
            let class = OpClass::parse(name).ok_or_else(|| {
                let known: Vec<_> = OpClass::ALL.iter().map(|c| c.name()).collect();
                invalid(
                    &format!("{key}.{name}"),
                    format!("unknown operation class; known: {}", known.join(", ")),
                )
            })?;
            let rates = ClassRates {
                namespace_requests: r.namespace_requests_per_second,
                index_requests: r.index_requests_per_second,
                namespace_records: r.namespace_records_per_second,
                index_records: r.index_records_per_second,
                namespace_bytes: r.namespace_bytes_per_second,
            };
            Ok((class, rates))
        })
        .collect()
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// gRPC listen address. Default 127.0.0.1:5081.
    pub listen: Option<String>,
    /// Deadline for calls that carry none (`grpc-timeout`). Default 20000.
    pub default_timeout_ms: Option<u64>,
    /// Calls served at once; more are refused at once with RESOURCE_EXHAUSTED (load shedding). Default 1000.
    pub max_concurrent_calls: Option<usize>,
    /// On SIGTERM or Ctrl-C, how long calls in progress may take to finish. Default 20000.
    pub drain_grace_ms: Option<u64>,
    /// Health turns NOT_SERVING once Pinecone has been unreachable this long. Default 10000.
    pub upstream_unhealthy_after_ms: Option<u64>,
    /// TLS on the gRPC listener; absent: plaintext (fine on 127.0.0.1 inside a pod).
    pub tls: Option<TlsSection>,
    /// The largest request message, in bytes. Default 67108864 (64 MiB): it fits the largest fetch or delete the
    /// gateway accepts (100,000 IDs of 512 characters, 51.5 MB) and an upsert of 10,000 vectors of 1,536
    /// dimensions (61.5 MB).
    pub max_message_bytes: Option<usize>,
    /// Bytes of requests received and not yet answered, process-wide; more are refused with RESOURCE_EXHAUSTED.
    /// Default 134217728 (128 MiB); at least `max_message_bytes`.
    pub max_buffered_request_bytes: Option<usize>,
}

/// TLS, and mutual TLS when `client_ca_file` is set.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// The server's certificate chain, PEM.
    pub cert_file: PathBuf,
    /// The server's private key, PEM.
    pub key_file: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to; set: every caller must present one.
    pub client_ca_file: Option<PathBuf>,
}

/// TLS material, read at start-up.
#[derive(Clone)]
pub struct TlsSettings {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub client_ca_pem: Option<Vec<u8>>,
    /// Where they were read from (`config check` prints them).
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("key_pem", &"***")
            .field("mutual", &self.client_ca_pem.is_some())
            .finish()
    }
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// Pinecone's control plane. Default https://api.pinecone.io. An http:// URL means plain http to index hosts.
    pub control_plane_url: Option<String>,
    /// A file holding the Pinecone API key; else the PINECONE_API_KEY environment variable.
    pub api_key_file: Option<PathBuf>,
    /// The index of calls that name none in their metadata.
    pub default_index: Option<String>,
    /// Time allowed to open a connection to Pinecone. Default 5000.
    pub connect_timeout_ms: Option<u64>,
    /// Pinecone's REST API version, sent as `X-Pinecone-Api-Version`: "2025-10" or "2026-04" (the default).
    pub api_version: Option<String>,
    /// Speak HTTP/2 without negotiation (h2c, "prior knowledge") to `http://` hosts: the built-in emulator, or a
    /// local proxy that accepts it. Default false (HTTP/1.1), except with `serve --emulator`, whose emulator speaks
    /// both. `https://` hosts negotiate HTTP/2 or HTTP/1.1 by ALPN whatever this says.
    pub plaintext_http2: Option<bool>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct IndexSection {
    /// The index's data-plane host; skips the control-plane lookup.
    pub host: Option<String>,
    /// Rates for this index, by operation class, over the global ones (dedicated read nodes, raised limits).
    #[serde(default)]
    pub limits: BTreeMap<String, RateSection>,
    /// Coalescing switches for this index.
    pub coalescing: Option<IndexCoalescingSection>,
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
    pub listen: SocketAddr,
    /// None when the admin listener is off.
    pub admin_listen: Option<SocketAddr>,
    pub default_timeout: Duration,
    pub max_concurrent_calls: usize,
    pub tls: Option<TlsSettings>,
    pub drain_grace: Duration,
    pub upstream_unhealthy_after: Duration,
    pub max_message_bytes: usize,
    pub max_buffered_request_bytes: usize,
    pub default_index: Option<String>,
    pub upstream: UpstreamSettings,
    pub log_format: LogFormat,
    pub log_level: String,
    pub limits: LimitSettings,
    pub retry: RetrySettings,
    pub batching: BatchSettings,
    pub coalescing: CoalesceSettings,
    pub auth: crate::api::auth::Auth,
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

fn redis_settings(
    mode: LimitMode,
    section: Option<&RedisSection>,
    env_url: Option<String>,
) -> Result<Option<RedisSettings>, ConfigError> {
    let default = RedisSection::default();
    let r = section.unwrap_or(&default);
    if mode != LimitMode::Redis {
        if section.is_some() {
            return Err(invalid(
                "limits.redis",
                "is only used with limits.mode = \"redis\"",
            ));
        }
        return Ok(None);
    }
    let url = match (env_url.filter(|u| !u.is_empty()), &r.url, &r.url_file) {
        (Some(u), _, _) => u,
        (None, Some(_), Some(_)) => {
            return Err(invalid("limits.redis.url", "set url or url_file, not both"));
        }
        (None, Some(u), None) => u.clone(),
        (None, None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| {
                invalid(
                    "limits.redis.url_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?
            .trim()
            .to_string(),
        (None, None, None) => {
            return Err(invalid(
                "limits.redis.url",
                "mode = \"redis\" needs a Redis URL: limits.redis.url, url_file or PINECONE_GATEWAY_REDIS_URL",
            ));
        }
    };
    // The URL may hold a password: the message names the problem, never the URL.
    let cluster = r.cluster.unwrap_or(false);
    let urls: Vec<&str> = if cluster {
        url.split(',').map(str::trim).collect()
    } else {
        vec![url.as_str()]
    };
    for u in urls {
        redis::Client::open(u).map_err(|e| {
            invalid(
                "limits.redis.url",
                format!("not a Redis URL (redis:// or rediss://): {:?}", e.kind()),
            )
        })?;
    }
    let ms = |key: &str, v: Option<u64>, default: u64| match v {
        Some(0) => Err(invalid(key, "must be more than 0")),
        v => Ok(Duration::from_millis(v.unwrap_or(default))),
    };
    Ok(Some(RedisSettings {
        url,
        cluster,
        timeout: ms("limits.redis.timeout_ms", r.timeout_ms, 50)?,
        reconnect_interval: ms(
            "limits.redis.reconnect_interval_ms",
            r.reconnect_interval_ms,
            1000,
        )?,
        key_prefix: r.key_prefix.clone().unwrap_or_else(|| "pgw".into()),
    }))
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn auth_settings(section: &AuthSection) -> Result<crate::api::auth::Auth, ConfigError> {
    use crate::api::auth::{Auth, CallerToken};
    if !section.enabled.unwrap_or(false) {
        return Ok(Auth::default());
    }
    if section.tokens.is_empty() {
        return Err(invalid(
            "auth.tokens",
            "auth is enabled but no token is configured",
        ));
    }
    let mut names = HashSet::new();
    let mut tokens = Vec::new();
    for (i, t) in section.tokens.iter().enumerate() {
        let key = format!("auth.tokens[{i}]");
        if t.name.is_empty() || !names.insert(t.name.clone()) {
            return Err(invalid(
                &format!("{key}.name"),
                "must be non-empty and unique",
            ));
        }
        let secret = match (&t.token, &t.token_file) {
            (Some(s), None) => s.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(|s| s.trim().to_string())
                .map_err(|e| {
                    invalid(
                        &format!("{key}.token_file"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?,
            _ => return Err(invalid(&key, "needs exactly one of token and token_file")),
        };
        if secret.len() < 16 {
            return Err(invalid(&key, "the token must be at least 16 characters"));
        }
        if let Some(indexes) = &t.indexes {
            for name in indexes {
                validate::index_name(&format!("{key}.indexes"), name)
                    .map_err(|e| invalid(&format!("{key}.indexes"), e.0))?;
            }
        }
        tokens.push(CallerToken {
            name: t.name.clone(),
            secret,
            indexes: t.indexes.as_ref().map(|v| v.iter().cloned().collect()),
        });
    }
    Ok(Auth { tokens })
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

    /// Applies the overrides and validates everything. `require_key` is false when no real Pinecone is involved.
    pub fn settings(self, o: Overrides) -> Result<Settings, ConfigError> {
        let listen_text = o
            .listen
            .or(self.server.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen_text.parse().map_err(|e| {
            invalid(
                "server.listen",
                format!("`{listen_text}` is not an address: {e}"),
            )
        })?;
        let admin_text = o
            .admin_listen
            .or(self.admin.listen)
            .unwrap_or_else(|| "127.0.0.1:9464".into());
        let admin_listen: SocketAddr = admin_text.parse().map_err(|e| {
            invalid(
                "admin.listen",
                format!("`{admin_text}` is not an address: {e}"),
            )
        })?;
        let admin_listen = self.admin.enabled.unwrap_or(true).then_some(admin_listen);
        let default_timeout_ms = self.server.default_timeout_ms.unwrap_or(20_000);
        if default_timeout_ms == 0 {
            return Err(invalid("server.default_timeout_ms", "must be more than 0"));
        }
        let cp_text = o
            .control_plane_url
            .or(self.upstream.control_plane_url)
            .unwrap_or_else(|| DEFAULT_CONTROL_PLANE_URL.into());
        let control_plane = Url::parse(&cp_text)
            .map_err(|e| invalid("upstream.control_plane_url", format!("`{cp_text}`: {e}")))?;
        if !matches!(control_plane.scheme(), "http" | "https") {
            return Err(invalid(
                "upstream.control_plane_url",
                "must be an http:// or https:// URL",
            ));
        }
        let default_index = o
            .default_index
            .or(self.upstream.default_index)
            .filter(|s| !s.is_empty());
        if let Some(name) = &default_index {
            validate::index_name("upstream.default_index", name)
                .map_err(|e| invalid("upstream.default_index", e.0))?;
        }
        let key_file = o.api_key_file.or(self.upstream.api_key_file);
        let api_key = match (key_file, o.api_key.filter(|k| !k.is_empty())) {
            (Some(path), _) => std::fs::read_to_string(&path)
                .map(|k| k.trim().to_string())
                .map_err(|e| {
                    invalid(
                        "upstream.api_key_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?,
            (None, Some(key)) => key,
            // Plain http means a local emulator, which accepts any key.
            (None, None) if control_plane.scheme() == "http" => "local".into(),
            (None, None) => {
                return Err(invalid(
                    "upstream.api_key_file",
                    "no Pinecone API key: set PINECONE_API_KEY or upstream.api_key_file",
                ));
            }
        };
        let auth = auth_settings(&self.auth)?;
        let tls = match &self.server.tls {
            None => None,
            Some(t) => {
                let read = |key: &str, path: &Path| {
                    std::fs::read(path)
                        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))
                };
                Some(TlsSettings {
                    cert_pem: read("server.tls.cert_file", &t.cert_file)?,
                    key_pem: read("server.tls.key_file", &t.key_file)?,
                    client_ca_pem: t
                        .client_ca_file
                        .as_deref()
                        .map(|p| read("server.tls.client_ca_file", p))
                        .transpose()?,
                    cert_file: t.cert_file.clone(),
                    key_file: t.key_file.clone(),
                    client_ca_file: t.client_ca_file.clone(),
                })
            }
        };
        let mode = self.limits.mode.unwrap_or_default();
        let share = match (mode, self.limits.replicas) {
            (_, Some(0)) => return Err(invalid("limits.replicas", "must be at least 1")),
            (LimitMode::Local, Some(r)) if r > 1 => {
                return Err(invalid(
                    "limits.replicas",
                    "is only used with mode = \"static-share\" or \"redis\"",
                ));
            }
            (LimitMode::Local, _) => 1,
            (_, r) => r.unwrap_or(1),
        };
        let redis = redis_settings(mode, self.limits.redis.as_ref(), o.redis_url.clone())?;
        let global_switches = Switches {
            fetch: self.coalescing.fetch.unwrap_or(true),
            delete: self.coalescing.delete.unwrap_or(true),
        };
        let burst_requests = match self.coalescing.burst_requests {
            Some(0) => return Err(invalid("coalescing.burst_requests", "must be more than 0")),
            b => b.unwrap_or(CoalesceSettings::default().burst_requests),
        };
        let mut index_switches = HashMap::new();
        let mut static_hosts = HashMap::new();
        let mut rates = RateTable {
            global: class_rates("limits.rates", &self.limits.rates)?,
            per_index: HashMap::new(),
        };
        for (name, section) in self.indexes {
            if let Some(c) = &section.coalescing {
                index_switches.insert(
                    name.clone(),
                    Switches {
                        fetch: c.fetch.unwrap_or(global_switches.fetch),
                        delete: c.delete.unwrap_or(global_switches.delete),
                    },
                );
            }
            rates.per_index.insert(
                name.clone(),
                class_rates(&format!("indexes.{name}.limits"), &section.limits)?,
            );
            validate::index_name(&format!("indexes.{name}"), &name)
                .map_err(|e| invalid(&format!("indexes.{name}"), e.0))?;
            if let Some(host) = section.host {
                crate::upstream::hosts::to_url(control_plane.scheme(), &host)
                    .map_err(|e| invalid(&format!("indexes.{name}.host"), e.to_string()))?;
                static_hosts.insert(name, host);
            }
        }
        let connect_timeout_ms = self.upstream.connect_timeout_ms.unwrap_or(5_000);
        if connect_timeout_ms == 0 {
            return Err(invalid(
                "upstream.connect_timeout_ms",
                "must be more than 0",
            ));
        }
        let api_version = match self.upstream.api_version.as_deref() {
            None => crate::upstream::DEFAULT_API_VERSION,
            Some(v) => crate::upstream::API_VERSIONS
                .iter()
                .copied()
                .find(|known| *known == v)
                .ok_or_else(|| {
                    invalid(
                        "upstream.api_version",
                        format!(
                            "`{v}` is not supported; use one of {}",
                            crate::upstream::API_VERSIONS.join(", ")
                        ),
                    )
                })?,
        };
        let max_message_bytes = self.server.max_message_bytes.unwrap_or(64 << 20);
        if max_message_bytes < 1024 {
            return Err(invalid("server.max_message_bytes", "must be at least 1024"));
        }
        let max_buffered_request_bytes =
            self.server.max_buffered_request_bytes.unwrap_or(128 << 20);
        if max_buffered_request_bytes < max_message_bytes {
            return Err(invalid(
                "server.max_buffered_request_bytes",
                format!("must be at least server.max_message_bytes ({max_message_bytes})"),
            ));
        }
        Ok(Settings {
            auth,
            tls,
            max_message_bytes,
            max_buffered_request_bytes,
            listen,
            admin_listen,
            default_timeout: Duration::from_millis(default_timeout_ms),
            drain_grace: Duration::from_millis(self.server.drain_grace_ms.unwrap_or(20_000)),
            upstream_unhealthy_after: Duration::from_millis(at_least(
                "server.upstream_unhealthy_after_ms",
                self.server.upstream_unhealthy_after_ms.unwrap_or(10_000),
                1,
            )?),
            max_concurrent_calls: match self.server.max_concurrent_calls {
                Some(0) => {
                    return Err(invalid(
                        "server.max_concurrent_calls",
                        "must be more than 0",
                    ));
                }
                v => v.unwrap_or(1000),
            },
            default_index,
            upstream: UpstreamSettings {
                control_plane,
                api_key: ApiKey::new(api_key),
                static_hosts,
                connect_timeout: Duration::from_millis(connect_timeout_ms),
                api_version,
                plaintext_http2: self
                    .upstream
                    .plaintext_http2
                    .or(o.plaintext_http2)
                    .unwrap_or(false),
            },
            log_format: o.log_format.or(self.log.format).unwrap_or_default(),
            log_level: o
                .log_level
                .or(self.log.level)
                .unwrap_or_else(|| "info".into()),
            limits: {
                let d = LimitSettings::default();
                let l = &self.limits;
                let ms = |v: Option<u64>, d: Duration| v.map(Duration::from_millis).unwrap_or(d);
                LimitSettings {
                    rates,
                    max_queue_wait: ms(l.max_queue_wait_ms, d.max_queue_wait),
                    max_queue_len: at_least(
                        "limits.max_queue_len",
                        l.max_queue_len.unwrap_or(d.max_queue_len),
                        1,
                    )?,
                    expected_upstream: ms(l.expected_upstream_ms, d.expected_upstream),
                    window_margin: ms(l.window_margin_ms, d.window_margin),
                    namespace_share: ms(l.namespace_share_ms, d.namespace_share),
                    max_keys: at_least("limits.max_keys", l.max_keys.unwrap_or(d.max_keys), 16)?,
                    share,
                    redis,
                }
            },
            retry: {
                let d = RetrySettings::default();
                let r = &self.retry;
                let percent = r.budget_percent.unwrap_or(d.budget_percent);
                if !(0.0..=1000.0).contains(&percent) {
                    return Err(invalid("retry.budget_percent", "must be 0 to 1000"));
                }
                RetrySettings {
                    max_attempts: at_least(
                        "retry.max_attempts",
                        r.max_attempts.unwrap_or(d.max_attempts),
                        1,
                    )?,
                    base_backoff: r
                        .base_backoff_ms
                        .map(Duration::from_millis)
                        .unwrap_or(d.base_backoff),
                    max_backoff: r
                        .max_backoff_ms
                        .map(Duration::from_millis)
                        .unwrap_or(d.max_backoff),
                    budget_percent: percent,
                    budget_min_per_second: r
                        .budget_min_per_second
                        .unwrap_or(d.budget_min_per_second),
                    expected_upstream: self
                        .limits
                        .expected_upstream_ms
                        .map(Duration::from_millis)
                        .unwrap_or(d.expected_upstream),
                    retry_unsafe_writes: r.retry_unsafe_writes.unwrap_or(false),
                }
            },
            batching: {
                let d = BatchSettings::default();
                let b = &self.batching;
                let capped = |key: &str, v: Option<usize>, default: usize, max: usize| match v {
                    Some(0) => Err(invalid(key, "must be more than 0")),
                    Some(v) if v > max => Err(invalid(
                        key,
                        format!("{v} is above Pinecone's documented {max}"),
                    )),
                    v => Ok(v.unwrap_or(default)),
                };
                BatchSettings {
                    max_ids: capped("batching.max_ids", b.max_ids, d.max_ids, 1000)?,
                    fetch_url_budget_bytes: capped(
                        "batching.fetch_url_budget_bytes",
                        b.fetch_url_budget_bytes,
                        d.fetch_url_budget_bytes,
                        1 << 20,
                    )?,
                    max_upsert_vectors: capped(
                        "batching.max_upsert_vectors",
                        b.max_upsert_vectors,
                        d.max_upsert_vectors,
                        1000,
                    )?,
                    max_upsert_bytes: capped(
                        "batching.max_upsert_bytes",
                        b.max_upsert_bytes,
                        d.max_upsert_bytes,
                        2_000_000,
                    )?,
                    max_concurrent_batches: capped(
                        "batching.max_concurrent_batches",
                        b.max_concurrent_batches,
                        d.max_concurrent_batches,
                        1024,
                    )?,
                }
            },
            coalescing: CoalesceSettings::default(),
        }
        .with_coalescing(global_switches, index_switches, burst_requests))
    }
}

impl Settings {
    /// Coalescing shares its batch caps with the batching layer.
    fn with_coalescing(
        mut self,
        enabled: Switches,
        per_index: HashMap<String, Switches>,
        burst_requests: u32,
    ) -> Settings {
        self.coalescing = CoalesceSettings {
            enabled,
            per_index,
            burst_requests,
            max_ids: self.batching.max_ids,
            fetch_url_budget_bytes: self.batching.fetch_url_budget_bytes,
        };
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        FileConfig::parse(Path::new("t.toml"), text)
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
        assert_eq!(s.listen.to_string(), "127.0.0.1:5081");
        assert_eq!(
            s.upstream.control_plane.as_str(),
            "https://api.pinecone.io/"
        );
        assert_eq!(s.default_timeout, Duration::from_secs(20));
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
        let s = parse("[indexes.drn.limits.query]\nnamespace_requests_per_second = 0\n")
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
