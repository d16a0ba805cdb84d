//! Artifacts in a directory on this machine, as an MLflow server run with
//! `--no-serve-artifacts` and a local `--default-artifact-root` hands out.

use std::fs;
use std::path::{Path, PathBuf};

use super::{ArtifactRepository, FileInfo};
use crate::error::{Error, Result};
use crate::uri::check_relative;

pub struct LocalArtifacts {
    root: PathBuf,
    root_uri: String,
}

impl LocalArtifacts {
    pub fn new(root: impl Into<PathBuf>, root_uri: &str) -> Self {
        LocalArtifacts {
            root: root.into(),
            root_uri: root_uri.trim_end_matches('/').to_string(),
        }
    }

    /// Opens the directory a `file:` URI names (percent-decoded).
    pub fn for_uri(uri: &str) -> Result<Self> {
        let root = crate::uri::file_uri_path(uri)
            .ok_or_else(|| Error::invalid("artifact URI", uri, "it is not a file: URI"))?;
        Ok(LocalArtifacts::new(root, uri))
    }

    fn resolve(&self, path: &str) -> Result<PathBuf> {
        check_relative(path).map_err(|reason| Error::invalid("artifact path", path, reason))?;
        Ok(self.root.join(path.trim_matches('/')))
    }

    /// Writes through a temporary file in the target directory, so readers
    /// never see a partial file.
    fn write_atomically(&self, path: &str, write: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<()> {
        let target = self.resolve(path)?;
        let dir = target.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(|err| Error::io("creating", dir, err))?;
        let part = tempfile::NamedTempFile::new_in(dir).map_err(|err| Error::io("creating a file in", dir, err))?;
        write(part.path()).map_err(|err| Error::io("writing", part.path(), err))?;
        part.persist(&target).map_err(|err| Error::io("renaming into", &target, err.error))?;
        Ok(())
    }
}

impl ArtifactRepository for LocalArtifacts {
    fn root_uri(&self) -> &str {
        &self.root_uri
    }

    fn upload_file(&self, local: &Path, path: &str) -> Result<()> {
        self.write_atomically(path, |tmp| fs::copy(local, tmp).map(drop))
    }

    fn upload_bytes(&self, bytes: &[u8], path: &str) -> Result<()> {
        self.write_atomically(path, |tmp| fs::write(tmp, bytes))
    }

    fn list(&self, dir: &str) -> Result<Vec<FileInfo>> {
        let full = self.resolve(dir)?;
        if !full.is_dir() {
            return Ok(Vec::new());
        }
        let mut listing = Vec::new();
        for entry in fs::read_dir(&full).map_err(|err| Error::io("listing", &full, err))? {
            let entry = entry.map_err(|err| Error::io("listing", &full, err))?;
            let metadata = entry.metadata().map_err(|err| Error::io("inspecting", entry.path(), err))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            listing.push(FileInfo {
                path: crate::uri::join_artifact_path(dir, &name),
                is_dir: metadata.is_dir(),
                file_size: (!metadata.is_dir()).then_some(metadata.len()),
            });
        }
        listing.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(listing)
    }

    fn download_file(&self, path: &str, dest: &Path) -> Result<()> {
        let source = self.resolve(path)?;
        if !source.is_file() {
            return Err(Error::ArtifactNotFound {
                uri: format!("{}/{}", self.root_uri, path.trim_matches('/')),
            });
        }
        fs::copy(&source, dest).map(drop).map_err(|err| Error::io("copying", &source, err))
    }
}
