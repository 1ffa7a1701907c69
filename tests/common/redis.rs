//! A redis-server of the test's own (tests that stop Redis, or need a fresh one).
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A redis-server of the test's own on 127.0.0.1, killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    dir: std::path::PathBuf,
}

impl RedisServer {
    pub fn start_on(port: u16) -> RedisServer {
        Self::start_with(port, &[])
    }

    pub fn start_with(port: u16, extra: &[&str]) -> RedisServer {
        let dir = std::env::temp_dir().join(format!("pgw-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new(
            std::env::var("PINECONE_GATEWAY_REDIS_SERVER")
                .unwrap_or_else(|_| "redis-server".into()),
        )
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(&dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is needed: run ./scripts/test, which installs it");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        loop {
            let line = lines
                .next()
                .expect("redis-server exited before it was ready")
                .unwrap();
            if line.contains("Ready to accept connections") {
                break;
            }
        }
        // Keep reading so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        RedisServer { child, port, dir }
    }

    pub fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(port)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn kill(mut self) -> u16 {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.port
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
