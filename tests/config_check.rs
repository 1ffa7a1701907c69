//! `pinecone-gateway config check FILE`: accepts the example configuration and prints the effective configuration
//! with secrets masked (TLS included); refuses an invalid file, or an invalid override from the environment, with one
//! line naming the key; out-of-range values are errors, never silently raised.
use std::process::Command;

fn check(file: &str, key: Option<&str>) -> (i32, String, String) {
    check_with(file, key, &[])
}

fn check_with(file: &str, key: Option<&str>, envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pinecone-gateway"));
    cmd.args(["config", "check", file])
        .env_remove("PINECONE_API_KEY")
        .envs(envs.iter().copied());
    if let Some(k) = key {
        cmd.env("PINECONE_API_KEY", k);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_example_configuration_is_valid_and_secrets_are_masked() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/gateway.example.toml");
    let (code, out, err) = check(example, Some("test-only-secret-key-42"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid"));
    assert!(out.contains("[indexes.docs-example.limits.query]"), "{out}");
    assert!(out.contains("namespace_requests_per_second = 500"), "{out}");
    assert!(out.contains("# api_key = *** (masked"), "{out}");
    assert!(out.contains("[callers.backfill.classes.fetch]"), "{out}");
    assert!(
        out.contains("read_units_per_day = 200000"),
        "the budgets: {out}"
    );
    assert!(!out.contains("test-only-secret-key-42") && !err.contains("test-only-secret-key-42"));
    // The printout, as printed, is itself a valid configuration file (the secret a comment, given again by the
    // environment), and checking it prints the same configuration.
    let path = std::env::temp_dir().join(format!("pgw-effective-{}.toml", std::process::id()));
    std::fs::write(&path, &out).unwrap();
    let (code, again, err) = check(path.to_str().unwrap(), Some("k"));
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 0, "{err}");
    let body = |text: &str| text.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(
        body(&again),
        body(&out),
        "the printout loads back as the same configuration"
    );
}

#[test]
fn an_invalid_file_is_refused_naming_the_key() {
    let path = std::env::temp_dir().join(format!("pgw-bad-{}.toml", std::process::id()));
    std::fs::write(&path, "[server]\nlisten_port = 1\n").unwrap();
    let (code, out, err) = check(path.to_str().unwrap(), None);
    let _ = std::fs::remove_file(&path);
    assert_ne!(code, 0);
    assert!(out.is_empty());
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("listen_port"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("line 2"), "says where: {err}");
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("pgw-{name}-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_environment_overrides_are_checked_too() {
    let path = temp_file("env", "");
    let file = path.to_str().unwrap();
    let (code, _, err) = check_with(file, Some("k"), &[("PINECONE_GATEWAY_LISTEN", "notanaddr")]);
    assert_ne!(code, 0);
    assert!(
        err.contains("server.listen") && err.contains("notanaddr"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let (code, out, err) = check_with(
        file,
        Some("k"),
        &[
            ("PINECONE_GATEWAY_LISTEN", "127.0.0.1:6001"),
            ("PINECONE_GATEWAY_DEFAULT_INDEX", "from-env"),
        ],
    );
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("listen = \"127.0.0.1:6001\""), "{out}");
    assert!(out.contains("default_index = \"from-env\""), "{out}");
}

#[test]
fn values_out_of_range_are_errors_naming_the_key() {
    for (text, key) in [
        ("[retry]\nmax_attempts = 0\n", "retry.max_attempts"),
        ("[limits]\nmax_queue_len = 0\n", "limits.max_queue_len"),
        ("[limits]\nmax_keys = 3\n", "limits.max_keys"),
        (
            "[server]\nupstream_unhealthy_after_ms = 0\n",
            "server.upstream_unhealthy_after_ms",
        ),
        (
            "[server]\nmax_message_bytes = 2000\nmax_buffered_request_bytes = 1500\n",
            "server.max_buffered_request_bytes",
        ),
    ] {
        let path = temp_file("range", text);
        let (code, _, err) = check(path.to_str().unwrap(), Some("k"));
        let _ = std::fs::remove_file(&path);
        assert_ne!(code, 0, "{text}");
        assert!(err.contains(key), "{text}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn the_effective_configuration_shows_tls() {
    let dir = std::env::temp_dir().join(format!("pgw-tls-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["tls.crt", "tls.key", "ca.crt"] {
        std::fs::write(dir.join(f), "not read for meaning by config check").unwrap();
    }
    let text = format!(
        "[server.tls]\ncert_file = \"{0}/tls.crt\"\nkey_file = \"{0}/tls.key\"\nclient_ca_file = \"{0}/ca.crt\"\n",
        dir.display()
    );
    let path = temp_file("tls", &text);
    let (code, out, err) = check(path.to_str().unwrap(), Some("k"));
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[server.tls]"), "{out}");
    assert!(out.contains("tls.key"), "{out}");
    assert!(out.contains("client_ca_file"), "{out}");
}

#[test]
fn the_kubernetes_configmap_holds_a_valid_configuration() {
    let manifest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/kubernetes/configmap.yaml"
    ))
    .unwrap();
    let start =
        manifest.find("gateway.toml: |").expect("the embedded file") + "gateway.toml: |".len();
    let dir = std::env::temp_dir().join(format!("pgw-cm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("api-key");
    std::fs::write(&key, "test-only-key").unwrap();
    // The embedded file, dedented, with the Secret's mount path pointed at a file that exists here.
    let toml: String = manifest[start..]
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("/var/run/secrets/pinecone/api-key", key.to_str().unwrap());
    let file = dir.join("gateway.toml");
    std::fs::write(&file, toml).unwrap();
    let (code, out, err) = check(file.to_str().unwrap(), None);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("listen = \"127.0.0.1:5081\""), "{out}");
    assert!(!out.contains("test-only-key"));
}

#[test]
fn the_redis_compose_file_holds_a_valid_configuration_and_the_redis_url_stays_secret() {
    let compose = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/compose.redis.yaml"
    ))
    .unwrap();
    let start = compose.find("content: |").expect("the embedded file") + "content: |".len();
    // The block ends at the first line indented less than its own six spaces.
    let toml: String = compose[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("      "))
        .map(|l| l.trim_start())
        .collect::<Vec<_>>()
        .join("\n");
    let file = std::env::temp_dir().join(format!("pgw-compose-{}.toml", std::process::id()));
    std::fs::write(&file, toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pinecone-gateway"))
        .args(["config", "check", file.to_str().unwrap()])
        .env("PINECONE_API_KEY", "k")
        .env(
            "PINECONE_GATEWAY_REDIS_URL",
            "redis://:test-only-redis-password@redis:6379/0",
        )
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("mode = \"redis\""), "{stdout}");
    assert!(stdout.contains("replicas = 3"), "{stdout}");
    assert!(
        !stdout.contains("test-only-redis-password")
            && !stderr.contains("test-only-redis-password")
    );
}
