//! The one place where an internal error becomes a gRPC `Status`.
//!
//! A Pinecone error whose data-plane body names a gRPC status (`{"code": 5, …}`) ends with that status: it is what
//! Pinecone's own gRPC API would have answered. Otherwise the HTTP status decides: 400/422/413 INVALID_ARGUMENT,
//! 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 NOT_FOUND, 409 ALREADY_EXISTS, 402/412 FAILED_PRECONDITION,
//! 405/501 UNIMPLEMENTED, 408/504 DEADLINE_EXCEEDED, 429 RESOURCE_EXHAUSTED, other 5xx UNAVAILABLE, anything else
//! UNKNOWN. Connection failures and an index without a host are UNAVAILABLE; deadlines DEADLINE_EXCEEDED; malformed
//! answers INTERNAL. Pinecone's own message is kept. A local rate-limit rejection and Pinecone's throttling are
//! RESOURCE_EXHAUSTED with retry advice, never UNAVAILABLE.

use super::GatewayError;
use crate::call::UpstreamError;
use crate::stack::CallError;
use std::time::Duration;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub fn to_status(err: GatewayError) -> Status {
    match err {
        GatewayError::Invalid(e) => Status::invalid_argument(e.0),
        GatewayError::UnexpectedReply(op) => {
            Status::internal(format!("unexpected answer from Pinecone for {op}"))
        }
        GatewayError::Unauthenticated(m) => Status::unauthenticated(m),
        e @ GatewayError::NotFresh { .. } => Status::failed_precondition(e.to_string()),
        GatewayError::PermissionDenied(m) => Status::permission_denied(m),
        GatewayError::Draining => {
            Status::unavailable("the gateway is shutting down; call another replica")
        }
        GatewayError::Overloaded(max) => throttled(
            format!(
                "the gateway is serving its maximum of {max} concurrent calls (server.max_concurrent_calls)"
            ),
            Duration::from_millis(100),
        ),
        GatewayError::OverloadedFor {
            priority,
            share_percent,
            max,
        } => throttled(
            format!(
                "the gateway is serving {share_percent}% of its maximum of {max} concurrent calls \
                 (server.max_concurrent_calls), all that {priority} calls may take; the rest is kept for higher \
                 priorities"
            ),
            Duration::from_millis(100),
        ),
        GatewayError::Call(CallError::Limited(r)) => throttled(r.to_string(), r.retry_after),
        GatewayError::Quota {
            message,
            retry_after,
        } => throttled(message, retry_after),
        GatewayError::Call(e @ CallError::DeadlineWhileWaiting { .. }) => {
            Status::deadline_exceeded(e.to_string())
        }
        GatewayError::Call(e @ CallError::Abandoned) => Status::unavailable(e.to_string()),
        GatewayError::Call(CallError::Partial {
            done,
            total,
            failed_ids,
            cause,
        }) => {
            // The code and retry advice of what failed, and what was done.
            let inner = to_status(GatewayError::Call(*cause));
            const SHOWN: usize = 20;
            let mut listed = failed_ids
                .iter()
                .take(SHOWN)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if failed_ids.len() > SHOWN {
                listed.push_str(&format!(", … ({} more)", failed_ids.len() - SHOWN));
            }
            let message = format!(
                "split call partly applied: {done} of {total} IDs done, {} failed [{listed}]; repeating the call is \
                 safe: {}",
                failed_ids.len(),
                inner.message()
            );
            Status::with_details_and_metadata(
                inner.code(),
                message,
                inner.details().to_vec().into(),
                inner.metadata().clone(),
            )
        }
        GatewayError::Call(CallError::Upstream(e)) => match &e {
            UpstreamError::Status {
                status,
                grpc_code,
                retry_after,
                ..
            } => {
                let code = grpc_code
                    .map(Code::from_i32)
                    .unwrap_or_else(|| http_code(*status));
                if code == Code::ResourceExhausted {
                    throttled(e.to_string(), retry_after.unwrap_or(Duration::from_secs(1)))
                } else {
                    Status::new(code, e.to_string())
                }
            }
            UpstreamError::Connect { .. }
            | UpstreamError::Broken { .. }
            | UpstreamError::NotReady { .. } => Status::unavailable(e.to_string()),
            UpstreamError::IndexFailed { .. } | UpstreamError::DocumentIndex { .. } => {
                Status::failed_precondition(e.to_string())
            }
            UpstreamError::NotInVersion { .. } => Status::invalid_argument(e.to_string()),
            UpstreamError::Timeout => Status::deadline_exceeded(e.to_string()),
            // A cap until the month ends: no retry advice a client could act on.
            UpstreamError::MonthlyCap { .. } => Status::resource_exhausted(e.to_string()),
            UpstreamError::Malformed { .. } => Status::internal(e.to_string()),
            UpstreamError::WrongDimension { .. } => Status::invalid_argument(e.to_string()),
        },
    }
}

/// RESOURCE_EXHAUSTED with retry advice in both forms clients read: a `google.rpc.RetryInfo` detail and the
/// `grpc-retry-pushback-ms` trailer.
pub(crate) fn throttled(message: String, retry_after: Duration) -> Status {
    let mut status = Status::with_error_details(
        Code::ResourceExhausted,
        message,
        ErrorDetails::with_retry_info(Some(retry_after)),
    );
    if let Ok(v) = retry_after.as_millis().max(1).to_string().parse() {
        status.metadata_mut().insert("grpc-retry-pushback-ms", v);
    }
    status
}

fn http_code(status: u16) -> Code {
    match status {
        400 | 413 | 422 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::AlreadyExists,
        402 | 412 => Code::FailedPrecondition,
        405 | 501 => Code::Unimplemented,
        429 => Code::ResourceExhausted,
        408 | 504 => Code::DeadlineExceeded,
        500..=599 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(status: u16) -> Status {
        answered(status, None)
    }

    fn answered(status: u16, grpc_code: Option<i32>) -> Status {
        to_status(GatewayError::Call(CallError::Upstream(
            UpstreamError::Status {
                status,
                message: "m".into(),
                grpc_code,
                retry_after: None,
            },
        )))
    }

    #[test]
    fn http_statuses_map_as_documented() {
        for (http, code) in [
            (400, Code::InvalidArgument),
            (422, Code::InvalidArgument),
            (401, Code::Unauthenticated),
            (403, Code::PermissionDenied),
            (404, Code::NotFound),
            (409, Code::AlreadyExists),
            (412, Code::FailedPrecondition),
            (429, Code::ResourceExhausted),
            (402, Code::FailedPrecondition),
            (405, Code::Unimplemented),
            (408, Code::DeadlineExceeded),
            (413, Code::InvalidArgument),
            (500, Code::Unavailable),
            (503, Code::Unavailable),
            (504, Code::DeadlineExceeded),
            (418, Code::Unknown),
        ] {
            assert_eq!(upstream(http).code(), code, "HTTP {http}");
        }
        let s = to_status(GatewayError::Call(UpstreamError::Timeout.into()));
        assert_eq!(s.code(), Code::DeadlineExceeded);
    }

    #[test]
    fn a_data_plane_body_names_the_status() {
        assert_eq!(answered(500, Some(13)).code(), Code::Internal);
        assert_eq!(answered(400, Some(9)).code(), Code::FailedPrecondition);
        assert_eq!(answered(404, Some(5)).code(), Code::NotFound);
        let s = answered(400, Some(8));
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert!(s.metadata().get("grpc-retry-pushback-ms").is_some());
    }

    #[test]
    fn an_index_without_a_host_is_unavailable_naming_it() {
        let s = to_status(GatewayError::Call(CallError::Upstream(
            UpstreamError::NotReady {
                index: "restored".into(),
                state: "Initializing".into(),
            },
        )));
        assert_eq!(s.code(), Code::Unavailable);
        assert!(s.message().contains("`restored`") && s.message().contains("Initializing"));
    }

    #[test]
    fn local_failures_say_they_are_local() {
        let s = to_status(GatewayError::Call(CallError::DeadlineWhileWaiting {
            waiting_for: "its coalesced request",
        }));
        assert_eq!(s.code(), Code::DeadlineExceeded);
        assert!(
            s.message().contains("waited for its coalesced request"),
            "{s:?}"
        );
        assert!(!s.message().contains("Pinecone"), "{s:?}");
        let s = to_status(GatewayError::Call(CallError::Abandoned));
        assert_eq!(s.code(), Code::Unavailable);
        assert!(
            s.message().contains("abandoned the coalesced request"),
            "{s:?}"
        );
    }

    #[test]
    fn pinecone_message_is_kept() {
        let s = to_status(GatewayError::Call(CallError::Upstream(
            UpstreamError::Status {
                status: 400,
                message: "Vector dimension 3 does not match the dimension of the index 4".into(),
                grpc_code: Some(3),
                retry_after: None,
            },
        )));
        assert!(
            s.message()
                .contains("does not match the dimension of the index 4")
        );
    }

    #[test]
    fn throttling_carries_retry_advice_in_both_forms() {
        let s = to_status(GatewayError::Call(CallError::Limited(
            crate::stack::limit::Rejection {
                message: "rate limit: fetch allows 100 requests/s per index".into(),
                retry_after: Duration::from_millis(250),
            },
        )));
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(s.metadata().get("grpc-retry-pushback-ms").unwrap(), "250");
        assert_eq!(
            s.get_details_retry_info().unwrap().retry_delay,
            Some(Duration::from_millis(250))
        );
        let s = upstream(429);
        assert_eq!(s.metadata().get("grpc-retry-pushback-ms").unwrap(), "1000");
    }
}
