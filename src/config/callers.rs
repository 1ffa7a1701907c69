//! `[callers.NAME]`: the services that call the gateway, their priorities, fair shares and quotas.

use super::{Problems, at_least, invalid};
use crate::api::caller::{CallerPolicy, CallerSettings, Quota};
use crate::call::Priority;
use crate::stack::limit::rates::OpClass;
use serde::Deserialize;
use std::collections::BTreeMap;

/// One caller, keyed by its name: the caller token's `name` when `[auth]` is on, else the `x-caller` metadata, else
/// the first product of `user-agent` (`grpc-python` of `grpc-python/1.66 grpc-c/44.1.0`).
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct CallerSection {
    /// "interactive", "default" (the default) or "batch": which waiting call takes a freed turn of a Pinecone limit
    /// first.
    pub priority: Option<String>,
    /// The highest priority one call may ask for with `x-priority` metadata. Default: `priority`.
    pub max_priority: Option<String>,
    /// The caller's share of turns among callers waiting at the same priority. Default 1.
    pub weight: Option<u32>,
    /// The caller's own quota over all its calls, in calls per second (absent: none). Independent of Pinecone's
    /// limits: a call over it is refused at once.
    pub requests_per_second: Option<u32>,
    /// Calls the quota lets through at once. Default: `requests_per_second`.
    pub burst: Option<u32>,
    /// Read units the caller may spend per UTC day (Pinecone's figures from its answers); absent: no budget.
    pub read_units_per_day: Option<u64>,
    /// Read units per calendar month (UTC).
    pub read_units_per_month: Option<u64>,
    /// Write units per UTC day (estimated from the requests by Pinecone's rule).
    pub write_units_per_day: Option<u64>,
    /// Write units per calendar month (UTC).
    pub write_units_per_month: Option<u64>,
    /// Quotas per operation class (`fetch`, `query`, `upsert`, … as in `[limits.rates]`), on top of the one above.
    #[serde(default)]
    pub classes: BTreeMap<String, QuotaSection>,
}

/// A quota for one operation class.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct QuotaSection {
    /// Calls per second.
    pub requests_per_second: u32,
    /// Calls let through at once. Default: `requests_per_second`.
    pub burst: Option<u32>,
}

fn parse_priority(key: &str, value: Option<&str>, default: Priority, p: &mut Problems) -> Priority {
    match value {
        None => default,
        Some(v) => Priority::parse(v).unwrap_or_else(|| {
            p.refuse(
                invalid(
                    key,
                    format!("`{v}` is not one of interactive, default, batch"),
                ),
                default,
            )
        }),
    }
}

fn quota(key: &str, rps: u32, burst: Option<u32>, p: &mut Problems) -> Quota {
    let rps = p.or(at_least(&format!("{key}.requests_per_second"), rps, 1), 1);
    let burst = p.or(
        at_least(&format!("{key}.burst"), burst.unwrap_or(rps), 1),
        1,
    );
    Quota {
        requests_per_second: rps,
        burst,
    }
}

/// The `[callers]` section's settings; every problem is recorded.
pub(super) fn settings(
    section: &BTreeMap<String, CallerSection>,
    p: &mut Problems,
) -> CallerSettings {
    let mut callers = CallerSettings::new();
    for (name, c) in section {
        let key = format!("callers.{name}");
        if name.is_empty()
            || name.len() > 64
            || name == crate::call::OTHER_CALLER
            || !name.bytes().all(|b| b.is_ascii_graphic())
        {
            p.push(invalid(
                &key,
                "a caller's name is 1 to 64 printable ASCII characters, and `other` is the label of every caller not \
                 configured",
            ));
        }
        let priority = parse_priority(
            &format!("{key}.priority"),
            c.priority.as_deref(),
            Priority::Default,
            p,
        );
        let max_priority = parse_priority(
            &format!("{key}.max_priority"),
            c.max_priority.as_deref(),
            priority,
            p,
        );
        if max_priority < priority {
            p.push(invalid(
                &format!("{key}.max_priority"),
                format!(
                    "`{}` is below the caller's own priority `{}`",
                    max_priority.name(),
                    priority.name()
                ),
            ));
        }
        let weight = p.or(
            at_least(&format!("{key}.weight"), c.weight.unwrap_or(1), 1),
            1,
        );
        let all = match (c.requests_per_second, c.burst) {
            (Some(rps), burst) => Some(quota(&key, rps, burst, p)),
            (None, Some(_)) => {
                p.push(invalid(
                    &format!("{key}.burst"),
                    "needs requests_per_second",
                ));
                None
            }
            (None, None) => None,
        };
        let mut classes = BTreeMap::new();
        for (class, q) in &c.classes {
            let ckey = format!("{key}.classes.{class}");
            match OpClass::parse(class) {
                Some(oc) => {
                    classes.insert(oc, quota(&ckey, q.requests_per_second, q.burst, p));
                }
                None => p.push(invalid(
                    &ckey,
                    format!(
                        "unknown operation class; one of {}",
                        OpClass::ALL.map(OpClass::name).join(", ")
                    ),
                )),
            }
        }
        callers.insert(
            name.clone(),
            CallerPolicy {
                priority,
                max_priority,
                weight,
                quota: all,
                class_quotas: classes,
                budget: crate::api::spend::Budget {
                    read_units_per_day: c.read_units_per_day,
                    read_units_per_month: c.read_units_per_month,
                    write_units_per_day: c.write_units_per_day,
                    write_units_per_month: c.write_units_per_month,
                },
            },
        );
    }
    callers
}
