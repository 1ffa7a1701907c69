//! `[server]` (the gRPC listener: address, TLS, deadlines, load shedding, message sizes, drain) and `[admin]` (the
//! HTTP listener for metrics and health).

use super::{DEFAULT_LISTEN, Overrides, Problems, at_least, invalid};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// gRPC listen address. Default 127.0.0.1:5081.
    pub listen: Option<String>,
    /// Listen address of the REST front door (Pinecone's REST data plane, over the same stack). Absent: off.
    pub rest_listen: Option<String>,
    /// Deadline for calls that carry none (`grpc-timeout`). Default 20000.
    pub default_timeout_ms: Option<u64>,
    /// Calls served at once; more are refused at once with RESOURCE_EXHAUSTED (load shedding). Default 1000.
    pub max_concurrent_calls: Option<usize>,
    /// On SIGTERM or Ctrl-C, how long calls in progress may take to finish. Default 20000.
    pub drain_grace_ms: Option<u64>,
    /// Health turns NOT_SERVING once Pinecone has been unreachable this long. Default 10000.
    pub upstream_unhealthy_after_ms: Option<u64>,
    /// TLS on the gRPC listener; absent: plaintext (fine on 127.0.0.1 inside a pod).
    pub tls: Option<TlsSection>,
    /// The largest request message, in bytes. Default 67108864 (64 MiB): it fits the largest fetch or delete the
    /// gateway accepts (100,000 IDs of 512 characters, 51.5 MB) and an upsert of 10,000 vectors of 1,536
    /// dimensions (61.5 MB).
    pub max_message_bytes: Option<usize>,
    /// Bytes of requests received and not yet answered, process-wide; more are refused with RESOURCE_EXHAUSTED.
    /// Default 134217728 (128 MiB); at least `max_message_bytes`.
    pub max_buffered_request_bytes: Option<usize>,
}

/// TLS, and mutual TLS when `client_ca_file` is set.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// The server's certificate chain, PEM.
    pub cert_file: PathBuf,
    /// The server's private key, PEM.
    pub key_file: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to; set: every caller must present one.
    pub client_ca_file: Option<PathBuf>,
}

/// TLS material, read at start-up.
#[derive(Clone)]
pub struct TlsSettings {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub client_ca_pem: Option<Vec<u8>>,
    /// Where they were read from (`config check` prints them).
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("key_pem", &"***")
            .field("mutual", &self.client_ca_pem.is_some())
            .finish()
    }
}

/// The admin HTTP listener: /metrics, /healthz, /readyz.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Listen address. Default 127.0.0.1:9464.
    pub listen: Option<String>,
    /// false switches the listener off. Default true.
    pub enabled: Option<bool>,
}

/// The gRPC listener and the admin listener, validated.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// None when the admin listener is off.
    pub admin_listen: Option<SocketAddr>,
    /// The REST front door's address; None when it is off.
    pub rest_listen: Option<SocketAddr>,
    /// The deadline of calls that carry none.
    pub default_timeout: Duration,
    pub max_concurrent_calls: usize,
    pub tls: Option<TlsSettings>,
    pub drain_grace: Duration,
    pub upstream_unhealthy_after: Duration,
    pub max_message_bytes: usize,
    pub max_buffered_request_bytes: usize,
}

const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9464";

fn address(key: &str, text: &str, fallback: &str, p: &mut Problems) -> SocketAddr {
    match text.parse() {
        Ok(a) => a,
        Err(e) => {
            p.push(invalid(key, format!("`{text}` is not an address: {e}")));
            fallback
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
        }
    }
}

/// The `[server]` and `[admin]` sections' settings, with `--listen` and `--admin-listen` over the file.
pub(super) fn settings(
    s: &ServerSection,
    admin: &AdminSection,
    o: &Overrides,
    p: &mut Problems,
) -> ServerSettings {
    let listen_text = o
        .listen
        .clone()
        .or_else(|| s.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.into());
    let listen = address("server.listen", &listen_text, DEFAULT_LISTEN, p);
    let admin_text = o
        .admin_listen
        .clone()
        .or_else(|| admin.listen.clone())
        .unwrap_or_else(|| DEFAULT_ADMIN_LISTEN.into());
    let admin_listen = address("admin.listen", &admin_text, DEFAULT_ADMIN_LISTEN, p);
    let rest_listen = o
        .rest_listen
        .clone()
        .or_else(|| s.rest_listen.clone())
        .filter(|t| !t.is_empty())
        .map(|t| address("server.rest_listen", &t, "127.0.0.1:5082", p));
    let default_timeout_ms = match s.default_timeout_ms {
        Some(0) => p.refuse(
            invalid("server.default_timeout_ms", "must be more than 0"),
            20_000,
        ),
        v => v.unwrap_or(20_000),
    };
    let tls = s.tls.as_ref().and_then(|t| {
        let mut read = |key: &str, path: &Path| {
            p.take(
                std::fs::read(path)
                    .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display()))),
            )
        };
        let cert_pem = read("server.tls.cert_file", &t.cert_file);
        let key_pem = read("server.tls.key_file", &t.key_file);
        let client_ca_pem = match t.client_ca_file.as_deref() {
            Some(path) => Some(read("server.tls.client_ca_file", path)?),
            None => None,
        };
        Some(TlsSettings {
            cert_pem: cert_pem?,
            key_pem: key_pem?,
            client_ca_pem,
            cert_file: t.cert_file.clone(),
            key_file: t.key_file.clone(),
            client_ca_file: t.client_ca_file.clone(),
        })
    });
    let max_message_bytes = match s.max_message_bytes.unwrap_or(64 << 20) {
        v if v < 1024 => p.refuse(
            invalid("server.max_message_bytes", "must be at least 1024"),
            64 << 20,
        ),
        v => v,
    };
    let max_buffered_request_bytes = match s.max_buffered_request_bytes.unwrap_or(128 << 20) {
        v if v < max_message_bytes => p.refuse(
            invalid(
                "server.max_buffered_request_bytes",
                format!("must be at least server.max_message_bytes ({max_message_bytes})"),
            ),
            max_message_bytes,
        ),
        v => v,
    };
    ServerSettings {
        listen,
        admin_listen: admin.enabled.unwrap_or(true).then_some(admin_listen),
        rest_listen,
        default_timeout: Duration::from_millis(default_timeout_ms),
        max_concurrent_calls: match s.max_concurrent_calls {
            Some(0) => p.refuse(
                invalid("server.max_concurrent_calls", "must be more than 0"),
                1000,
            ),
            v => v.unwrap_or(1000),
        },
        tls,
        drain_grace: Duration::from_millis(s.drain_grace_ms.unwrap_or(20_000)),
        upstream_unhealthy_after: Duration::from_millis(p.or(
            at_least(
                "server.upstream_unhealthy_after_ms",
                s.upstream_unhealthy_after_ms.unwrap_or(10_000),
                1,
            ),
            10_000,
        )),
        max_message_bytes,
        max_buffered_request_bytes,
    }
}
