//! Clients generated from proto/ in Go and Java, each through the gateway: a fetch, an upsert, a ListAll stream, a
//! backup listing, routing metadata, a deadline, bad input, and the retry advice of a quota refusal (RetryInfo and
//! `grpc-retry-pushback-ms`). The code is generated and built here, offline, with Debian's packages: Go 1.19 with
//! protoc-gen-go, protoc-gen-go-grpc and grpc-go (GOPATH mode over /usr/share/gocode), and grpc-java 1.41 with its
//! protoc plugin, compiled by javac against /usr/share/java's jars.
//!
//! `PINECONE_GATEWAY_GOPATH` (Debian's Go sources) and `PINECONE_GATEWAY_JAVA_CLASSPATH` (the jars) are set by the
//! README's test command, which installs the packages. Without them the tests fail under CI and say how to run them
//! elsewhere.
mod common;
use common::*;
use std::path::Path;
use std::process::Command;

const PROTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
const FILES: [&str; 3] = [
    "vector_service.proto",
    "pinecone_gateway/v1/backup_service.proto",
    "pinecone_gateway/v1/list_service.proto",
];

/// Runs a command to the end; panics with its output when it fails.
fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} does not run: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Generates the Go code of proto/ under `root/src/gwclient/pb` and builds tests/go/client.go; returns the binary.
fn build_go(root: &Path, gopath: &str) -> std::path::PathBuf {
    let src = root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut protoc = Command::new("protoc");
    protoc
        .arg(format!("-I{PROTO}"))
        .arg(format!("--go_out={}", src.display()))
        .arg(format!("--go-grpc_out={}", src.display()));
    // proto/ names no Go packages (Pinecone's vector_service.proto names none): give each file one here.
    for (file, package) in [
        (FILES[0], "gwclient/pb/pinecone"),
        (FILES[1], "gwclient/pb/gateway"),
        (FILES[2], "gwclient/pb/gateway"),
    ] {
        protoc
            .arg(format!("--go_opt=M{file}={package}"))
            .arg(format!("--go-grpc_opt=M{file}={package}"));
    }
    run(protoc.args(FILES));
    let main_dir = src.join("gwclient/cmd");
    std::fs::create_dir_all(&main_dir).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/go/client.go"),
        main_dir.join("client.go"),
    )
    .unwrap();
    let binary = root.join("client");
    run(Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg("gwclient/cmd")
        .current_dir(root)
        .env("GO111MODULE", "off")
        .env("GOPATH", format!("{}:{gopath}", root.display()))
        .env("GOCACHE", root.join("cache"))
        .env("GOFLAGS", ""));
    binary
}

/// Generates the Java code of proto/ and compiles it with tests/java/Client.java into `root/classes`.
fn build_java(root: &Path, classpath: &str) {
    let src = root.join("src");
    let classes = root.join("classes");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&classes).unwrap();
    run(Command::new("protoc")
        .arg(format!("-I{PROTO}"))
        .arg(format!("--java_out={}", src.display()))
        .arg("--plugin=protoc-gen-grpc-java=/usr/bin/grpc_java_plugin")
        .arg(format!("--grpc-java_out={}", src.display()))
        .args(FILES));
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/java/Client.java"),
        src.join("Client.java"),
    )
    .unwrap();
    let mut sources = Vec::new();
    let mut dirs = vec![src];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "java") {
                sources.push(path);
            }
        }
    }
    run(Command::new("javac")
        .args(["-nowarn", "-d"])
        .arg(&classes)
        .args(["-cp", classpath])
        .args(&sources));
}

/// Runs a built client (`program` and its first arguments, then the gateway's address and the index) against a
/// gateway with [`CLIENTS_CONFIG`], and checks what reached the emulator.
async fn passes_through_the_gateway(program: String, mut args: Vec<String>) {
    let env = Env::start_for_clients().await;
    args.extend([env.addr.to_string(), INDEX.to_string()]);
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_program(&program, &args)
    })
    .await
    .unwrap();
    assert!(out.contains("checks passed"), "{out}");
    assert_eq!(
        env.emulator.count(INDEX, "upsert"),
        1,
        "120 vectors, one upsert"
    );
    assert!(env.emulator.count("control", "create_backup") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_client_generated_from_proto_works() {
    let Some(gopath) = tool("PINECONE_GATEWAY_GOPATH") else {
        return;
    };
    let root = pki::temp_dir("go-client");
    let binary = {
        let root = root.clone();
        tokio::task::spawn_blocking(move || build_go(&root, &gopath))
            .await
            .unwrap()
    };
    passes_through_the_gateway(binary.display().to_string(), vec![]).await;
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_client_generated_from_proto_works() {
    let Some(classpath) = tool("PINECONE_GATEWAY_JAVA_CLASSPATH") else {
        return;
    };
    let root = pki::temp_dir("java-client");
    {
        let (root, classpath) = (root.clone(), classpath.clone());
        tokio::task::spawn_blocking(move || build_java(&root, &classpath))
            .await
            .unwrap();
    }
    let cp = format!("{classpath}:{}", root.join("classes").display());
    passes_through_the_gateway("java".into(), vec!["-cp".into(), cp, "Client".into()]).await;
    let _ = std::fs::remove_dir_all(&root);
}
