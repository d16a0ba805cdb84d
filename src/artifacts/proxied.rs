//! The tracking server's proxied artifact API (`mlflow server --serve-artifacts`).
//!
//! `mlflow-artifacts:/<path>` resolves to
//! `<tracking URI>/api/2.0/mlflow-artifacts/artifacts/<path>`: PUT uploads
//! the raw bytes, GET downloads them, and
//! `GET .../artifacts?path=<dir>` lists a directory by base names. Files of
//! at least `MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE` bytes go through the
//! multipart routes instead when the server offers them (see `multipart`).

use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde::Deserialize;
use url::Url;

use super::multipart::{self, MultipartSettings, Outcome};
use super::progress::Progress;
use super::{ArtifactRepository, FileInfo};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::http::{FileRange, Http, RequestBody};
use crate::uri::{check_relative, join_artifact_path};

const ARTIFACTS_ROUTE: &str = "api/2.0/mlflow-artifacts/artifacts";

/// Returns true for `http(s)://host/.../api/2.0/mlflow-artifacts/artifacts/...` URIs.
pub(super) fn is_proxied_http(uri: &str) -> bool {
    (uri.starts_with("http://") || uri.starts_with("https://")) && uri.contains(ARTIFACTS_ROUTE)
}

/// Artifacts stored through the tracking server.
pub struct MlflowArtifacts {
    http: Http,
    /// URL of the artifacts route, without a trailing slash.
    endpoint: Url,
    /// Path of the repository root below the artifacts route.
    root: String,
    root_uri: String,
    /// The server's base URL, where `api/3.0/mlflow/server-info` and the
    /// multipart routes are.
    base: Url,
    multipart: MultipartSettings,
    /// Whether the server offers multipart uploads, asked on the first
    /// file large enough to need them.
    multipart_offered: Mutex<Option<bool>>,
}

impl MlflowArtifacts {
    pub fn new(client: &Client, artifact_uri: &str) -> Result<Self> {
        let (base, endpoint, root) = if let Some(rest) = artifact_uri.strip_prefix("mlflow-artifacts:") {
            let (host, path) = match rest.strip_prefix("//") {
                // mlflow-artifacts://host:port/path names the server explicitly.
                Some(with_host) => {
                    let (host, path) = with_host.split_once('/').unwrap_or((with_host, ""));
                    (Some(host), path)
                }
                None => (None, rest),
            };
            let mut base = client.base_url().clone();
            if let Some(host) = host.filter(|h| !h.is_empty()) {
                let text = format!("{}://{host}", base.scheme());
                base = Url::parse(&text).map_err(|err| {
                    Error::invalid("artifact URI", artifact_uri, format!("its host is invalid ({err})"))
                })?;
            }
            let endpoint = Client::url_under(&base, ARTIFACTS_ROUTE);
            (base, endpoint, path.trim_matches('/').to_string())
        } else {
            let (base, path) = artifact_uri
                .split_once(ARTIFACTS_ROUTE)
                .expect("is_proxied_http checked the route");
            let base = Url::parse(base.trim_end_matches('/')).map_err(|err| {
                Error::invalid("artifact URI", artifact_uri, format!("it is not a valid URL ({err})"))
            })?;
            (base.clone(), Client::url_under(&base, ARTIFACTS_ROUTE), path.trim_matches('/').to_string())
        };
        Ok(MlflowArtifacts {
            http: client.http()?.clone(),
            endpoint,
            root,
            root_uri: artifact_uri.trim_end_matches('/').to_string(),
            base,
            multipart: MultipartSettings::from_env()?,
            multipart_offered: Mutex::new(None),
        })
    }

    /// Replaces the multipart settings read from the environment.
    pub fn with_multipart(mut self, settings: MultipartSettings) -> Self {
        self.multipart = settings;
        self
    }

    /// Records whether the server offers multipart uploads, so no
    /// `server-info` request is made. Setting `true` for a server whose
    /// store cannot do it costs one `mpu/create` request, after which the
    /// repository records `false`.
    pub fn set_multipart_offered(&self, offered: bool) {
        *self.multipart_offered.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(offered);
    }

    /// Returns whether the server offers multipart uploads, asking
    /// `api/3.0/mlflow/server-info` once per repository.
    pub fn multipart_offered(&self) -> Result<bool> {
        let known = *self.multipart_offered.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(known) = known {
            return Ok(known);
        }
        let offered = multipart::server_supports(&self.http, &self.base)?;
        self.set_multipart_offered(offered);
        Ok(offered)
    }

    /// Uploads a file in parts when it is large enough and the server
    /// offers it, else with one streamed PUT.
    fn put_file(&self, local: &Path, path: &str, progress: Option<&Arc<Progress>>) -> Result<()> {
        let url = self.file_url(path)?;
        let size = fs::metadata(local).map_err(|err| Error::io("inspecting", local, err))?.len();
        if self.multipart.enabled && size >= self.multipart.min_file_size && self.multipart_offered()? {
            let full = join_artifact_path(&self.root, path);
            let (dir, name) = full.rsplit_once('/').unwrap_or(("", full.as_str()));
            let upload = multipart::Upload {
                http: &self.http,
                base: &self.base,
                dir,
                name,
                local,
                size,
                part_size: self.multipart.part_size_for(size),
                workers: super::workers_from_env()?,
                progress,
            };
            match upload.run()? {
                Outcome::Uploaded => return Ok(()),
                Outcome::Unsupported => {
                    tracing::debug!(path, "the server's store has no multipart upload; sending one PUT");
                    // Later large files skip the create request.
                    self.set_multipart_offered(false);
                }
            }
        }
        let range = FileRange { path: local, offset: 0, len: None, progress };
        self.http.upload(Method::PUT, &url, range, None).map(drop)
    }

    fn get_file(&self, path: &str, dest: &Path, progress: Option<&Progress>) -> Result<()> {
        let url = self.file_url(path)?;
        let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut part = tempfile::NamedTempFile::new_in(parent).map_err(|err| Error::io("creating a file in", parent, err))?;
        self.http.download_with_progress(&url, part.as_file_mut(), progress)?;
        part.persist(dest).map_err(|err| Error::io("renaming into", dest, err.error))?;
        Ok(())
    }

    fn file_url(&self, path: &str) -> Result<Url> {
        check_relative(path).map_err(|reason| Error::invalid("artifact path", path, reason))?;
        let full = join_artifact_path(&self.root, path);
        let mut url = self.endpoint.clone();
        {
            let mut segments = url.path_segments_mut().expect("http URLs have a path");
            for segment in full.split('/').filter(|s| !s.is_empty()) {
                segments.push(segment);
            }
        }
        Ok(url)
    }
}

#[derive(Deserialize)]
struct ListResponse {
    #[serde(default)]
    files: Vec<ListedFile>,
}

#[derive(Deserialize)]
struct ListedFile {
    path: String,
    #[serde(default)]
    is_dir: bool,
    #[serde(default, deserialize_with = "crate::serde_util::lenient_i64")]
    file_size: Option<i64>,
}

impl ArtifactRepository for MlflowArtifacts {
    fn root_uri(&self) -> &str {
        &self.root_uri
    }

    fn upload_file(&self, local: &Path, path: &str) -> Result<()> {
        self.put_file(local, path, None)
    }

    fn upload_file_with_progress(&self, local: &Path, path: &str, progress: &Arc<Progress>) -> Result<()> {
        self.put_file(local, path, Some(progress))
    }

    fn upload_bytes(&self, bytes: &[u8], path: &str) -> Result<()> {
        let url = self.file_url(path)?;
        self.http.send(Method::PUT, &url, RequestBody::Bytes(bytes)).map(drop)
    }

    fn list(&self, dir: &str) -> Result<Vec<FileInfo>> {
        check_relative(dir).map_err(|reason| Error::invalid("artifact path", dir, reason))?;
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("path", &join_artifact_path(&self.root, dir));
        let value = self.http.send_json(Method::GET, &url, None)?;
        let listing: ListResponse = crate::client::decode(value, "mlflow-artifacts/artifacts (list)")?;
        Ok(listing
            .files
            .into_iter()
            .map(|f| FileInfo {
                // The server returns base names; make them relative to the root.
                path: join_artifact_path(dir, f.path.rsplit('/').next().unwrap_or(&f.path)),
                is_dir: f.is_dir,
                file_size: f.file_size.map(|n| n.max(0) as u64),
            })
            .collect())
    }

    fn download_file(&self, path: &str, dest: &Path) -> Result<()> {
        self.get_file(path, dest, None)
    }

    fn download_file_with_progress(&self, path: &str, dest: &Path, progress: &Arc<Progress>) -> Result<()> {
        self.get_file(path, dest, Some(progress))
    }
}
