//! What can go wrong upstream, in the words every layer uses: the retry layer reads whether a request may have
//! reached Pinecone, the limiter whether Pinecone throttled it, `api::status` what to tell the caller. The REST
//! client (`upstream/`) makes them. The messages never contain the API key: it only ever travels in a header.

/// An upstream failure.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum UpstreamError {
    /// Pinecone answered with an error status; `message` is Pinecone's own.
    #[error("Pinecone answered {status}: {message}")]
    Status {
        status: u16,
        message: String,
        /// The gRPC status a data-plane error body names (`{"code": 5, …}`): what Pinecone's own gRPC API answers.
        grpc_code: Option<i32>,
        /// Pinecone's `Retry-After`, when it sent one.
        retry_after: Option<std::time::Duration>,
    },
    /// No connection could be made: the request cannot have reached Pinecone.
    #[error("cannot reach Pinecone at {host}: {detail}")]
    Connect { host: String, detail: String },
    /// The connection broke after the request may have been sent: Pinecone may have applied it.
    #[error("connection to Pinecone at {host} failed: {detail}")]
    Broken { host: String, detail: String },
    /// The caller's deadline passed before Pinecone answered.
    #[error("no answer from Pinecone before the deadline")]
    Timeout,
    /// The index exists but has no host yet (it is initializing, e.g. being restored from a backup); nothing was
    /// sent. The host is looked up again on the next call.
    #[error(
        "index `{index}` has no host yet (its state is {state}); calls to it work once it is ready \
         (poll BackupService.DescribeIndex)"
    )]
    NotReady { index: String, state: String },
    /// The index has no host and will not get one (its initialization failed, or it is being deleted): retrying
    /// cannot help. Nothing was sent.
    #[error(
        "index `{index}` cannot serve calls: its state is {state}, from which it does not become ready \
         (recreate it, or restore it again from its backup)"
    )]
    IndexFailed { index: String, state: String },
    /// An API 2026-07 document index (its schema has no `_values` or `_sparse_values` field): Pinecone's vectors API
    /// does not serve it. Nothing was sent.
    #[error(
        "index `{index}` is a document index (its schema has no `_values` or `_sparse_values` field): Pinecone's \
         vectors API, which this call is, does not serve it; nothing was sent"
    )]
    DocumentIndex { index: String },
    /// A request field that the configured API version does not have; nothing was sent.
    #[error("{field}: needs upstream.api_version 2026-07 or later; the gateway speaks {version}")]
    NotInVersion {
        field: &'static str,
        version: &'static str,
    },
    /// The vectors are not as long as the index's dimension (known from its description); nothing was sent.
    #[error(
        "{field}: {got} values, but index `{index}` has dimension {dimension}; nothing was sent"
    )]
    WrongDimension {
        field: String,
        got: u32,
        index: String,
        dimension: u32,
    },
    /// Pinecone's 429 for a plan's monthly read or write units (Starter and Builder plans): a cap until the calendar
    /// month ends or the plan changes, not a rate limit, so it is not retried and carries no retry advice.
    #[error(
        "Pinecone's monthly {kind} unit limit for this project's plan is reached; calls that use {kind} units \
         fail until the next calendar month (UTC) or a plan upgrade (Pinecone said: {message})"
    )]
    MonthlyCap { kind: &'static str, message: String },
    /// Pinecone answered 2xx with a body that is not the documented shape.
    #[error("malformed answer from Pinecone for {operation}: {detail}")]
    Malformed {
        operation: &'static str,
        detail: String,
    },
}
