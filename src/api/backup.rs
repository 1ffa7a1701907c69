//! `pinecone_gateway.v1.BackupService`: Pinecone's control-plane backups, restores and describe index.

use super::convert as cv;
use super::validate::{self as v, Checked, Invalid};
use super::{Gateway, Target, expect_empty, expect_reply};
use crate::call::Op;
use crate::pb::gateway as g;
use crate::pb::gateway::backup_service_server::BackupService;
use crate::wire::control as c;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct BackupApi {
    gw: Gateway,
}

impl BackupApi {
    pub fn new(gw: Gateway) -> Self {
        BackupApi { gw }
    }
}

fn page(limit: Option<u32>, token: &Option<String>) -> Checked<c::PageParams> {
    v::limit("limit", limit, v::MAX_BACKUP_LIST_LIMIT)?;
    Ok(c::PageParams {
        limit,
        pagination_token: token.clone().filter(|t| !t.is_empty()),
        include_deleted: false,
    })
}

fn deletion_protection(value: &Option<String>) -> Checked {
    match value.as_deref() {
        None | Some("enabled") | Some("disabled") => Ok(()),
        Some(other) => Err(Invalid(format!(
            "deletion_protection: `{other}` must be \"enabled\" or \"disabled\""
        ))),
    }
}

#[tonic::async_trait]
impl BackupService for BackupApi {
    async fn create_backup(
        &self,
        req: Request<g::CreateBackupRequest>,
    ) -> Result<Response<g::Backup>, Status> {
        let build = |r: g::CreateBackupRequest| {
            // Pinecone documents no rule for backup names (its own examples use `_`): none is applied here.
            v::index_name("index_name", &r.index_name)?;
            let body = c::CreateBackupRequest {
                name: r.name,
                description: r.description,
            };
            Ok((Target::Index(r.index_name), Op::CreateBackup(body)))
        };
        self.gw
            .handle(
                "CreateBackup",
                req,
                |_| String::new(),
                build,
                |reply| expect_reply!(reply, Backup, "create_backup").map(cv::backup_from_wire),
            )
            .await
    }

    async fn describe_backup(
        &self,
        req: Request<g::DescribeBackupRequest>,
    ) -> Result<Response<g::Backup>, Status> {
        let build = |r: g::DescribeBackupRequest| {
            v::opaque_id("backup_id", &r.backup_id)?;
            Ok((Target::ByAnswer, Op::DescribeBackup(r.backup_id)))
        };
        self.gw
            .handle(
                "DescribeBackup",
                req,
                |_| String::new(),
                build,
                |reply| expect_reply!(reply, Backup, "describe_backup").map(cv::backup_from_wire),
            )
            .await
    }

    async fn list_index_backups(
        &self,
        req: Request<g::ListIndexBackupsRequest>,
    ) -> Result<Response<g::ListBackupsResponse>, Status> {
        let build = |r: g::ListIndexBackupsRequest| {
            v::index_name("index_name", &r.index_name)?;
            let mut p = page(r.limit, &r.pagination_token)?;
            p.include_deleted = r.include_deleted.unwrap_or(false);
            Ok((Target::Index(r.index_name), Op::ListIndexBackups(p)))
        };
        self.gw
            .handle(
                "ListIndexBackups",
                req,
                |_| String::new(),
                build,
                |reply| expect_reply!(reply, Backups, "list_index_backups").map(cv::backups_page),
            )
            .await
    }

    async fn list_project_backups(
        &self,
        req: Request<g::ListProjectBackupsRequest>,
    ) -> Result<Response<g::ListBackupsResponse>, Status> {
        let build = |r: g::ListProjectBackupsRequest| {
            let p = page(r.limit, &r.pagination_token)?;
            Ok((Target::Project, Op::ListProjectBackups(p)))
        };
        self.gw
            .handle(
                "ListProjectBackups",
                req,
                |_| String::new(),
                build,
                |reply| expect_reply!(reply, Backups, "list_project_backups").map(cv::backups_page),
            )
            .await
    }

    async fn delete_backup(
        &self,
        req: Request<g::DeleteBackupRequest>,
    ) -> Result<Response<g::DeleteBackupResponse>, Status> {
        let build = |r: g::DeleteBackupRequest| {
            v::opaque_id("backup_id", &r.backup_id)?;
            Ok((
                Target::Backup(r.backup_id.clone()),
                Op::DeleteBackup(r.backup_id),
            ))
        };
        self.gw
            .handle(
                "DeleteBackup",
                req,
                |_| String::new(),
                build,
                |reply| expect_empty(reply, "delete_backup").map(|_| g::DeleteBackupResponse {}),
            )
            .await
    }

    async fn create_index_from_backup(
        &self,
        req: Request<g::CreateIndexFromBackupRequest>,
    ) -> Result<Response<g::CreateIndexFromBackupResponse>, Status> {
        let build = |r: g::CreateIndexFromBackupRequest| {
            v::opaque_id("backup_id", &r.backup_id)?;
            v::index_name("name", &r.name)?;
            deletion_protection(&r.deletion_protection)?;
            let target = Target::Restore {
                backup_id: r.backup_id.clone(),
                index: r.name.clone(),
            };
            let request = c::CreateIndexFromBackupRequest {
                name: r.name,
                tags: (!r.tags.is_empty()).then(|| r.tags.into_iter().collect()),
                deletion_protection: r.deletion_protection,
            };
            let op = Op::CreateIndexFromBackup {
                backup_id: r.backup_id,
                request,
            };
            Ok((target, op))
        };
        self.gw
            .handle(
                "CreateIndexFromBackup",
                req,
                |_| String::new(),
                build,
                |reply| {
                    expect_reply!(reply, Restore, "create_index_from_backup")
                        .map(cv::restore_from_wire)
                },
            )
            .await
    }

    async fn describe_restore_job(
        &self,
        req: Request<g::DescribeRestoreJobRequest>,
    ) -> Result<Response<g::RestoreJob>, Status> {
        let build = |r: g::DescribeRestoreJobRequest| {
            v::opaque_id("job_id", &r.job_id)?;
            Ok((Target::ByAnswer, Op::DescribeRestoreJob(r.job_id)))
        };
        self.gw
            .handle(
                "DescribeRestoreJob",
                req,
                |_| String::new(),
                build,
                |reply| {
                    expect_reply!(reply, RestoreJob, "describe_restore_job")
                        .map(cv::restore_job_from_wire)
                },
            )
            .await
    }

    async fn list_restore_jobs(
        &self,
        req: Request<g::ListRestoreJobsRequest>,
    ) -> Result<Response<g::ListRestoreJobsResponse>, Status> {
        let build = |r: g::ListRestoreJobsRequest| {
            let p = page(r.limit, &r.pagination_token)?;
            Ok((Target::Project, Op::ListRestoreJobs(p)))
        };
        self.gw
            .handle(
                "ListRestoreJobs",
                req,
                |_| String::new(),
                build,
                |reply| {
                    expect_reply!(reply, RestoreJobs, "list_restore_jobs")
                        .map(cv::restore_jobs_page)
                },
            )
            .await
    }

    async fn describe_index(
        &self,
        req: Request<g::DescribeIndexRequest>,
    ) -> Result<Response<g::Index>, Status> {
        let build = |r: g::DescribeIndexRequest| {
            v::index_name("name", &r.name)?;
            Ok((Target::Index(r.name), Op::DescribeIndex))
        };
        self.gw
            .handle(
                "DescribeIndex",
                req,
                |_| String::new(),
                build,
                |reply| {
                    expect_reply!(reply, Index, "describe_index").map(|i| cv::index_from_wire(*i))
                },
            )
            .await
    }
}

impl BackupApi {
    /// Every index of the project (`GET /indexes`), for the REST front door's list indexes: Pinecone's gRPC API has
    /// no such call, so neither does BackupService. A caller limited to some indexes is refused, as for every
    /// project-wide call.
    pub async fn list_indexes(&self, req: Request<()>) -> Result<Response<Vec<g::Index>>, Status> {
        self.gw
            .handle(
                "ListIndexes",
                req,
                |_| String::new(),
                |()| Ok((Target::Project, Op::ListIndexes)),
                |reply| {
                    expect_reply!(reply, Indexes, "list_indexes")
                        .map(|l| l.indexes.into_iter().map(cv::index_from_wire).collect())
                },
            )
            .await
    }
}
