//! `[limits]` and `[indexes.NAME.limits]`: how the gateway keeps to Pinecone's rate limits, alone or with other
//! replicas (a static share, or Redis).

use super::{ConfigError, IndexSection, Problems, at_least, invalid};
use crate::stack::limit::LimitSettings;
use crate::stack::limit::rates::{ClassRates, OpClass, RateTable};
use crate::stack::limit::shared::RedisSettings;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

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
    /// With `[callers]`, a call that has waited this long for a limit goes before calls of higher priorities, so batch
    /// calls are slowed, never starved. Default 2000.
    pub max_batch_starvation_ms: Option<u64>,
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
    /// How often each replica adds the read and write units it charged to the shared spend in Redis and reads what
    /// every replica spent (callers' budgets are checked against that). Default 1000.
    pub spend_sync_ms: Option<u64>,
    /// How often each replica renews its heartbeat in Redis; the replicas whose heartbeat is younger than three of
    /// these are the live fleet, whose size replaces `limits.replicas` in the fall-back. Each heartbeat is one Redis
    /// round trip: a fleet of N replicas makes N / (this in seconds) a second. Default 10000.
    pub heartbeat_ms: Option<u64>,
    /// While Redis cannot be reached, for this long each replica keeps the share of each limit Redis granted it in
    /// the seconds before; a blip shorter than this goes unnoticed by the fleet's throughput. Default 5000.
    pub grace_ms: Option<u64>,
    /// After `grace_ms`, each replica's share moves from what it was granted to an equal share of the last known
    /// live fleet, evenly over this long. Default 30000.
    pub fallback_decay_ms: Option<u64>,
    /// A Redis Cluster (as managed Redis offerings run): `url` lists seed nodes, separated by commas, and the
    /// gateway follows the cluster's slots. Default false.
    pub cluster: Option<bool>,
    /// How long the stamp of an answered request (which ends its count in the shared windows) may wait to ride on
    /// this replica's next round trip to the same index before it is sent alone (or dropped, for an answer within
    /// its promise: Redis counts it until the promise). Until stamped, a request not answered by its promise counts
    /// until its deadline: a longer delay saves round trips and may hold a turn a little longer than needed; a
    /// request whose deadline comes within this of its answer is not stamped at all. Default 50.
    pub close_delay_ms: Option<u64>,
    /// When the fleet asks Redis for more than this share of a limit (percent), each replica refuses the excess of
    /// its default and batch calls at home, at random, without a round trip (Redis would refuse them too); 0 asks
    /// Redis for every call. 100 to 1000, or 0. Default 125.
    pub overload_ask_percent: Option<u64>,
    /// The share of each limit (percent) that batch calls leave, across the fleet, to default and interactive
    /// calls; interactive calls take the earliest room ahead of turns given for later. 0 to 90. Default 10.
    pub batch_headroom_percent: Option<u64>,
    /// While Redis refuses calls on a limit (more are asked of it than it serves), the furthest ahead a default or
    /// batch call's turn is given; a call whose turn would be later is refused at once, with the wait as retry
    /// advice, instead of waiting in a standing queue that adds its length to every call served. 0: as far ahead as
    /// the call's deadline allows. Default 200.
    pub overload_queue_ms: Option<u64>,
    /// The longest a request is promised to Redis to be answered in. Each turn carries a promise (one and a half
    /// times the 90th percentile of this replica's last 32 answer times of the call's operation class, and 5 ms, at
    /// least 10 ms): a request answered within it needs no stamp of its own (it counts until the promise and one
    /// window more), and one that is not is reported to Redis as it runs out (one round trip; it then counts until
    /// its deadline, until stamped). 0: no promises, every answer is stamped (one round trip when nothing carries
    /// it). Default 1000.
    pub answer_promise_max_ms: Option<u64>,
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
    /// Read units per second per index, as Pinecone reports them in `usage.readUnits` (query: 2,000).
    pub index_read_units_per_second: Option<u64>,
}

/// One table of rates by class; an unknown class is recorded and skipped.
fn class_rates(
    key: &str,
    table: &BTreeMap<String, RateSection>,
    p: &mut Problems,
) -> HashMap<OpClass, ClassRates> {
    let mut out = HashMap::new();
    for (name, r) in table {
        let Some(class) = OpClass::parse(name) else {
            let known: Vec<_> = OpClass::ALL.iter().map(|c| c.name()).collect();
            p.push(invalid(
                &format!("{key}.{name}"),
                format!("unknown operation class; known: {}", known.join(", ")),
            ));
            continue;
        };
        out.insert(
            class,
            ClassRates {
                namespace_requests: r.namespace_requests_per_second,
                index_requests: r.index_requests_per_second,
                namespace_records: r.namespace_records_per_second,
                index_records: r.index_records_per_second,
                namespace_bytes: r.namespace_bytes_per_second,
                index_read_units: r.index_read_units_per_second,
            },
        );
    }
    out
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
        spend_sync: ms("limits.redis.spend_sync_ms", r.spend_sync_ms, 1000)?,
        heartbeat: ms("limits.redis.heartbeat_ms", r.heartbeat_ms, 10_000)?,
        grace: Duration::from_millis(r.grace_ms.unwrap_or(5000)),
        fallback_decay: Duration::from_millis(r.fallback_decay_ms.unwrap_or(30_000)),
        close_delay: Duration::from_millis(r.close_delay_ms.unwrap_or(50)),
        overload_queue: Duration::from_millis(r.overload_queue_ms.unwrap_or(200)),
        answer_promise_max: Duration::from_millis(r.answer_promise_max_ms.unwrap_or(1000)),
        overload_ask_percent: match r.overload_ask_percent.unwrap_or(125) {
            v @ (0 | 100..=1000) => v,
            _ => {
                return Err(invalid(
                    "limits.redis.overload_ask_percent",
                    "must be 0 (off) or 100 to 1000",
                ));
            }
        },
        batch_headroom_percent: match r.batch_headroom_percent.unwrap_or(10) {
            v @ 0..=90 => v,
            _ => {
                return Err(invalid(
                    "limits.redis.batch_headroom_percent",
                    "must be 0 to 90",
                ));
            }
        },
    }))
}

/// The limits settings: the global rates and each index's, the queue's bounds, the mode and its share or Redis.
/// `env_redis_url` is PINECONE_GATEWAY_REDIS_URL, which wins over the file.
pub(super) fn settings(
    l: &LimitsSection,
    indexes: &BTreeMap<String, IndexSection>,
    env_redis_url: Option<String>,
    p: &mut Problems,
) -> LimitSettings {
    let d = LimitSettings::default();
    let rates = RateTable {
        global: class_rates("limits.rates", &l.rates, p),
        per_index: indexes
            .iter()
            .map(|(name, section)| {
                (
                    name.clone(),
                    class_rates(&format!("indexes.{name}.limits"), &section.limits, p),
                )
            })
            .collect(),
    };
    let mode = l.mode.unwrap_or_default();
    let share = match (mode, l.replicas) {
        (_, Some(0)) => p.refuse(invalid("limits.replicas", "must be at least 1"), 1),
        (LimitMode::Local, Some(r)) if r > 1 => p.refuse(
            invalid(
                "limits.replicas",
                "is only used with mode = \"static-share\" or \"redis\"",
            ),
            1,
        ),
        (LimitMode::Local, _) => 1,
        (_, r) => r.unwrap_or(1),
    };
    let redis = p.or(redis_settings(mode, l.redis.as_ref(), env_redis_url), None);
    let ms = |v: Option<u64>, d: Duration| v.map(Duration::from_millis).unwrap_or(d);
    LimitSettings {
        rates,
        max_queue_wait: ms(l.max_queue_wait_ms, d.max_queue_wait),
        max_queue_len: p.or(
            at_least(
                "limits.max_queue_len",
                l.max_queue_len.unwrap_or(d.max_queue_len),
                1,
            ),
            d.max_queue_len,
        ),
        expected_upstream: ms(l.expected_upstream_ms, d.expected_upstream),
        window_margin: ms(l.window_margin_ms, d.window_margin),
        namespace_share: ms(l.namespace_share_ms, d.namespace_share),
        max_keys: p.or(
            at_least("limits.max_keys", l.max_keys.unwrap_or(d.max_keys), 16),
            d.max_keys,
        ),
        share,
        redis,
        // Set from `[callers]` by the caller of this function.
        fair_queuing: false,
        max_batch_starvation: ms(l.max_batch_starvation_ms, d.max_batch_starvation),
    }
}
