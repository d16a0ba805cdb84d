//! Run artifacts of an Azure ML workspace (`azureml://` artifact URIs).
//!
//! The run-history service ([`crate::azureml::run_history`]) hands out a
//! SAS URL per artifact, and the bytes go straight to and from the
//! workspace's blob storage ([`super::blob`]).

use std::path::Path;

use super::{blob, workers_from_env, ArtifactRepository, FileInfo};
use crate::azureml::{run_history, ArtifactLocation, Workspace};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::http::Http;
use crate::uri::{check_relative, join_artifact_path};

/// Artifacts below one `azureml://.../runs/<run>/artifacts[/<path>]` URI.
pub struct AzureMlArtifacts {
    http: Http,
    workspace: Workspace,
    /// The run, and the repository root as a path below its artifact root.
    root: ArtifactLocation,
    root_uri: String,
    /// Blocks of one large file uploaded at once.
    workers: usize,
}

impl AzureMlArtifacts {
    /// Opens the artifacts at `artifact_uri`, which must belong to the
    /// workspace that `client`'s `azureml://` tracking URI names.
    pub fn new(client: &Client, artifact_uri: &str) -> Result<Self> {
        let workspace = Workspace::from_tracking_uri(client.tracking_uri())?.ok_or_else(|| {
            Error::Unsupported(format!(
                "the Azure ML artifact URI {artifact_uri} with a tracking URI that is not azureml://; set \
                 MLFLOW_TRACKING_URI to the workspace's azureml:// URI"
            ))
        })?;
        let root = workspace.artifact_location(artifact_uri)?;
        check_relative(&root.path).map_err(|reason| Error::invalid("artifact URI", artifact_uri, reason))?;
        Ok(AzureMlArtifacts {
            http: client.http()?.clone(),
            workspace,
            root,
            root_uri: artifact_uri.trim_end_matches('/').to_string(),
            workers: workers_from_env()?,
        })
    }

    /// Returns the path of `path` below the run's artifact root.
    fn run_path(&self, path: &str) -> Result<String> {
        check_relative(path).map_err(|reason| Error::invalid("artifact path", path, reason))?;
        Ok(join_artifact_path(&self.root.path, path))
    }

    /// Asks the run-history service for a writable blob at `path`.
    fn writable_blob(&self, path: &str) -> Result<url::Url> {
        let run_path = self.run_path(path)?;
        if run_path.is_empty() {
            return Err(Error::invalid("artifact path", path, "it is empty; name the file to write"));
        }
        let mut uris = run_history::create_empty_artifacts(&self.http, &self.workspace, &self.root, &[run_path.clone()])?;
        Ok(uris.remove(&run_path).expect("create_empty_artifacts returns every path it was given"))
    }
}

impl ArtifactRepository for AzureMlArtifacts {
    fn root_uri(&self) -> &str {
        &self.root_uri
    }

    fn upload_file(&self, local: &Path, path: &str) -> Result<()> {
        let sas = self.writable_blob(path)?;
        blob::upload_file(&self.http, &sas, local, self.workers)
    }

    fn upload_bytes(&self, bytes: &[u8], path: &str) -> Result<()> {
        let sas = self.writable_blob(path)?;
        blob::upload_bytes(&self.http, &sas, bytes)
    }

    fn list(&self, dir: &str) -> Result<Vec<FileInfo>> {
        let run_dir = self.run_path(dir)?;
        // A trailing slash keeps "model" from also listing "model2/...".
        let prefix = if run_dir.is_empty() { String::new() } else { format!("{run_dir}/") };
        let mut listing: Vec<FileInfo> = Vec::new();
        for artifact in run_history::list_prefix(&self.http, &self.workspace, &self.root, &prefix)? {
            let Some(below) = artifact.path.strip_prefix(&prefix) else {
                continue;
            };
            let (name, is_dir) = match below.split_once('/') {
                Some((first, _)) => (first, true),
                None => (below, false),
            };
            if name.is_empty() {
                continue;
            }
            let path = join_artifact_path(dir, name);
            if !listing.iter().any(|entry| entry.path == path) {
                // The service lists no sizes; `file_size` stays unknown.
                listing.push(FileInfo { path, is_dir, file_size: None });
            }
        }
        listing.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(listing)
    }

    fn download_file(&self, path: &str, dest: &Path) -> Result<()> {
        let run_path = self.run_path(path)?;
        let sas = run_history::content_uri(&self.http, &self.workspace, &self.root, &run_path)?;
        blob::download(&self.http, &sas, dest)
    }
}
