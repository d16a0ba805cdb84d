//! Integration tests of the Azure ML support against the stand-ins that
//! `scripts/test.sh` starts: the gateway test double (which forwards MLflow
//! calls to the strict registry server) and Azurite as the blob endpoint.
//! Without them (`MLFLOWREG_TEST_AZUREML_*` unset) the tests fail, not skip.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mlflowreg::artifacts::{self, blob::BLOCK_SIZE};
use mlflowreg::azureml::credentials_from_lookup;
use mlflowreg::http::HttpConfig;
use mlflowreg::model::{save_crate_model, MlModel, SaveOptions};
use mlflowreg::pipeline;
use mlflowreg::registry::NewModelVersion;
use mlflowreg::{Client, Error};
use serde_json::Value;

fn env(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set; run the tests with scripts/test.sh, which starts Azurite and the gateway double")
    })
}

/// Calls a test control of the gateway double.
fn control(path_and_query: &str) -> Value {
    let url = format!("{}{path_and_query}", env("MLFLOWREG_TEST_AZUREML_CONTROL"));
    let response = reqwest::blocking::get(&url).unwrap_or_else(|err| panic!("GET {url}: {err}"));
    assert!(response.status().is_success(), "GET {url} returned {}", response.status());
    response.json().unwrap()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A job as Azure ML starts one: a run, and a token that expires after
/// `remaining` of its `lifetime` seconds.
struct Job {
    experiment_id: String,
    run_id: String,
    token: String,
}

fn new_job(lifetime: u64, remaining: u64) -> Job {
    let job = control(&format!("/job?experiment={}&lifetime={lifetime}&remaining={remaining}", unique("rust-azureml")));
    Job {
        experiment_id: job["experiment_id"].as_str().unwrap().to_string(),
        run_id: job["run_id"].as_str().unwrap().to_string(),
        token: job["token"].as_str().unwrap().to_string(),
    }
}

fn config(timeout_secs: u64, max_retries: u32) -> HttpConfig {
    HttpConfig {
        max_retries,
        backoff_factor: 0.1,
        backoff_jitter: 0.0,
        timeout: Duration::from_secs(timeout_secs),
        server_cert: Some(PathBuf::from(env("MLFLOWREG_TEST_AZUREML_CA"))),
        ..HttpConfig::default()
    }
}

/// Builds a client from the job's environment variables. `in_job = false`
/// leaves out MLFLOW_RUN_ID and MLFLOW_EXPERIMENT_ID, as outside a job.
fn client_with(job: &Job, in_job: bool, config: HttpConfig) -> Client {
    let uri = env("MLFLOWREG_TEST_AZUREML_URI");
    let mut vars = HashMap::from([("MLFLOW_TRACKING_TOKEN".to_string(), job.token.clone())]);
    if in_job {
        vars.insert("MLFLOW_RUN_ID".into(), job.run_id.clone());
        vars.insert("MLFLOW_EXPERIMENT_ID".into(), job.experiment_id.clone());
    }
    let credentials = credentials_from_lookup(&uri, |name| vars.get(name).cloned()).unwrap();
    Client::with_settings(&uri, "MLFLOWREG_TEST_AZUREML_URI", config, credentials).unwrap()
}

fn stats(run_id: &str) -> HashMap<String, u64> {
    let value = control(&format!("/stats?run={run_id}"));
    value
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, count)| (key.clone(), count.as_u64().unwrap()))
        .collect()
}

fn stat(stats: &HashMap<String, u64>, name: &str) -> u64 {
    stats.get(name).copied().unwrap_or(0)
}

/// Same serialization prefix as in tests/server.rs: R's header followed by NULL.
fn serialized_null() -> Vec<u8> {
    let mut bytes = b"X\n".to_vec();
    for word in [3i32, 0x0004_0202, 0x0003_0500, 5] {
        bytes.extend_from_slice(&word.to_be_bytes());
    }
    bytes.extend_from_slice(b"UTF-8");
    bytes.extend_from_slice(&254i32.to_be_bytes());
    bytes
}


fn registered_versions(client: &Client, name: &str) -> usize {
    match client.get_registered_model(name) {
        Ok(_) => client.get_latest_versions(name, &[]).unwrap().len(),
        Err(err) if err.is_not_found() => 0,
        Err(err) => panic!("{err}"),
    }
}

#[test]
fn runs_get_azureml_artifact_uris() {
    let job = new_job(600, 600);
    let client = client_with(&job, true, config(30, 1));
    let run = client.get_run(&job.run_id).unwrap();
    let artifact_uri = run.info.artifact_uri.unwrap();
    assert!(artifact_uri.starts_with("azureml://127.0.0.1:"), "{artifact_uri}");
    assert!(
        artifact_uri.ends_with(&format!("/experiments/{}/runs/{}/artifacts", job.experiment_id, job.run_id)),
        "{artifact_uri}"
    );
}

#[test]
fn model_round_trips_through_blob_storage() {
    let job = new_job(600, 600);
    let client = client_with(&job, true, config(30, 1));
    let logged = pipeline::log_crate_model(&client, &job.run_id, "model", &serialized_null()).unwrap();
    assert!(logged.warnings.is_empty(), "{:?}", logged.warnings);
    assert!(logged.artifact_uri.starts_with("azureml://"), "{}", logged.artifact_uri);

    let blobs = control(&format!("/blobs?run={}", job.run_id));
    let names: Vec<&str> = blobs["blobs"].as_array().unwrap().iter().map(|b| b.as_str().unwrap()).collect();
    for expected in ["model/MLmodel", "model/crate.bin", "model/code/mlflowreg_pyfunc.py", "model/code/mlflowreg_predict.R"] {
        assert!(names.contains(&expected), "{expected} not in {names:?}");
    }

    let name = unique("rust-azureml-model");
    let version = pipeline::register_model(&client, &logged.model_uri, &name, NewModelVersion::default(), Duration::from_secs(30), Some(None))
        .unwrap();
    assert_eq!(version.status.as_deref(), Some("READY"));
    assert_eq!(version.source.as_deref(), Some(logged.artifact_uri.as_str()));

    let dest = tempfile::tempdir().unwrap();
    let local = pipeline::download_model(&client, &format!("models:/{name}/{}", version.version), &dest.path().join("m")).unwrap();
    let downloaded = MlModel::read_dir(&local).unwrap();
    assert_eq!(downloaded.run_id.as_deref(), Some(job.run_id.as_str()));
    assert!(downloaded.flavors.contains_key("python_function"));
    assert!(local.join("code/mlflowreg_pyfunc.py").is_file());

    let counters = stats(&job.run_id);
    // Four model files plus MLmodel: one batch/metadata call each.
    assert!(stat(&counters, "artifact_batch_requests") >= 5, "{counters:?}");
    assert!(stat(&counters, "prefix_list_requests") >= 2, "{counters:?}");
    assert_eq!(stat(&counters, "logged_model_or_proxy_requests"), 0, "{counters:?}");
}

#[test]
fn large_model_uploads_in_blocks() {
    let job = new_job(600, 600);
    let client = client_with(&job, true, config(120, 1));
    let work = tempfile::tempdir().unwrap();
    let model_dir = work.path().join("big-model");
    let mut serialized = serialized_null();
    let mut rng = fastrand::Rng::with_seed(7);
    serialized.extend((0..64 * 1024 * 1024).map(|_| rng.u8(..)));
    save_crate_model(&model_dir, &serialized, &SaveOptions::default()).unwrap();
    drop(serialized);
    let crate_size = std::fs::metadata(model_dir.join("crate.bin")).unwrap().len();
    assert!(crate_size > 64 * 1024 * 1024, "{crate_size}");

    let started = Instant::now();
    let logged = pipeline::log_model_dir(&client, &job.run_id, &model_dir, "model").unwrap();
    let upload_secs = started.elapsed().as_secs_f64();

    let blocks = control(&format!("/blocks?run={}&path=model/crate.bin", job.run_id));
    let sizes: Vec<u64> = blocks["blocks"].as_array().unwrap().iter().map(|b| b["size"].as_u64().unwrap()).collect();
    assert_eq!(sizes.len() as u64, crate_size.div_ceil(BLOCK_SIZE), "{sizes:?}");
    assert!(sizes[..sizes.len() - 1].iter().all(|&size| size == BLOCK_SIZE), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<u64>(), crate_size);
    assert_eq!(blocks["blob_content_length"].as_u64(), Some(crate_size));

    let name = unique("rust-azureml-big");
    let version = pipeline::register_model(&client, &logged.model_uri, &name, NewModelVersion::default(), Duration::from_secs(30), Some(None))
        .unwrap();
    let started = Instant::now();
    let local = pipeline::download_model(&client, &format!("models:/{name}/{}", version.version), &work.path().join("back")).unwrap();
    let download_secs = started.elapsed().as_secs_f64();
    assert_eq!(common::fingerprint(&local.join("crate.bin")), common::fingerprint(&model_dir.join("crate.bin")));
    eprintln!(
        "large_model_uploads_in_blocks: crate.bin {crate_size} bytes in {} blocks; upload {upload_secs:.2} s, \
         download {download_secs:.2} s",
        sizes.len()
    );
}

#[test]
fn job_token_is_renewed_before_expiry() {
    // 10 s lifetime: renewed when less than 5 s remain, so 3 s in.
    let job = new_job(10, 10);
    control(&format!("/configure?run={}&lifetime=10", job.run_id));
    let client = client_with(&job, true, config(30, 1));
    client.get_run(&job.run_id).unwrap();
    assert_eq!(stat(&stats(&job.run_id), "refreshes_with_valid_token"), 0);

    std::thread::sleep(Duration::from_millis(5500));
    client.get_run(&job.run_id).unwrap();
    client.get_run(&job.run_id).unwrap();
    let counters = stats(&job.run_id);
    assert_eq!(stat(&counters, "refreshes_with_valid_token"), 1, "{counters:?}");
    assert_eq!(stat(&counters, "unauthorized"), 0, "{counters:?}");
    assert_eq!(stat(&counters, "expired_token_requests"), 0, "{counters:?}");
}

#[test]
fn job_token_is_renewed_once_after_401() {
    let job = new_job(600, 600);
    let client = client_with(&job, true, config(30, 1));
    client.get_run(&job.run_id).unwrap();
    control(&format!("/revoke?run={}", job.run_id));

    let run = client.get_run(&job.run_id).unwrap();
    assert_eq!(run.info.run_id, job.run_id);
    let counters = stats(&job.run_id);
    assert_eq!(stat(&counters, "unauthorized"), 1, "{counters:?}");
    assert_eq!(stat(&counters, "refreshes_with_rejected_token"), 1, "{counters:?}");
    assert_eq!(stat(&counters, "refreshes_with_valid_token"), 0, "{counters:?}");
}

#[test]
fn refused_renewal_is_authentication_error() {
    let job = new_job(600, 600);
    control(&format!("/configure?run={}&refresh_status=403", job.run_id));
    let client = client_with(&job, true, config(30, 1));
    control(&format!("/revoke?run={}", job.run_id));

    let err = client.get_run(&job.run_id).unwrap_err();
    assert_eq!(err.kind(), "authentication");
    let text = err.to_string();
    assert!(text.contains(&format!("/experimentids/{}/runs/{}/token", job.experiment_id, job.run_id)), "{text}");
    assert!(text.contains("returned 403"), "{text}");
    assert!(text.contains("MLFLOW_RUN_ID"), "{text}");
    assert!(!text.contains(&job.token), "the token leaked into: {text}");
    assert_eq!(stat(&stats(&job.run_id), "refresh_failures"), 1);
}

#[test]
fn user_token_is_not_renewed() {
    let job = new_job(600, 600);
    let client = client_with(&job, false, config(30, 1));
    client.get_run(&job.run_id).unwrap();
    control(&format!("/revoke?run={}", job.run_id));

    let err = client.get_run(&job.run_id).unwrap_err();
    assert_eq!(err.kind(), "authentication");
    assert!(err.to_string().contains("rejected the token in MLFLOW_TRACKING_TOKEN"), "{err}");
    let counters = stats(&job.run_id);
    assert_eq!(stat(&counters, "refreshes_with_rejected_token") + stat(&counters, "refreshes_with_valid_token"), 0);
}

#[test]
fn expired_user_token_fails_before_sending() {
    let job = new_job(600, 600);
    let expired = control(&format!("/token?run={}&lifetime=60&remaining=-5", job.run_id));
    let job = Job { token: expired["token"].as_str().unwrap().to_string(), ..job };
    let client = client_with(&job, false, config(30, 1));
    let err = client.get_run(&job.run_id).unwrap_err();
    assert_eq!(err.kind(), "authentication");
    assert!(err.to_string().contains("expired at"), "{err}");
    assert_eq!(stat(&stats(&job.run_id), "unauthorized"), 0, "a request was sent");
}

#[test]
fn refused_sas_fails_upload_and_registers_nothing() {
    let job = new_job(600, 600);
    control(&format!("/configure?run={}&sas_mode=forbidden", job.run_id));
    let client = client_with(&job, true, config(30, 1));
    let err = pipeline::log_crate_model(&client, &job.run_id, "model", &serialized_null()).unwrap_err();
    assert_eq!(err.kind(), "storage", "{err}");
    assert_eq!(err.status(), Some(403));
    let text = err.to_string();
    assert!(text.contains("returned 403"), "{text}");
    assert!(text.contains("/devstoreaccount1/azureml/ExperimentRun/"), "{text}");
    assert!(!text.contains("sig="), "the SAS leaked into: {text}");
    assert!(!text.contains('?'), "a query string is in: {text}");

    // No MLmodel was written, so the run contains no model to register.
    let blobs = control(&format!("/blobs?run={}", job.run_id));
    assert_eq!(blobs["blobs"].as_array().unwrap().len(), 0, "{blobs}");
    let name = unique("rust-azureml-refused");
    let err = pipeline::register_model(
        &client,
        &format!("runs:/{}/model", job.run_id),
        &name,
        NewModelVersion::default(),
        Duration::from_secs(5),
        Some(None),
    )
    .unwrap_err();
    assert_eq!(err.kind(), "invalid_argument", "{err}");
    assert!(err.to_string().contains("has no MLmodel file"), "{err}");
    assert_eq!(registered_versions(&client, &name), 0);
}

#[test]
fn crate_only_model_fails_azureml_preflight() {
    let job = new_job(600, 600);
    let client = client_with(&job, true, config(30, 1));
    let work = tempfile::tempdir().unwrap();
    let model_dir = work.path().join("crate-only");
    save_crate_model(&model_dir, &serialized_null(), &SaveOptions::default()).unwrap();
    let mut mlmodel = MlModel::read_dir(&model_dir).unwrap();
    mlmodel.flavors.remove("python_function");
    std::fs::write(model_dir.join("MLmodel"), mlmodel.to_yaml().unwrap()).unwrap();
    let logged = pipeline::log_model_dir(&client, &job.run_id, &model_dir, "model").unwrap();

    // No profile given: the azureml:// tracking URI picks Azure ML's rules.
    let name = unique("rust-azureml-crate-only");
    let err = pipeline::register_model(&client, &logged.model_uri, &name, NewModelVersion::default(), Duration::from_secs(5), Some(None))
        .unwrap_err();
    assert_eq!(err.kind(), "validation", "{err}");
    assert!(err.to_string().contains("python_function"), "{err}");
    assert!(err.to_string().contains("azureml"), "{err}");
    assert_eq!(registered_versions(&client, &name), 0);
}

#[test]
fn silent_blob_endpoint_times_out() {
    let job = new_job(600, 600);
    control(&format!("/configure?run={}&sas_mode=timeout", job.run_id));
    let client = client_with(&job, true, config(2, 0));
    let started = Instant::now();
    let err = pipeline::log_crate_model(&client, &job.run_id, "model", &serialized_null()).unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, Error::Storage { status: None, .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("no response"), "{text}");
    assert!(text.contains("MLFLOW_HTTP_REQUEST_TIMEOUT"), "{text}");
    assert!(!text.contains("sig="), "{text}");
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
}

#[test]
fn datastore_and_foreign_artifact_uris_are_rejected() {
    let job = new_job(600, 600);
    let client = client_with(&job, true, config(30, 1));
    let foreign = "azureml://other.example/mlflow/v2.0/subscriptions/s/resourceGroups/r/providers/Microsoft.MachineLearningServices/workspaces/w/experiments/1/runs/x/artifacts";
    let err = artifacts::open(&client, foreign).err().unwrap();
    assert_eq!(err.kind(), "unsupported");
    assert!(err.to_string().contains("only to the tracking host"), "{err}");
}
