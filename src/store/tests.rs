//! Tests of the file store through its REST-shaped entry point.

use std::fs;
use std::path::Path;

use reqwest::Method;
use serde_json::{json, Value};

use super::FileStore;
use crate::error::Error;

fn store() -> (tempfile::TempDir, FileStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(&dir.path().join("mlruns")).unwrap();
    (dir, store)
}

fn post(store: &FileStore, endpoint: &str, body: Value) -> Value {
    store.call(&Method::POST, endpoint, &body).unwrap_or_else(|err| panic!("{endpoint}: {err}"))
}

fn get(store: &FileStore, endpoint: &str, body: Value) -> Value {
    store.call(&Method::GET, endpoint, &body).unwrap_or_else(|err| panic!("{endpoint}: {err}"))
}

fn fails(store: &FileStore, method: Method, endpoint: &str, body: Value) -> Error {
    store.call(&method, endpoint, &body).expect_err(endpoint)
}

fn new_run(store: &FileStore, experiment_id: &str) -> String {
    let run = post(store, "runs/create", json!({ "experiment_id": experiment_id, "start_time": 1000 }));
    run["run"]["info"]["run_id"].as_str().unwrap().to_string()
}

/// Lists every path below `dir` with its contents, to show that a failed
/// call changed nothing.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut entries = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            let contents = if path.is_dir() {
                pending.push(path.clone());
                Vec::new()
            } else {
                fs::read(&path).unwrap()
            };
            entries.push((path.display().to_string(), contents));
        }
    }
    entries.sort();
    entries
}

#[test]
fn fresh_store_has_default_experiment() {
    let (_dir, store) = store();
    let experiment = get(&store, "experiments/get", json!({ "experiment_id": "0" }));
    assert_eq!(experiment["experiment"]["name"], "Default");
    assert_eq!(experiment["experiment"]["lifecycle_stage"], "active");
    let location = experiment["experiment"]["artifact_location"].as_str().unwrap();
    assert_eq!(location, format!("file://{}", store.root().join("0").display()));
    let meta = fs::read_to_string(store.root().join("0/meta.yaml")).unwrap();
    assert!(meta.contains("experiment_id: '0'"), "{meta}");
}

#[test]
fn experiment_lifecycle() {
    let (_dir, store) = store();
    let created = post(&store, "experiments/create", json!({ "name": "cars", "tags": [{ "key": "team", "value": "risk" }] }));
    let id = created["experiment_id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 18);

    let by_name = get(&store, "experiments/get-by-name", json!({ "experiment_name": "cars" }));
    assert_eq!(by_name["experiment"]["experiment_id"], id.as_str());
    assert_eq!(by_name["experiment"]["tags"], json!([{ "key": "team", "value": "risk" }]));

    let duplicate = fails(&store, Method::POST, "experiments/create", json!({ "name": "cars" }));
    assert_eq!(duplicate.kind(), "already_exists");
    assert_eq!(duplicate.status(), Some(400));
    let missing = fails(&store, Method::GET, "experiments/get-by-name", json!({ "experiment_name": "nope" }));
    assert_eq!(missing.error_code(), Some("RESOURCE_DOES_NOT_EXIST"));
    assert!(missing.to_string().contains(&store.root().display().to_string()), "{missing}");

    post(&store, "experiments/update", json!({ "experiment_id": id, "new_name": "trucks" }));
    post(&store, "experiments/set-experiment-tag", json!({ "experiment_id": id, "key": "stage", "value": "dev" }));
    let run_id = new_run(&store, &id);
    post(&store, "experiments/delete", json!({ "experiment_id": id }));
    assert!(store.root().join(".trash").join(&id).join("meta.yaml").is_file());
    let deleted = get(&store, "experiments/get", json!({ "experiment_id": id }));
    assert_eq!(deleted["experiment"]["name"], "trucks");
    assert_eq!(deleted["experiment"]["lifecycle_stage"], "deleted");
    let run = get(&store, "runs/get", json!({ "run_id": run_id }));
    assert_eq!(run["run"]["info"]["lifecycle_stage"], "deleted");

    let search = |view: &str| {
        let found = post(&store, "experiments/search", json!({ "view_type": view, "filter": "name = 'trucks'" }));
        found["experiments"].as_array().map_or(0, Vec::len)
    };
    assert_eq!((search("ACTIVE_ONLY"), search("DELETED_ONLY"), search("ALL")), (0, 1, 1));

    post(&store, "experiments/restore", json!({ "experiment_id": id }));
    let run = get(&store, "runs/get", json!({ "run_id": run_id }));
    assert_eq!(run["run"]["info"]["lifecycle_stage"], "active");
    assert_eq!(fails(&store, Method::POST, "experiments/delete", json!({ "experiment_id": "0" })).kind(), "api");
}

#[test]
fn run_logging_round_trip() {
    let (_dir, store) = store();
    let run_id = new_run(&store, "0");
    post(&store, "runs/log-parameter", json!({ "run_id": run_id, "key": "alpha", "value": "0.5" }));
    post(&store, "runs/log-metric", json!({ "run_id": run_id, "key": "rmse", "value": 1.25, "timestamp": 5, "step": 1 }));
    post(&store, "runs/log-metric", json!({ "run_id": run_id, "key": "rmse", "value": 1.5, "timestamp": 6, "step": 2 }));
    post(&store, "runs/log-metric", json!({ "run_id": run_id, "key": "bad", "value": "NaN", "timestamp": 7, "step": 0 }));
    post(&store, "runs/log-metric", json!({ "run_id": run_id, "key": "huge", "value": "Infinity", "timestamp": 7, "step": 0 }));
    post(&store, "runs/set-tag", json!({ "run_id": run_id, "key": "owner", "value": "ana" }));
    post(&store, "runs/set-tag", json!({ "run_id": run_id, "key": "temp", "value": "x" }));
    post(&store, "runs/delete-tag", json!({ "run_id": run_id, "key": "temp" }));
    post(&store, "runs/log-model", json!({ "run_id": run_id, "model_json": "{\"artifact_path\": \"model\"}" }));
    post(&store, "runs/log-model", json!({ "run_id": run_id, "model_json": "{\"artifact_path\": \"second\"}" }));
    let info = post(&store, "runs/update", json!({ "run_id": run_id, "status": "FINISHED", "end_time": 2000 }));
    assert_eq!(info["run_info"]["status"], "FINISHED");
    assert_eq!(info["run_info"]["end_time"], 2000);

    let run = get(&store, "runs/get", json!({ "run_id": run_id }))["run"].clone();
    assert_eq!(run["data"]["params"], json!([{ "key": "alpha", "value": "0.5" }]));
    let metric = |key: &str| run["data"]["metrics"].as_array().unwrap().iter().find(|m| m["key"] == key).unwrap().clone();
    assert_eq!(metric("rmse")["value"], 1.5);
    assert_eq!(metric("bad")["value"], "NaN");
    assert_eq!(metric("huge")["value"], "Infinity");
    let tags = run["data"]["tags"].as_array().unwrap();
    assert!(tags.iter().any(|t| t["key"] == "owner" && t["value"] == "ana"));
    assert!(!tags.iter().any(|t| t["key"] == "temp"));
    let history = tags.iter().find(|t| t["key"] == "mlflow.log-model.history").unwrap();
    let models: Vec<Value> = serde_json::from_str(history["value"].as_str().unwrap()).unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(models[1]["artifact_path"], "second");

    let run_dir = store.root().join("0").join(&run_id);
    assert_eq!(fs::read_to_string(run_dir.join("metrics/rmse")).unwrap(), "5 1.25 1\n6 1.5 2\n");
    assert_eq!(fs::read_to_string(run_dir.join("metrics/bad")).unwrap(), "7 nan 0\n");
    assert_eq!(fs::read_to_string(run_dir.join("params/alpha")).unwrap(), "0.5");
    let meta = fs::read_to_string(run_dir.join("meta.yaml")).unwrap();
    assert!(meta.contains("status: 3\n"), "{meta}");
    assert!(run_dir.join("artifacts").is_dir());

    let history = get(&store, "metrics/get-history", json!({ "run_id": run_id, "metric_key": "rmse", "max_results": 1 }));
    assert_eq!(history["metrics"][0]["value"], 1.25);
    assert_eq!(history["next_page_token"], "1");

    let changed = fails(&store, Method::POST, "runs/log-parameter", json!({ "run_id": run_id, "key": "alpha", "value": "1" }));
    assert_eq!(changed.error_code(), Some("INVALID_PARAMETER_VALUE"));
    let traversal = fails(&store, Method::POST, "runs/set-tag", json!({ "run_id": run_id, "key": "../x", "value": "1" }));
    assert_eq!(traversal.error_code(), Some("INVALID_PARAMETER_VALUE"));
    let missing = fails(&store, Method::GET, "runs/get", json!({ "run_id": "0123456789abcdef0123456789abcdef" }));
    assert_eq!(missing.status(), Some(404));
}

#[test]
fn log_batch_and_search_runs() {
    let (_dir, store) = store();
    let a = new_run(&store, "0");
    let b = new_run(&store, "0");

    post(&store, "runs/log-batch", json!({
        "run_id": a,
        "metrics": [{ "key": "score", "value": 0.9, "timestamp": 1, "step": 0 }],
        "params": [{ "key": "kind", "value": "lm" }],
        "tags": [{ "key": "mlflow.runName", "value": "first" }],
    }));
    post(&store, "runs/log-batch", json!({
        "run_id": b,
        "metrics": [{ "key": "score", "value": 0.4, "timestamp": 1, "step": 0 }],
        "params": [{ "key": "kind", "value": "glm" }],
    }));

    let search = |body: Value| -> Vec<String> {
        let found = post(&store, "runs/search", body);
        found["runs"].as_array().map_or(Vec::new(), |runs| {
            runs.iter().map(|r| r["info"]["run_id"].as_str().unwrap().to_string()).collect()
        })
    };
    assert_eq!(search(json!({ "experiment_ids": ["0"], "filter": "metrics.score > 0.5" })), vec![a.clone()]);
    assert_eq!(search(json!({ "experiment_ids": ["0"], "filter": "params.kind = 'glm'" })), vec![b.clone()]);
    assert_eq!(search(json!({ "experiment_ids": ["0"], "filter": "attributes.run_name = 'first'" })), vec![a.clone()]);
    assert_eq!(search(json!({ "experiment_ids": ["0"], "order_by": ["metrics.score ASC"] })), vec![b.clone(), a.clone()]);

    post(&store, "runs/delete", json!({ "run_id": b }));
    assert_eq!(search(json!({ "experiment_ids": ["0"] })), vec![a.clone()]);
    assert_eq!(search(json!({ "experiment_ids": ["0"], "run_view_type": "DELETED_ONLY" })), vec![b.clone()]);
    let err = fails(&store, Method::POST, "runs/search", json!({ "experiment_ids": ["0"], "filter": "metrics.score > 1 OR metrics.score < 0" }));
    assert_eq!(err.kind(), "unsupported");
    let deleted = fails(&store, Method::POST, "runs/set-tag", json!({ "run_id": b, "key": "k", "value": "v" }));
    assert!(deleted.to_string().contains("'active' state"), "{deleted}");
}

#[test]
fn registry_round_trip() {
    let (_dir, store) = store();
    post(&store, "registered-models/create", json!({ "name": "lm", "tags": [{ "key": "team", "value": "risk" }], "description": "first" }));
    let duplicate = fails(&store, Method::POST, "registered-models/create", json!({ "name": "lm" }));
    assert_eq!(duplicate.error_code(), Some("RESOURCE_ALREADY_EXISTS"));

    for expected in ["1", "2"] {
        let version = post(&store, "model-versions/create", json!({ "name": "lm", "source": "file:///tmp/model", "run_id": "abc", "tags": [{ "key": "candidate", "value": "yes" }] }));
        assert_eq!(version["model_version"]["version"], expected);
        assert_eq!(version["model_version"]["status"], "READY");
        assert_eq!(version["model_version"]["current_stage"], "None");
    }
    let meta = fs::read_to_string(store.root().join("models/lm/version-2/meta.yaml")).unwrap();
    assert!(meta.contains("version: 2\n"), "{meta}");

    post(&store, "registered-models/alias", json!({ "name": "lm", "alias": "champion", "version": "1" }));
    assert_eq!(fs::read_to_string(store.root().join("models/lm/aliases/champion")).unwrap(), "1");
    let by_alias = get(&store, "registered-models/alias", json!({ "name": "lm", "alias": "champion" }));
    assert_eq!(by_alias["model_version"]["version"], "1");
    assert_eq!(by_alias["model_version"]["aliases"], json!(["champion"]));
    let latest = get(&store, "registered-models/alias", json!({ "name": "lm", "alias": "latest" }));
    assert_eq!(latest["model_version"]["version"], "2");

    let staged = post(&store, "model-versions/transition-stage", json!({ "name": "lm", "version": "1", "stage": "production", "archive_existing_versions": false }));
    assert_eq!(staged["model_version"]["current_stage"], "Production");
    post(&store, "model-versions/transition-stage", json!({ "name": "lm", "version": "2", "stage": "Production", "archive_existing_versions": true }));
    let v1 = get(&store, "model-versions/get", json!({ "name": "lm", "version": "1" }));
    assert_eq!(v1["model_version"]["current_stage"], "Archived");
    let latest = post(&store, "registered-models/get-latest-versions", json!({ "name": "lm", "stages": ["Production"] }));
    assert_eq!(latest["model_versions"][0]["version"], "2");

    let updated = store.call(&Method::PATCH, "model-versions/update", &json!({ "name": "lm", "version": "1", "description": "base" })).unwrap();
    assert_eq!(updated["model_version"]["description"], "base");
    post(&store, "model-versions/set-tag", json!({ "name": "lm", "version": "2", "key": "ok", "value": "TRUE" }));
    store.call(&Method::DELETE, "model-versions/delete-tag", &json!({ "name": "lm", "version": "2", "key": "ok" })).unwrap();
    let v2 = get(&store, "model-versions/get", json!({ "name": "lm", "version": "2" }));
    assert_eq!(v2["model_version"]["tags"], json!([{ "key": "candidate", "value": "yes" }]));

    let found = get(&store, "model-versions/search", json!({ "filter": "name = 'lm'" }));
    assert_eq!(found["model_versions"].as_array().unwrap().len(), 2);
    let uri = get(&store, "model-versions/get-download-uri", json!({ "name": "lm", "version": "1" }));
    assert_eq!(uri["artifact_uri"], "file:///tmp/model");

    store.call(&Method::DELETE, "model-versions/delete", &json!({ "name": "lm", "version": "1" })).unwrap();
    assert_eq!(fails(&store, Method::GET, "model-versions/get", json!({ "name": "lm", "version": "1" })).status(), Some(404));
    let alias_gone = fails(&store, Method::GET, "registered-models/alias", json!({ "name": "lm", "alias": "champion" }));
    assert_eq!(alias_gone.error_code(), Some("INVALID_PARAMETER_VALUE"));
    let third = post(&store, "model-versions/create", json!({ "name": "lm", "source": "file:///tmp/model" }));
    assert_eq!(third["model_version"]["version"], "3", "deleted version numbers are not reused");

    let renamed = post(&store, "registered-models/rename", json!({ "name": "lm", "new_name": "lm2" }));
    assert_eq!(renamed["registered_model"]["name"], "lm2");
    assert_eq!(renamed["registered_model"]["tags"], json!([{ "key": "team", "value": "risk" }]));
    let v3 = get(&store, "model-versions/get", json!({ "name": "lm2", "version": "3" }));
    assert_eq!(v3["model_version"]["name"], "lm2");
    assert_eq!(fails(&store, Method::GET, "registered-models/get", json!({ "name": "lm" })).status(), Some(404));
    store.call(&Method::DELETE, "registered-models/delete", &json!({ "name": "lm2" })).unwrap();
    assert!(!store.root().join("models/lm2").exists());
}

#[test]
fn registered_model_search_pages() {
    let (_dir, store) = store();
    for i in 1..=7 {
        post(&store, "registered-models/create", json!({ "name": format!("page-{i:02}") }));
    }
    post(&store, "registered-models/create", json!({ "name": "other" }));
    let names = |page: &Value| -> Vec<String> {
        page["registered_models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_string()).collect()
    };
    let first = get(&store, "registered-models/search", json!({ "filter": "name LIKE 'page-%'", "max_results": 3, "order_by": ["name DESC"] }));
    assert_eq!(names(&first), vec!["page-07", "page-06", "page-05"]);
    let token = first["next_page_token"].as_str().unwrap();
    let rest = get(&store, "registered-models/search", json!({ "filter": "name LIKE 'page-%'", "order_by": ["name DESC"], "page_token": token }));
    assert_eq!(names(&rest), vec!["page-04", "page-03", "page-02", "page-01"]);
    assert!(rest.get("next_page_token").is_none());
}

#[test]
fn runs_source_resolves_to_run_artifacts() {
    let (_dir, store) = store();
    let run_id = new_run(&store, "0");
    post(&store, "registered-models/create", json!({ "name": "m" }));
    post(&store, "model-versions/create", json!({ "name": "m", "source": format!("runs:/{run_id}/model") }));
    let uri = get(&store, "model-versions/get-download-uri", json!({ "name": "m", "version": "1" }));
    let expected = format!("file://{}/0/{run_id}/artifacts/model", store.root().display());
    assert_eq!(uri["artifact_uri"], expected.as_str());
}

#[test]
fn concurrent_version_creation_never_repeats_numbers() {
    let (_dir, store) = store();
    post(&store, "registered-models/create", json!({ "name": "shared" }));
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let store = store.clone();
            scope.spawn(move || {
                for _ in 0..25 {
                    post(&store, "model-versions/create", json!({ "name": "shared", "source": "file:///tmp/m" }));
                }
            });
        }
    });
    let found = get(&store, "model-versions/search", json!({ "filter": "name = 'shared'", "max_results": 1000 }));
    let mut numbers: Vec<u64> = found["model_versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap().parse().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(numbers, (1..=50).collect::<Vec<u64>>());
}

#[test]
fn root_that_is_a_file_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlruns");
    fs::write(&path, "not a store").unwrap();
    let err = FileStore::open(&path).unwrap_err();
    assert_eq!(err.kind(), "configuration");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "not a store");
}

#[test]
fn read_only_store_rejects_writes_and_changes_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, store) = store();
    post(&store, "registered-models/create", json!({ "name": "m" }));
    let before = snapshot(store.root());
    fs::set_permissions(store.root(), fs::Permissions::from_mode(0o555)).unwrap();
    let err = fails(&store, Method::POST, "registered-models/create", json!({ "name": "n" }));
    let reads = store.call(&Method::GET, "registered-models/get", &json!({ "name": "m" }));
    fs::set_permissions(store.root(), fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(err.kind(), "configuration");
    assert!(err.to_string().contains(&store.root().display().to_string()), "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    assert!(reads.is_ok(), "reading a read-only store still works");
    assert_eq!(snapshot(store.root()), before);
}

#[test]
fn corrupt_meta_is_named_and_nothing_changes() {
    let (_dir, store) = store();
    let run_id = new_run(&store, "0");
    let meta = store.root().join("0").join(&run_id).join("meta.yaml");
    fs::write(&meta, "run_id: [unclosed").unwrap();
    let before = snapshot(store.root());
    let err = fails(&store, Method::POST, "runs/set-tag", json!({ "run_id": run_id, "key": "k", "value": "v" }));
    assert_eq!(err.kind(), "parse");
    assert!(err.to_string().contains(&meta.display().to_string()), "{err}");
    assert_eq!(snapshot(store.root()), before);
}

#[test]
fn reads_python_written_values() {
    let (_dir, store) = store();
    let run_id = new_run(&store, "0");
    let metrics = store.root().join("0").join(&run_id).join("metrics");
    fs::write(metrics.join("py"), "1796416688594 nan 0\n1796416688595 inf 1\n1796416688596 1e+300\n").unwrap();
    let history = get(&store, "metrics/get-history", json!({ "run_id": run_id, "metric_key": "py" }));
    assert_eq!(history["metrics"][0]["value"], "NaN");
    assert_eq!(history["metrics"][1]["value"], "Infinity");
    assert_eq!(history["metrics"][2]["value"], 1e300);
    assert_eq!(history["metrics"][2]["step"], 0);
}

#[test]
fn unknown_endpoint_is_unsupported() {
    let (_dir, store) = store();
    let err = fails(&store, Method::POST, "logged-models", json!({}));
    assert_eq!(err.kind(), "unsupported");
}
