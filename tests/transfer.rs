//! Integration tests of uploads and downloads against the real MLflow
//! servers that `scripts/test.sh` starts. They cover parallel directory
//! transfers with progress, multipart upload on the server whose artifacts
//! live in S3 (moto on 127.0.0.1, `MLFLOWREG_TEST_S3_URI`), the abort of a
//! failed multipart upload, and the single-PUT fallback on a server without
//! multipart. Without the servers the tests fail, not skip.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use mlflowreg::artifacts::{self, MlflowArtifacts, MultipartSettings, Progress, Transfer};
use mlflowreg::http::{Credentials, HttpConfig};
use mlflowreg::tracking::Tag;
use mlflowreg::{pipeline, Client, Error};

fn server(variable: &str) -> Client {
    let uri = std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set; run the tests with scripts/test.sh, which starts the MLflow servers")
    });
    Client::new(&uri, variable).expect("client for the test server")
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn new_run(client: &Client) -> (String, String) {
    let experiment = client.create_experiment(&unique("transfer"), None, &[Tag::new("suite", "rust")]).unwrap();
    let run = client.create_run(&experiment, Some("transfer"), None, &[]).unwrap();
    (run.info.run_id.clone(), run.info.artifact_uri.unwrap())
}

/// Writes `len` bytes of a pattern that differs at every position of a
/// part, so a part sent twice or out of order changes the digest.
fn write_patterned(path: &Path, len: usize) {
    let mut file = std::fs::File::create(path).unwrap();
    let mut written = 0usize;
    let mut block = vec![0u8; 1 << 16];
    while written < len {
        for (i, byte) in block.iter_mut().enumerate() {
            let position = (written + i) as u64;
            *byte = (position.wrapping_mul(2_654_435_761) >> 13) as u8 ^ (position >> 16) as u8;
        }
        let n = block.len().min(len - written);
        file.write_all(&block[..n]).unwrap();
        written += n;
    }
}


/// Multipart for every file of at least 1 MiB, in parts of 5 MiB (S3's
/// smallest part except the last).
fn small_multipart() -> MultipartSettings {
    MultipartSettings { enabled: true, min_file_size: 1 << 20, part_size: 5 << 20 }
}

#[test]
fn s3_server_offers_multipart() {
    let client = server("MLFLOWREG_TEST_S3_URI");
    let (_, root) = new_run(&client);
    let repo = MlflowArtifacts::new(&client, &root).unwrap();
    assert!(repo.multipart_offered().unwrap());
}

#[test]
fn plain_server_offers_no_multipart() {
    let client = server("MLFLOWREG_TEST_TRACKING_URI");
    let (_, root) = new_run(&client);
    let repo = MlflowArtifacts::new(&client, &root).unwrap();
    assert!(!repo.multipart_offered().unwrap());
}

#[test]
fn multipart_upload_byte_identical() {
    let client = server("MLFLOWREG_TEST_S3_URI");
    let (_, root) = new_run(&client);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("weights.bin");
    // Three parts: 5 MiB, 5 MiB and 2 MiB plus 13 bytes.
    let size = (12 << 20) + 13;
    write_patterned(&local, size);

    let repo = MlflowArtifacts::new(&client, &root).unwrap().with_multipart(small_multipart());
    let progress = Progress::new();
    let transfer = Transfer { workers: 3, progress: Some(progress.clone()) };
    let uploaded = artifacts::upload_path(&repo, &local, "big", &transfer).unwrap();
    assert_eq!(uploaded, vec!["big/weights.bin".to_string()]);

    let snapshot = progress.snapshot();
    assert_eq!(snapshot.total_bytes, size as u64);
    assert_eq!(snapshot.done_bytes, size as u64);
    assert_eq!(snapshot.done_files, 1);

    let listing = artifacts::list_recursive(&repo, "big").unwrap();
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].file_size, Some(size as u64));

    let back = dir.path().join("back.bin");
    artifacts::download_dir(&repo, "big/weights.bin", &back, 1).unwrap();
    assert_eq!(common::fingerprint(&back), common::fingerprint(&local));

    // S3 gives an object assembled from parts the ETag "<md5>-<parts>".
    let run_path = root.trim_start_matches("mlflow-artifacts:/");
    let object = format!("{}/mlflowreg-test/s3/{run_path}/big/weights.bin", moto_uri());
    let head = reqwest::blocking::Client::new().head(object).send().unwrap();
    assert!(head.status().is_success(), "{}", head.status());
    let etag = head.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.trim_matches('"').ends_with("-3"), "{etag}");
}

fn moto_uri() -> String {
    std::env::var("MLFLOWREG_TEST_MOTO_URI")
        .expect("MLFLOWREG_TEST_MOTO_URI is not set; run the tests with scripts/test.sh")
}

#[test]
fn multipart_failure_aborts_upload() {
    // The server returns 500 for the rejected completion, which is retried
    // by default, so one attempt keeps the test short.
    let uri = server("MLFLOWREG_TEST_S3_URI").tracking_uri().to_string();
    let config = HttpConfig { max_retries: 0, ..HttpConfig::default() };
    let client = Client::with_settings(&uri, "MLFLOWREG_TEST_S3_URI", config, Credentials::None).unwrap();
    let (_, root) = new_run(&client);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("parts.bin");
    write_patterned(&local, 3 << 20);

    // Parts of 1 MiB are below S3's 5 MiB minimum, so the store rejects the
    // completion and the client must abort the upload.
    let settings = MultipartSettings { enabled: true, min_file_size: 1, part_size: 1 << 20 };
    let repo = MlflowArtifacts::new(&client, &root).unwrap().with_multipart(settings);
    let err = artifacts::upload_path(&repo, &local, "failed", &Transfer { workers: 2, progress: None }).unwrap_err();
    assert!(matches!(err, Error::Api { .. }), "{err}");

    // Nothing was stored, and moto lists no open multipart upload for the key.
    let listing = artifacts::list_recursive(&repo, "failed").unwrap();
    assert!(listing.is_empty(), "{listing:?}");
    let uploads = reqwest::blocking::get(format!("{}/mlflowreg-test?uploads", moto_uri()))
        .unwrap()
        .text()
        .unwrap();
    let run_path = root.trim_start_matches("mlflow-artifacts:/");
    assert!(uploads.contains("ListMultipartUploadsResult"), "{uploads}");
    assert!(!uploads.contains(&format!("{run_path}/failed/parts.bin")), "{uploads}");
}

#[test]
fn multipart_falls_back_to_single_put() {
    // The plain server stores artifacts on disk and returns NOT_IMPLEMENTED
    // for mpu/create even when the client assumes multipart works.
    let client = server("MLFLOWREG_TEST_TRACKING_URI");
    let (_, root) = new_run(&client);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("fallback.bin");
    write_patterned(&local, (6 << 20) + 1);

    let repo = MlflowArtifacts::new(&client, &root).unwrap().with_multipart(small_multipart());
    repo.set_multipart_offered(true);
    let progress = Progress::new();
    let transfer = Transfer { workers: 2, progress: Some(progress.clone()) };
    artifacts::upload_path(&repo, &local, "", &transfer).unwrap();
    assert_eq!(progress.snapshot().done_bytes, (6 << 20) + 1);

    let back = dir.path().join("back.bin");
    artifacts::download_dir(&repo, "fallback.bin", &back, 1).unwrap();
    assert_eq!(common::fingerprint(&back), common::fingerprint(&local));
}

#[test]
fn parallel_directory_round_trip() {
    let client = server("MLFLOWREG_TEST_TRACKING_URI");
    let (run_id, _) = new_run(&client);
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("many");
    let mut expected = BTreeMap::new();
    for i in 0..120usize {
        let sub = source.join(format!("d{}", i % 3));
        std::fs::create_dir_all(&sub).unwrap();
        let path = sub.join(format!("f{i:03}.txt"));
        let text = format!("file {i}\n").repeat(i + 1);
        std::fs::write(&path, &text).unwrap();
        expected.insert(format!("d{}/f{i:03}.txt", i % 3), text);
    }
    let total: u64 = expected.values().map(|t| t.len() as u64).sum();

    let up = Progress::new();
    let transfer = Transfer { workers: 8, progress: Some(up.clone()) };
    let uploaded = pipeline::log_artifact_with(&client, &run_id, &source, "many", &transfer).unwrap();
    assert_eq!(uploaded.len(), 120);
    assert_eq!(up.snapshot().total_files, 120);
    assert_eq!(up.snapshot().done_files, 120);
    assert_eq!(up.snapshot().done_bytes, total);

    let down = Progress::new();
    let transfer = Transfer { workers: 8, progress: Some(down.clone()) };
    let dest = dir.path().join("back");
    pipeline::download_artifacts_with(&client, &run_id, "many", &dest, &transfer).unwrap();
    assert_eq!(down.snapshot().done_files, 120);
    assert_eq!(down.snapshot().done_bytes, total);
    for (relative, text) in &expected {
        assert_eq!(&std::fs::read_to_string(dest.join(relative)).unwrap(), text, "{relative}");
    }
}

#[test]
fn cancelled_transfer_stops_with_error() {
    let client = server("MLFLOWREG_TEST_TRACKING_URI");
    let (run_id, _) = new_run(&client);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("x.bin");
    write_patterned(&local, 4096);

    let progress = Progress::new();
    progress.cancel();
    let transfer = Transfer { workers: 1, progress: Some(progress) };
    let err = pipeline::log_artifact_with(&client, &run_id, &local, "", &transfer).unwrap_err();
    assert_eq!(err.kind(), "cancelled", "{err}");
}

#[test]
fn download_into_existing_path_keeps_it() {
    let client = server("MLFLOWREG_TEST_TRACKING_URI");
    let (run_id, _) = new_run(&client);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("a.txt");
    std::fs::write(&local, "a").unwrap();
    pipeline::log_artifact_with(&client, &run_id, &local, "", &Transfer::from_env().unwrap()).unwrap();

    let dest = dir.path().join("taken");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("keep.txt"), "keep").unwrap();
    let transfer = Transfer::from_env().unwrap();
    assert!(pipeline::download_artifacts_with(&client, &run_id, "", &dest, &transfer).is_err());
    assert_eq!(std::fs::read_to_string(dest.join("keep.txt")).unwrap(), "keep");
}

#[test]
fn log_and_register_in_one_call() {
    use mlflowreg::pipeline::Registration;
    use std::time::Duration;

    let client = server("MLFLOWREG_TEST_TRACKING_URI");
    let (run_id, root) = new_run(&client);
    let name = unique("one-call");
    let registration = Registration {
        name: name.clone(),
        extra: Default::default(),
        await_for: Duration::from_secs(60),
        profile: Some(None),
    };
    let serialized = b"X\n\x00\x00\x00\x03\x00\x04\x02\x02\x00\x03\x05\x00\x00\x00\x00\x05UTF-8\x00\x00\x00\xfe";
    let transfer = Transfer::from_env().unwrap();

    // The first call creates the registered model; the second finds it,
    // and is given the run's artifact root so it skips runs/get.
    let (logged, first) =
        pipeline::log_crate_model_and_register(&client, &run_id, None, "m1", serialized, &registration, &transfer).unwrap();
    let first = first.unwrap();
    let (_, second) = pipeline::log_crate_model_and_register(
        &client, &run_id, Some(&root), "m2", serialized, &registration, &transfer,
    )
    .unwrap();
    let second = second.unwrap();

    assert_eq!(logged.artifact_uri, format!("{root}/m1"));
    assert!(logged.warnings.is_empty(), "{:?}", logged.warnings);
    assert_eq!(first.version, "1");
    assert_eq!(second.version, "2");
    assert_eq!(first.status.as_deref(), Some("READY"));
    assert_eq!(first.run_id.as_deref(), Some(run_id.as_str()));
    assert_eq!(first.source.as_deref(), Some(format!("{root}/m1").as_str()));
    assert_eq!(second.source.as_deref(), Some(format!("{root}/m2").as_str()));

    let run = client.get_run(&run_id).unwrap();
    let history = run.data.tags.iter().find(|t| t.key == "mlflow.log-model.history").expect("log-model recorded");
    assert!(history.value.contains("\"m1\""), "{}", history.value);
    assert!(history.value.contains("\"m2\""), "{}", history.value);

    let dest = tempfile::tempdir().unwrap();
    let local = pipeline::download_model(&client, &format!("models:/{name}/2"), &dest.path().join("m")).unwrap();
    assert!(local.join("crate.bin").is_file());
}
