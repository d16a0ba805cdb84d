//! The tracking server's proxied artifact API (`mlflow server --serve-artifacts`).
//!
//! `mlflow-artifacts:/<path>` resolves to
//! `<tracking URI>/api/2.0/mlflow-artifacts/artifacts/<path>`: PUT uploads
//! the raw bytes, GET downloads them, and
//! `GET .../artifacts?path=<dir>` lists a directory by base names.

use std::path::Path;

use reqwest::Method;
use serde::Deserialize;
use url::Url;

use super::{ArtifactRepository, FileInfo};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::http::{Http, RequestBody};
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
}

impl MlflowArtifacts {
    pub fn new(client: &Client, artifact_uri: &str) -> Result<Self> {
        let (endpoint, root) = if let Some(rest) = artifact_uri.strip_prefix("mlflow-artifacts:") {
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
            (endpoint, path.trim_matches('/').to_string())
        } else {
            let (base, path) = artifact_uri
                .split_once(ARTIFACTS_ROUTE)
                .expect("is_proxied_http checked the route");
            let base = Url::parse(base.trim_end_matches('/')).map_err(|err| {
                Error::invalid("artifact URI", artifact_uri, format!("it is not a valid URL ({err})"))
            })?;
            (Client::url_under(&base, ARTIFACTS_ROUTE), path.trim_matches('/').to_string())
        };
        Ok(MlflowArtifacts {
            http: client.http()?.clone(),
            endpoint,
            root,
            root_uri: artifact_uri.trim_end_matches('/').to_string(),
        })
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
        let url = self.file_url(path)?;
        self.http.send(Method::PUT, &url, RequestBody::File(local)).map(drop)
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
        let url = self.file_url(path)?;
        let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut part = tempfile::NamedTempFile::new_in(parent).map_err(|err| Error::io("creating a file in", parent, err))?;
        self.http.download(&url, part.as_file_mut())?;
        part.persist(dest).map_err(|err| Error::io("renaming into", dest, err.error))?;
        Ok(())
    }
}
