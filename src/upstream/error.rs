//! What can go wrong upstream. The messages never contain the API key: it only ever travels in a header.

/// An upstream failure.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum UpstreamError {
    /// Pinecone answered with an error status; `message` is Pinecone's own.
    #[error("Pinecone answered {status}: {message}")]
    Status {
        status: u16,
        message: String,
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
    /// Pinecone answered 2xx with a body that is not the documented shape.
    #[error("malformed answer from Pinecone for {operation}: {detail}")]
    Malformed {
        operation: &'static str,
        detail: String,
    },
}
