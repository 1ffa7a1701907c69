//! A certificate authority made for one test (rcgen), and the certificates it issues.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

pub struct TestCa {
    /// The CA certificate, PEM.
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate for `names` (DNS names or IP addresses) and its key, both PEM.
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A fresh directory for a test's files.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir = std::env::temp_dir().join(format!("pgw-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A CA, a server certificate for `localhost` and a client certificate from it, written out as a gateway's
/// `[server.tls]` needs them.
pub struct Pki {
    pub ca_pem: String,
    pub server: (String, String),
    pub client: (String, String),
    pub dir: std::path::PathBuf,
}

pub fn server_pki() -> Pki {
    let ca = TestCa::new();
    Pki {
        ca_pem: ca.pem.clone(),
        server: ca.issue(&["localhost"]),
        client: ca.issue(&["search-service"]),
        dir: temp_dir("tls"),
    }
}

impl Pki {
    pub fn write(&self, name: &str, pem: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// The gateway's `[server.tls]`, with the client CA when `mutual`.
    pub fn config(&self, mutual: bool) -> String {
        let cert = self.write("server.pem", &self.server.0);
        let key = self.write("server.key", &self.server.1);
        let mut c = format!("[server.tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n");
        if mutual {
            c.push_str(&format!(
                "client_ca_file = \"{}\"\n",
                self.write("ca.pem", &self.ca_pem)
            ));
        }
        c
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
