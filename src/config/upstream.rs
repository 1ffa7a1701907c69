//! `[upstream]` (where Pinecone is, the API key, the API version, the default index) and each index's host
//! (`[indexes.NAME]`; its limits and coalescing belong to those sections).

use super::coalescing::IndexCoalescingSection;
use super::limits::RateSection;
use super::{DEFAULT_CONTROL_PLANE_URL, Overrides, Problems, invalid};
use crate::api::validate;
use crate::upstream::{API_VERSIONS, ApiKey, DEFAULT_API_VERSION, UpstreamSettings};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// Pinecone's control plane. Default https://api.pinecone.io. An http:// URL means plain http to index hosts.
    pub control_plane_url: Option<String>,
    /// A file holding the Pinecone API key; else the PINECONE_API_KEY environment variable.
    pub api_key_file: Option<PathBuf>,
    /// The index of calls that name none in their metadata.
    pub default_index: Option<String>,
    /// Time allowed to open a connection to Pinecone. Default 5000.
    pub connect_timeout_ms: Option<u64>,
    /// Pinecone's REST API version, sent as `X-Pinecone-Api-Version`: "2025-10" or "2026-04" (the default).
    pub api_version: Option<String>,
    /// Speak HTTP/2 without negotiation (h2c, "prior knowledge") to `http://` hosts: the built-in emulator, or a
    /// local proxy that accepts it. Default false (HTTP/1.1), except with `serve --emulator`, whose emulator speaks
    /// both. `https://` hosts negotiate HTTP/2 or HTTP/1.1 by ALPN whatever this says.
    pub plaintext_http2: Option<bool>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct IndexSection {
    /// The index's data-plane host; skips the control-plane lookup.
    pub host: Option<String>,
    /// Rates for this index, by operation class, over the global ones (dedicated read nodes, raised limits).
    #[serde(default)]
    pub limits: BTreeMap<String, RateSection>,
    /// Coalescing switches for this index.
    pub coalescing: Option<IndexCoalescingSection>,
}

/// What the rest is checked against while a refused control-plane URL is reported (start-up only).
fn default_control_plane() -> Url {
    Url::parse(DEFAULT_CONTROL_PLANE_URL).expect("the default control-plane URL parses")
}

/// The `[upstream]` settings with each index's configured host, and the default index; flags and the environment
/// over the file.
pub(super) fn settings(
    u: &UpstreamSection,
    indexes: &BTreeMap<String, IndexSection>,
    o: &Overrides,
    p: &mut Problems,
) -> (UpstreamSettings, Option<String>) {
    let cp_text = o
        .control_plane_url
        .clone()
        .or_else(|| u.control_plane_url.clone())
        .unwrap_or_else(|| DEFAULT_CONTROL_PLANE_URL.into());
    let control_plane = match Url::parse(&cp_text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => url,
        Ok(_) => p.refuse(
            invalid(
                "upstream.control_plane_url",
                "must be an http:// or https:// URL",
            ),
            default_control_plane(),
        ),
        Err(e) => p.refuse(
            invalid("upstream.control_plane_url", format!("`{cp_text}`: {e}")),
            default_control_plane(),
        ),
    };
    let default_index = o
        .default_index
        .clone()
        .or_else(|| u.default_index.clone())
        .filter(|s| !s.is_empty());
    if let Some(name) = &default_index
        && let Err(e) = validate::index_name("upstream.default_index", name)
    {
        p.push(invalid("upstream.default_index", e.0));
    }
    let key_file = o.api_key_file.clone().or_else(|| u.api_key_file.clone());
    let api_key = match (key_file, o.api_key.clone().filter(|k| !k.is_empty())) {
        (Some(path), _) => match std::fs::read_to_string(&path) {
            Ok(k) => k.trim().to_string(),
            Err(e) => p.refuse(
                invalid(
                    "upstream.api_key_file",
                    format!("cannot read {}: {e}", path.display()),
                ),
                String::new(),
            ),
        },
        (None, Some(key)) => key,
        // Plain http means a local emulator, which accepts any key.
        (None, None) if control_plane.scheme() == "http" => "local".into(),
        (None, None) => p.refuse(
            invalid(
                "upstream.api_key_file",
                "no Pinecone API key: set PINECONE_API_KEY or upstream.api_key_file",
            ),
            String::new(),
        ),
    };
    // Checked here, once: a key no header can carry would fail every request. The message never shows the key.
    if !api_key
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        p.push(invalid(
            "upstream.api_key_file",
            "the Pinecone API key (PINECONE_API_KEY or upstream.api_key_file) has characters an HTTP header \
             cannot carry (control characters or non-ASCII)",
        ));
    }
    let mut static_hosts = HashMap::new();
    for (name, section) in indexes {
        if let Err(e) = validate::index_name(&format!("indexes.{name}"), name) {
            p.push(invalid(&format!("indexes.{name}"), e.0));
        }
        if let Some(host) = &section.host {
            match crate::upstream::hosts::to_url(control_plane.scheme(), host) {
                Ok(_) => {
                    static_hosts.insert(name.clone(), host.clone());
                }
                Err(e) => p.push(invalid(&format!("indexes.{name}.host"), e.to_string())),
            }
        }
    }
    let connect_timeout_ms = match u.connect_timeout_ms {
        Some(0) => p.refuse(
            invalid("upstream.connect_timeout_ms", "must be more than 0"),
            5_000,
        ),
        v => v.unwrap_or(5_000),
    };
    let api_version = match u.api_version.as_deref() {
        None => DEFAULT_API_VERSION,
        Some(v) => match API_VERSIONS.iter().copied().find(|known| *known == v) {
            Some(known) => known,
            None => p.refuse(
                invalid(
                    "upstream.api_version",
                    format!(
                        "`{v}` is not supported; use one of {}",
                        API_VERSIONS.join(", ")
                    ),
                ),
                DEFAULT_API_VERSION,
            ),
        },
    };
    let settings = UpstreamSettings {
        control_plane,
        api_key: ApiKey::new(api_key),
        static_hosts,
        connect_timeout: Duration::from_millis(connect_timeout_ms),
        api_version,
        plaintext_http2: u.plaintext_http2.or(o.plaintext_http2).unwrap_or(false),
    };
    (settings, default_index)
}
