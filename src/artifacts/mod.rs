//! Artifact stores: where a run's files live.
//!
//! One trait, [`ArtifactRepository`], with one implementation per backend:
//! [`MlflowArtifacts`] for the tracking server's proxied `mlflow-artifacts`
//! API, [`LocalArtifacts`] for a directory on this machine and
//! [`AzureMlArtifacts`] for the run artifacts of an Azure ML workspace. Paths given
//! to the trait are relative to the repository root and use `/`.
//!
//! Uploads read each file from disk in frames of 256 KiB (`Http::upload`),
//! so memory does not grow with file size. Downloads stream from the
//! response to disk. Directories move `workers` files at a time.

mod azureml;
pub mod blob;
mod local;
pub mod multipart;
pub mod progress;
mod proxied;
pub mod verify;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::uri::{check_relative, join_artifact_path};

pub use azureml::AzureMlArtifacts;
pub use local::LocalArtifacts;
pub use multipart::MultipartSettings;
pub use progress::{Progress, ProgressSnapshot};
pub use proxied::MlflowArtifacts;

/// Files transferred at once by [`upload_dir`] and [`download_dir`] unless
/// `MLFLOWREG_ARTIFACT_WORKERS` sets another number. Small files are bound by
/// round trips: 2,000 files of 4 KiB to a loopback MLflow 3.17 server with
/// 4 workers took about 4.5 s with 4 at once, 4 s with 8 and 3.4 s with 16
/// (bench/client_mlflowreg.R on a loaded 2-core machine); 8 keeps most of
/// that gain with a modest number of connections to the server.
pub const DEFAULT_WORKERS: usize = 8;

/// One entry of an artifact listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Path relative to the repository root.
    pub path: String,
    pub is_dir: bool,
    /// Size in bytes; `None` for directories.
    pub file_size: Option<u64>,
}

/// A store of artifact files under one root URI.
pub trait ArtifactRepository: Send + Sync {
    /// The root URI, such as `mlflow-artifacts:/1/<run>/artifacts`.
    fn root_uri(&self) -> &str;

    /// Uploads one local file to `path`, streaming it from disk.
    fn upload_file(&self, local: &Path, path: &str) -> Result<()>;

    /// Uploads bytes held in memory to `path`.
    fn upload_bytes(&self, bytes: &[u8], path: &str) -> Result<()>;

    /// Lists the entries directly under `dir` (`""` for the root).
    fn list(&self, dir: &str) -> Result<Vec<FileInfo>>;

    /// Downloads `path` to the local file `dest`.
    fn download_file(&self, path: &str, dest: &Path) -> Result<()>;

    /// Uploads like [`ArtifactRepository::upload_file`] and adds the bytes
    /// sent to `progress`. The default counts the whole file once it is
    /// uploaded; backends that stream override it to count as they go.
    fn upload_file_with_progress(&self, local: &Path, path: &str, progress: &Arc<Progress>) -> Result<()> {
        let size = fs::metadata(local).map_err(|err| Error::io("inspecting", local, err))?.len();
        self.upload_file(local, path)?;
        progress.add_bytes(size);
        Ok(())
    }

    /// Downloads like [`ArtifactRepository::download_file`] and adds the
    /// bytes received to `progress`, by default once the file is complete.
    fn download_file_with_progress(&self, path: &str, dest: &Path, progress: &Arc<Progress>) -> Result<()> {
        self.download_file(path, dest)?;
        progress.add_bytes(fs::metadata(dest).map(|m| m.len()).unwrap_or(0));
        Ok(())
    }
}

/// How a directory transfer runs: files at once, and where progress goes.
#[derive(Debug, Clone)]
pub struct Transfer {
    /// Files moved at once, at least 1.
    pub workers: usize,
    pub progress: Option<Arc<Progress>>,
}

impl Transfer {
    /// `MLFLOWREG_ARTIFACT_WORKERS` files at once, with no progress.
    pub fn from_env() -> Result<Self> {
        Ok(Transfer { workers: workers_from_env()?, progress: None })
    }

    fn check_cancelled(&self, what: &str) -> Result<()> {
        match &self.progress {
            Some(progress) if progress.is_cancelled() => Err(Error::Cancelled(format!("stopped before {what}"))),
            _ => Ok(()),
        }
    }

    fn upload(&self, repo: &dyn ArtifactRepository, local: &Path, path: &str) -> Result<()> {
        self.check_cancelled(&format!("uploading {path}"))?;
        match &self.progress {
            Some(progress) => {
                repo.upload_file_with_progress(local, path, progress)?;
                progress.file_done();
                Ok(())
            }
            None => repo.upload_file(local, path),
        }
    }

    fn download(&self, repo: &dyn ArtifactRepository, path: &str, dest: &Path) -> Result<()> {
        self.check_cancelled(&format!("downloading {path}"))?;
        match &self.progress {
            Some(progress) => {
                repo.download_file_with_progress(path, dest, progress)?;
                progress.file_done();
                Ok(())
            }
            None => repo.download_file(path, dest),
        }
    }
}

/// Opens the repository for an artifact URI.
///
/// A query string or fragment is dropped: the stores opened here take none,
/// and it may hold a credential such as a SAS signature.
pub fn open(client: &Client, artifact_uri: &str) -> Result<Box<dyn ArtifactRepository>> {
    let artifact_uri = artifact_uri.split(['?', '#']).next().unwrap_or_default();
    if artifact_uri.starts_with("mlflow-artifacts:") || proxied::is_proxied_http(artifact_uri) {
        return Ok(Box::new(MlflowArtifacts::new(client, artifact_uri)?));
    }
    if artifact_uri.starts_with("azureml://") {
        return Ok(Box::new(AzureMlArtifacts::new(client, artifact_uri)?));
    }
    if artifact_uri.starts_with("file:") {
        return Ok(Box::new(LocalArtifacts::for_uri(artifact_uri)?));
    }
    if artifact_uri.starts_with('/') {
        return Ok(Box::new(LocalArtifacts::new(artifact_uri, artifact_uri)));
    }
    let scheme = artifact_uri.split(':').next().unwrap_or_default();
    Err(Error::Unsupported(format!(
        "artifact URIs with scheme {scheme:?} ({artifact_uri}); run the MLflow server with \
         --serve-artifacts so clients upload through it"
    )))
}

/// Returns the number of parallel transfers from `MLFLOWREG_ARTIFACT_WORKERS`.
pub fn workers_from_env() -> Result<usize> {
    match std::env::var("MLFLOWREG_ARTIFACT_WORKERS") {
        Ok(value) if !value.trim().is_empty() => match value.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(Error::Configuration(format!(
                "MLFLOWREG_ARTIFACT_WORKERS is {value:?}; set it to a whole number of at least 1"
            ))),
        },
        _ => Ok(DEFAULT_WORKERS),
    }
}

/// Lists the regular files below `dir` as paths relative to it, sorted.
///
/// A symbolic link to a file inside `dir` is listed like a file, and its
/// target's contents are what gets uploaded. A link that leads outside
/// `dir`, a broken link and a link to a directory are rejected, so nothing
/// outside `dir` is ever uploaded.
pub fn local_files(dir: &Path) -> Result<Vec<String>> {
    let root = fs::canonicalize(dir).map_err(|err| Error::io("resolving", dir, err))?;
    let mut files = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let current = dir.join(&relative);
        let entries = fs::read_dir(&current).map_err(|err| Error::io("listing", &current, err))?;
        for entry in entries {
            let entry = entry.map_err(|err| Error::io("listing", &current, err))?;
            let file_type = entry
                .file_type()
                .map_err(|err| Error::io("inspecting", entry.path(), err))?;
            let child = relative.join(entry.file_name());
            if file_type.is_symlink() {
                check_link(&root, &entry.path())?;
            } else if file_type.is_dir() {
                pending.push(child);
                continue;
            }
            let text = child.to_str().ok_or_else(|| {
                Error::invalid("file name", child.display().to_string(), "it is not valid UTF-8")
            })?;
            files.push(text.replace('\\', "/"));
        }
    }
    files.sort();
    Ok(files)
}

/// Accepts a symbolic link only when it resolves to a file inside `root`.
fn check_link(root: &Path, link: &Path) -> Result<()> {
    let shown = link.display().to_string();
    let target = fs::canonicalize(link).map_err(|_| {
        Error::invalid("file", shown.clone(), "it is a broken symbolic link; remove it or copy the file in")
    })?;
    if !target.starts_with(root) {
        return Err(Error::invalid(
            "file",
            shown,
            format!(
                "it is a symbolic link to {}, outside the directory being uploaded ({}); copy the file \
                 into the directory instead",
                target.display(),
                root.display()
            ),
        ));
    }
    if target.is_dir() {
        return Err(Error::invalid(
            "file",
            shown,
            "it is a symbolic link to a directory; copy the files into the directory instead",
        ));
    }
    Ok(())
}

/// Uploads the files of `local_dir` under `artifact_path`, `workers` at a
/// time. Files named in `skip` (relative paths) are left out. Returns the
/// uploaded relative paths.
pub fn upload_dir(
    repo: &dyn ArtifactRepository,
    local_dir: &Path,
    artifact_path: &str,
    skip: &[&str],
    workers: usize,
) -> Result<Vec<String>> {
    let transfer = Transfer { workers, progress: None };
    upload_dir_with(repo, local_dir, artifact_path, skip, &transfer)
}

/// Uploads like [`upload_dir`], with the workers and progress of `transfer`.
/// The progress totals grow by the files' count and size before the first
/// byte is sent.
pub fn upload_dir_with(
    repo: &dyn ArtifactRepository,
    local_dir: &Path,
    artifact_path: &str,
    skip: &[&str],
    transfer: &Transfer,
) -> Result<Vec<String>> {
    check_relative(artifact_path).map_err(|reason| Error::invalid("artifact_path", artifact_path, reason))?;
    let files: Vec<String> = local_files(local_dir)?
        .into_iter()
        .filter(|f| !skip.contains(&f.as_str()))
        .collect();
    let mut sized = Vec::with_capacity(files.len());
    for relative in &files {
        let path = local_dir.join(relative);
        let size = fs::metadata(&path).map_err(|err| Error::io("inspecting", &path, err))?.len();
        sized.push((size, relative));
    }
    if let Some(progress) = &transfer.progress {
        progress.add_total(files.len() as u64, sized.iter().map(|(size, _)| size).sum());
    }
    // Largest first, so the longest upload starts at once and the small
    // files share the other workers meanwhile.
    sized.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    for_each_parallel(&sized, transfer.workers, |(_, relative)| {
        transfer.upload(repo, &local_dir.join(relative), &join_artifact_path(artifact_path, relative))
    })?;
    Ok(files)
}

/// Uploads a local file to `<artifact_path>/<its name>`, or the files of a
/// local directory below `artifact_path`, as `mlflow_log_artifact()` in R
/// mlflow does. Returns the uploaded paths relative to the repository root.
pub fn upload_path(
    repo: &dyn ArtifactRepository,
    local: &Path,
    artifact_path: &str,
    transfer: &Transfer,
) -> Result<Vec<String>> {
    check_relative(artifact_path).map_err(|reason| Error::invalid("artifact_path", artifact_path, reason))?;
    let metadata = fs::metadata(local).map_err(|err| Error::io("inspecting", local, err))?;
    if metadata.is_dir() {
        let files = upload_dir_with(repo, local, artifact_path, &[], transfer)?;
        return Ok(files.iter().map(|f| join_artifact_path(artifact_path, f)).collect());
    }
    let name = local
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::invalid("path", local.display().to_string(), "it has no UTF-8 file name"))?;
    let target = join_artifact_path(artifact_path, name);
    if let Some(progress) = &transfer.progress {
        progress.add_total(1, metadata.len());
    }
    transfer.upload(repo, local, &target)?;
    Ok(vec![target])
}

/// Lists every file below `dir` of the repository, recursively.
pub fn list_recursive(repo: &dyn ArtifactRepository, dir: &str) -> Result<Vec<FileInfo>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_string()];
    while let Some(current) = pending.pop() {
        for entry in repo.list(&current)? {
            if entry.is_dir {
                pending.push(entry.path);
            } else {
                files.push(entry);
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Downloads everything below `artifact_path` into `dest`, which must not
/// exist yet. Files arrive in a hidden sibling directory that is renamed to
/// `dest` at the end, so a failed download leaves nothing at `dest`.
/// A file (not a directory) at `artifact_path` is downloaded as `dest`.
pub fn download_dir(repo: &dyn ArtifactRepository, artifact_path: &str, dest: &Path, workers: usize) -> Result<()> {
    download_dir_with(repo, artifact_path, dest, &Transfer { workers, progress: None })
}

/// Downloads like [`download_dir`], with the workers and progress of
/// `transfer`. The progress totals grow by the listed files' count and
/// size before the first file is fetched.
pub fn download_dir_with(repo: &dyn ArtifactRepository, artifact_path: &str, dest: &Path, transfer: &Transfer) -> Result<()> {
    let artifact_path = artifact_path.trim_matches('/');
    let files = list_recursive(repo, artifact_path)?;
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|err| Error::io("creating", parent, err))?;
    if files.is_empty() {
        if let Some(progress) = &transfer.progress {
            progress.add_total(1, 0);
        }
        // The path may name a single file rather than a directory.
        return transfer.download(repo, artifact_path, dest).map_err(|err| {
            if err.is_not_found() {
                Error::ArtifactNotFound {
                    uri: format!("{}/{artifact_path}", repo.root_uri()).trim_end_matches('/').to_string(),
                }
            } else {
                err
            }
        });
    }
    let staging = tempfile::Builder::new()
        .prefix(".mlflowreg-download-")
        .tempdir_in(parent)
        .map_err(|err| Error::io("creating a staging directory in", parent, err))?;

    if let Some(progress) = &transfer.progress {
        progress.add_total(files.len() as u64, files.iter().filter_map(|f| f.file_size).sum());
    }
    let prefix = if artifact_path.is_empty() { String::new() } else { format!("{artifact_path}/") };
    for_each_parallel(&files, transfer.workers, |file| {
        let relative = file.path.strip_prefix(&prefix).unwrap_or(&file.path);
        check_relative(relative).map_err(|reason| Error::invalid("artifact path", &file.path, reason))?;
        let target = staging.path().join(relative);
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir).map_err(|err| Error::io("creating", dir, err))?;
        }
        transfer.download(repo, &file.path, &target)
    })?;
    check_downloaded(repo, staging.path(), &files, &prefix)?;
    fs::rename(staging.path(), dest).map_err(|err| Error::io("renaming into", dest, err))?;
    Ok(())
}

/// Compares the size of each downloaded file with the size the listing
/// gave, so a response cut short that still looked complete is caught.
fn check_downloaded(repo: &dyn ArtifactRepository, staging: &Path, files: &[FileInfo], prefix: &str) -> Result<()> {
    let mut problems = Vec::new();
    for file in files {
        let Some(expected) = file.file_size else { continue };
        let relative = file.path.strip_prefix(prefix).unwrap_or(&file.path);
        let local = staging.join(relative);
        let actual = fs::metadata(&local).map_err(|err| Error::io("inspecting", &local, err))?.len();
        if actual != expected {
            problems.push(format!("{relative} has {actual} bytes, expected {expected}"));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::IncompleteModel {
        location: format!("{}/{}", repo.root_uri(), prefix.trim_end_matches('/')).trim_end_matches('/').to_string(),
        problems,
        outcome: "the download was discarded",
    })
}

/// Runs `task` on every item with at most `workers` threads and returns the
/// first error. Items not yet started when an error occurs are skipped.
pub fn for_each_parallel<T: Sync>(items: &[T], workers: usize, task: impl Fn(&T) -> Result<()> + Sync) -> Result<()> {
    let workers = workers.clamp(1, items.len().max(1));
    if workers == 1 {
        return items.iter().try_for_each(task);
    }
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                if first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                    return;
                }
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(index) else { return };
                if let Err(err) = task(item) {
                    if let Ok(mut slot) = first_error.lock() {
                        slot.get_or_insert(err);
                    }
                    return;
                }
            });
        }
    });
    match first_error.into_inner() {
        Ok(Some(err)) => Err(err),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_runs_every_item_once() {
        let items: Vec<usize> = (0..100).collect();
        let seen = Mutex::new(Vec::new());
        for_each_parallel(&items, 4, |i| {
            seen.lock().unwrap().push(*i);
            Ok(())
        })
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, items);
    }

    #[test]
    fn parallel_returns_first_error() {
        let items: Vec<usize> = (0..10).collect();
        let err = for_each_parallel(&items, 3, |i| {
            if *i == 5 {
                Err(Error::invalid("item", i.to_string(), "five"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert!(err.to_string().contains("five"), "{err}");
    }

    #[test]
    fn local_files_rejects_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("code")).unwrap();
        fs::write(dir.path().join("code/a.py"), "x").unwrap();
        fs::write(dir.path().join("MLmodel"), "x").unwrap();
        assert_eq!(local_files(dir.path()).unwrap(), vec!["MLmodel", "code/a.py"]);

        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("link")).unwrap();
        let err = local_files(dir.path()).unwrap_err();
        assert_eq!(err.kind(), "invalid_argument");
        assert!(err.to_string().contains("symbolic link to /etc/hostname, outside the directory"), "{err}");
    }

    #[test]
    fn local_files_accepts_links_inside() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.txt"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("a.txt"), dir.path().join("b.txt")).unwrap();
        assert_eq!(local_files(dir.path()).unwrap(), vec!["a.txt", "b.txt"]);

        fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("..", dir.path().join("sub/up")).unwrap();
        let err = local_files(dir.path()).unwrap_err();
        assert!(err.to_string().contains("symbolic link to a directory"), "{err}");

        fs::remove_file(dir.path().join("sub/up")).unwrap();
        std::os::unix::fs::symlink("../../outside", dir.path().join("sub/escape")).unwrap();
        let err = local_files(dir.path()).unwrap_err();
        assert!(err.to_string().contains("broken symbolic link"), "{err}");
    }
}
