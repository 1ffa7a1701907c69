//! The vocabulary of a call, shared by the gRPC surface (`api/`), every layer of the tower stack (`stack/`) and the
//! REST client (`upstream/`): the value that travels down ([`UpstreamCall`]: one Pinecone operation, the index it
//! targets, the caller's deadline), what comes back ([`Reply`]) and what can fail upstream ([`UpstreamError`]).
//! What a layer needs to know of an operation (its namespace, its IDs, whether it may be repeated) is asked of the
//! [`Op`] here rather than re-derived by a `match` in each layer. Nothing here knows about tonic or HTTP.

pub mod error;
pub use error::UpstreamError;

use crate::pb::pinecone as p;
use crate::wire::control as c;
use tokio::time::Instant;

/// One Pinecone operation with its request. Data-plane requests are the generated messages of the proto the gateway
/// serves, validated and normalised (an empty filter, metadata or sparse vector is absent), since Pinecone's REST
/// data plane is their JSON mapping.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Encoded once by the API layer (wire::upsert): batching, the byte limit and the client share the encoding.
    Upsert(crate::wire::upsert::UpsertBody),
    Fetch {
        ids: Vec<String>,
        namespace: String,
    },
    FetchByMetadata(p::FetchByMetadataRequest),
    Delete(p::DeleteRequest),
    List(p::ListRequest),
    Query(p::QueryRequest),
    Update(p::UpdateRequest),
    DescribeIndexStats(p::DescribeIndexStatsRequest),
    ListNamespaces(p::ListNamespacesRequest),
    DescribeNamespace(String),
    CreateNamespace(p::CreateNamespaceRequest),
    DeleteNamespace(String),
    DescribeIndex,
    /// Every index of the project (the REST front door's list indexes).
    ListIndexes,
    CreateBackup(c::CreateBackupRequest),
    ListIndexBackups(c::PageParams),
    ListProjectBackups(c::PageParams),
    DescribeBackup(String),
    DeleteBackup(String),
    CreateIndexFromBackup {
        backup_id: String,
        request: c::CreateIndexFromBackupRequest,
    },
    ListRestoreJobs(c::PageParams),
    DescribeRestoreJob(String),
}

impl Op {
    /// A stable name for logs, metrics and limits.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Upsert(_) => "upsert",
            Op::Fetch { .. } => "fetch",
            Op::FetchByMetadata(_) => "fetch_by_metadata",
            Op::Delete(_) => "delete",
            Op::List(_) => "list",
            Op::Query(_) => "query",
            Op::Update(_) => "update",
            Op::DescribeIndexStats(_) => "describe_index_stats",
            Op::ListNamespaces(_) => "list_namespaces",
            Op::DescribeNamespace(_) => "describe_namespace",
            Op::CreateNamespace(_) => "create_namespace",
            Op::DeleteNamespace(_) => "delete_namespace",
            Op::DescribeIndex => "describe_index",
            Op::ListIndexes => "list_indexes",
            Op::CreateBackup(_) => "create_backup",
            Op::ListIndexBackups(_) => "list_index_backups",
            Op::ListProjectBackups(_) => "list_project_backups",
            Op::DescribeBackup(_) => "describe_backup",
            Op::DeleteBackup(_) => "delete_backup",
            Op::CreateIndexFromBackup { .. } => "create_index_from_backup",
            Op::ListRestoreJobs(_) => "list_restore_jobs",
            Op::DescribeRestoreJob(_) => "describe_restore_job",
        }
    }

    /// The namespace the operation works in, as the caller wrote it ("" is the default namespace, as is
    /// `__default__`: `wire::data::normalize_namespace` makes them one); None for operations outside any namespace.
    pub fn namespace(&self) -> Option<&str> {
        Some(match self {
            Op::Upsert(r) => r.namespace(),
            Op::Fetch { namespace, .. } => namespace,
            Op::FetchByMetadata(r) => &r.namespace,
            Op::Delete(r) => &r.namespace,
            Op::List(r) => &r.namespace,
            Op::Query(r) => &r.namespace,
            Op::Update(r) => &r.namespace,
            Op::DescribeNamespace(n) | Op::DeleteNamespace(n) => n,
            Op::CreateNamespace(r) => &r.name,
            // Index-wide (stats, the namespace list) and control-plane operations.
            _ => return None,
        })
    }

    /// The record IDs a fetch, a delete by ID or an upsert names, in the caller's order (duplicates kept);
    /// empty for every other operation.
    pub fn ids(&self) -> &[String] {
        match self {
            Op::Fetch { ids, .. } => ids,
            Op::Delete(d) => &d.ids,
            Op::Upsert(u) => u.ids(),
            _ => &[],
        }
    }

    /// Whether doing the operation twice leaves the same result as doing it once, so that a failure that may have
    /// reached Pinecone can be retried. A delete or update by metadata filter (or delete all) is not: records
    /// written between the two attempts would be changed too; `unsafe_writes_too` (`retry.retry_unsafe_writes`)
    /// counts them in anyway. Creating and deleting namespaces, backups and indexes never is.
    pub fn is_idempotent(&self, unsafe_writes_too: bool) -> bool {
        match self {
            Op::Upsert(_)
            | Op::Fetch { .. }
            | Op::FetchByMetadata(_)
            | Op::List(_)
            | Op::Query(_)
            | Op::DescribeIndexStats(_)
            | Op::ListNamespaces(_)
            | Op::DescribeNamespace(_)
            | Op::DescribeIndex
            | Op::ListIndexes
            | Op::ListIndexBackups(_)
            | Op::ListProjectBackups(_)
            | Op::DescribeBackup(_)
            | Op::ListRestoreJobs(_)
            | Op::DescribeRestoreJob(_) => true,
            Op::Update(u) => u.filter.is_none() || unsafe_writes_too,
            Op::Delete(d) => (!d.delete_all && d.filter.is_none()) || unsafe_writes_too,
            Op::CreateNamespace(_)
            | Op::DeleteNamespace(_)
            | Op::CreateBackup(_)
            | Op::DeleteBackup(_)
            | Op::CreateIndexFromBackup { .. } => false,
        }
    }

    /// Whether Pinecone gives the operation an LSN of its own (`x-pinecone-request-lsn`): the record writes.
    pub fn is_record_write(&self) -> bool {
        matches!(self, Op::Upsert(_) | Op::Update(_) | Op::Delete(_))
    }

    /// Whether the operation reads records of one namespace, and so may wait for that namespace to apply an LSN.
    pub fn is_namespace_read(&self) -> bool {
        matches!(
            self,
            Op::Query(_) | Op::Fetch { .. } | Op::FetchByMetadata(_) | Op::List(_)
        )
    }

    /// Whether the operation goes to an index's data plane (and so needs its host).
    /// Whether Pinecone's vectors API serves it (not namespaces or stats): what a 2026-07 document index refuses.
    pub fn is_vectors_api(&self) -> bool {
        matches!(
            self,
            Op::Upsert(_)
                | Op::Fetch { .. }
                | Op::FetchByMetadata(_)
                | Op::Delete(_)
                | Op::List(_)
                | Op::Query(_)
                | Op::Update(_)
        )
    }

    pub fn is_data_plane(&self) -> bool {
        !matches!(
            self,
            Op::DescribeIndex
                | Op::ListIndexes
                | Op::CreateBackup(_)
                | Op::ListIndexBackups(_)
                | Op::ListProjectBackups(_)
                | Op::DescribeBackup(_)
                | Op::DeleteBackup(_)
                | Op::CreateIndexFromBackup { .. }
                | Op::ListRestoreJobs(_)
                | Op::DescribeRestoreJob(_)
        )
    }
}

tokio::task_local! {
    /// How many times the retry layer has sent this request before (0: the first attempt); set only for traced
    /// calls, for the upstream attempt's span.
    pub static RESEND: u32;
}

/// What a call carries for tracing and scheduling: its request id, the caller's W3C trace context, who calls and at
/// which priority, and how many upstream requests it took. One per caller's call, shared (an `Arc` in
/// [`UpstreamCall`]) by its batches and retries.
#[derive(Debug, Default)]
pub struct CallContext {
    pub request_id: String,
    /// The caller's W3C trace context, passed upstream as it came when the call is not traced.
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    /// The span the call's children hang off, when `[tracing]` is on and the call is sampled.
    pub trace: Option<crate::telemetry::trace::SpanScope>,
    pub caller: Caller,
    pub attempts: std::sync::atomic::AtomicU32,
    /// The log sequence numbers Pinecone answered with, and whether a read was fresh enough.
    pub lsns: Lsns,
    /// Pinecone's own ids of the requests the call took (`x-pinecone-request-id`): what Pinecone's support asks for.
    pub pinecone_request_ids: PineconeRequestIds,
}

/// The `x-pinecone-request-id`s of a call's upstream requests, in the order they were answered: every attempt and
/// every batch has its own. At most [`PineconeRequestIds::MAX`] are kept (a 2,500-ID fetch takes a few; a call
/// retried through a long outage could take many), the first ones, and how many more there were.
#[derive(Debug, Default)]
pub struct PineconeRequestIds {
    ids: std::sync::Mutex<(Vec<Box<str>>, usize)>,
}

impl PineconeRequestIds {
    pub const MAX: usize = 8;

    pub fn note(&self, id: &str) {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        if ids.0.len() < Self::MAX {
            ids.0.push(id.into());
        } else {
            ids.1 += 1;
        }
    }

    /// Takes in another context's ids (a coalesced batch's).
    pub fn take_from(&self, other: &PineconeRequestIds) {
        let theirs = other.ids.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for id in &theirs.0 {
            self.note(id);
        }
        if theirs.1 > 0 {
            self.ids.lock().unwrap_or_else(|e| e.into_inner()).1 += theirs.1;
        }
    }

    /// The ids joined by `, `, and `(+N more)` when some were not kept; `None` when Pinecone sent none.
    pub fn joined(&self) -> Option<String> {
        let ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        if ids.0.is_empty() {
            return None;
        }
        let mut out = ids.0.join(", ");
        if ids.1 > 0 {
            out.push_str(&format!(" (+{} more)", ids.1));
        }
        Some(out)
    }
}

/// The log sequence numbers Pinecone answered a call with (serverless indexes, REST only): the highest LSN of its
/// writes (`x-pinecone-request-lsn`: a split write's highest batch), and the LSN its namespace had applied when it
/// answered a read (`x-pinecone-max-indexed-lsn`: a split read's lowest batch, which the whole answer holds at
/// least); and, for a read that asked for one, the verdict on its freshness.
#[derive(Debug, Default)]
pub struct Lsns {
    /// 0: none; else the LSN + 1 (an LSN may be 0: a namespace never written).
    request: std::sync::atomic::AtomicU64,
    indexed: std::sync::atomic::AtomicU64,
    verdict: std::sync::atomic::AtomicU8,
}

/// Whether a read that asked for an LSN reflects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Its namespace had applied the LSN asked for.
    Fresh,
    /// It had not when the wait ran out: the answer may miss the writes up to that LSN.
    Stale,
    /// Pinecone said nothing of what it had applied (a pod-based index, or an operation without the header).
    Unknown,
}

impl Freshness {
    pub fn name(self) -> &'static str {
        match self {
            Freshness::Fresh => "fresh",
            Freshness::Stale => "stale",
            Freshness::Unknown => "unknown",
        }
    }
}

impl Lsns {
    /// Notes what one upstream answer said.
    pub fn note(&self, request: Option<u64>, indexed: Option<u64>) {
        use std::sync::atomic::Ordering::Relaxed;
        if let Some(l) = request {
            self.request.fetch_max(l.saturating_add(1), Relaxed);
        }
        if let Some(l) = indexed {
            let v = l.saturating_add(1);
            let _ = self.indexed.fetch_update(Relaxed, Relaxed, |old| {
                Some(if old == 0 { v } else { old.min(v) })
            });
        }
    }

    /// Takes in what another context's answer said (a coalesced batch's).
    pub fn take_from(&self, other: &Lsns) {
        self.note(other.request(), other.indexed());
    }

    pub fn request(&self) -> Option<u64> {
        let v = self.request.load(std::sync::atomic::Ordering::Relaxed);
        v.checked_sub(1)
    }

    pub fn indexed(&self) -> Option<u64> {
        let v = self.indexed.load(std::sync::atomic::Ordering::Relaxed);
        v.checked_sub(1)
    }

    /// Before a read is repeated: only the new answer counts.
    pub fn forget_indexed(&self) {
        self.indexed.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn set_verdict(&self, f: Freshness) {
        let v = match f {
            Freshness::Fresh => 1,
            Freshness::Stale => 2,
            Freshness::Unknown => 3,
        };
        self.verdict.store(v, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn verdict(&self) -> Option<Freshness> {
        match self.verdict.load(std::sync::atomic::Ordering::Relaxed) {
            1 => Some(Freshness::Fresh),
            2 => Some(Freshness::Stale),
            3 => Some(Freshness::Unknown),
            _ => None,
        }
    }
}

/// Who makes a call, as the limiter's fair queue sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The configured caller's name, or `other` for every caller not configured (so the label set stays bounded);
    /// interned, so that it labels metrics without an allocation per call.
    pub label: &'static str,
    pub priority: Priority,
    /// Its share of turns among the callers waiting at the same priority (weighted fair queuing), at least 1.
    pub weight: u32,
}

impl Default for Caller {
    fn default() -> Self {
        Caller {
            label: OTHER_CALLER,
            priority: Priority::Default,
            weight: 1,
        }
    }
}

/// The label of every caller that is not configured.
pub const OTHER_CALLER: &str = "other";

/// Which waiting call takes a freed turn of a limit first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    Batch,
    Default,
    Interactive,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::Interactive, Priority::Default, Priority::Batch];

    pub fn name(self) -> &'static str {
        match self {
            Priority::Interactive => "interactive",
            Priority::Default => "default",
            Priority::Batch => "batch",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.name() == s)
    }
}

/// A call on its way upstream.
#[derive(Clone, Debug)]
pub struct UpstreamCall {
    /// The index it targets; empty for project-wide control-plane calls (list project backups, restore jobs…).
    pub index: String,
    pub op: Op,
    /// When the caller stops waiting; the upstream request must end by then.
    pub deadline: Instant,
    pub ctx: std::sync::Arc<CallContext>,
}

/// Pinecone's answer, one variant per response shape.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Upsert(p::UpsertResponse),
    Fetch(p::FetchResponse),
    FetchByMetadata(p::FetchByMetadataResponse),
    List(p::ListResponse),
    Query(p::QueryResponse),
    Update(p::UpdateResponse),
    DescribeIndexStats(p::DescribeIndexStatsResponse),
    ListNamespaces(p::ListNamespacesResponse),
    Namespace(p::NamespaceDescription),
    /// Operations whose answer carries nothing (delete, delete namespace, delete backup).
    Empty,
    /// Boxed: an index description is much larger than every other answer.
    Index(Box<c::IndexModel>),
    Indexes(c::IndexList),
    Backup(c::BackupModel),
    Backups(c::BackupList),
    Restore(c::CreateIndexFromBackupResponse),
    RestoreJob(c::RestoreJobModel),
    RestoreJobs(c::RestoreJobList),
}

impl Reply {
    /// The read units the answer says it cost (`usage.readUnits`), if it says.
    pub fn read_units(&self) -> Option<u64> {
        let usage = match self {
            Reply::Fetch(r) => r.usage.as_ref(),
            Reply::FetchByMetadata(r) => r.usage.as_ref(),
            Reply::List(r) => r.usage.as_ref(),
            Reply::Query(r) => r.usage.as_ref(),
            _ => None,
        };
        usage.and_then(|u| u.read_units).map(u64::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(ns: &str, ids: &[&str]) -> Op {
        Op::Upsert(crate::wire::upsert::UpsertBody::encode(&p::UpsertRequest {
            vectors: ids
                .iter()
                .map(|id| p::Vector {
                    id: id.to_string(),
                    values: vec![1.0],
                    ..Default::default()
                })
                .collect(),
            namespace: ns.into(),
        }))
    }

    #[test]
    fn namespace_is_the_callers_and_none_outside_namespaces() {
        let fetch = Op::Fetch {
            ids: vec!["a".into()],
            namespace: "ns".into(),
        };
        assert_eq!(fetch.namespace(), Some("ns"));
        assert_eq!(upsert("", &["a"]).namespace(), Some(""));
        assert_eq!(
            Op::CreateNamespace(p::CreateNamespaceRequest {
                name: "new".into(),
                ..Default::default()
            })
            .namespace(),
            Some("new")
        );
        assert_eq!(Op::DeleteNamespace("gone".into()).namespace(), Some("gone"));
        assert_eq!(Op::DescribeIndex.namespace(), None);
        assert_eq!(Op::DescribeIndexStats(Default::default()).namespace(), None);
    }

    #[test]
    fn ids_are_those_named_in_the_callers_order() {
        let fetch = Op::Fetch {
            ids: vec!["b".into(), "a".into(), "b".into()],
            namespace: String::new(),
        };
        assert_eq!(fetch.ids(), ["b", "a", "b"]);
        assert_eq!(upsert("ns", &["x", "y"]).ids(), ["x", "y"]);
        let delete = Op::Delete(p::DeleteRequest {
            ids: vec!["d".into()],
            ..Default::default()
        });
        assert_eq!(delete.ids(), ["d"]);
        assert!(Op::Query(Default::default()).ids().is_empty());
    }

    #[test]
    fn writes_by_filter_are_not_idempotent_unless_allowed() {
        let by_filter = Op::Delete(p::DeleteRequest {
            filter: Some(Default::default()),
            ..Default::default()
        });
        assert!(!by_filter.is_idempotent(false));
        assert!(by_filter.is_idempotent(true));
        let all = Op::Delete(p::DeleteRequest {
            delete_all: true,
            ..Default::default()
        });
        assert!(!all.is_idempotent(false));
        let by_id = Op::Delete(p::DeleteRequest {
            ids: vec!["a".into()],
            ..Default::default()
        });
        assert!(by_id.is_idempotent(false));
        let update = Op::Update(p::UpdateRequest {
            filter: Some(Default::default()),
            ..Default::default()
        });
        assert!(!update.is_idempotent(false));
        assert!(upsert("ns", &["a"]).is_idempotent(false));
        assert!(!Op::CreateBackup(Default::default()).is_idempotent(true));
        assert!(!Op::DeleteNamespace("ns".into()).is_idempotent(true));
    }

    #[test]
    fn a_split_write_keeps_its_highest_lsn_and_a_split_read_its_lowest() {
        let l = Lsns::default();
        assert_eq!((l.request(), l.indexed()), (None, None));
        l.note(Some(5), Some(7));
        l.note(Some(3), Some(0));
        l.note(None, Some(9));
        assert_eq!((l.request(), l.indexed()), (Some(5), Some(0)));
        l.forget_indexed();
        assert_eq!((l.request(), l.indexed()), (Some(5), None));
        let other = Lsns::default();
        other.take_from(&l);
        assert_eq!(other.request(), Some(5));
    }

    #[test]
    fn pinecone_request_ids_keep_the_first_ones_and_count_the_rest() {
        let ids = PineconeRequestIds::default();
        assert_eq!(ids.joined(), None);
        ids.note("a");
        ids.note("b");
        assert_eq!(ids.joined().as_deref(), Some("a, b"));
        for n in 0..10 {
            ids.note(&format!("x{n}"));
        }
        let joined = ids.joined().unwrap_or_default();
        assert!(joined.starts_with("a, b, x0"), "{joined}");
        assert!(joined.ends_with("x5 (+4 more)"), "{joined}");
        let member = PineconeRequestIds::default();
        member.note("own");
        member.take_from(&ids);
        let joined = member.joined().unwrap_or_default();
        assert!(joined.starts_with("own, a, b"), "{joined}");
        assert!(joined.ends_with("x4 (+5 more)"), "{joined}");
    }
}
