//! The local file store. It serves MLflow's tracking and registry REST
//! endpoints from a directory on this machine, in the layout of Python
//! mlflow's `FileStore` (MLflow 3.17), so Python mlflow reads what this
//! store writes and the other way round.
//!
//! ```text
//! <root>/<experiment id>/meta.yaml, tags/<key>
//! <root>/<experiment id>/<run id>/meta.yaml   status as an integer (RUNNING = 1 ... KILLED = 5)
//!                                 params/<key>, tags/<key>, artifacts/
//!                                 metrics/<key>  one line per value: "<timestamp ms> <value> <step>"
//! <root>/.trash/<experiment id>/...           deleted experiments
//! <root>/models/<name>/meta.yaml, tags/<key>, aliases/<alias> (the version number)
//! <root>/models/<name>/version-<n>/meta.yaml, tags/<key>
//! ```
//!
//! [`FileStore::call`] takes the endpoint and JSON body of a REST call and
//! returns the JSON the MLflow server returns, or the same
//! [`Error::Api`] (status and `error_code`) the server would, so callers
//! cannot tell the two backends apart. Writes are atomic (temporary file,
//! then rename), and experiment ids and model version numbers are taken
//! under a lock on the store, so concurrent processes never tear a file or
//! create the same version twice.

mod disk;
mod registry;
mod search;
mod tracking;

use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::Value;
use url::Url;

use crate::error::{Error, Result};

/// A local MLflow store rooted at a directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    /// Absolute path of the store root.
    root: PathBuf,
}

impl FileStore {
    /// Opens the store at `path`, made absolute against the current
    /// directory. Nothing is created until the first call; a path that
    /// exists and is not a directory is rejected here.
    pub fn open(path: &Path) -> Result<Self> {
        if path.as_os_str().is_empty() {
            return Err(Error::invalid("tracking URI", "", "the local store path is empty"));
        }
        let root = std::path::absolute(path).map_err(|err| Error::io("resolving", path, err))?;
        let store = FileStore { root };
        store.check_root()?;
        Ok(store)
    }

    /// Returns the absolute path of the store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Returns the root as a `file://` URL.
    pub fn root_url(&self) -> Result<Url> {
        Url::from_directory_path(&self.root).map_err(|()| {
            Error::invalid("tracking URI", self.root.display().to_string(), "it is not an absolute path")
        })
    }

    /// Handles the REST call `method` `api/2.0/mlflow/<endpoint>` with
    /// `body` (the JSON body, or the query fields of a GET).
    pub fn call(&self, method: &Method, endpoint: &str, body: &Value) -> Result<Value> {
        let request = Request { body };
        let result = match endpoint {
            "experiments/create" => self.create_experiment(&request),
            "experiments/get" => self.get_experiment(&request),
            "experiments/get-by-name" => self.get_experiment_by_name(&request),
            "experiments/search" => self.search_experiments(&request),
            "experiments/delete" => self.delete_experiment(&request),
            "experiments/restore" => self.restore_experiment(&request),
            "experiments/update" => self.rename_experiment(&request),
            "experiments/set-experiment-tag" => self.set_experiment_tag(&request),
            "runs/create" => self.create_run(&request),
            "runs/get" => self.get_run(&request),
            "runs/update" => self.update_run(&request),
            "runs/delete" => self.delete_run(&request),
            "runs/restore" => self.restore_run(&request),
            "runs/search" => self.search_runs(&request),
            "runs/log-parameter" => self.log_param(&request),
            "runs/log-metric" => self.log_metric(&request),
            "runs/log-batch" => self.log_batch(&request),
            "runs/set-tag" => self.set_tag(&request),
            "runs/delete-tag" => self.delete_tag(&request),
            "runs/log-model" => self.log_model(&request),
            "metrics/get-history" => self.get_metric_history(&request),
            "artifacts/list" => self.list_artifacts(&request),
            "registered-models/create" => self.create_registered_model(&request),
            "registered-models/get" => self.get_registered_model(&request),
            "registered-models/rename" => self.rename_registered_model(&request),
            "registered-models/update" => self.update_registered_model(&request),
            "registered-models/delete" => self.delete_registered_model(&request),
            "registered-models/search" => self.search_registered_models(&request),
            "registered-models/get-latest-versions" => self.get_latest_versions(&request),
            "registered-models/set-tag" => self.set_registered_model_tag(&request),
            "registered-models/delete-tag" => self.delete_registered_model_tag(&request),
            "registered-models/alias" if *method == Method::GET => self.get_model_version_by_alias(&request),
            "registered-models/alias" if *method == Method::DELETE => self.delete_alias(&request),
            "registered-models/alias" => self.set_alias(&request),
            "model-versions/create" => self.create_model_version(&request),
            "model-versions/get" => self.get_model_version(&request),
            "model-versions/update" => self.update_model_version(&request),
            "model-versions/delete" => self.delete_model_version(&request),
            "model-versions/search" => self.search_model_versions(&request),
            "model-versions/transition-stage" => self.transition_stage(&request),
            "model-versions/set-tag" => self.set_model_version_tag(&request),
            "model-versions/delete-tag" => self.delete_model_version_tag(&request),
            "model-versions/get-download-uri" => self.get_download_uri(&request),
            other => Err(Error::Unsupported(format!(
                "the REST endpoint {method} {other} on the local file store {}; use an MLflow server",
                self.root.display()
            ))),
        };
        result.map_err(|err| self.locate(err, endpoint))
    }

    /// Fills the route of an API error with the endpoint and the store path.
    fn locate(&self, err: Error, endpoint: &str) -> Error {
        match err {
            Error::Api { status, error_code, message, method, route } if route.is_empty() => Error::Api {
                status,
                error_code,
                message,
                method,
                route: format!("{endpoint} at {}", self.root.display()),
            },
            other => other,
        }
    }

    /// Checks that the root is a directory, if it exists.
    fn check_root(&self) -> Result<()> {
        if self.root.exists() && !self.root.is_dir() {
            return Err(Error::Configuration(format!(
                "the local MLflow store path {} is a file, not a directory; set MLFLOW_TRACKING_URI \
                 (or mlflow_set_tracking_uri()) to a directory, or move the file away",
                self.root.display()
            )));
        }
        Ok(())
    }

    /// Prepares the store for a call: creates it with the default
    /// experiment when it does not exist (as Python mlflow does), and, for
    /// writes, checks that it is writable and that experiment `0` exists.
    fn prepare(&self, write: bool) -> Result<()> {
        self.check_root()?;
        if !self.root.exists() {
            disk::create_dir(&self.root)?;
            return self.create_default_experiment();
        }
        if !write {
            return Ok(());
        }
        let metadata = std::fs::metadata(&self.root).map_err(|err| disk::io_error("inspecting", &self.root, err))?;
        if metadata.permissions().readonly() {
            return Err(Error::Configuration(format!(
                "the local MLflow store {} is read-only (its directory has no write permission); \
                 make it writable (chmod u+w), or set MLFLOW_TRACKING_URI to a store you can write to",
                self.root.display()
            )));
        }
        if !self.has_default_experiment() {
            self.create_default_experiment()?;
        }
        Ok(())
    }

    fn trash(&self) -> PathBuf {
        self.root.join(tracking::TRASH)
    }

    fn models(&self) -> PathBuf {
        self.root.join(registry::MODELS)
    }

    /// Returns the `file://` URI of a path inside the store.
    fn file_uri(&self, path: &Path) -> String {
        Url::from_file_path(path)
            .map(String::from)
            .unwrap_or_else(|()| format!("file://{}", path.display()))
    }
}

/// The fields of one REST request.
pub(crate) struct Request<'a> {
    body: &'a Value,
}

impl Request<'_> {
    /// Returns a field as text; numbers and booleans as their JSON text.
    fn text(&self, key: &str) -> Option<String> {
        match self.body.get(key)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(flag) => Some(flag.to_string()),
            _ => None,
        }
    }

    /// Returns a field that must be present and not empty.
    fn required(&self, key: &str) -> Result<String> {
        self.text(key)
            .filter(|text| !text.is_empty())
            .ok_or_else(|| invalid_parameter(format!("Missing value for required parameter '{key}'.")))
    }

    fn int(&self, key: &str) -> Result<Option<i64>> {
        match self.body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => Ok(number.as_i64().or_else(|| number.as_f64().map(|f| f as i64))),
            Some(Value::String(text)) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| invalid_parameter(format!("Invalid value {text:?} for parameter '{key}': expected an integer"))),
            Some(other) => Err(invalid_parameter(format!("Invalid value {other} for parameter '{key}': expected an integer"))),
        }
    }

    /// Returns a double sent as a JSON number or as the text MLflow's
    /// protobuf JSON uses for non-finite values ("NaN", "Infinity", "-Infinity").
    fn float(&self, key: &str) -> Result<Option<f64>> {
        match self.body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => float_value(value)
                .map(Some)
                .ok_or_else(|| invalid_parameter(format!("Invalid value {value} for parameter '{key}': expected a number"))),
        }
    }

    fn flag(&self, key: &str) -> Result<bool> {
        match self.body.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(flag)) => Ok(*flag),
            Some(Value::String(text)) if text.eq_ignore_ascii_case("true") => Ok(true),
            Some(Value::String(text)) if text.eq_ignore_ascii_case("false") => Ok(false),
            Some(other) => Err(invalid_parameter(format!("Invalid value {other} for parameter '{key}': expected true or false"))),
        }
    }

    /// Returns a list of strings; a single string is a list of one, as a
    /// repeated query parameter with one value arrives.
    fn strings(&self, key: &str) -> Vec<String> {
        match self.body.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|item| match item {
                    Value::String(text) => Some(text.clone()),
                    Value::Number(number) => Some(number.to_string()),
                    _ => None,
                })
                .collect(),
            Some(Value::String(text)) => vec![text.clone()],
            _ => Vec::new(),
        }
    }

    /// Returns a list of `{key, value}` objects as pairs.
    fn key_values(&self, key: &str) -> Result<Vec<(String, String)>> {
        let Some(Value::Array(items)) = self.body.get(key) else {
            return Ok(Vec::new());
        };
        items.iter().map(|item| key_value(item, key)).collect()
    }

    fn array(&self, key: &str) -> &[Value] {
        match self.body.get(key) {
            Some(Value::Array(items)) => items,
            _ => &[],
        }
    }

    /// Returns `max_results`, `default` when it is missing.
    fn max_results(&self, default: usize) -> Result<usize> {
        match self.int("max_results")? {
            None => Ok(default),
            Some(n) if n >= 1 => Ok(n as usize),
            Some(n) => Err(invalid_parameter(format!(
                "Invalid value {n} for parameter 'max_results' supplied. It must be a positive integer"
            ))),
        }
    }
}

fn key_value(item: &Value, field: &str) -> Result<(String, String)> {
    let key = item.get("key").and_then(Value::as_str).ok_or_else(|| {
        invalid_parameter(format!("Invalid entry {item} in '{field}': it has no string 'key'"))
    })?;
    let value = match item.get("value") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    Ok((key.to_string(), value))
}

fn float_value(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => match text.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            other => other.trim().parse().ok(),
        },
        _ => None,
    }
}

/// Encodes a double as the MLflow server's JSON does: a number, or the text
/// "NaN", "Infinity" or "-Infinity".
fn float_json(value: f64) -> Value {
    if value.is_nan() {
        Value::from("NaN")
    } else if value.is_infinite() {
        Value::from(if value > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        Value::from(value)
    }
}

/// Removes the null fields of a JSON object, as protobuf JSON omits unset fields.
fn compact(mut value: Value) -> Value {
    if let Value::Object(fields) = &mut value {
        fields.retain(|_, field| !field.is_null());
    }
    value
}

fn pairs_json(pairs: &[(String, String)]) -> Value {
    Value::Array(
        pairs
            .iter()
            .map(|(key, value)| serde_json::json!({ "key": key, "value": value }))
            .collect(),
    )
}

/// Builds an MLflow API error. [`FileStore::call`] fills in the route.
fn api_error(status: u16, code: &str, message: String) -> Error {
    Error::Api {
        status,
        error_code: code.to_string(),
        message,
        method: String::new(),
        route: String::new(),
    }
}

pub(crate) fn not_found(message: String) -> Error {
    api_error(404, "RESOURCE_DOES_NOT_EXIST", message)
}

pub(crate) fn invalid_parameter(message: String) -> Error {
    api_error(400, "INVALID_PARAMETER_VALUE", message)
}

pub(crate) fn already_exists(message: String) -> Error {
    api_error(400, "RESOURCE_ALREADY_EXISTS", message)
}

pub(crate) fn invalid_state(message: String) -> Error {
    api_error(500, "INVALID_STATE", message)
}

/// Checks a tag, param or metric key as MLflow does: letters, digits and
/// `_ - . : / space`, and no path that normalizes to another (`a//b`,
/// `./a`, `..`), so a key always names one file inside its folder.
fn check_key(parameter: &str, key: &str) -> Result<()> {
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/' | ' ');
    if key.is_empty() || !key.chars().all(allowed) {
        return Err(invalid_parameter(format!(
            "Invalid value {key:?} for parameter '{parameter}' supplied: names may only contain \
             alphanumerics, underscores (_), dashes (-), periods (.), colons (:), spaces ( ) and slashes (/)"
        )));
    }
    if key.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return Err(invalid_parameter(format!(
            "Invalid value {key:?} for parameter '{parameter}' supplied: names must not resolve to \
             other names when treated as paths (no empty, '.' or '..' parts)"
        )));
    }
    Ok(())
}

/// Checks an id used as a folder name (run and experiment ids).
fn check_id(parameter: &str, id: &str) -> Result<()> {
    let mut chars = id.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && id.len() <= 256;
    if valid {
        Ok(())
    } else {
        Err(invalid_parameter(format!("Invalid value {id:?} for parameter '{parameter}' supplied")))
    }
}

#[cfg(test)]
mod tests;
