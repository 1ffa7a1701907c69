//! deploy/ checked by the tools the platform's own pipelines would use (installed by the README's test command into
//! `.venv-deploy`): hadolint on the Dockerfile; the Kubernetes manifests against the schemas of the supported
//! Kubernetes releases, strictly (unknown fields refused), the two-container form also against an older release;
//! the compose files against the Compose specification. Images are not built here (no container runtime): that the
//! manifests agree with the gateway itself is `deploy_manifests.rs`.
mod common;
use common::*;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");

/// Kubernetes releases still supported upstream (the newest three that kubernetes-validate bundles), and the oldest
/// the two-container form is meant for.
const SUPPORTED: [&str; 3] = ["1.35.0", "1.36.0", "1.37.0"];
const OLDER: &str = "1.28.0";

fn tools() -> Option<String> {
    tool("PINECONE_GATEWAY_DEPLOY_TOOLS")
}

#[test]
fn hadolint_passes_the_dockerfile() {
    let Some(bin) = tools() else { return };
    run_program(
        &format!("{bin}/hadolint"),
        &[&format!("{DEPLOY}/Dockerfile")],
    );
}

#[test]
fn the_manifests_validate_strictly_against_every_supported_kubernetes() {
    let Some(bin) = tools() else { return };
    let k8s = format!("{DEPLOY}/kubernetes");
    let all = [
        "configmap.yaml",
        "secret.example.yaml",
        "deployment.yaml",
        "deployment-two-containers.yaml",
    ]
    .map(|f| format!("{k8s}/{f}"));
    for version in SUPPORTED {
        let mut args = vec!["--strict", "-k", version];
        args.extend(all.iter().map(String::as_str));
        run_program(&format!("{bin}/kubernetes-validate"), &args);
    }
    let older = format!("{k8s}/deployment-two-containers.yaml");
    run_program(
        &format!("{bin}/kubernetes-validate"),
        &["--strict", "-k", OLDER, &older],
    );
}

#[test]
fn a_manifest_with_an_unknown_field_is_refused() {
    // The checker itself can fail: a misspelt field in a copy of the Deployment.
    let Some(bin) = tools() else { return };
    let text = std::fs::read_to_string(format!("{DEPLOY}/kubernetes/deployment.yaml"))
        .unwrap()
        .replace(
            "restartPolicy: Always",
            "restartPolicy: Always\n          restartPolcy: Always",
        );
    let file = std::env::temp_dir().join(format!("pgw-bad-deployment-{}.yaml", std::process::id()));
    std::fs::write(&file, text).unwrap();
    let out = std::process::Command::new(format!("{bin}/kubernetes-validate"))
        .args(["--strict", "-k", SUPPORTED[2]])
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_compose_files_follow_the_compose_specification() {
    let Some(bin) = tools() else { return };
    run_program(
        &format!("{bin}/check-jsonschema"),
        &[
            "--builtin-schema",
            "vendor.compose-spec",
            &format!("{DEPLOY}/compose.yaml"),
            &format!("{DEPLOY}/compose.redis.yaml"),
        ],
    );
}
