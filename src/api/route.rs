//! Which index a call targets, and when its caller stops waiting.
//!
//! The index: metadata `pinecone-index`; else the non-empty `service-name` that the official 7.x/8.x Python clients
//! send (the name given to `Index(name=…)`); else the configured default index; else INVALID_ARGUMENT naming the
//! metadata key. The deadline: the caller's `grpc-timeout`, else the configured default per-call timeout.

use super::validate::{self, Invalid};
use std::time::Duration;
use tonic::metadata::MetadataMap;

pub const INDEX_METADATA: &str = "pinecone-index";
/// Request ids: taken from the call (`x-request-id`, else the `request_id` the official Python clients send), or
/// made here; passed upstream as `X-Request-Id` and returned in the response metadata.
pub const REQUEST_ID_METADATA: &str = "x-request-id";
const PYTHON_REQUEST_ID_METADATA: &str = "request_id";
pub const SERVICE_NAME_METADATA: &str = "service-name";

pub fn index(md: &MetadataMap, default_index: Option<&str>) -> Result<String, Invalid> {
    let from = |key: &str| {
        md.get(key)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| (key.to_string(), v.to_string()))
    };
    let found = from(INDEX_METADATA)
        .or_else(|| from(SERVICE_NAME_METADATA))
        .or_else(|| default_index.map(|d| ("default_index".to_string(), d.to_string())));
    match found {
        Some((source, name)) => {
            validate::index_name(&source, &name)?;
            Ok(name)
        }
        None => Err(Invalid(format!(
            "no index for this call: set the `{INDEX_METADATA}` metadata to an index name \
             (or configure `upstream.default_index`)"
        ))),
    }
}

/// The call's request id and W3C trace context; with tracing on, its span (if sampled) named `method`.
pub fn context(
    md: &MetadataMap,
    tracer: Option<&crate::telemetry::trace::Tracer>,
    method: &'static str,
) -> crate::call::CallContext {
    let usable = |key: &str, max: usize| {
        md.get(key)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= max
                    && v.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
            })
            .map(str::to_string)
    };
    let request_id = usable(REQUEST_ID_METADATA, 128)
        .filter(|v| !v.contains(' '))
        .or_else(|| usable(PYTHON_REQUEST_ID_METADATA, 128).filter(|v| !v.contains(' ')))
        .unwrap_or_else(crate::telemetry::new_id);
    // version-traceid-parentid-flags, e.g. 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
    let traceparent =
        usable("traceparent", 55).filter(|t| t.len() == 55 && t.split('-').count() == 4);
    // W3C: at most 32 list members of at most 256 characters; 512 is what a vendor is asked to pass on.
    let tracestate = traceparent.as_ref().and(usable("tracestate", 512));
    let trace = tracer.and_then(|t| {
        t.start_call(
            method,
            crate::telemetry::trace::parent_from(traceparent.as_deref(), tracestate.as_deref()),
        )
    });
    crate::call::CallContext {
        request_id,
        traceparent,
        tracestate,
        trace,
        caller: Default::default(),
        attempts: Default::default(),
        lsns: Default::default(),
        pinecone_request_ids: Default::default(),
    }
}

/// The caller's deadline from `grpc-timeout` (`<digits><unit>`, unit one of H M S m u n), else `default`.
pub fn timeout(md: &MetadataMap, default: Duration) -> Duration {
    md.get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .unwrap_or(default)
}

fn parse_grpc_timeout(s: &str) -> Option<Duration> {
    if s.len() < 2 || s.len() > 9 {
        return None;
    }
    let (digits, unit) = s.split_at(s.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Metadata of these pairs (also for the other modules' tests).
    pub(crate) fn md(pairs: &[(&'static str, &'static str)]) -> MetadataMap {
        let mut m = MetadataMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn index_comes_from_metadata_then_service_name_then_default() {
        let both = md(&[("pinecone-index", "a"), ("service-name", "b")]);
        assert_eq!(index(&both, Some("c")).unwrap(), "a");
        assert_eq!(
            index(&md(&[("service-name", "b")]), Some("c")).unwrap(),
            "b"
        );
        assert_eq!(index(&md(&[("service-name", "")]), Some("c")).unwrap(), "c");
        let e = index(&md(&[]), None).unwrap_err();
        assert!(e.0.contains("pinecone-index"));
        let e = index(&md(&[("pinecone-index", "Bad_Name")]), None).unwrap_err();
        assert!(e.0.starts_with("pinecone-index:"), "{}", e.0);
    }

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout("20S"), Some(Duration::from_secs(20)));
        assert_eq!(parse_grpc_timeout("150m"), Some(Duration::from_millis(150)));
        assert_eq!(parse_grpc_timeout("5x"), None);
        assert_eq!(
            timeout(&md(&[]), Duration::from_secs(7)),
            Duration::from_secs(7)
        );
    }
}
