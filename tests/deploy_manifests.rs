//! deploy/kubernetes agrees with the gateway it runs: the probes, ports, addresses, user and grace period of both
//! Deployments (the native sidecar and the two-container form) are read from the manifests and checked against the
//! ConfigMap's configuration, the Dockerfile, and a running gateway's admin listener.
mod common;
use common::*;
use serde_norway::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");

fn yaml(file: &str) -> Value {
    serde_norway::from_str(&std::fs::read_to_string(format!("{DIR}/kubernetes/{file}")).unwrap())
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The gateway's configuration as the ConfigMap holds it.
fn configmap_toml() -> toml::Value {
    let cm = yaml("configmap.yaml");
    toml::from_str(cm["data"]["gateway.toml"].as_str().unwrap()).unwrap()
}

fn port_of(listen: &str) -> u64 {
    listen.rsplit(':').next().unwrap().parse().unwrap()
}

/// The pod spec, the gateway's container and the application's.
fn pod(file: &str) -> (Value, Value, Value) {
    let d = yaml(file);
    let spec = d["spec"]["template"]["spec"].clone();
    let named = |list: &Value, name: &str| {
        list.as_sequence()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == name)
            .cloned()
    };
    let gateway = named(&spec["initContainers"], "pinecone-gateway")
        .or_else(|| named(&spec["containers"], "pinecone-gateway"))
        .unwrap_or_else(|| panic!("{file}: no pinecone-gateway container"));
    let app = named(&spec["containers"], "app").unwrap();
    (spec, gateway, app)
}

fn check_against_the_gateway(file: &str) -> Value {
    let (spec, gw, app) = pod(file);
    let config = configmap_toml();
    let admin_port = port_of(config["admin"]["listen"].as_str().unwrap());
    let ports = gw["ports"].as_sequence().unwrap();
    let admin = ports.iter().find(|p| p["name"] == "admin").unwrap();
    assert_eq!(admin["containerPort"].as_u64(), Some(admin_port), "{file}");
    // Every probe asks the admin listener for a path it serves.
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(get) = gw[probe]["httpGet"].as_mapping() else {
            continue;
        };
        assert_eq!(get["port"], "admin", "{file} {probe}");
        let path = get["path"].as_str().unwrap();
        assert!(
            ["/healthz", "/readyz"].contains(&path),
            "{file} {probe}: {path}"
        );
    }
    assert_eq!(gw["livenessProbe"]["httpGet"]["path"], "/healthz", "{file}");
    assert_eq!(gw["readinessProbe"]["httpGet"]["path"], "/readyz", "{file}");
    // The application calls the address the gateway listens on.
    let addr = app["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "PINECONE_GATEWAY_ADDR")
        .unwrap();
    assert_eq!(
        addr["value"],
        config["server"]["listen"].as_str().unwrap(),
        "{file}"
    );
    // The image's user, and a grace period longer than the drain.
    let dockerfile = std::fs::read_to_string(format!("{DIR}/Dockerfile")).unwrap();
    let user: u64 = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        gw["securityContext"]["runAsUser"].as_u64(),
        Some(user),
        "{file}"
    );
    let grace_ms = spec["terminationGracePeriodSeconds"].as_u64().unwrap() * 1000;
    let drain_ms = config["server"]["drain_grace_ms"].as_integer().unwrap() as u64;
    assert!(
        grace_ms > drain_ms,
        "{file}: {grace_ms} ms of grace for a {drain_ms} ms drain"
    );
    // Prometheus scrapes the admin port's /metrics.
    let annotations = &yaml(file)["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(
        annotations["prometheus.io/port"],
        admin_port.to_string().as_str()
    );
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    // Every mounted volume exists.
    for m in gw["volumeMounts"].as_sequence().unwrap() {
        assert!(
            spec["volumes"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|v| v["name"] == m["name"]),
            "{file}: volume {:?}",
            m["name"]
        );
    }
    gw
}

#[test]
fn the_native_sidecar_starts_first_gated_by_its_startup_probe() {
    let gw = check_against_the_gateway("deployment.yaml");
    let (spec, _, _) = pod("deployment.yaml");
    assert!(
        spec["initContainers"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "pinecone-gateway"),
        "the gateway is an init container"
    );
    assert_eq!(
        gw["restartPolicy"], "Always",
        "a native sidecar (Kubernetes 1.29+)"
    );
    assert_eq!(gw["startupProbe"]["httpGet"]["path"], "/readyz");
}

#[test]
fn the_two_container_form_for_older_clusters_agrees_too() {
    let gw = check_against_the_gateway("deployment-two-containers.yaml");
    assert!(gw.get("restartPolicy").is_none());
    // Its SIGTERM comes after the application's; the pod's grace covers that delay and the drain.
    let pre_stop = &gw["lifecycle"]["preStop"]["exec"]["command"];
    assert_eq!(pre_stop[0], "sleep");
    let delay_ms = pre_stop[1].as_str().unwrap().parse::<u64>().unwrap() * 1000;
    let (spec, _, _) = pod("deployment-two-containers.yaml");
    let drain_ms = configmap_toml()["server"]["drain_grace_ms"]
        .as_integer()
        .unwrap() as u64;
    assert!(spec["terminationGracePeriodSeconds"].as_u64().unwrap() * 1000 > delay_ms + drain_ms);
}

#[tokio::test]
async fn the_probe_paths_answer_on_a_running_gateway() {
    let env = Env::start().await;
    let admin = env.gateway.as_ref().unwrap().admin_addr.unwrap();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let status = reqwest::get(format!("http://{admin}{path}"))
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{path}");
    }
}
