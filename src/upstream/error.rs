//! Error answers read into [`UpstreamError`] (the type is the call vocabulary's: `crate::call::error`).

use crate::call::UpstreamError;

impl UpstreamError {
    /// An error answer whose body Pinecone (or a proxy in front of it) wrote.
    pub fn from_answer(status: u16, body: &[u8], retry_after: Option<std::time::Duration>) -> Self {
        let parsed = crate::wire::error::parse(status, body);
        if let Some(kind) = monthly_cap(status, parsed.grpc_code, &parsed.message) {
            crate::telemetry::metrics::counter(
                crate::telemetry::metrics::UPSTREAM_QUOTA_EXHAUSTED,
                &[("kind", kind)],
            )
            .increment(1);
            return UpstreamError::MonthlyCap {
                kind,
                message: parsed.message,
            };
        }
        UpstreamError::Status {
            status,
            message: parsed.message,
            grpc_code: parsed.grpc_code,
            retry_after,
        }
    }
}

/// Which monthly cap a refusal says is reached (`read` or `write` units), if it is one: Pinecone's 429 (REST) or
/// RESOURCE_EXHAUSTED (its data-plane body's code 8) whose message says "... unit limit for the current month".
fn monthly_cap(status: u16, grpc_code: Option<i32>, message: &str) -> Option<&'static str> {
    if status != 429 && grpc_code != Some(8) {
        return None;
    }
    let m = message.to_ascii_lowercase();
    if !m.contains("unit limit for the current month") {
        return None;
    }
    Some(if m.contains("write unit") {
        "write"
    } else if m.contains("read unit") {
        "read"
    } else {
        "unknown"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monthly_caps_are_told_from_rate_limits() {
        let write = "Request failed. You've reached your write unit limit for the current month (2000000). To continue \
                     writing data, upgrade your plan.";
        assert_eq!(monthly_cap(429, Some(8), write), Some("write"));
        let read = "Request failed. You've reached your read unit limit for the current month.";
        assert_eq!(monthly_cap(429, None, read), Some("read"));
        let qps = "Request failed. You've reached the query QPS limit for namespace ns (100 QPS).";
        assert_eq!(monthly_cap(429, Some(8), qps), None);
        assert_eq!(monthly_cap(400, None, read), None);
    }
}
