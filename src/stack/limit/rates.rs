//! Pinecone's documented per-second limits, by operation class, scope and unit; the gateway's defaults, every one
//! overridable globally and per index. Where Pinecone's pages disagree the stricter value is the default.

use crate::call::Op;
use std::collections::HashMap;

/// Operations that share limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpClass {
    Upsert,
    Query,
    Fetch,
    FetchByMetadata,
    List,
    DescribeIndexStats,
    Update,
    UpdateByMetadata,
    Delete,
    DeleteByMetadata,
    DeleteAll,
    Namespaces,
    ControlPlane,
}

impl OpClass {
    pub const ALL: [OpClass; 13] = [
        OpClass::Upsert,
        OpClass::Query,
        OpClass::Fetch,
        OpClass::FetchByMetadata,
        OpClass::List,
        OpClass::DescribeIndexStats,
        OpClass::Update,
        OpClass::UpdateByMetadata,
        OpClass::Delete,
        OpClass::DeleteByMetadata,
        OpClass::DeleteAll,
        OpClass::Namespaces,
        OpClass::ControlPlane,
    ];

    /// The name used in the configuration (`[limits.rates.<name>]`), messages and metrics.
    pub fn name(self) -> &'static str {
        match self {
            OpClass::Upsert => "upsert",
            OpClass::Query => "query",
            OpClass::Fetch => "fetch",
            OpClass::FetchByMetadata => "fetch_by_metadata",
            OpClass::List => "list",
            OpClass::DescribeIndexStats => "describe_index_stats",
            OpClass::Update => "update",
            OpClass::UpdateByMetadata => "update_by_metadata",
            OpClass::Delete => "delete",
            OpClass::DeleteByMetadata => "delete_by_metadata",
            OpClass::DeleteAll => "delete_all",
            OpClass::Namespaces => "namespaces",
            OpClass::ControlPlane => "control_plane",
        }
    }

    pub fn parse(name: &str) -> Option<OpClass> {
        OpClass::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn of(op: &Op) -> OpClass {
        match op {
            Op::Upsert(_) => OpClass::Upsert,
            Op::Query(_) => OpClass::Query,
            Op::Fetch { .. } => OpClass::Fetch,
            Op::FetchByMetadata(_) => OpClass::FetchByMetadata,
            Op::List(_) => OpClass::List,
            Op::DescribeIndexStats(_) => OpClass::DescribeIndexStats,
            Op::Update(u) if u.filter.is_some() => OpClass::UpdateByMetadata,
            Op::Update(_) => OpClass::Update,
            Op::Delete(d) if d.delete_all => OpClass::DeleteAll,
            Op::Delete(d) if d.filter.is_some() => OpClass::DeleteByMetadata,
            Op::Delete(_) => OpClass::Delete,
            Op::ListNamespaces(_)
            | Op::DescribeNamespace(_)
            | Op::CreateNamespace(_)
            | Op::DeleteNamespace(_) => OpClass::Namespaces,
            _ => OpClass::ControlPlane,
        }
    }
}

/// Where a limit applies. Control-plane limits are per project, which the gateway treats as one "index" key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    Namespace,
    Index,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    Requests,
    Records,
    Bytes,
    /// Pinecone's read units, as a query's answer reports them (`usage.readUnits`). A query's cost is known only
    /// afterwards, so it is estimated before it is sent (`limiter.rs`, `ReadCosts`) and reconciled with the answer.
    ReadUnits,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::Requests => "requests",
            Unit::Records => "records",
            Unit::Bytes => "bytes",
            Unit::ReadUnits => "read units",
        }
    }

    /// The name in Redis keys.
    pub fn key_name(self) -> &'static str {
        match self {
            Unit::ReadUnits => "read_units",
            u => u.name(),
        }
    }
}

/// The per-second rates of one class; `None` means no such limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassRates {
    pub namespace_requests: Option<u64>,
    pub index_requests: Option<u64>,
    pub namespace_records: Option<u64>,
    pub index_records: Option<u64>,
    pub namespace_bytes: Option<u64>,
    pub index_read_units: Option<u64>,
}

impl ClassRates {
    /// Each bucket of the class: scope, unit, rate.
    pub fn buckets(&self) -> impl Iterator<Item = (Scope, Unit, u64)> {
        [
            (Scope::Namespace, Unit::Requests, self.namespace_requests),
            (Scope::Index, Unit::Requests, self.index_requests),
            (Scope::Namespace, Unit::Records, self.namespace_records),
            (Scope::Index, Unit::Records, self.index_records),
            (Scope::Namespace, Unit::Bytes, self.namespace_bytes),
            (Scope::Index, Unit::ReadUnits, self.index_read_units),
        ]
        .into_iter()
        .filter_map(|(s, u, r)| r.filter(|r| *r > 0).map(|r| (s, u, r)))
    }

    /// Field-wise override: a `Some` in `over` wins (`Some(0)` switches a limit off).
    pub fn merged(self, over: &ClassRates) -> ClassRates {
        ClassRates {
            namespace_requests: over.namespace_requests.or(self.namespace_requests),
            index_requests: over.index_requests.or(self.index_requests),
            namespace_records: over.namespace_records.or(self.namespace_records),
            index_records: over.index_records.or(self.index_records),
            namespace_bytes: over.namespace_bytes.or(self.namespace_bytes),
            index_read_units: over.index_read_units.or(self.index_read_units),
        }
    }
}

const fn rates(
    ns_req: Option<u64>,
    idx_req: Option<u64>,
    ns_rec: Option<u64>,
    idx_rec: Option<u64>,
    ns_bytes: Option<u64>,
) -> ClassRates {
    ClassRates {
        namespace_requests: ns_req,
        index_requests: idx_req,
        namespace_records: ns_rec,
        index_records: idx_rec,
        namespace_bytes: ns_bytes,
        index_read_units: None,
    }
}

/// Pinecone's query read-unit limit: 2,000 RU/s per index (rate-limits page; Dedicated Read Nodes are exempt).
pub const QUERY_READ_UNITS_PER_SECOND: u64 = 2_000;

/// The defaults: the table "Default limits for the gateway" of the reference (see docs/limits.md's table).
pub fn default_rates(class: OpClass) -> ClassRates {
    match class {
        OpClass::Upsert => rates(Some(100), None, None, None, Some(50_000_000)),
        OpClass::Query => ClassRates {
            index_read_units: Some(QUERY_READ_UNITS_PER_SECOND),
            ..rates(Some(100), None, None, None, None)
        },
        OpClass::Fetch => rates(None, Some(100), None, None, None),
        OpClass::FetchByMetadata => rates(Some(5), None, None, None, None),
        OpClass::List => rates(None, Some(200), None, None, None),
        OpClass::DescribeIndexStats => rates(None, Some(100), None, None, None),
        OpClass::Update => rates(Some(100), None, Some(100), None, None),
        OpClass::UpdateByMetadata => rates(Some(5), Some(500), None, None, None),
        OpClass::Delete => rates(Some(100), None, Some(5_000), Some(5_000), None),
        OpClass::DeleteByMetadata => rates(Some(5), Some(500), None, None, None),
        // Undocumented: the delete request limit, as the reference advises.
        OpClass::DeleteAll => rates(Some(100), None, None, None, None),
        // Undocumented: Pinecone's smallest per-index request limit.
        OpClass::Namespaces => rates(None, Some(100), None, None, None),
        // Undocumented, per project: kept well below the data plane.
        OpClass::ControlPlane => rates(None, Some(20), None, None, None),
    }
}

/// The rates in force: defaults, global overrides, per-index overrides.
#[derive(Clone, Debug, Default)]
pub struct RateTable {
    pub global: HashMap<OpClass, ClassRates>,
    pub per_index: HashMap<String, HashMap<OpClass, ClassRates>>,
}

impl RateTable {
    pub fn rates(&self, index: &str, class: OpClass) -> ClassRates {
        let mut r = default_rates(class);
        if let Some(g) = self.global.get(&class) {
            r = r.merged(g);
        }
        if let Some(i) = self.per_index.get(index).and_then(|m| m.get(&class)) {
            r = r.merged(i);
        }
        r
    }

    /// Every class with each of its limits raised by `factor` (benchmarks, tests) or divided (static share).
    pub fn scaled(classes: impl Iterator<Item = OpClass>, f: impl Fn(u64) -> u64) -> RateTable {
        let global = classes
            .map(|c| {
                let d = default_rates(c);
                let s = |x: Option<u64>| x.map(&f);
                (
                    c,
                    ClassRates {
                        index_read_units: s(d.index_read_units),
                        ..rates(
                            s(d.namespace_requests),
                            s(d.index_requests),
                            s(d.namespace_records),
                            s(d.index_records),
                            s(d.namespace_bytes),
                        )
                    },
                )
            })
            .collect();
        RateTable {
            global,
            per_index: HashMap::new(),
        }
    }
}

/// The cost of a call in each unit.
pub fn costs(op: &Op) -> (u64, u64) {
    match op {
        Op::Delete(d) if !d.ids.is_empty() => (d.ids.len() as u64, 0),
        Op::Update(u) if u.filter.is_none() => (1, 0),
        Op::Upsert(u) => (0, u.body_len() as u64),
        _ => (0, 0),
    }
}
