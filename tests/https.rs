//! TLS, basic authentication and proxies against nginx with a throwaway CA
//! (`tests/fixtures/https_gateway.py`) in front of the real MLflow test
//! server.
//!
//! The tests that read settings from the environment take [`ENV_LOCK`],
//! because environment variables are shared by the test threads and the
//! HTTP client reads `HTTPS_PROXY` and `NO_PROXY` when it is built.

mod common;

use std::sync::Mutex;

use common::{secret, unique, FaultProxy, Gateway};
use mlflowreg::http::{Credentials, HttpConfig, Secret};
use mlflowreg::{pipeline, Client};
use serde_json::json;

static ENV_LOCK: Mutex<()> = Mutex::new(());

fn lock_env() -> std::sync::MutexGuard<'static, ()> {
    ENV_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn basic(gateway: &Gateway) -> Credentials {
    Credentials::Basic {
        username: gateway.user.clone(),
        password: Secret::new(secret("MLFLOWREG_TEST_PASSWORD")),
    }
}

fn config_with_ca(gateway: &Gateway) -> HttpConfig {
    HttpConfig {
        server_cert: Some(gateway.ca.clone()),
        max_retries: 1,
        backoff_factor: 0.05,
        ..HttpConfig::default()
    }
}

/// Makes an experiment and a run, logs a small model and reads it back:
/// JSON calls, artifact upload and download all go through the gateway.
fn round_trip(client: &Client) {
    let experiment = client.create_experiment(&unique("https"), None, &[]).unwrap();
    let run_id = client.create_run(&experiment, None, None, &[]).unwrap().info.run_id;
    let payload = common::serialized(b"over https");
    let logged = pipeline::log_crate_model(client, &run_id, "model", &payload).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let local = pipeline::download_model(client, &logged.model_uri, &dest.path().join("m")).unwrap();
    assert_eq!(mlflowreg::model::rds::read_crate_file(&local.join("crate.bin")).unwrap(), payload);
}

#[test]
fn private_ca_and_basic_auth_work() {
    let _env = lock_env();
    let gateway = Gateway::start(&secret("MLFLOWREG_TEST_PASSWORD"));
    let client = Client::with_settings(&gateway.https_uri, "test", config_with_ca(&gateway), basic(&gateway)).unwrap();
    round_trip(&client);
}

#[test]
fn unknown_ca_fails_clearly() {
    let _env = lock_env();
    let gateway = Gateway::start(&secret("MLFLOWREG_TEST_PASSWORD"));
    let config = HttpConfig { server_cert: None, ..config_with_ca(&gateway) };
    let client = Client::with_settings(&gateway.https_uri, "test", config, basic(&gateway)).unwrap();
    let err = client.get_experiment_by_name("Default").unwrap_err();
    assert_eq!(err.kind(), "unreachable", "{err}");
    let message = err.to_string();
    assert!(message.contains("invalid peer certificate"), "{message}");
    assert!(message.contains("MLFLOW_TRACKING_SERVER_CERT_PATH"), "{message}");
    assert!(message.contains(&gateway.https_uri), "{message}");
}

#[test]
fn insecure_flag_skips_verification() {
    let _env = lock_env();
    let gateway = Gateway::start(&secret("MLFLOWREG_TEST_PASSWORD"));
    let config = HttpConfig { server_cert: None, insecure_tls: true, ..config_with_ca(&gateway) };
    let client = Client::with_settings(&gateway.https_uri, "test", config, basic(&gateway)).unwrap();
    round_trip(&client);
}

#[test]
fn wrong_password_is_an_api_error_without_the_password() {
    let _env = lock_env();
    let gateway = Gateway::start(&secret("MLFLOWREG_TEST_PASSWORD"));
    let wrong = format!("{}-wrong", secret("MLFLOWREG_TEST_PASSWORD"));
    let credentials = Credentials::Basic { username: gateway.user.clone(), password: Secret::new(wrong.clone()) };
    let client = Client::with_settings(&gateway.https_uri, "test", config_with_ca(&gateway), credentials).unwrap();
    let err = client.get_experiment_by_name("Default").unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert!(!err.to_string().contains(&wrong), "{err}");
    assert!(!format!("{err:?}").contains(&wrong), "{err:?}");
    assert!(!format!("{client:?}").contains(&wrong));
}

#[test]
fn client_certificate_is_sent_when_configured() {
    let _env = lock_env();
    let gateway = Gateway::start(&secret("MLFLOWREG_TEST_PASSWORD"));
    let without = Client::with_settings(&gateway.mtls_uri, "test", config_with_ca(&gateway), Credentials::None).unwrap();
    let err = without.get_experiment_by_name("Default").unwrap_err();
    // nginx answers 400 "No required SSL certificate was sent".
    assert_eq!(err.status(), Some(400), "{err}");

    let config = HttpConfig { client_cert: Some(gateway.client_cert.clone()), ..config_with_ca(&gateway) };
    let with = Client::with_settings(&gateway.mtls_uri, "test", config, Credentials::None).unwrap();
    assert!(with.get_experiment_by_name("Default").unwrap().is_some());
}

/// Sets environment variables for the rest of a test; restores them on drop.
struct EnvVars(Vec<(&'static str, Option<String>)>);

impl EnvVars {
    fn set(vars: &[(&'static str, &str)]) -> Self {
        let saved = vars.iter().map(|(name, _)| (*name, std::env::var(name).ok())).collect();
        for (name, value) in vars {
            std::env::set_var(name, value);
        }
        EnvVars(saved)
    }
}

impl Drop for EnvVars {
    fn drop(&mut self) {
        for (name, value) in &self.0 {
            match value {
                Some(value) => std::env::set_var(name, value),
                None => std::env::remove_var(name),
            }
        }
    }
}

#[test]
fn environment_configures_tls_and_auth() {
    let _env = lock_env();
    let gateway = Gateway::start(&secret("MLFLOWREG_TEST_PASSWORD"));
    let ca = gateway.ca.display().to_string();
    let password = secret("MLFLOWREG_TEST_PASSWORD");
    let token = secret("MLFLOWREG_TEST_TOKEN");
    let _vars = EnvVars::set(&[
        ("MLFLOW_TRACKING_SERVER_CERT_PATH", &ca),
        ("MLFLOW_TRACKING_USERNAME", &gateway.user),
        ("MLFLOW_TRACKING_PASSWORD", &password),
        // Basic auth wins over the token, so the gateway lets the call in.
        ("MLFLOW_TRACKING_TOKEN", &token),
        ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1"),
    ]);
    let client = Client::new(&gateway.https_uri, "MLFLOW_TRACKING_URI").unwrap();
    assert!(client.get_experiment_by_name("Default").unwrap().is_some());

    let _insecure = EnvVars::set(&[("MLFLOW_TRACKING_SERVER_CERT_PATH", ""), ("MLFLOW_TRACKING_INSECURE_TLS", "true")]);
    let client = Client::new(&gateway.https_uri, "MLFLOW_TRACKING_URI").unwrap();
    assert!(client.get_experiment_by_name("Default").unwrap().is_some());

    let _client_cert = EnvVars::set(&[
        ("MLFLOW_TRACKING_INSECURE_TLS", "false"),
        ("MLFLOW_TRACKING_SERVER_CERT_PATH", &ca),
        ("MLFLOW_TRACKING_CLIENT_CERT_PATH", gateway.client_cert.to_str().unwrap()),
    ]);
    let client = Client::new(&gateway.mtls_uri, "MLFLOW_TRACKING_URI").unwrap();
    assert!(client.get_experiment_by_name("Default").unwrap().is_some());
}

#[test]
fn https_proxy_and_no_proxy_are_honoured() {
    let _env = lock_env();
    let gateway = Gateway::start(&secret("MLFLOWREG_TEST_PASSWORD"));
    // The fault proxy tunnels CONNECT to loopback addresses; its upstream is unused here.
    let proxy = FaultProxy::start(json!([]));
    let target = gateway.https_uri.trim_start_matches("https://").to_string();
    let tunnels = |proxy: &FaultProxy| {
        proxy.log().iter().filter(|e| e["method"] == "CONNECT" && e["path"] == target.as_str()).count()
    };

    let _vars = EnvVars::set(&[("HTTPS_PROXY", &proxy.uri), ("NO_PROXY", "")]);
    let client = Client::with_settings(&gateway.https_uri, "test", config_with_ca(&gateway), basic(&gateway)).unwrap();
    assert!(client.get_experiment_by_name("Default").unwrap().is_some());
    assert!(tunnels(&proxy) >= 1, "{:?}", proxy.log());

    let before = tunnels(&proxy);
    let _bypass = EnvVars::set(&[("NO_PROXY", "127.0.0.1")]);
    let client = Client::with_settings(&gateway.https_uri, "test", config_with_ca(&gateway), basic(&gateway)).unwrap();
    assert!(client.get_experiment_by_name("Default").unwrap().is_some());
    assert_eq!(tunnels(&proxy), before);
}
