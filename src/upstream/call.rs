//! The value that travels from the gRPC surface through the tower stack to the REST client: one Pinecone operation,
//! the index it targets and the caller's deadline. Nothing here knows about tonic or HTTP.

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

    /// Whether the operation goes to an index's data plane (and so needs its host).
    pub fn is_data_plane(&self) -> bool {
        !matches!(
            self,
            Op::DescribeIndex
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

/// What a call carries for tracing: its request id, the caller's W3C trace context, and how many upstream requests
/// it took (shared by the batches and retries of one call).
#[derive(Clone, Debug, Default)]
pub struct CallContext {
    pub request_id: String,
    pub traceparent: Option<String>,
    pub attempts: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

/// A call on its way upstream.
#[derive(Clone, Debug)]
pub struct UpstreamCall {
    /// The index it targets; empty for project-wide control-plane calls (list project backups, restore jobs…).
    pub index: String,
    pub op: Op,
    /// When the caller stops waiting; the upstream request must end by then.
    pub deadline: Instant,
    pub ctx: CallContext,
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
    Index(c::IndexModel),
    Backup(c::BackupModel),
    Backups(c::BackupList),
    Restore(c::CreateIndexFromBackupResponse),
    RestoreJob(c::RestoreJobModel),
    RestoreJobs(c::RestoreJobList),
}
