//! Index name → data-plane base URL.
//!
//! Hosts come from the configuration (static, never forgotten) or from the control plane's describe index (cached
//! with the index's dimension until the host stops answering, or until what was cached may be stale: a vector the
//! cached dimension refuses, Pinecone's 404 or dimension error; then the next call looks it up again, at most once a
//! second per index). Pinecone reports bare host
//! names; the scheme is the control plane's, so an `http://` control plane (the emulator, local development) means
//! plain http to the index hosts, and Pinecone's `https://` means TLS.

use super::UpstreamError;
use std::collections::HashMap;
use std::sync::RwLock;
use url::Url;

#[derive(Debug)]
pub struct Hosts {
    scheme: String,
    static_hosts: std::sync::RwLock<HashMap<String, Url>>,
    cache: RwLock<HashMap<String, Url>>,
    /// The dimension of each dense index looked up (from the same describe index as its host): requests with
    /// vectors of another length are refused before they are sent.
    dimensions: RwLock<HashMap<String, u32>>,
    /// When each index was last looked up: a lookup to check what may be stale (a dimension that refuses a vector,
    /// Pinecone's 404 or dimension error) is made at most once per [`Hosts::RECHECK_EVERY`] per index.
    looked_up: RwLock<HashMap<String, std::time::Instant>>,
    /// Indexes looked up as API 2026-07 document indexes, which the vectors API does not serve.
    documents: RwLock<std::collections::HashSet<String>>,
}

impl Hosts {
    pub fn new(scheme: &str, static_hosts: HashMap<String, String>) -> Self {
        let scheme = scheme.to_string();
        let static_hosts = static_hosts
            .into_iter()
            .filter_map(|(name, host)| to_url(&scheme, &host).ok().map(|u| (name, u)))
            .collect();
        Hosts {
            scheme,
            static_hosts: std::sync::RwLock::new(static_hosts),
            cache: RwLock::new(HashMap::new()),
            dimensions: RwLock::new(HashMap::new()),
            looked_up: RwLock::new(HashMap::new()),
            documents: RwLock::new(std::collections::HashSet::new()),
        }
    }

    /// Whether `index` was looked up as a document index (API 2026-07).
    pub fn is_document(&self, index: &str) -> bool {
        self.documents
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(index)
    }

    /// The least time between two lookups of one index made to recheck it: a stream of calls with vectors of the
    /// wrong length, or of 404s, costs the control plane at most one describe index per second per index.
    pub const RECHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

    /// Forgets a looked-up index (its host and dimension) so that the next call describes it again, when what was
    /// looked up may be stale (the index deleted and recreated with another dimension) and it was looked up at least
    /// [`Hosts::RECHECK_EVERY`] ago. False when nothing was forgotten (a configured host, looked up too recently, or
    /// already forgotten).
    pub fn recheck(&self, index: &str, host: &Url) -> bool {
        let recent = self
            .looked_up
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(index)
            .is_some_and(|at| at.elapsed() < Self::RECHECK_EVERY);
        !recent && self.forget(index, host)
    }

    pub fn get(&self, index: &str) -> Option<Url> {
        if let Some(u) = self
            .static_hosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(index)
        {
            return Some(u.clone());
        }
        self.cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(index)
            .cloned()
    }

    /// Caches a looked-up index: its host, its dimension when it is a dense index, and whether it is a document index.
    pub fn insert(
        &self,
        index: &str,
        host: &str,
        dimension: Option<u32>,
        document: bool,
    ) -> Result<Url, UpstreamError> {
        {
            let mut documents = self.documents.write().unwrap_or_else(|e| e.into_inner());
            if document {
                documents.insert(index.to_string());
            } else {
                documents.remove(index);
            }
        }
        let url = to_url(&self.scheme, host)?;
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(index.to_string(), url.clone());
        self.looked_up
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(index.to_string(), std::time::Instant::now());
        let mut dimensions = self.dimensions.write().unwrap_or_else(|e| e.into_inner());
        match dimension {
            Some(d) => dimensions.insert(index.to_string(), d),
            None => dimensions.remove(index),
        };
        Ok(url)
    }

    /// The dimension of `index`, if it was looked up and is dense (a configured host says nothing of it).
    pub fn dimension(&self, index: &str) -> Option<u32> {
        self.dimensions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(index)
            .copied()
    }

    /// Replaces the configured hosts (a configuration reload); looked-up hosts stay cached.
    pub fn set_static(&self, hosts: HashMap<String, String>) {
        let parsed = hosts
            .into_iter()
            .filter_map(|(name, host)| to_url(&self.scheme, &host).ok().map(|u| (name, u)))
            .collect();
        *self.static_hosts.write().unwrap_or_else(|e| e.into_inner()) = parsed;
    }

    /// Drops a cached host that failed; false when there was nothing to forget (a static host, or already gone).
    pub fn forget(&self, index: &str, failed: &Url) -> bool {
        if self
            .static_hosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(index)
        {
            return false;
        }
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if cache.get(index) == Some(failed) {
            cache.remove(index);
            // The index may have been recreated with another dimension: the next lookup says.
            self.dimensions
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(index);
            return true;
        }
        false
    }
}

/// A base URL from a bare host (`h`, `h:port`) or a URL with a scheme.
pub fn to_url(default_scheme: &str, host: &str) -> Result<Url, UpstreamError> {
    let text = if host.contains("://") {
        host.to_string()
    } else {
        format!("{default_scheme}://{host}")
    };
    Url::parse(&text).map_err(|e| UpstreamError::Malformed {
        operation: "describe_index",
        detail: format!("index host `{host}` is not a valid host: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_hosts_take_the_control_plane_scheme() {
        assert_eq!(
            to_url("https", "idx-1.svc.pinecone.io").unwrap().as_str(),
            "https://idx-1.svc.pinecone.io/"
        );
        assert_eq!(
            to_url("http", "127.0.0.1:5081").unwrap().as_str(),
            "http://127.0.0.1:5081/"
        );
        assert_eq!(
            to_url("https", "http://localhost:1").unwrap().as_str(),
            "http://localhost:1/"
        );
    }

    #[test]
    fn static_hosts_are_never_forgotten() {
        let hosts = Hosts::new(
            "https",
            HashMap::from([("a".to_string(), "a.example".to_string())]),
        );
        let a = hosts.get("a").unwrap();
        assert!(!hosts.forget("a", &a));
        let b = hosts.insert("b", "b.example", Some(4), false).unwrap();
        assert!(hosts.forget("b", &b));
        assert!(hosts.get("b").is_none());
    }

    #[test]
    fn a_recheck_waits_a_second_after_the_last_lookup() {
        let hosts = Hosts::new("https", HashMap::new());
        let b = hosts.insert("b", "b.example", Some(4), false).unwrap();
        assert!(!hosts.recheck("b", &b), "looked up just now");
        assert_eq!(hosts.dimension("b"), Some(4));
        hosts
            .looked_up
            .write()
            .unwrap()
            .insert("b".into(), std::time::Instant::now() - Hosts::RECHECK_EVERY);
        assert!(hosts.recheck("b", &b));
        assert_eq!((hosts.get("b"), hosts.dimension("b")), (None, None));
    }
}
