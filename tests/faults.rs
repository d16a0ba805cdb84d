//! The retry policy, create-without-duplicates and upload checks against
//! the real MLflow test server, through the fault-injecting proxy.

mod common;

use std::time::{Duration, Instant};

use common::{client_for, fast_config, noise, serialized, server_uri, unique, FaultProxy};
use mlflowreg::cancel::CancelToken;
use mlflowreg::model::{save_crate_model, SaveOptions};
use mlflowreg::registry::{ModelVersion, NewModelVersion};
use mlflowreg::{artifacts, pipeline, Client};
use serde_json::json;

fn direct() -> Client {
    client_for(&server_uri(), fast_config())
}

fn new_run(client: &Client) -> String {
    let experiment = client.create_experiment(&unique("faults"), None, &[]).unwrap();
    client.create_run(&experiment, Some("faults"), None, &[]).unwrap().info.run_id
}

/// Logs a small model straight to the server; returns its run and artifact URI.
fn logged_model(client: &Client) -> (String, String) {
    let run_id = new_run(client);
    let logged = pipeline::log_crate_model(client, &run_id, "model", &serialized(b"not read by the registry")).unwrap();
    (run_id, logged.artifact_uri)
}

fn versions(client: &Client, name: &str) -> Vec<ModelVersion> {
    client
        .search_model_versions(Some(&format!("name = '{name}'")), &[], None, None)
        .unwrap()
        .0
}

#[test]
fn status_503_is_retried_until_success() {
    let proxy = FaultProxy::start(json!([{"path": "experiments/search", "action": "status", "status": 503, "times": 2}]));
    let client = client_for(&proxy.uri, fast_config());
    client.search_experiments(None, "ACTIVE_ONLY", &[], Some(1), None).unwrap();
    assert_eq!(proxy.count("POST", "experiments/search"), 3);
}

#[test]
fn exhausted_retries_return_the_last_status() {
    let proxy = FaultProxy::start(json!([{"path": "experiments/search", "action": "status", "status": 503, "times": 10}]));
    let client = client_for(&proxy.uri, fast_config());
    let err = client.search_experiments(None, "ACTIVE_ONLY", &[], Some(1), None).unwrap_err();
    assert_eq!(err.status(), Some(503), "{err}");
    // The first attempt and max_retries = 2 retries.
    assert_eq!(proxy.count("POST", "experiments/search"), 3);
}

#[test]
fn client_error_is_not_retried() {
    let proxy = FaultProxy::start(json!([{"path": "experiments/search", "action": "status", "status": 400, "times": 10}]));
    let client = client_for(&proxy.uri, fast_config());
    let err = client.search_experiments(None, "ACTIVE_ONLY", &[], Some(1), None).unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert_eq!(proxy.count("POST", "experiments/search"), 1);
}

#[test]
fn retry_after_sets_the_wait() {
    let proxy = FaultProxy::start(json!([{
        "path": "experiments/search", "action": "status", "status": 429,
        "headers": {"Retry-After": "1"}, "times": 1
    }]));
    let config = mlflowreg::http::HttpConfig { backoff_factor: 0.0, ..fast_config() };
    let client = client_for(&proxy.uri, config);
    let started = Instant::now();
    client.search_experiments(None, "ACTIVE_ONLY", &[], Some(1), None).unwrap();
    // With no backoff, only Retry-After can explain a wait this long.
    assert!(started.elapsed() >= Duration::from_millis(950), "{:?}", started.elapsed());
    assert_eq!(proxy.count("POST", "experiments/search"), 2);
}

#[test]
fn lost_create_response_makes_one_version() {
    let direct = direct();
    let (run_id, source) = logged_model(&direct);
    let cases = [
        json!({"action": "reset_after_forward"}),
        json!({"action": "delay", "seconds": 3}),
        json!({"action": "cut_response", "bytes": 10}),
        json!({"action": "status", "status": 503}),
        json!({"action": "close_after_bytes", "bytes": 5}),
        json!({"action": "status", "status": 429}),
    ];
    // Whether the server saw the faulted request, and so how many creates
    // the client sends in all.
    let expected_posts = [1, 1, 1, 2, 2, 2];
    for (rule, posts) in cases.iter().zip(expected_posts) {
        let mut rule = rule.clone();
        rule["path"] = json!("model-versions/create");
        let proxy = FaultProxy::start(json!([rule]));
        let client = client_for(&proxy.uri, fast_config());
        let name = unique("lost-create");
        direct.create_registered_model(&name, &[], None).unwrap();
        let extra = NewModelVersion { run_id: Some(run_id.clone()), ..NewModelVersion::default() };

        let version = client
            .create_model_version(&name, &source, &extra)
            .unwrap_or_else(|err| panic!("{rule}: {err}"));
        assert_eq!(version.version, "1", "{rule}");
        assert_eq!(versions(&direct, &name).len(), 1, "{rule}");
        assert_eq!(proxy.count_after("POST", "model-versions/create", posts), posts, "{rule}");
    }
}

#[test]
fn earlier_version_of_same_run_is_not_mistaken_for_the_lost_one() {
    let direct = direct();
    let (run_id, source) = logged_model(&direct);
    let name = unique("second");
    direct.create_registered_model(&name, &[], None).unwrap();
    let extra = NewModelVersion { run_id: Some(run_id.clone()), ..NewModelVersion::default() };
    direct.create_model_version(&name, &source, &extra).unwrap();

    // The server never sees the first attempt, so the lookup must not take
    // version 1 for it.
    let proxy = FaultProxy::start(json!([{"path": "model-versions/create", "action": "status", "status": 503}]));
    let version = client_for(&proxy.uri, fast_config()).create_model_version(&name, &source, &extra).unwrap();
    assert_eq!(version.version, "2");
    assert_eq!(versions(&direct, &name).len(), 2);
}

#[test]
fn lost_registered_model_create_returns_the_model() {
    let proxy = FaultProxy::start(json!([{"path": "registered-models/create", "action": "reset_after_forward"}]));
    let client = client_for(&proxy.uri, fast_config());
    let name = unique("lost-model");
    let model = client.create_registered_model(&name, &[], Some("made once")).unwrap();
    assert_eq!(model.name, name);
    assert_eq!(proxy.count("POST", "registered-models/create"), 1);
    assert_eq!(direct().get_registered_model(&name).unwrap().description.as_deref(), Some("made once"));
}

#[test]
fn truncated_upload_is_caught_before_recording() {
    let proxy = FaultProxy::start(json!([{"path": "/model/crate.bin", "method": "PUT", "action": "truncate_body", "bytes": 100, "times": 10}]));
    let client = client_for(&proxy.uri, fast_config());
    let run_id = new_run(&client);
    let err = pipeline::log_crate_model(&client, &run_id, "model", &serialized(&noise(50_000))).unwrap_err();
    assert_eq!(err.kind(), "incomplete_model", "{err}");
    assert!(err.to_string().contains("crate.bin has 100 bytes, expected"), "{err}");
    // Nothing was recorded in the run.
    let run = direct().get_run(&run_id).unwrap();
    assert!(!run.data.tags.iter().any(|t| t.key == "mlflow.log-model.history"), "{:?}", run.data.tags);
}

#[test]
fn upload_answered_but_never_stored_is_caught() {
    let proxy = FaultProxy::start(json!([{"path": "/model/conda.yaml", "method": "PUT", "action": "fake_success", "times": 10}]));
    let client = client_for(&proxy.uri, fast_config());
    let run_id = new_run(&client);
    let err = pipeline::log_crate_model(&client, &run_id, "model", &serialized(b"model")).unwrap_err();
    assert_eq!(err.kind(), "incomplete_model", "{err}");
    assert!(err.to_string().contains("- conda.yaml is missing"), "{err}");
}

#[test]
fn register_checks_files_the_mlmodel_promises() {
    let client = direct();
    let run_id = new_run(&client);
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    save_crate_model(&model_dir, &serialized(b"model"), &SaveOptions::default()).unwrap();
    let run = client.get_run(&run_id).unwrap();
    let repo = artifacts::open(&client, run.info.artifact_uri.as_deref().unwrap()).unwrap();
    // Everything but the crate file, MLmodel included.
    artifacts::upload_dir(repo.as_ref(), &model_dir, "model", &["crate.bin"], 2).unwrap();

    let name = unique("incomplete");
    let err = pipeline::register_model(
        &client,
        &format!("runs:/{run_id}/model"),
        &name,
        NewModelVersion::default(),
        Duration::ZERO,
        Some(None),
    )
    .unwrap_err();
    assert_eq!(err.kind(), "incomplete_model", "{err}");
    let message = err.to_string();
    assert!(message.contains("crate.bin (model file of the crate flavor) is missing"), "{message}");
    assert!(message.contains("model_size_bytes"), "{message}");
    assert!(client.get_registered_model(&name).unwrap_err().is_not_found());
}

#[test]
fn cut_download_is_retried_whole() {
    let direct = direct();
    let payload = serialized(&noise(200_000));
    let run_id = new_run(&direct);
    let logged = pipeline::log_crate_model(&direct, &run_id, "model", &payload).unwrap();
    let proxy = FaultProxy::start(json!([{"path": "/model/crate.bin", "method": "GET", "action": "cut_response", "bytes": 1000}]));
    let client = client_for(&proxy.uri, fast_config());
    let dest = tempfile::tempdir().unwrap();
    let local = pipeline::download_model(&client, &logged.model_uri, &dest.path().join("m")).unwrap();
    let bytes = mlflowreg::model::rds::read_crate_file(&local.join("crate.bin")).unwrap();
    assert_eq!(bytes, payload);
    assert_eq!(proxy.count("GET", "/model/crate.bin"), 2);
}

#[test]
fn cancel_stops_a_throttled_upload() {
    let proxy = FaultProxy::start(json!([{"path": "/model/crate.bin", "method": "PUT", "action": "throttle", "bytes_per_second": 100000}]));
    let token = CancelToken::new();
    let client = client_for(&proxy.uri, fast_config()).with_cancel(token.clone());
    let run_id = new_run(&client);
    // 3 MB that gzip cannot shrink: half a minute through the proxy.
    let payload = serialized(&noise(3_000_000));
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        token.cancel();
    });
    let started = Instant::now();
    let err = pipeline::log_crate_model(&client, &run_id, "model", &payload).unwrap_err();
    canceller.join().unwrap();
    assert_eq!(err.kind(), "interrupted", "{err}");
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    let listed = artifacts::list_recursive(
        artifacts::open(&direct(), direct().get_run(&run_id).unwrap().info.artifact_uri.as_deref().unwrap())
            .unwrap()
            .as_ref(),
        "model",
    )
    .unwrap();
    assert!(!listed.iter().any(|f| f.path == "model/MLmodel"), "{listed:?}");
}

#[test]
fn cancel_stops_the_registration_wait() {
    let token = CancelToken::new();
    let client = direct().with_cancel(token.clone());
    let pending = ModelVersion {
        name: "never-polled".into(),
        version: "1".into(),
        status: Some("PENDING_REGISTRATION".into()),
        creation_timestamp: None,
        last_updated_timestamp: None,
        current_stage: None,
        description: None,
        source: None,
        run_id: None,
        run_link: None,
        status_message: None,
        tags: vec![],
        aliases: vec![],
    };
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        token.cancel();
    });
    let started = Instant::now();
    let err = client
        .wait_for_model_version(pending, Duration::from_secs(300), Duration::from_secs(3))
        .unwrap_err();
    canceller.join().unwrap();
    assert_eq!(err.kind(), "interrupted", "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}
