//! Error answers read into [`UpstreamError`] (the type is the call vocabulary's: `crate::call::error`).

use crate::call::UpstreamError;

impl UpstreamError {
    /// An error answer whose body Pinecone (or a proxy in front of it) wrote.
    pub fn from_answer(status: u16, body: &[u8], retry_after: Option<std::time::Duration>) -> Self {
        let parsed = crate::wire::error::parse(status, body);
        UpstreamError::Status {
            status,
            message: parsed.message,
            grpc_code: parsed.grpc_code,
            retry_after,
        }
    }
}
