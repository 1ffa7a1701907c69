//! What each call spends in Pinecone's billing units, and who spent them.
//!
//! Read units (RU) are Pinecone's own figure: the `usage.readUnits` of a query, fetch, fetch by metadata or list
//! answer, after coalescing gave each caller its share and splitting added the parts up. Write units (WU) Pinecone
//! does not report, so they are estimated from the request by its documented rule (understanding-cost page): 1 WU
//! per KB of an upsert or update request, at least 5 per request; a delete at least 5 (Pinecone charges by the size
//! of the records deleted, which the gateway does not know); deleting a namespace 5.
//!
//! The [`Ledger`] adds each call's units to its caller (the configured name, else `other`), index and operation,
//! for the current UTC day and calendar month; `/spend` on the admin listener reports it. A caller's [`Budget`]
//! (`[callers.NAME] read_units_per_day` and the like) is checked against it before each call: a caller that has
//! spent its budget is refused at once, RESOURCE_EXHAUSTED naming the budget and when it renews (00:00 UTC, or the
//! first day of the next month), nothing sent. A read's cost is known only from its answer, so it is charged
//! afterwards and a caller may overrun a read budget by one call; a write is refused when its estimate would take the
//! caller past its budget. In local mode the ledger lives in the process: a restart starts from zero (so budgets
//! start over), and each replica counts only its own calls. In redis mode ([`shared`]) every replica's spend is kept
//! in Redis: budgets hold across replicas and restarts. Budgets come from the configuration at each call, so a
//! reload (SIGHUP) changes them and keeps what was spent.

pub mod shared;

use crate::call::Op;
use crate::stack::limit::shared::RedisLimits;
use crate::telemetry::metrics as m;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Pinecone's least charge for one write request.
const MIN_WRITE_UNITS: u64 = 5;

/// The write units an operation is estimated to cost (Pinecone's rule; see the module), None for reads.
pub(crate) fn write_units(op: &Op) -> Option<u64> {
    let per_kb = |bytes: usize| (bytes as u64).div_ceil(1024).max(MIN_WRITE_UNITS);
    match op {
        Op::Upsert(b) => Some(per_kb(b.body().len())),
        Op::Update(u) => Some(per_kb(serde_json::to_vec(u).map_or(0, |v| v.len()))),
        Op::Delete(_) | Op::DeleteNamespace(_) => Some(MIN_WRITE_UNITS),
        _ => None,
    }
}

/// A caller's budgets of units (`[callers.NAME]`); None: no budget.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Budget {
    pub read_units_per_day: Option<u64>,
    pub read_units_per_month: Option<u64>,
    pub write_units_per_day: Option<u64>,
    pub write_units_per_month: Option<u64>,
}

impl Budget {
    pub fn is_none(&self) -> bool {
        *self == Budget::default()
    }

    /// Each budget set, its units and what is spent of it, given today's and this month's spend.
    pub fn each(&self, today: Units, month: Units) -> Vec<(&'static str, u64, u64)> {
        [
            ("read_units_per_day", self.read_units_per_day, today.read),
            (
                "read_units_per_month",
                self.read_units_per_month,
                month.read,
            ),
            ("write_units_per_day", self.write_units_per_day, today.write),
            (
                "write_units_per_month",
                self.write_units_per_month,
                month.write,
            ),
        ]
        .into_iter()
        .filter_map(|(key, limit, used)| limit.map(|l| (key, l, used)))
        .collect()
    }

    /// Sets `pinecone_gateway_budget_spent_ratio{caller,budget}` for each budget set.
    pub fn publish(&self, caller: &'static str, (today, month): (Units, Units)) {
        for (key, limit, used) in self.each(today, month) {
            let ratio = if limit == 0 {
                1.0
            } else {
                used as f64 / limit as f64
            };
            m::gauge(
                m::BUDGET_SPENT_RATIO,
                &[("caller", caller), ("budget", key)],
            )
            .set(ratio);
        }
    }

    /// Whether `caller`, having spent `today` and `month`, may make a call that reads (`reads`) and is estimated to
    /// write `write` units; else the refusal, with the time until the budget renews as its retry advice.
    pub(crate) fn check(
        &self,
        caller: &str,
        (today, month): (Units, Units),
        reads: bool,
        write: Option<u64>,
        at: std::time::SystemTime,
    ) -> Result<(), super::GatewayError> {
        let now = Period::at(at);
        let mut over = Vec::new();
        if reads {
            over.push((
                self.read_units_per_day,
                today.read,
                0,
                "read_units_per_day",
                false,
            ));
            over.push((
                self.read_units_per_month,
                month.read,
                0,
                "read_units_per_month",
                true,
            ));
        }
        if let Some(w) = write {
            over.push((
                self.write_units_per_day,
                today.write,
                w,
                "write_units_per_day",
                false,
            ));
            over.push((
                self.write_units_per_month,
                month.write,
                w,
                "write_units_per_month",
                true,
            ));
        }
        for (budget, spent, more, key, monthly) in over {
            let Some(budget) = budget else { continue };
            // A read is refused once the budget is spent; a write when its estimate would go past it.
            let refused = if more == 0 {
                spent >= budget
            } else {
                spent + more > budget
            };
            if !refused {
                continue;
            }
            let renews = if monthly {
                now.next_month_start()
            } else {
                (now.day + 1) * 86_400
            };
            let since_epoch = at
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            let wait = std::time::Duration::from_secs_f64((renews as f64 - since_epoch).max(1.0));
            let (unit, period) = match (key.starts_with("read"), monthly) {
                (true, false) => ("read units", "today"),
                (true, true) => ("read units", "this month"),
                (false, false) => ("write units", "today"),
                (false, true) => ("write units", "this month"),
            };
            let this_call = if more > 0 {
                format!(", and this call is estimated at {more}")
            } else {
                String::new()
            };
            return Err(super::GatewayError::Quota {
                message: format!(
                    "caller `{caller}` has spent its budget of {budget} {unit} (callers.{caller}.{key}): {spent} \
                     {period}{this_call}; it renews at {} (UTC); nothing was sent",
                    if monthly {
                        format!(
                            "{}-01T00:00:00Z",
                            Period {
                                day: 0,
                                month: now.month + 1
                            }
                            .month_name()
                        )
                    } else {
                        format!(
                            "{}T00:00:00Z",
                            Period {
                                day: now.day + 1,
                                month: 0
                            }
                            .day_name()
                        )
                    }
                ),
                retry_after: wait,
            });
        }
        Ok(())
    }
}

/// A day and a month, in UTC: days since 1970-01-01, and `year * 12 + month - 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Period {
    pub day: i64,
    pub month: i64,
}

impl Period {
    pub fn at(t: std::time::SystemTime) -> Period {
        let secs = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let day = secs.div_euclid(86_400);
        let (y, m, _) = civil(day);
        Period {
            day,
            month: y * 12 + m - 1,
        }
    }

    pub fn now() -> Period {
        Period::at(std::time::SystemTime::now())
    }

    /// `2026-12-02`.
    pub fn day_name(&self) -> String {
        let (y, m, d) = civil(self.day);
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// Seconds since 1970-01-01 at the start of the next month.
    pub(crate) fn next_month_start(&self) -> i64 {
        let next = self.month + 1;
        days_from_civil(next.div_euclid(12), next.rem_euclid(12) + 1, 1) * 86_400
    }

    /// `2026-12`.
    pub fn month_name(&self) -> String {
        format!(
            "{:04}-{:02}",
            self.month.div_euclid(12),
            self.month.rem_euclid(12) + 1
        )
    }
}

/// The civil date (year, month 1-12, day 1-31) of a day counted from 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The day (counted from 1970-01-01) of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Units spent in one period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Units {
    pub read: u64,
    pub write: u64,
}

impl Units {
    pub fn plus(self, o: Units) -> Units {
        Units {
            read: self.read + o.read,
            write: self.write + o.write,
        }
    }
}

/// One caller's spend on one index and operation: today's and this month's.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    day: i64,
    today: Units,
    month: i64,
    this_month: Units,
}

impl Tally {
    /// Today's and this month's units, a new period starting from zero.
    fn current(&self, now: Period) -> (Units, Units) {
        let today = if self.day == now.day {
            self.today
        } else {
            Units::default()
        };
        let month = if self.month == now.month {
            self.this_month
        } else {
            Units::default()
        };
        (today, month)
    }
}

type Key = (&'static str, String, &'static str);

/// One row of the report: a caller's units on one index and operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub caller: String,
    pub index: String,
    pub operation: String,
    pub today: Units,
    pub this_month: Units,
}

/// Units per caller, index and operation, for today and this month (see the module); in redis mode shared by every
/// replica through Redis ([`shared`]).
#[derive(Default)]
pub struct Ledger {
    tallies: Mutex<HashMap<Key, Tally>>,
    shared: Option<shared::SharedSpend>,
}

impl Ledger {
    /// `redis`: redis mode, spend shared by every replica.
    pub fn new(redis: Option<Arc<RedisLimits>>) -> Self {
        Ledger {
            tallies: Mutex::default(),
            shared: redis.map(shared::SharedSpend::new),
        }
    }

    /// Adds one call's units. `caller` is the bounded caller label.
    pub fn charge(
        &self,
        caller: &'static str,
        index: &str,
        operation: &'static str,
        units: Units,
        now: Period,
    ) {
        if units == Units::default() {
            return;
        }
        if let Some(shared) = &self.shared {
            shared.charge(caller, index, operation, units, now);
        }
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let t = tallies
            .entry((caller, index.to_string(), operation))
            .or_default();
        let (today, month) = t.current(now);
        *t = Tally {
            day: now.day,
            today: today.plus(units),
            month: now.month,
            this_month: month.plus(units),
        };
    }

    /// What a caller has spent over all its indexes and operations, today and this month: in redis mode over every
    /// replica (see [`shared`]), else in this process.
    pub async fn spent_by(&self, caller: &'static str, now: Period) -> (Units, Units) {
        match &self.shared {
            Some(shared) => shared.spent_by(caller, now).await,
            None => self.spent_here(caller, now),
        }
    }

    /// What a caller has spent through this process since it started.
    fn spent_here(&self, caller: &str, now: Period) -> (Units, Units) {
        let tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = (Units::default(), Units::default());
        for ((c, _, _), t) in tallies.iter() {
            if *c == caller {
                let (today, month) = t.current(now);
                out = (out.0.plus(today), out.1.plus(month));
            }
        }
        out
    }

    /// Redis mode: adds this replica's units to the shared spend and reads back `budgeted`'s (their budgets are
    /// checked against it), then sets each budget's share spent. Local mode: sets the shares.
    pub async fn sync(&self, budgeted: &[(&'static str, Budget)]) {
        let now = Period::now();
        if let Some(shared) = &self.shared {
            let callers: Vec<_> = budgeted.iter().map(|(c, _)| *c).collect();
            shared.sync(&callers).await;
        }
        for (caller, budget) in budgeted {
            budget.publish(caller, self.spent_by(caller, now).await);
        }
    }

    /// Every caller's spend this month: from Redis in redis mode (None when it cannot be reached), else this
    /// process's.
    async fn rows(&self, callers: &[&'static str], now: Period) -> Option<Vec<Row>> {
        if let Some(shared) = &self.shared {
            return shared.rows(callers, now).await;
        }
        Some(self.tallies_rows(now))
    }

    /// The `/spend` report: every caller, index and operation with units this month, sorted, and each budget with
    /// what is spent and what is left. `callers`: every caller label there can be (configured names and `other`),
    /// with their budgets if any.
    pub async fn report(
        &self,
        now: Period,
        callers: &[(&'static str, Option<Budget>)],
    ) -> serde_json::Value {
        let labels: Vec<_> = callers.iter().map(|(c, _)| *c).collect();
        let (mut rows, source) = match self.rows(&labels, now).await {
            Some(rows) if self.shared.is_some() => (rows, "redis: every replica"),
            Some(rows) => (rows, "this process since it started"),
            // Redis unreachable: this replica's own count, said so.
            None => (
                self.tallies_rows(now),
                "this replica only (Redis cannot be reached)",
            ),
        };
        rows.sort_by(|a, b| {
            (&a.caller, &a.index, &a.operation).cmp(&(&b.caller, &b.index, &b.operation))
        });
        let spent = |caller: &str| {
            rows.iter()
                .filter(|r| r.caller == caller)
                .fold((Units::default(), Units::default()), |(t, m), r| {
                    (t.plus(r.today), m.plus(r.this_month))
                })
        };
        let mut budgets = Vec::new();
        for (caller, budget) in callers {
            let Some(budget) = budget.filter(|b| !b.is_none()) else {
                continue;
            };
            let (today, month) = spent(caller);
            for (key, limit, used) in budget.each(today, month) {
                budgets.push(serde_json::json!({
                    "caller": caller,
                    "budget": key,
                    "units": limit,
                    "spent": used,
                    "left": limit.saturating_sub(used),
                }));
            }
        }
        serde_json::json!({
            "day": now.day_name(),
            "month": now.month_name(),
            "source": source,
            "write_units": "estimated from the requests by Pinecone's rule (1 per KB, at least 5 per request)",
            "spend": rows.iter().map(|r| serde_json::json!({
                "caller": r.caller,
                "index": r.index,
                "operation": r.operation,
                "today": {"read_units": r.today.read, "write_units": r.today.write},
                "this_month": {"read_units": r.this_month.read, "write_units": r.this_month.write},
            })).collect::<Vec<_>>(),
            "budgets": budgets,
        })
    }

    fn tallies_rows(&self, now: Period) -> Vec<Row> {
        let tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        tallies
            .iter()
            .filter_map(|((caller, index, operation), t)| {
                let (today, this_month) = t.current(now);
                (this_month != Units::default()).then(|| Row {
                    caller: caller.to_string(),
                    index: index.clone(),
                    operation: operation.to_string(),
                    today,
                    this_month,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn dates_are_civil_utc_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        let p = Period::at(UNIX_EPOCH + Duration::from_secs(1_796_169_600)); // 2026-12-02T00:00:00Z
        assert_eq!(p.day_name(), "2026-12-02");
        assert_eq!(p.month_name(), "2026-12");
        let leap = Period::at(UNIX_EPOCH + Duration::from_secs(951_782_400)); // 2000-02-29
        assert_eq!(leap.day_name(), "2000-02-29");
    }

    #[tokio::test]
    async fn a_new_day_and_a_new_month_start_from_zero() {
        let ledger = Ledger::default();
        let dec_31 = Period::at(UNIX_EPOCH + Duration::from_secs(1_798_675_200)); // 2026-12-31
        assert_eq!(dec_31.day_name(), "2026-12-31");
        let dec_30 = Period {
            day: dec_31.day - 1,
            month: dec_31.month,
        };
        let jan_1 = Period::at(UNIX_EPOCH + Duration::from_secs(1_798_761_600));
        assert_eq!(jan_1.month_name(), "2027-01");
        let ru = |n| Units { read: n, write: 0 };
        ledger.charge("search", "docs", "Fetch", ru(3), dec_30);
        ledger.charge("search", "docs", "Query", ru(4), dec_31);
        assert_eq!(ledger.spent_by("search", dec_31).await, (ru(4), ru(7)));
        assert_eq!(ledger.spent_by("other", dec_31).await, (ru(0), ru(0)));
        assert_eq!(ledger.spent_by("search", jan_1).await, (ru(0), ru(0)));
        ledger.charge("search", "docs", "Fetch", ru(1), jan_1);
        let budget = Budget {
            read_units_per_month: Some(3),
            ..Default::default()
        };
        let report = ledger
            .report(jan_1, &[("search", Some(budget)), ("other", None)])
            .await;
        assert_eq!(report["spend"].as_array().unwrap().len(), 1, "{report}");
        assert_eq!(report["spend"][0]["this_month"]["read_units"], 1);
        assert_eq!(
            report["budgets"],
            serde_json::json!([{"caller": "search", "budget": "read_units_per_month", "units": 3, "spent": 1,
                "left": 2}]),
            "{report}"
        );
    }

    #[test]
    fn a_spent_budget_refuses_until_it_renews() {
        let at = UNIX_EPOCH + Duration::from_secs(1_796_169_600 + 23 * 3600); // 2026-12-02T23:00:00Z
        let budget = Budget {
            read_units_per_day: Some(10),
            write_units_per_month: Some(100),
            ..Default::default()
        };
        let spent = |r, w| (Units { read: r, write: w }, Units { read: r, write: w });
        assert!(budget.check("a", spent(9, 0), true, None, at).is_ok());
        let Err(super::super::GatewayError::Quota {
            message,
            retry_after,
        }) = budget.check("a", spent(10, 0), true, None, at)
        else {
            panic!("not refused")
        };
        assert!(
            message.contains("callers.a.read_units_per_day"),
            "{message}"
        );
        assert!(message.contains("2026-12-03T00:00:00Z"), "{message}");
        assert_eq!(retry_after, Duration::from_secs(3600));
        assert!(
            budget.check("a", spent(10, 0), false, Some(5), at).is_ok(),
            "a write is not a read"
        );
        assert!(budget.check("a", spent(0, 95), false, Some(5), at).is_ok());
        let Err(super::super::GatewayError::Quota {
            message,
            retry_after,
        }) = budget.check("a", spent(0, 96), false, Some(5), at)
        else {
            panic!("not refused")
        };
        assert!(message.contains("2027-01-01T00:00:00Z"), "{message}");
        assert_eq!(retry_after, Duration::from_secs(29 * 86_400 + 3600));
        assert_eq!(days_from_civil(2026, 12, 2), 1_796_169_600 / 86_400);
    }

    #[test]
    fn write_units_follow_pinecones_rule() {
        let upsert = |n: usize| {
            Op::Upsert(crate::wire::upsert::UpsertBody::encode(
                &crate::pb::pinecone::UpsertRequest {
                    vectors: (0..n)
                        .map(|i| crate::pb::pinecone::Vector {
                            id: format!("v{i}"),
                            values: vec![0.25; 256],
                            ..Default::default()
                        })
                        .collect(),
                    namespace: String::new(),
                },
            ))
        };
        assert_eq!(write_units(&upsert(1)), Some(5), "at least 5");
        let big = upsert(100);
        let Op::Upsert(b) = &big else { unreachable!() };
        assert_eq!(
            write_units(&big),
            Some((b.body().len() as u64).div_ceil(1024))
        );
        assert!(write_units(&big).unwrap() > 5);
        assert_eq!(write_units(&Op::Delete(Default::default())), Some(5));
        assert_eq!(write_units(&Op::DescribeIndex), None);
    }
}
