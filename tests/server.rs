//! Integration tests of the core crate against the real MLflow servers that
//! `scripts/test.sh` starts (`MLFLOWREG_TEST_TRACKING_URI` and
//! `MLFLOWREG_TEST_STRICT_URI`). Without them the tests fail, not skip.

mod common;

use std::time::Duration;

use mlflowreg::artifacts;
use mlflowreg::http::{Credentials, HttpConfig};
use mlflowreg::model::{rds, save_crate_model, MlModel, SaveOptions};
use mlflowreg::pipeline;
use mlflowreg::registry::NewModelVersion;
use mlflowreg::tracking::Tag;
use mlflowreg::Client;

fn server(variable: &str) -> Client {
    let uri = std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set; run the tests with scripts/test.sh, which starts the MLflow servers")
    });
    Client::new(&uri, variable).expect("client for the test server")
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// What R's `serialize(function(x) x, NULL)` starts with, followed by the
/// NULL object: a valid stream that `unserialize()` reads back as NULL.
fn serialized_null() -> Vec<u8> {
    let mut bytes = b"X\n".to_vec();
    for word in [3i32, 0x0004_0202, 0x0003_0500, 5] {
        bytes.extend_from_slice(&word.to_be_bytes());
    }
    bytes.extend_from_slice(b"UTF-8");
    bytes.extend_from_slice(&254i32.to_be_bytes());
    bytes
}

fn new_run(client: &Client) -> String {
    let experiment = client
        .create_experiment(&unique("rust-it"), None, &[Tag::new("suite", "rust")])
        .unwrap();
    client.create_run(&experiment, Some("rust-it"), None, &[]).unwrap().info.run_id
}


#[test]
fn logged_model_round_trips_through_server() {
    let client = server("MLFLOWREG_TEST_TRACKING_URI");
    let run_id = new_run(&client);

    let logged = pipeline::log_crate_model(&client, &run_id, "model", &serialized_null()).unwrap();
    assert_eq!(logged.model_uri, format!("runs:/{run_id}/model"));
    assert!(logged.warnings.is_empty(), "{:?}", logged.warnings);
    assert_eq!(logged.mlmodel.run_id.as_deref(), Some(run_id.as_str()));

    let dest = tempfile::tempdir().unwrap();
    let local = pipeline::download_model(&client, &logged.model_uri, &dest.path().join("m")).unwrap();
    let downloaded = MlModel::read_dir(&local).unwrap();
    assert_eq!(downloaded.model_uuid, logged.mlmodel.model_uuid);
    assert_eq!(downloaded.artifact_path.as_deref(), Some("model"));
    assert_eq!(rds::read_crate_file(&local.join("crate.bin")).unwrap(), serialized_null());
    assert!(local.join("code/mlflowreg_pyfunc.py").is_file());

    let run = client.get_run(&run_id).unwrap();
    let history = run.tag("mlflow.log-model.history").expect("log-model history tag");
    assert!(history.contains(&logged.mlmodel.model_uuid.clone().unwrap()), "{history}");
}

#[test]
fn register_waits_and_resolves_runs_uri() {
    let client = server("MLFLOWREG_TEST_TRACKING_URI");
    let run_id = new_run(&client);
    let logged = pipeline::log_crate_model(&client, &run_id, "model", &serialized_null()).unwrap();
    let name = unique("rust-registered");

    let extra = NewModelVersion {
        tags: vec![Tag::new("owner", "rust-test")],
        ..NewModelVersion::default()
    };
    let version = pipeline::register_model(&client, &logged.model_uri, &name, extra, Duration::from_secs(60), Some(None)).unwrap();
    assert_eq!(version.version, "1");
    assert_eq!(version.status.as_deref(), Some("READY"));
    assert_eq!(version.run_id.as_deref(), Some(run_id.as_str()));
    assert_eq!(version.source.as_deref(), Some(logged.artifact_uri.as_str()));

    let again = pipeline::register_model(&client, &logged.model_uri, &name, NewModelVersion::default(), Duration::ZERO, Some(None)).unwrap();
    assert_eq!(again.version, "2", "an existing registered model is reused");

    let fetched = client.get_model_version(&name, "1").unwrap();
    assert_eq!(fetched.tags, vec![Tag::new("owner", "rust-test")]);
}

#[test]
fn large_file_streams_byte_identical() {
    let client = server("MLFLOWREG_TEST_TRACKING_URI");
    let run_id = new_run(&client);
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    save_crate_model(&model_dir, &serialized_null(), &SaveOptions::default()).unwrap();
    // 24 MiB of varied bytes, larger than any buffer on the way.
    let big = model_dir.join("weights.bin");
    let chunk: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&big).unwrap();
        for round in 0..24u8 {
            let mut part = chunk.clone();
            part[0] = round;
            file.write_all(&part).unwrap();
        }
    }

    let logged = pipeline::log_model_dir(&client, &run_id, &model_dir, "big").unwrap();
    let repo = artifacts::open(&client, &client.get_run(&run_id).unwrap().info.artifact_uri.unwrap()).unwrap();
    let listing = artifacts::list_recursive(repo.as_ref(), "big").unwrap();
    let weights = listing.iter().find(|f| f.path == "big/weights.bin").expect("weights listed");
    assert_eq!(weights.file_size, Some(24 << 20));

    let back = dir.path().join("back");
    pipeline::download_model(&client, &logged.model_uri, &back).unwrap();
    assert_eq!(common::fingerprint(&back.join("weights.bin")), common::fingerprint(&big));
}

#[test]
fn strict_registry_rejects_crate_only_model() {
    let client = server("MLFLOWREG_TEST_STRICT_URI");
    let run_id = new_run(&client);
    let dir = tempfile::tempdir().unwrap();
    let crate_only = dir.path().join("crate-only");
    std::fs::create_dir(&crate_only).unwrap();
    rds::write_crate_file(&crate_only.join("crate.bin"), &serialized_null()).unwrap();
    std::fs::write(
        crate_only.join("MLmodel"),
        "flavors:\n  crate:\n    version: 0.1.0\n    model: crate.bin\n",
    )
    .unwrap();
    let old = pipeline::log_model_dir(&client, &run_id, &crate_only, "old").unwrap();
    let ours = pipeline::log_crate_model(&client, &run_id, "ours", &serialized_null()).unwrap();
    let name = unique("rust-strict");

    // Skip the preflight check, so the server's own rejection is what we see.
    let err = pipeline::register_model(&client, &old.model_uri, &name, NewModelVersion::default(), Duration::ZERO, None)
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.error_code(), Some("INVALID_PARAMETER_VALUE"));
    assert!(
        err.to_string().contains("Flavors must contain a top level python_function key"),
        "{err}"
    );

    let version = pipeline::register_model(&client, &ours.model_uri, &name, NewModelVersion::default(), Duration::from_secs(60), Some(None)).unwrap();
    assert_eq!(version.status.as_deref(), Some("READY"));
}

#[test]
fn missing_run_is_not_found_error() {
    let client = server("MLFLOWREG_TEST_TRACKING_URI");
    let err = client.get_run("0123456789abcdef0123456789abcdef").unwrap_err();
    assert_eq!(err.kind(), "not_found");
    assert_eq!(err.error_code(), Some("RESOURCE_DOES_NOT_EXIST"));
}

#[test]
fn closed_port_is_unreachable_error() {
    let config = HttpConfig {
        max_retries: 1,
        backoff_factor: 0.01,
        backoff_jitter: 0.0,
        timeout: Duration::from_secs(5),
        ..HttpConfig::default()
    };
    // Port 9 (discard) on loopback has no listener on these machines.
    let client = Client::with_settings("http://127.0.0.1:9", "the test", config, Credentials::None).unwrap();
    let err = client.get_run("abc").unwrap_err();
    assert_eq!(err.kind(), "unreachable");
    let message = err.to_string();
    assert!(message.contains("http://127.0.0.1:9/api/2.0/mlflow/runs/get"), "{message}");
    assert!(message.contains("from the test"), "{message}");
}

#[test]
fn preflight_then_repair_crate_only_model() {
    use mlflowreg::validate::Profile;

    let client = server("MLFLOWREG_TEST_STRICT_URI");
    let run_id = new_run(&client);
    let dir = tempfile::tempdir().unwrap();
    let crate_only = dir.path().join("crate-only");
    std::fs::create_dir(&crate_only).unwrap();
    rds::write_crate_file(&crate_only.join("crate.bin"), &serialized_null()).unwrap();
    std::fs::write(crate_only.join("MLmodel"), "flavors:\n  crate:\n    version: 0.1.0\n    model: crate.bin\n").unwrap();
    let logged = pipeline::log_model_dir(&client, &run_id, &crate_only, "model").unwrap();
    let name = unique("rust-repair");

    let err = pipeline::register_model(&client, &logged.model_uri, &name, NewModelVersion::default(), Duration::ZERO, Some(Some(Profile::AzureMl)))
        .unwrap_err();
    assert_eq!(err.kind(), "validation");
    assert!(err.to_string().contains("flavors.python_function"), "{err}");
    assert!(client.get_registered_model(&name).unwrap_err().is_not_found(), "nothing registered");

    let repaired = pipeline::repair_model(Some(&client), &logged.model_uri).unwrap();
    assert_eq!(repaired.source, logged.artifact_uri);
    assert_eq!(repaired.uploaded.last().map(String::as_str), Some("MLmodel"));
    assert!(repaired.uploaded.contains(&"code/mlflowreg_pyfunc.py".to_string()));
    let again = pipeline::repair_model(Some(&client), &logged.model_uri).unwrap();
    assert!(again.uploaded.is_empty(), "{:?}", again.uploaded);

    let mlmodel = pipeline::read_model_mlmodel(Some(&client), &logged.model_uri).unwrap();
    assert_eq!(mlmodel.pyfunc_flavor().unwrap().unwrap().loader_module, "mlflowreg_pyfunc");
    assert!(mlmodel.crate_flavor().unwrap().is_some());
    let version = pipeline::register_model(&client, &logged.model_uri, &name, NewModelVersion::default(), Duration::from_secs(60), Some(Some(Profile::AzureMl)))
        .unwrap();
    assert_eq!(version.status.as_deref(), Some("READY"));
}
