//! R bindings of the mlflowreg core: thin exports, no logic of their own.
//!
//! Every export ends in `_` and returns either its result (a JSON string,
//! a path or raw bytes) or, on failure, a list of class
//! `mlflowreg_rust_error` with the fields `kind`, `message`, `status` and
//! `error_code`. The R wrappers in `R/` turn that list into a classed R
//! condition, so no Rust error or panic text reaches the user unformatted.

use std::sync::Mutex;
use std::time::Duration;

use extendr_api::prelude::*;
use mlflowreg::cancel::CancelToken;
use mlflowreg::registry::NewModelVersion;
use mlflowreg::tracking::Tag;
use mlflowreg::validate::{self, Profile};
use mlflowreg::{model, pipeline, Client, Error};

mod events;
mod interrupt;
mod registry;
mod tracking;
use serde::Serialize;

mod transfer;

/// The last client built, reused while the tracking URI and the `MLFLOW_*`
/// settings stay the same, so connections are pooled across calls.
static CLIENT_CACHE: Mutex<Option<(String, Client)>> = Mutex::new(None);

/// Environment variables that change how a client is built. The run and
/// experiment ids decide where an Azure ML job token is renewed.
const CLIENT_ENV: [&str; 13] = [
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_RUN_ID",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOWREG_ARTIFACT_WORKERS",
];

pub(crate) fn client(tracking_uri: &str, origin: &str) -> Result<Client, Error> {
    events::install();
    let mut key = format!("{tracking_uri}\u{0}{origin}");
    // A relative local store path such as the default "mlruns" resolves
    // against the working directory, which setwd() may have changed.
    key.push('\u{0}');
    key.push_str(&std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default());
    for name in CLIENT_ENV {
        key.push('\u{0}');
        key.push_str(&std::env::var(name).unwrap_or_default());
    }
    let mut cache = CLIENT_CACHE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((cached_key, cached)) = cache.as_ref() {
        if *cached_key == key {
            return Ok(cached.clone());
        }
    }
    let fresh = Client::new(tracking_uri, origin)?;
    *cache = Some((key, fresh.clone()));
    Ok(fresh)
}

/// Runs `work` with the client for `tracking_uri` on a worker thread that
/// Ctrl-C in R stops (see [`interrupt::run`]), and returns its result as
/// JSON or as an error record.
fn with_client<T: Serialize + Send + 'static>(
    tracking_uri: &str,
    origin: &str,
    work: impl FnOnce(Client) -> Result<T, Error> + Send + 'static,
) -> Robj {
    json(client(tracking_uri, origin).and_then(|client| interruptible(Some(client), work_with(work))))
}

fn work_with<T>(work: impl FnOnce(Client) -> Result<T, Error>) -> impl FnOnce(Option<Client>) -> Result<T, Error> {
    move |client| work(client.expect("with_client always passes a client"))
}

/// Runs `work` on a worker thread that Ctrl-C in R stops; `client`, when
/// given, is handed to `work` with the cancellation token attached.
fn interruptible<T: Send + 'static>(
    client: Option<Client>,
    work: impl FnOnce(Option<Client>) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let cancel = CancelToken::new();
    let client = client.map(|c| c.with_cancel(cancel.clone()));
    interrupt::run(cancel, move || work(client))
}

/// Returns the log events collected since the last call as JSON: a list
/// of `{level, message}`.
#[extendr]
fn take_events_() -> Robj {
    json(Ok::<_, Error>(events::take()))
}

pub(crate) fn error_robj(err: &Error) -> Robj {
    let status: Robj = match err.status() {
        Some(status) => Robj::from(status as i32),
        None => Robj::from(Rint::na()),
    };
    let mut list = List::from_names_and_values(
        ["kind", "message", "status", "error_code"],
        [
            Robj::from(err.kind()),
            Robj::from(err.to_string()),
            status,
            Robj::from(err.error_code().unwrap_or("")),
        ],
    )
    .expect("names and values have the same length");
    list.set_class(["mlflowreg_rust_error"])
        .expect("setting a class on a list succeeds");
    list.into()
}

pub(crate) fn json<T: Serialize>(result: Result<T, Error>) -> Robj {
    match result {
        Ok(value) => match serde_json::to_string(&value) {
            Ok(text) => Robj::from(text),
            Err(err) => error_robj(&Error::Unsupported(format!("encoding the result as JSON ({err})"))),
        },
        Err(err) => error_robj(&err),
    }
}

fn optional(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

pub(crate) fn parse_tags(tags_json: &str) -> Result<Vec<Tag>, Error> {
    if tags_json.is_empty() {
        return Ok(Vec::new());
    }
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(tags_json).map_err(|err| {
        Error::InvalidArgument {
            name: "tags",
            value: tags_json.to_string(),
            reason: format!("it is not a JSON object ({err})"),
        }
    })?;
    Ok(map
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            Tag::new(key, text)
        })
        .collect())
}

/// Maximum wait the R functions pass on, about 31 years; `Inf` means this.
const MAX_WAIT_SECS: f64 = 1e9;

/// Converts seconds from R; `Inf` and values above [`MAX_WAIT_SECS`] wait
/// that long, and zero, negative or NaN values do not wait.
fn seconds(value: f64) -> Duration {
    if value > 0.0 {
        Duration::from_secs_f64(value.min(MAX_WAIT_SECS))
    } else {
        Duration::ZERO
    }
}

/// Saves a serialized R function as a model directory; returns the MLmodel as JSON.
#[extendr]
fn save_model_(path: &str, serialized: Raw) -> Robj {
    json(model::save_crate_model(
        std::path::Path::new(path),
        serialized.as_slice(),
        &model::SaveOptions::default(),
    ))
}

/// Reads the MLmodel of a local model directory as JSON.
#[extendr]
fn read_mlmodel_(dir: &str) -> Robj {
    json(model::MlModel::read_dir(std::path::Path::new(dir)))
}

/// Reads a crate file and returns the serialized function for `unserialize()`.
#[extendr]
fn read_crate_(path: &str) -> Robj {
    match model::rds::read_crate_file(std::path::Path::new(path)) {
        Ok(bytes) => Raw::from_bytes(&bytes).into(),
        Err(err) => error_robj(&err),
    }
}

/// Checks that a client can be built for the URI; returns the REST base URL.
#[extendr]
fn client_base_url_(tracking_uri: &str, origin: &str) -> Robj {
    json(client(tracking_uri, origin).map(|c| mlflowreg::http::redact_url(c.base_url())))
}

#[extendr]
fn get_experiment_by_name_(tracking_uri: &str, origin: &str, name: &str) -> Robj {
    let name = name.to_string();
    with_client(tracking_uri, origin, move |c| c.get_experiment_by_name(&name))
}

#[extendr]
fn create_experiment_(tracking_uri: &str, origin: &str, name: &str, artifact_location: &str, tags_json: &str) -> Robj {
    let tags = match parse_tags(tags_json) {
        Ok(tags) => tags,
        Err(err) => return error_robj(&err),
    };
    let (name, location) = (name.to_string(), optional(artifact_location).map(str::to_string));
    with_client(tracking_uri, origin, move |c| c.create_experiment(&name, location.as_deref(), &tags))
}

#[extendr]
fn create_run_(tracking_uri: &str, origin: &str, experiment_id: &str, run_name: &str, start_time: f64, tags_json: &str) -> Robj {
    let tags = match parse_tags(tags_json) {
        Ok(tags) => tags,
        Err(err) => return error_robj(&err),
    };
    let start = (start_time.is_finite() && start_time >= 0.0).then_some(start_time as i64);
    let (experiment_id, run_name) = (experiment_id.to_string(), optional(run_name).map(str::to_string));
    with_client(tracking_uri, origin, move |c| c.create_run(&experiment_id, run_name.as_deref(), start, &tags))
}

#[extendr]
fn get_run_(tracking_uri: &str, origin: &str, run_id: &str) -> Robj {
    let run_id = run_id.to_string();
    with_client(tracking_uri, origin, move |c| c.get_run(&run_id))
}

#[extendr]
fn update_run_(tracking_uri: &str, origin: &str, run_id: &str, status: &str, end_time: f64) -> Robj {
    let end = (end_time.is_finite() && end_time >= 0.0).then_some(end_time as i64);
    let (run_id, status) = (run_id.to_string(), status.to_string());
    with_client(tracking_uri, origin, move |c| c.update_run(&run_id, &status, end))
}

/// Saves the serialized function as a model and logs it to a run.
#[extendr]
fn log_model_(tracking_uri: &str, origin: &str, run_id: &str, artifact_path: &str, serialized: Raw) -> Robj {
    let (run_id, artifact_path) = (run_id.to_string(), artifact_path.to_string());
    let serialized = serialized.as_slice().to_vec();
    with_client(tracking_uri, origin, move |c| {
        pipeline::log_crate_model(&c, &run_id, &artifact_path, &serialized)
    })
}

/// Uploads an existing model directory into a run.
#[extendr]
fn log_model_dir_(tracking_uri: &str, origin: &str, run_id: &str, model_dir: &str, artifact_path: &str) -> Robj {
    let (run_id, model_dir, artifact_path) = (run_id.to_string(), model_dir.to_string(), artifact_path.to_string());
    with_client(tracking_uri, origin, move |c| {
        pipeline::log_model_dir(&c, &run_id, std::path::Path::new(&model_dir), &artifact_path)
    })
}

#[extendr]
fn create_registered_model_(tracking_uri: &str, origin: &str, name: &str, tags_json: &str, description: &str) -> Robj {
    let tags = match parse_tags(tags_json) {
        Ok(tags) => tags,
        Err(err) => return error_robj(&err),
    };
    let (name, description) = (name.to_string(), optional(description).map(str::to_string));
    with_client(tracking_uri, origin, move |c| c.create_registered_model(&name, &tags, description.as_deref()))
}

#[extendr]
fn get_registered_model_(tracking_uri: &str, origin: &str, name: &str) -> Robj {
    let name = name.to_string();
    with_client(tracking_uri, origin, move |c| c.get_registered_model(&name))
}

#[extendr]
fn get_model_version_(tracking_uri: &str, origin: &str, name: &str, version: &str) -> Robj {
    let (name, version) = (name.to_string(), version.to_string());
    with_client(tracking_uri, origin, move |c| c.get_model_version(&name, &version))
}

/// Parses the R side's profile argument: "" picks the profile from the
/// tracking URI, "none" skips the check.
pub(crate) fn profile_choice(profile: &str) -> Result<Option<Option<Profile>>, Error> {
    match profile {
        "" => Ok(Some(None)),
        "none" => Ok(None),
        name => Profile::parse(name).map(|p| Some(Some(p))),
    }
}

/// Creates a model version after the preflight check and waits up to
/// `await_secs` for it to be READY.
#[extendr]
fn create_model_version_(
    tracking_uri: &str,
    origin: &str,
    name: &str,
    source: &str,
    run_id: &str,
    tags_json: &str,
    run_link: &str,
    description: &str,
    await_secs: f64,
    profile: &str,
) -> Robj {
    let prepared = (|| {
        let extra = NewModelVersion {
            run_id: optional(run_id).map(str::to_string),
            tags: parse_tags(tags_json)?,
            run_link: optional(run_link).map(str::to_string),
            description: optional(description).map(str::to_string),
        };
        Ok((extra, profile_choice(profile)?))
    })();
    let (extra, profile) = match prepared {
        Ok(prepared) => prepared,
        Err(err) => return error_robj(&err),
    };
    let (name, source) = (name.to_string(), source.to_string());
    with_client(tracking_uri, origin, move |c| {
        pipeline::create_model_version(&c, &name, &source, &extra, seconds(await_secs), profile)
    })
}

/// Registers a model URI under `name`, creating the registered model if needed.
#[extendr]
fn register_model_(
    tracking_uri: &str,
    origin: &str,
    model_uri: &str,
    name: &str,
    tags_json: &str,
    await_secs: f64,
    profile: &str,
) -> Robj {
    let prepared = (|| {
        let extra = NewModelVersion {
            tags: parse_tags(tags_json)?,
            ..NewModelVersion::default()
        };
        Ok((extra, profile_choice(profile)?))
    })();
    let (extra, profile) = match prepared {
        Ok(prepared) => prepared,
        Err(err) => return error_robj(&err),
    };
    let (model_uri, name) = (model_uri.to_string(), name.to_string());
    with_client(tracking_uri, origin, move |c| {
        pipeline::register_model(&c, &model_uri, &name, extra, seconds(await_secs), profile)
    })
}

/// A client for remote model URIs; `None` for local paths, which need no server.
fn client_for_model(tracking_uri: &str, origin: &str, model_uri: &str) -> Result<Option<Client>, Error> {
    match mlflowreg::uri::ModelUri::parse(model_uri)? {
        mlflowreg::uri::ModelUri::Local(_) => Ok(None),
        _ => client(tracking_uri, origin).map(Some),
    }
}

/// Checks the model at `model_uri` against a profile; returns the problems.
#[extendr]
fn validate_model_(tracking_uri: &str, origin: &str, model_uri: &str, profile: &str) -> Robj {
    json((|| {
        let client = client_for_model(tracking_uri, origin, model_uri)?;
        let profile = match profile {
            "" => Profile::for_tracking_uri(tracking_uri),
            name => Profile::parse(name)?,
        };
        let model_uri = model_uri.to_string();
        interruptible(client, move |client| {
            let model = pipeline::read_model_mlmodel(client.as_ref(), &model_uri)?;
            Ok(validate::check(&model, profile))
        })
    })())
}

/// Adds the python_function flavor to a crate-only model in place.
#[extendr]
fn repair_model_(tracking_uri: &str, origin: &str, model_uri: &str) -> Robj {
    json((|| {
        let client = client_for_model(tracking_uri, origin, model_uri)?;
        let model_uri = model_uri.to_string();
        interruptible(client, move |client| pipeline::repair_model(client.as_ref(), &model_uri))
    })())
}

/// Runs one registry operation with the named arguments in `args_json`.
#[extendr]
fn registry_(tracking_uri: &str, origin: &str, operation: &str, args_json: &str) -> Robj {
    let (operation, args_json) = (operation.to_string(), args_json.to_string());
    with_client(tracking_uri, origin, move |c| registry::run(&c, &operation, &args_json))
}

/// Runs one tracking operation with the named arguments in `args_json`.
#[extendr]
fn tracking_(tracking_uri: &str, origin: &str, operation: &str, args_json: &str) -> Robj {
    let (operation, args_json) = (operation.to_string(), args_json.to_string());
    with_client(tracking_uri, origin, move |c| tracking::run(&c, &operation, &args_json))
}

/// Downloads a model into `dest` (a local path is used in place); returns its directory.
#[extendr]
fn download_model_(tracking_uri: &str, origin: &str, model_uri: &str, dest: &str) -> Robj {
    json((|| {
        // A local path needs no server, so the client is only built for remote URIs.
        if let mlflowreg::uri::ModelUri::Local(path) = mlflowreg::uri::ModelUri::parse(model_uri)? {
            return pipeline::download_model_local(&path, model_uri);
        }
        let client = client(tracking_uri, origin)?;
        let (model_uri, dest) = (model_uri.to_string(), dest.to_string());
        interruptible(Some(client), work_with(move |client| {
            pipeline::download_model(&client, &model_uri, std::path::Path::new(&dest))
        }))
    })())
}

extendr_module! {
    mod mlflowreg;
    use transfer;
    fn save_model_;
    fn read_mlmodel_;
    fn read_crate_;
    fn client_base_url_;
    fn get_experiment_by_name_;
    fn create_experiment_;
    fn create_run_;
    fn get_run_;
    fn update_run_;
    fn log_model_;
    fn log_model_dir_;
    fn create_registered_model_;
    fn get_registered_model_;
    fn create_model_version_;
    fn get_model_version_;
    fn register_model_;
    fn validate_model_;
    fn repair_model_;
    fn registry_;
    fn tracking_;
    fn download_model_;
    fn take_events_;
}
