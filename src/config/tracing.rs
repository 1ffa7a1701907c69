//! `[tracing]`: OpenTelemetry traces, exported over OTLP/gRPC. Off unless `otlp_endpoint` is set.

use super::{Problems, at_least, invalid};
use crate::telemetry::trace::TraceSettings as T;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// OpenTelemetry traces.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct TracingSection {
    /// The collector's OTLP/gRPC endpoint: `http://host:port` (a local collector or agent, usually on 4317), or
    /// `https://…` (TLS, the system's roots and `ca_file`).
    /// Unset (the default): no spans are made.
    pub otlp_endpoint: Option<String>,
    /// The spans' `service.name`. Default "pinecone-gateway".
    pub service_name: Option<String>,
    /// The share of calls traced when the caller's `traceparent` carries no decision (no traceparent), 0 to 1; a
    /// caller's sampled or unsampled flag is always followed. Default 1.
    pub sample_ratio: Option<f64>,
    /// Resource attributes on every span, e.g. `deployment.environment.name = "prod"`.
    #[serde(default)]
    pub resource_attributes: BTreeMap<String, String>,
    /// Finished spans waiting for export; past this, spans are dropped and counted. Default 8192.
    pub queue_spans: Option<usize>,
    /// Spans per export request. Default 512.
    pub export_batch_spans: Option<usize>,
    /// The longest a finished span waits before it is sent. Default 1000.
    pub export_interval_ms: Option<u64>,
    /// The longest one export may take before its spans are counted as dropped. Default 10000.
    pub export_timeout_ms: Option<u64>,
    /// With an `https://` endpoint: a CA certificate file (PEM) trusted besides the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// gRPC metadata sent with every export, e.g. a vendor's API key (`"x-honeycomb-team" = "…"`); never printed.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

pub(super) fn settings(t: &TracingSection, p: &mut Problems) -> Option<T> {
    let endpoint = t.otlp_endpoint.as_deref()?.trim();
    match url::Url::parse(endpoint) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        _ => p.push(invalid(
            "tracing.otlp_endpoint",
            format!("`{endpoint}` is not an http:// or https:// URL of a host"),
        )),
    }
    for (k, v) in &t.headers {
        let key_ok = !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if !key_ok || k.ends_with("-bin") {
            p.push(invalid(
                &format!("tracing.headers.{k}"),
                "not a gRPC metadata key (lowercase letters, digits, `-`, `_`, `.`)",
            ));
        }
        if !v.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            // The value is a secret: say what is wrong, not what it is.
            p.push(invalid(
                &format!("tracing.headers.{k}"),
                "the value must be printable ASCII",
            ));
        }
    }
    let ca_pem = t.ca_file.as_deref().and_then(|path| {
        p.take(std::fs::read(path).map_err(|e| {
            invalid(
                "tracing.ca_file",
                format!("cannot read {}: {e}", path.display()),
            )
        }))
    });
    let ratio = t.sample_ratio.unwrap_or(1.0);
    let sample_ratio = if (0.0..=1.0).contains(&ratio) {
        ratio
    } else {
        p.refuse(invalid("tracing.sample_ratio", "must be 0 to 1"), 1.0)
    };
    let ms = |key: &str, v: Option<u64>, d: Duration| {
        v.map(|v| at_least(key, v, 1).map(Duration::from_millis))
            .unwrap_or(Ok(d))
    };
    Some(T {
        otlp_endpoint: endpoint.to_string(),
        service_name: t
            .service_name
            .clone()
            .unwrap_or_else(|| T::DEFAULT_SERVICE_NAME.into()),
        sample_ratio,
        resource_attributes: t.resource_attributes.clone(),
        queue_spans: p.or(
            at_least(
                "tracing.queue_spans",
                t.queue_spans.unwrap_or(T::DEFAULT_QUEUE_SPANS),
                1,
            ),
            T::DEFAULT_QUEUE_SPANS,
        ),
        export_batch_spans: p.or(
            at_least(
                "tracing.export_batch_spans",
                t.export_batch_spans
                    .unwrap_or(T::DEFAULT_EXPORT_BATCH_SPANS),
                1,
            ),
            T::DEFAULT_EXPORT_BATCH_SPANS,
        ),
        export_interval: p.or(
            ms(
                "tracing.export_interval_ms",
                t.export_interval_ms,
                T::DEFAULT_EXPORT_INTERVAL,
            ),
            T::DEFAULT_EXPORT_INTERVAL,
        ),
        export_timeout: p.or(
            ms(
                "tracing.export_timeout_ms",
                t.export_timeout_ms,
                T::DEFAULT_EXPORT_TIMEOUT,
            ),
            T::DEFAULT_EXPORT_TIMEOUT,
        ),
        ca_pem,
        ca_file: t.ca_file.clone(),
        headers: crate::telemetry::trace::Secrets(t.headers.clone()),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigError, FileConfig, Overrides};
    use std::path::Path;

    fn settings(text: &str) -> Result<crate::config::Settings, ConfigError> {
        FileConfig::parse(Path::new("t.toml"), text)?.settings(Overrides {
            api_key: Some("k".into()),
            ..Default::default()
        })
    }

    #[test]
    fn off_by_default_and_round_trips_through_the_effective_configuration() {
        assert!(settings("").unwrap().tracing.is_none());
        let s = settings(
            "[tracing]\notlp_endpoint = \"http://collector:4317\"\nsample_ratio = 0.25\nqueue_spans = 100\n\
             export_interval_ms = 250\n[tracing.resource_attributes]\n\"k8s.pod.name\" = \"p-1\"\n",
        )
        .unwrap();
        let t = s.tracing.clone().unwrap();
        assert_eq!(t.sample_ratio, 0.25);
        assert_eq!(t.queue_spans, 100);
        assert_eq!(t.export_interval.as_millis(), 250);
        assert_eq!(t.service_name, "pinecone-gateway");
        assert_eq!(t.resource_attributes["k8s.pod.name"], "p-1");
        // As `config check` prints it, less the masked key (which is not a file's key).
        let rendered: String = crate::config::effective::render(&s)
            .lines()
            .filter(|l| !l.starts_with("api_key"))
            .map(|l| format!("{l}\n"))
            .collect();
        let again = settings(&rendered).unwrap();
        assert_eq!(again.tracing, s.tracing);
    }

    #[test]
    fn header_values_are_secrets() {
        let s = settings(
            "[tracing]\notlp_endpoint = \"https://vendor.example:443\"\n\
             [tracing.headers]\n\"x-team-key\" = \"s3cret\"\n",
        )
        .unwrap();
        let rendered = crate::config::effective::render(&s);
        assert!(
            rendered.contains("x-team-key") && !rendered.contains("s3cret"),
            "{rendered}"
        );
        assert!(!format!("{s:?}").contains("s3cret"));
        let e = settings("[tracing]\notlp_endpoint = \"http://c:4317\"\n[tracing.headers]\n\"Bad Key\" = \"s3cret\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tracing.headers.Bad Key") && !e.contains("s3cret"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let e = settings(
            "[tracing]\notlp_endpoint = \"ftp://vendor.example\"\nsample_ratio = 2\nqueue_spans = 0\n",
        )
        .unwrap_err()
        .to_string();
        for key in [
            "tracing.otlp_endpoint",
            "tracing.sample_ratio",
            "tracing.queue_spans",
        ] {
            assert!(e.contains(key), "{key}: {e}");
        }
        let e = settings("[tracing]\notlp_endpoint = \"collector:4317\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("http:// or https://"), "{e}");
    }
}
