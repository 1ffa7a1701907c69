//! The one place where an internal error becomes a gRPC `Status`.
//!
//! Pinecone's HTTP statuses: 400/422 INVALID_ARGUMENT, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 NOT_FOUND,
//! 409 ALREADY_EXISTS, 412 FAILED_PRECONDITION, 429 RESOURCE_EXHAUSTED, 5xx UNAVAILABLE; connection failures
//! UNAVAILABLE; deadlines DEADLINE_EXCEEDED; malformed answers INTERNAL. Pinecone's own message is kept.

use super::GatewayError;
use crate::upstream::UpstreamError;
use tonic::{Code, Status};

pub fn to_status(err: GatewayError) -> Status {
    match err {
        GatewayError::Invalid(e) => Status::invalid_argument(e.0),
        GatewayError::UnexpectedReply(op) => {
            Status::internal(format!("unexpected answer from Pinecone for {op}"))
        }
        GatewayError::Upstream(e) => {
            let code = match &e {
                UpstreamError::Status { status, .. } => http_code(*status),
                UpstreamError::Connect { .. } | UpstreamError::Broken { .. } => Code::Unavailable,
                UpstreamError::Timeout => Code::DeadlineExceeded,
                UpstreamError::Malformed { .. } => Code::Internal,
            };
            Status::new(code, e.to_string())
        }
    }
}

fn http_code(status: u16) -> Code {
    match status {
        400 | 422 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::AlreadyExists,
        412 => Code::FailedPrecondition,
        429 => Code::ResourceExhausted,
        408 | 504 => Code::DeadlineExceeded,
        500..=599 => Code::Unavailable,
        402 => Code::FailedPrecondition,
        _ => Code::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(status: u16) -> Code {
        to_status(GatewayError::Upstream(UpstreamError::Status {
            status,
            message: "m".into(),
        }))
        .code()
    }

    #[test]
    fn http_statuses_map_as_documented() {
        assert_eq!(code(400), Code::InvalidArgument);
        assert_eq!(code(422), Code::InvalidArgument);
        assert_eq!(code(401), Code::Unauthenticated);
        assert_eq!(code(403), Code::PermissionDenied);
        assert_eq!(code(404), Code::NotFound);
        assert_eq!(code(409), Code::AlreadyExists);
        assert_eq!(code(412), Code::FailedPrecondition);
        assert_eq!(code(429), Code::ResourceExhausted);
        assert_eq!(code(500), Code::Unavailable);
        assert_eq!(code(503), Code::Unavailable);
        let s = to_status(GatewayError::Upstream(UpstreamError::Timeout));
        assert_eq!(s.code(), Code::DeadlineExceeded);
    }

    #[test]
    fn pinecone_message_is_kept() {
        let s = to_status(GatewayError::Upstream(UpstreamError::Status {
            status: 400,
            message: "Vector dimension 3 does not match the dimension of the index 4".into(),
        }));
        assert!(
            s.message()
                .contains("does not match the dimension of the index 4")
        );
    }
}
