//! Multipart upload through the tracking server's `mlflow-artifacts/mpu`
//! routes, which MLflow offers when its artifact destination is an object
//! store (S3 and compatible stores in MLflow 3.17).
//!
//! The protocol, as MLflow 3.17's server and Python client implement it:
//!
//! 1. `GET api/3.0/mlflow/server-info` returns `multipart_uploads_enabled`.
//! 2. `POST api/2.0/mlflow-artifacts/mpu/create/<dir>` with
//!    `{path: <file name>, num_parts}` returns an `upload_id` and one
//!    presigned URL (plus headers to send) per part number, from 1.
//! 3. Each part is a `PUT` of its bytes to its URL; the object store
//!    returns the part's `ETag` header.
//! 4. `POST .../mpu/complete/<dir>` with `{path, upload_id, parts: [{part_number, etag}]}`
//!    joins the parts. On any failure, `POST .../mpu/abort/<dir>` with
//!    `{path, upload_id}` discards the parts already stored.
//!
//! A server whose store cannot do this returns `NOT_IMPLEMENTED` for
//! `mpu/create`, and the caller falls back to a single `PUT`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::progress::Progress;
use crate::client::{decode, Client};
use crate::error::{Error, Result};
use crate::http::{FileRange, Http};

/// Python mlflow's `MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE` default: 500 MiB.
pub const DEFAULT_MIN_FILE_SIZE: u64 = 500 * 1024 * 1024;
/// Python mlflow's `MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE` default: 10 MiB.
pub const DEFAULT_PART_SIZE: u64 = 10 * 1024 * 1024;
/// S3's limit on the number of parts of one upload.
pub const MAX_PARTS: u64 = 10_000;

/// When and how to upload a file in parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartSettings {
    /// `false` when `MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD` is set to false.
    /// Otherwise multipart is used wherever the server advertises it.
    pub enabled: bool,
    /// Files of at least this many bytes go in parts
    /// (`MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE`).
    pub min_file_size: u64,
    /// Bytes per part, raised when a file would need more than
    /// [`MAX_PARTS`] (`MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE`).
    pub part_size: u64,
}

impl Default for MultipartSettings {
    fn default() -> Self {
        MultipartSettings {
            enabled: true,
            min_file_size: DEFAULT_MIN_FILE_SIZE,
            part_size: DEFAULT_PART_SIZE,
        }
    }
}

impl MultipartSettings {
    /// Reads the settings from the variables Python mlflow reads.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut settings = MultipartSettings::default();
        if let Some(value) = get("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD") {
            settings.enabled = match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(Error::Configuration(format!(
                        "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD is {value:?}; set it to true or false"
                    )))
                }
            };
        }
        for (name, slot) in [
            ("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", &mut settings.min_file_size),
            ("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", &mut settings.part_size),
        ] {
            if let Some(value) = get(name) {
                *slot = match value.trim().parse::<u64>() {
                    Ok(n) if n >= 1 => n,
                    _ => {
                        return Err(Error::Configuration(format!(
                            "{name} is {value:?}; set it to a whole number of bytes of at least 1"
                        )))
                    }
                };
            }
        }
        Ok(settings)
    }

    /// Returns the part size for a file of `size` bytes, which is the
    /// configured size or more where that would exceed [`MAX_PARTS`].
    pub fn part_size_for(&self, size: u64) -> u64 {
        self.part_size.max(size.div_ceil(MAX_PARTS)).max(1)
    }
}

#[derive(Deserialize)]
struct ServerInfo {
    #[serde(default)]
    multipart_uploads_enabled: bool,
}

/// Asks the server whether it offers multipart uploads. A server without
/// the `server-info` route (MLflow before 3.x, other registries) does not.
pub(super) fn server_supports(http: &Http, base: &Url) -> Result<bool> {
    let url = Client::url_under(base, "api/3.0/mlflow/server-info");
    match http.send_json(Method::GET, &url, None) {
        Ok(value) => Ok(decode::<ServerInfo>(value, "server-info")?.multipart_uploads_enabled),
        Err(Error::Api { status: 404 | 405 | 501, .. }) => Ok(false),
        Err(err) => Err(err),
    }
}

#[derive(Deserialize)]
struct CreateResponse {
    upload_id: Option<String>,
    #[serde(default)]
    credentials: Vec<Credential>,
}

#[derive(Deserialize)]
struct Credential {
    url: String,
    #[serde(deserialize_with = "crate::serde_util::lenient_i64")]
    part_number: Option<i64>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Result of [`Upload::run`].
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Uploaded,
    /// The server's store cannot take multipart uploads, and nothing was sent.
    Unsupported,
}

/// One multipart upload of `local` to `<dir>/<name>` below the artifacts
/// root of `base`.
pub(super) struct Upload<'a> {
    pub http: &'a Http,
    pub base: &'a Url,
    /// Directory below the artifacts route, such as `1/<run>/artifacts/model`.
    pub dir: &'a str,
    pub name: &'a str,
    pub local: &'a Path,
    pub size: u64,
    pub part_size: u64,
    pub workers: usize,
    pub progress: Option<&'a Arc<Progress>>,
}

impl Upload<'_> {
    fn route(&self, action: &str) -> Url {
        let mut url = Client::url_under(self.base, &format!("api/2.0/mlflow-artifacts/mpu/{action}"));
        {
            let mut segments = url.path_segments_mut().expect("http URLs have a path");
            for segment in self.dir.split('/').filter(|s| !s.is_empty()) {
                segments.push(segment);
            }
        }
        url
    }

    /// Creates the upload, sends the parts `workers` at a time, and
    /// completes it. Aborts it when a part or the completion fails.
    pub fn run(&self) -> Result<Outcome> {
        let num_parts = self.size.div_ceil(self.part_size).max(1);
        let body = json!({ "path": self.name, "num_parts": num_parts });
        let created = match self.http.send_json(Method::POST, &self.route("create"), Some(&body)) {
            Ok(value) => value,
            Err(Error::Api { error_code, .. }) if error_code == "NOT_IMPLEMENTED" => return Ok(Outcome::Unsupported),
            Err(err) => return Err(err),
        };
        let created: CreateResponse = decode(created, "mlflow-artifacts/mpu/create")?;
        let upload_id = created.upload_id.clone().unwrap_or_default();
        tracing::debug!(file = self.name, num_parts, part_size = self.part_size, "multipart upload created");

        match self.send_parts(&created, num_parts).and_then(|parts| self.complete(&upload_id, parts)) {
            Ok(()) => Ok(Outcome::Uploaded),
            Err(err) => {
                let abort = json!({ "path": self.name, "upload_id": upload_id });
                if let Err(abort_err) = self.http.send_json(Method::POST, &self.route("abort"), Some(&abort)) {
                    tracing::warn!(file = self.name, error = %abort_err, "aborting the multipart upload failed");
                }
                Err(err)
            }
        }
    }

    fn send_parts(&self, created: &CreateResponse, num_parts: u64) -> Result<Vec<(i64, String)>> {
        if created.credentials.len() as u64 != num_parts {
            return Err(Error::Parse {
                what: "server response",
                location: "mlflow-artifacts/mpu/create".into(),
                message: format!("{} part URLs for {num_parts} parts", created.credentials.len()),
            });
        }
        let etags: Mutex<Vec<(i64, String)>> = Mutex::new(Vec::with_capacity(created.credentials.len()));
        super::for_each_parallel(&created.credentials, self.workers, |credential| {
            let number = credential.part_number.filter(|n| *n >= 1 && (*n as u64) <= num_parts).ok_or_else(|| {
                Error::Parse {
                    what: "server response",
                    location: "mlflow-artifacts/mpu/create".into(),
                    message: format!("part number {:?} outside 1..={num_parts}", credential.part_number),
                }
            })?;
            let offset = (number as u64 - 1) * self.part_size;
            let len = self.part_size.min(self.size - offset);
            // The URL is not shown: its query string is a credential.
            let url = Url::parse(&credential.url).map_err(|err| Error::Parse {
                what: "server response",
                location: "mlflow-artifacts/mpu/create".into(),
                message: format!("the URL of part {number} is invalid ({err})"),
            })?;
            let range = FileRange { path: self.local, offset, len: Some(len), progress: self.progress };
            let headers = self.http.upload(Method::PUT, &url, range, Some(&credential.headers))?;
            let etag = headers
                .get(reqwest::header::ETAG)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_string();
            etags.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push((number, etag));
            Ok(())
        })?;
        let mut parts = etags.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        parts.sort();
        Ok(parts)
    }

    fn complete(&self, upload_id: &str, parts: Vec<(i64, String)>) -> Result<()> {
        let parts: Vec<_> = parts
            .into_iter()
            .map(|(number, etag)| json!({ "part_number": number, "etag": etag }))
            .collect();
        let body = json!({ "path": self.name, "upload_id": upload_id, "parts": parts });
        self.http.send_json(Method::POST, &self.route("complete"), Some(&body)).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn settings_default_to_python_mlflow() {
        let settings = MultipartSettings::from_lookup(lookup(&[])).unwrap();
        assert!(settings.enabled);
        assert_eq!(settings.min_file_size, 500 << 20);
        assert_eq!(settings.part_size, 10 << 20);
    }

    #[test]
    fn settings_read_environment() {
        let settings = MultipartSettings::from_lookup(lookup(&[
            ("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "false"),
            ("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", "1024"),
            ("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", "512"),
        ]))
        .unwrap();
        assert!(!settings.enabled);
        assert_eq!(settings.min_file_size, 1024);
        assert_eq!(settings.part_size, 512);
    }

    #[test]
    fn bad_setting_names_variable() {
        let err = MultipartSettings::from_lookup(lookup(&[("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", "0")])).unwrap_err();
        assert!(err.to_string().contains("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE is \"0\""), "{err}");
    }

    #[test]
    fn part_size_grows_to_stay_under_part_limit() {
        let settings = MultipartSettings::default();
        assert_eq!(settings.part_size_for(1 << 30), 10 << 20);
        let huge = 200u64 << 30;
        let size = settings.part_size_for(huge);
        assert!(huge.div_ceil(size) <= MAX_PARTS, "{size}");
    }
}
