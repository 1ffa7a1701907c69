//! The REST front door's control plane: list and describe indexes (hosts rewritten to the front door), backups and
//! restore jobs through the same BackupService code as gRPC callers, in the shape of the API version the caller asks
//! for, errors in the control plane's shape; operations it does not serve are 501 naming them, and bad bodies 400
//! naming the field, nothing sent.
mod common;
use common::*;
use serde_json::{Value, json};

async fn env(config: &str) -> Env {
    Env::start_rest(config).await
}

fn base(env: &Env) -> String {
    format!("http://{}", env.rest_addr())
}

async fn send(r: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn list_indexes_gives_each_index_a_host_on_the_front_door() {
    let env = env("").await;
    let base = base(&env);
    let http = reqwest::Client::new();
    let (status, body) = send(http.get(format!("{base}/indexes"))).await;
    assert_eq!(status, 200, "{body}");
    let index = &body["indexes"][0];
    assert_eq!(index["name"], INDEX, "{body}");
    assert_eq!(index["host"], format!("{base}/indexes/{INDEX}"));
    assert_eq!(index["dimension"], 4, "the 2025-10 shape: {body}");
    // A client asking for 2026-07 gets its shape.
    let (status, body) = send(
        http.get(format!("{base}/indexes"))
            .header("X-Pinecone-Api-Version", "2026-07"),
    )
    .await;
    assert_eq!(status, 200);
    let index = &body["indexes"][0];
    assert_eq!(
        index["schema"]["fields"]["_values"]["dimension"], 4,
        "{body}"
    );
    assert!(index.get("dimension").is_none() && index.get("spec").is_none());
    assert_eq!(env.emulator.count("control", "list_indexes"), 2);
}

#[tokio::test]
async fn backups_and_restores_answer_in_the_callers_api_version() {
    let env = env("").await;
    let base = base(&env);
    let http = reqwest::Client::new();
    // 2025-10: created is 201, the backup has dimension and metric.
    let (status, backup) = send(
        http.post(format!("{base}/indexes/{INDEX}/backups"))
            .json(&json!({"name": "nightly", "description": "d"})),
    )
    .await;
    assert_eq!(status, 201, "{backup}");
    assert_eq!(backup["source_index_name"], INDEX);
    assert_eq!(backup["name"], "nightly");
    assert_eq!(backup["dimension"], 4, "{backup}");
    let id = backup["backup_id"].as_str().unwrap().to_string();
    // 2026-07: 200, the index's schema instead.
    let (status, second) = send(
        http.post(format!("{base}/indexes/{INDEX}/backups"))
            .header("X-Pinecone-Api-Version", "2026-07")
            .json(&json!({"name": "second"})),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        second["schema"]["fields"]["_values"]["dimension"], 4,
        "{second}"
    );
    assert!(second.get("dimension").is_none());

    let (status, page) = send(http.get(format!("{base}/indexes/{INDEX}/backups?limit=1"))).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
    let next = page["pagination"]["next"].as_str().unwrap().to_string();
    let (_, rest) = send(http.get(format!(
        "{base}/indexes/{INDEX}/backups?limit=1&paginationToken={next}"
    )))
    .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1, "{rest}");
    assert_ne!(rest["data"][0]["backup_id"], page["data"][0]["backup_id"]);
    let (_, all) = send(http.get(format!("{base}/backups"))).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 2, "{all}");
    let (status, described) = send(http.get(format!("{base}/backups/{id}"))).await;
    assert_eq!(
        (status, described["backup_id"].as_str()),
        (200, Some(id.as_str()))
    );

    let (status, restore) = send(http.post(format!("{base}/backups/{id}/create-index")).json(
        &json!({"name": "restored", "tags": {"team": "search"}, "deletion_protection": "disabled"}),
    ))
    .await;
    assert_eq!(status, 202, "{restore}");
    let job = restore["restore_job_id"].as_str().unwrap().to_string();
    let (status, described) = send(http.get(format!("{base}/restore-jobs/{job}"))).await;
    assert_eq!(status, 200, "{described}");
    assert_eq!(described["backup_id"], id.as_str());
    assert_eq!(described["target_index_name"], "restored");
    let (_, jobs) = send(http.get(format!("{base}/restore-jobs"))).await;
    assert_eq!(jobs["data"][0]["restore_job_id"], job.as_str(), "{jobs}");

    let deleted = http
        .delete(format!("{base}/backups/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 202);
    // Pinecone's 404 in the control plane's shape.
    let (status, gone) = send(http.get(format!("{base}/backups/{id}"))).await;
    assert_eq!(status, 404, "{gone}");
    assert_eq!(gone["status"], 404);
    assert_eq!(gone["error"]["code"], "NOT_FOUND", "{gone}");
    assert_eq!(env.emulator.count("control", "create_backup"), 2);
    assert_eq!(env.emulator.count("control", "delete_backup"), 1);
}

#[tokio::test]
async fn bad_control_plane_requests_are_refused_naming_the_field_and_nothing_is_sent() {
    let env = env("").await;
    let base = base(&env);
    let http = reqwest::Client::new();
    let (status, body) = send(
        http.post(format!("{base}/indexes/{INDEX}/backups"))
            .json(&json!({"name": "n", "retention_days": 3})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "INVALID_ARGUMENT");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("retention_days"),
        "{body}"
    );
    let (status, body) = send(http.get(format!("{base}/backups?limit=500"))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("limit"));
    let (status, body) = send(
        http.post(format!("{base}/backups/bkp-1/create-index"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("name"));
    assert_eq!(env.emulator.count("control", "create_backup"), 0);
    assert_eq!(env.emulator.count("control", "list_project_backups"), 0);
    assert_eq!(env.emulator.count("control", "create_index_from_backup"), 0);
    // Operations the front door does not serve are refused naming them.
    let (status, body) = send(
        http.post(format!("{base}/indexes"))
            .json(&json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, 501, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("POST /indexes")
    );
    let (status, _) = send(
        http.patch(format!("{base}/indexes/{INDEX}"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 501);
    assert_eq!(env.emulator.count("control", "create_index"), 0);
}

/// A token limited to some indexes may back up its own index but not list the project's indexes or backups.
#[tokio::test]
async fn a_limited_caller_token_is_held_to_its_indexes() {
    let env = env(&format!(
        "[auth]\nenabled = true\n[[auth.tokens]]\nname = \"search\"\ntoken = \"rest-caller-token-0001\"\nindexes = [\"{INDEX}\"]\n"
    ))
    .await;
    let base = base(&env);
    let http = reqwest::Client::new();
    let key = "rest-caller-token-0001";
    let (status, body) = send(http.get(format!("{base}/indexes")).header("Api-Key", key)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "PERMISSION_DENIED", "{body}");
    let (status, body) = send(
        http.post(format!("{base}/indexes/{INDEX}/backups"))
            .header("Api-Key", key)
            .json(&json!({"name": "mine"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = send(
        http.post(format!("{base}/indexes/other/backups"))
            .header("Api-Key", key)
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = send(http.get(format!("{base}/indexes/{INDEX}"))).await;
    assert_eq!(status, 401, "no key");
    assert_eq!(env.emulator.count("control", "list_indexes"), 0);
    assert_eq!(env.emulator.count("control", "create_backup"), 1);
}
