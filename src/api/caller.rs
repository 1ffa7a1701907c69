//! Callers: who makes each call, the priority and weight the configuration gives it, and its own quotas.
//!
//! A caller is the authenticated token's name when caller authentication is on, else the `x-caller` metadata, else
//! the first product of `user-agent` (`grpc-python` of `grpc-python/1.66 grpc-c/44.1.0`), else `anonymous`. A caller
//! named in `[callers.NAME]` gets that section's priority, weight and quotas, and its name as the `caller` label of
//! metrics; every other caller gets priority `default`, weight 1, no quota and the label `other`, so the label set
//! stays bounded. `x-priority` metadata (`interactive`, `default`, `batch`) sets one call's priority, up to the
//! caller's `max_priority`. The priority and weight travel with the call ([`Caller`]) to the limiter's fair queue.
//!
//! Quotas are GCRA (the `governor` crate), per caller and optionally per operation class: a call over a quota is
//! refused at once with RESOURCE_EXHAUSTED and retry advice naming the quota, before anything waits or goes upstream
//! (a quota is a local policy: nothing waits on it). A reload (SIGHUP) replaces the policies; a quota whose numbers
//! did not change keeps its state, so a reload never grants a fresh burst.

use super::GatewayError;
use crate::call::{Caller, Priority};
use crate::stack::Reloadable;
use crate::stack::limit::rates::OpClass;
use crate::stack::limit::shared::{RedisLimits, Verdict};
use crate::telemetry::metrics as m;
use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tonic::metadata::MetadataMap;

/// Metadata naming the caller when caller authentication is off.
pub const CALLER_METADATA: &str = "x-caller";
/// Metadata setting one call's priority.
pub const PRIORITY_METADATA: &str = "x-priority";
/// The caller that names itself in no way.
pub const ANONYMOUS: &str = "anonymous";

/// A quota: calls per second, and how many may come at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub requests_per_second: u32,
    pub burst: u32,
}

/// What the configuration says of one caller.
#[derive(Clone, Debug, PartialEq)]
pub struct CallerPolicy {
    pub priority: Priority,
    pub max_priority: Priority,
    pub weight: u32,
    pub quota: Option<Quota>,
    pub class_quotas: BTreeMap<OpClass, Quota>,
    /// Budgets of read and write units per UTC day and calendar month (`api::spend`).
    pub budget: super::spend::Budget,
}

/// Every configured caller, by name.
pub type CallerSettings = BTreeMap<String, CallerPolicy>;

type Gcra = governor::DefaultDirectRateLimiter;

/// A quota and its state.
struct Limit {
    quota: Quota,
    gcra: Gcra,
}

impl Limit {
    fn new(quota: Quota) -> Arc<Limit> {
        let nz = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let q =
            governor::Quota::per_second(nz(quota.requests_per_second)).allow_burst(nz(quota.burst));
        Arc::new(Limit {
            quota,
            gcra: governor::RateLimiter::direct(q),
        })
    }

    /// How long until the quota has room, when it has none now.
    fn check(&self) -> Option<Duration> {
        use governor::clock::Clock;
        self.gcra
            .check()
            .err()
            .map(|n| n.wait_time_from(governor::clock::DefaultClock::default().now()))
    }
}

struct Policy {
    label: &'static str,
    settings: CallerPolicy,
    all: Option<Arc<Limit>>,
    classes: HashMap<OpClass, Arc<Limit>>,
}

/// The configured callers and their quotas' state; cheap to clone.
#[derive(Clone)]
pub struct Callers {
    policies: Reloadable<HashMap<String, Arc<Policy>>>,
    /// Redis mode: quotas are kept in Redis, for every replica at once.
    shared: Option<Arc<RedisLimits>>,
}

impl Default for Callers {
    fn default() -> Self {
        Callers::new(&CallerSettings::new())
    }
}

/// Who makes a call: its name as it came, and what the configuration gives it.
pub struct Identified {
    /// As the caller named itself (for the log line; taken by it).
    pub name: String,
    pub caller: Caller,
    policy: Option<Arc<Policy>>,
    shared: Option<Arc<RedisLimits>>,
}

impl Callers {
    pub fn new(settings: &CallerSettings) -> Self {
        Callers {
            policies: Reloadable::new(build(settings, &HashMap::new())),
            shared: None,
        }
    }

    /// Redis mode: each quota is one GCRA bucket in Redis shared by every replica (`<key_prefix>:{quota:<caller>}:…`);
    /// while Redis cannot be reached, each replica applies the whole quota itself, as in local mode.
    pub fn with_redis(mut self, redis: Option<Arc<RedisLimits>>) -> Self {
        self.shared = redis;
        self
    }

    /// Every caller label there can be (each configured caller's, and `other`), with its budgets if any.
    pub fn labels(&self) -> Vec<(&'static str, Option<super::spend::Budget>)> {
        let policies = self.policies.get();
        let mut out: Vec<_> = policies
            .values()
            .map(|p| (p.label, Some(p.settings.budget).filter(|b| !b.is_none())))
            .collect();
        out.sort_by_key(|(l, _)| *l);
        out.push((crate::call::OTHER_CALLER, None));
        out
    }

    /// The callers with budgets, and their budgets.
    pub fn budgets(&self) -> Vec<(&'static str, super::spend::Budget)> {
        self.labels()
            .into_iter()
            .filter_map(|(l, b)| b.map(|b| (l, b)))
            .collect()
    }

    /// Whether the configuration names any caller (priorities then shape queues and load shedding).
    pub fn configured(&self) -> bool {
        !self.policies.get().is_empty()
    }

    /// New policies for calls from now on; quotas whose numbers did not change keep their state.
    pub fn reload(&self, settings: &CallerSettings) {
        let old = self.policies.get();
        self.policies.set(build(settings, &old));
    }

    /// Names the caller of a call and gives it its priority: the configured one, or the one `x-priority` asks for
    /// within the caller's `max_priority`.
    pub fn identify(
        &self,
        token_name: Option<&str>,
        md: &MetadataMap,
    ) -> Result<Identified, GatewayError> {
        let name = match token_name {
            Some(n) => n.to_string(),
            None => named(md)?,
        };
        let policy = self.policies.get().get(&name).cloned();
        let (label, priority, max_priority, weight) = match &policy {
            Some(p) => (
                p.label,
                p.settings.priority,
                p.settings.max_priority,
                p.settings.weight,
            ),
            None => (
                crate::call::OTHER_CALLER,
                Priority::Default,
                Priority::Default,
                1,
            ),
        };
        let priority = match md.get(PRIORITY_METADATA) {
            None => priority,
            Some(v) => {
                let asked = v
                    .to_str()
                    .ok()
                    .and_then(|s| Priority::parse(s.trim()))
                    .ok_or_else(|| {
                        GatewayError::Invalid(crate::api::validate::Invalid(format!(
                            "{PRIORITY_METADATA} must be one of interactive, default, batch"
                        )))
                    })?;
                if asked > max_priority {
                    return Err(GatewayError::PermissionDenied(format!(
                        "caller `{name}` may ask for priorities up to `{}` (callers.{name}.max_priority); \
                         {PRIORITY_METADATA} asked for `{}`",
                        max_priority.name(),
                        asked.name()
                    )));
                }
                asked
            }
        };
        Ok(Identified {
            name,
            caller: Caller {
                label,
                priority,
                weight,
            },
            shared: policy.as_ref().and(self.shared.clone()),
            policy,
        })
    }
}

impl Identified {
    /// Takes one call of `class` from the caller's quotas (its class's, then its own), or refuses it at once.
    /// The caller's budgets of units, when it is configured with any.
    pub fn budget(&self) -> Option<&super::spend::Budget> {
        self.policy
            .as_ref()
            .map(|p| &p.settings.budget)
            .filter(|b| !b.is_none())
    }

    pub async fn take_quota(&self, class: OpClass) -> Result<(), GatewayError> {
        let Some(policy) = &self.policy else {
            return Ok(());
        };
        for (limit, of_class) in [
            (policy.classes.get(&class), true),
            (policy.all.as_ref(), false),
        ] {
            let Some(limit) = limit else {
                continue;
            };
            let shared = match &self.shared {
                Some(redis) => {
                    let scope = if of_class { class.name() } else { "all" };
                    shared_wait(redis, policy.label, scope, &limit.quota).await
                }
                None => None,
            };
            // Redis's answer, else (local mode, or Redis down) this replica's own bucket.
            let Some(retry_after) = shared.unwrap_or_else(|| limit.check()) else {
                continue;
            };
            m::counter(
                m::CALLER_REFUSALS,
                &[("caller", policy.label), ("reason", "quota")],
            )
            .increment(1);
            let (what, key) = if of_class {
                (
                    format!("{} calls", class.name()),
                    format!("callers.{}.classes.{}", policy.label, class.name()),
                )
            } else {
                (
                    "calls".to_string(),
                    format!("callers.{}.requests_per_second", policy.label),
                )
            };
            return Err(GatewayError::Quota {
                message: format!(
                    "caller `{}` is over its quota of {} {what} per second (burst {}; {key}); nothing was sent",
                    policy.label, limit.quota.requests_per_second, limit.quota.burst,
                ),
                retry_after,
            });
        }
        Ok(())
    }
}

/// One call from a quota kept in Redis: `Some(None)` if it has room, `Some(Some(wait))` if not, None when Redis
/// failed. GCRA as the shared limits do it: a call may go while the bucket's theoretical arrival time is at most
/// `burst - 1` spacings ahead, and taking it moves that time one spacing on.
async fn shared_wait(
    redis: &RedisLimits,
    caller: &str,
    scope: &str,
    quota: &Quota,
) -> Option<Option<Duration>> {
    let spacing = Duration::from_secs(1) / quota.requests_per_second.max(1);
    let tolerance = spacing * quota.burst.saturating_sub(1);
    let bucket = crate::stack::limit::shared::Bucket {
        key: redis.quota_key(caller, scope),
        spacing,
        cost: 1,
    };
    Some(
        match redis
            .decide(std::slice::from_ref(&bucket), tolerance)
            .await?
        {
            Verdict::Go(_) => None,
            Verdict::TooLate { wait, .. } => {
                Some(wait.saturating_sub(tolerance).max(Duration::from_millis(1)))
            }
        },
    )
}

/// The caller's own name for itself: `x-caller`, else the first product of `user-agent`, else `anonymous`. An
/// `x-caller` that cannot be a name is refused rather than ignored (the call would otherwise be counted as someone
/// else); a `user-agent` is not the caller's choice of name, so an odd one only falls back to `anonymous`.
fn named(md: &MetadataMap) -> Result<String, GatewayError> {
    let usable = |v: &str| {
        let v = v.trim();
        (!v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| v.to_string())
    };
    if let Some(v) = md.get(CALLER_METADATA) {
        return v.to_str().ok().and_then(usable).ok_or_else(|| {
            GatewayError::Invalid(crate::api::validate::Invalid(format!(
                "{CALLER_METADATA} must be 1 to 64 printable ASCII characters without spaces"
            )))
        });
    }
    Ok(md
        .get("user-agent")
        .and_then(|ua| ua.to_str().ok()?.split_whitespace().next())
        .and_then(|product| usable(product.split('/').next()?))
        .unwrap_or_else(|| ANONYMOUS.to_string()))
}

fn build(
    settings: &CallerSettings,
    old: &HashMap<String, Arc<Policy>>,
) -> HashMap<String, Arc<Policy>> {
    let keep = |now: Option<&Arc<Limit>>, quota: Quota| match now {
        Some(l) if l.quota == quota => l.clone(),
        _ => Limit::new(quota),
    };
    settings
        .iter()
        .map(|(name, s)| {
            let before = old.get(name);
            let policy = Policy {
                label: m::intern(name),
                settings: s.clone(),
                all: s
                    .quota
                    .map(|q| keep(before.and_then(|b| b.all.as_ref()), q)),
                classes: s
                    .class_quotas
                    .iter()
                    .map(|(c, q)| (*c, keep(before.and_then(|b| b.classes.get(c)), *q)))
                    .collect(),
            };
            (name.clone(), Arc::new(policy))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(pairs: &[(&'static str, &str)]) -> MetadataMap {
        let mut md = MetadataMap::new();
        for (k, v) in pairs {
            md.insert(*k, v.parse().unwrap());
        }
        md
    }

    fn callers() -> Callers {
        let mut s = CallerSettings::new();
        s.insert(
            "search".into(),
            CallerPolicy {
                priority: Priority::Interactive,
                max_priority: Priority::Interactive,
                weight: 3,
                quota: Some(Quota {
                    requests_per_second: 1,
                    burst: 2,
                }),
                class_quotas: BTreeMap::new(),
                budget: Default::default(),
            },
        );
        s.insert(
            "backfill".into(),
            CallerPolicy {
                priority: Priority::Batch,
                max_priority: Priority::Default,
                weight: 1,
                quota: None,
                class_quotas: [(
                    OpClass::Fetch,
                    Quota {
                        requests_per_second: 1,
                        burst: 1,
                    },
                )]
                .into(),
                budget: Default::default(),
            },
        );
        Callers::new(&s)
    }

    #[test]
    fn a_caller_is_its_token_else_x_caller_else_its_user_agent_product() {
        let c = callers();
        let both = md(&[
            ("x-caller", "search"),
            ("user-agent", "backfill/1.0 grpc-c/44"),
        ]);
        assert_eq!(
            c.identify(Some("backfill"), &both).unwrap().name,
            "backfill"
        );
        let who = c.identify(None, &both).unwrap();
        assert_eq!((who.name.as_str(), who.caller.label), ("search", "search"));
        assert_eq!(
            (who.caller.priority, who.caller.weight),
            (Priority::Interactive, 3)
        );
        let ua = c
            .identify(None, &md(&[("user-agent", "backfill/1.0 grpc-c/44")]))
            .unwrap();
        assert_eq!(
            (ua.caller.label, ua.caller.priority),
            ("backfill", Priority::Batch)
        );
        let stranger = c.identify(None, &md(&[("x-caller", "someone")])).unwrap();
        assert_eq!(stranger.caller, Caller::default());
        assert_eq!(stranger.name, "someone");
        assert_eq!(c.identify(None, &md(&[])).unwrap().name, ANONYMOUS);
        let long = "x".repeat(65);
        for bad in ["two words", long.as_str()] {
            let e = c.identify(None, &md(&[("x-caller", bad)])).err().unwrap();
            assert!(
                matches!(&e, GatewayError::Invalid(m) if m.0.contains("x-caller")),
                "{e}"
            );
        }
    }

    #[test]
    fn x_priority_is_allowed_up_to_the_callers_max() {
        let c = callers();
        let p = |caller: &str, asked: &str| {
            c.identify(None, &md(&[("x-caller", caller), ("x-priority", asked)]))
                .map(|i| i.caller.priority)
        };
        assert_eq!(p("backfill", "default").unwrap(), Priority::Default);
        assert_eq!(p("search", "batch").unwrap(), Priority::Batch);
        let e = p("backfill", "interactive").err().unwrap();
        assert!(
            matches!(&e, GatewayError::PermissionDenied(m) if m.contains("max_priority")),
            "{e}"
        );
        assert!(matches!(
            p("someone", "interactive"),
            Err(GatewayError::PermissionDenied(_))
        ));
        assert!(matches!(
            p("search", "urgent"),
            Err(GatewayError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn quotas_refuse_at_once_and_survive_a_reload_that_keeps_them() {
        let c = callers();
        let search = || c.identify(None, &md(&[("x-caller", "search")])).unwrap();
        assert!(search().take_quota(OpClass::Query).await.is_ok());
        assert!(search().take_quota(OpClass::Query).await.is_ok());
        let e = search().take_quota(OpClass::Query).await.unwrap_err();
        let GatewayError::Quota {
            message,
            retry_after,
        } = &e
        else {
            panic!("{e}")
        };
        assert!(
            message.contains("callers.search.requests_per_second"),
            "{message}"
        );
        assert!(*retry_after > Duration::ZERO && *retry_after <= Duration::from_secs(1));
        // The same numbers: the spent burst stays spent.
        let mut s = CallerSettings::new();
        s.insert("search".into(), c.policies.get()["search"].settings.clone());
        c.reload(&s);
        assert!(search().take_quota(OpClass::Query).await.is_err());
        // Per class: fetches are limited, queries are not.
        let backfill = || c.identify(None, &md(&[("x-caller", "backfill")]));
        c.reload(
            &callers()
                .policies
                .get()
                .iter()
                .map(|(k, v)| (k.clone(), v.settings.clone()))
                .collect(),
        );
        let b = backfill().unwrap();
        assert!(b.take_quota(OpClass::Fetch).await.is_ok());
        let e = b.take_quota(OpClass::Fetch).await.unwrap_err();
        assert!(
            e.to_string().contains("callers.backfill.classes.fetch"),
            "{e}"
        );
        assert!(b.take_quota(OpClass::Query).await.is_ok());
        // Callers not configured have no quota.
        let other = c.identify(None, &md(&[("x-caller", "someone")])).unwrap();
        for _ in 0..100 {
            assert!(other.take_quota(OpClass::Fetch).await.is_ok());
        }
    }
}
