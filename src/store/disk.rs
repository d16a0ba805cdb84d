//! File primitives of the local store: atomic writes, the store lock,
//! `meta.yaml` documents and the key/value folders (`tags/`, `params/`,
//! `aliases/`) in which each file name is a key and its contents the value.
//!
//! Python mlflow reads every file in a key/value folder as an entry and every
//! subfolder of an experiment as a run, so temporary files and folders never
//! go there. They live in the entity folder that contains `meta.yaml`,
//! whose plain files MLflow ignores, and their names start with [`TEMP_PREFIX`].

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value as Yaml};

use crate::error::{Error, Result};

/// File name of the metadata document of an experiment, run, registered
/// model or model version.
pub(crate) const META: &str = "meta.yaml";

/// Prefix of temporary files and folders; entries with it are never read.
pub(crate) const TEMP_PREFIX: &str = ".mlflowreg-";

/// Lock file in the store root, held while ids and version numbers are taken.
const LOCK_FILE: &str = ".mlflowreg.lock";

/// Maps an I/O error to the crate error. Permission errors become a
/// configuration error that explains how to fix the store, because retrying
/// the same call cannot succeed.
pub(crate) fn io_error(action: &'static str, path: &Path, err: std::io::Error) -> Error {
    match err.kind() {
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => Error::Configuration(format!(
            "the local MLflow store is not writable: {action} {} failed ({err}); make the store \
             directory writable, or set MLFLOW_TRACKING_URI to a store you can write to",
            path.display()
        )),
        _ => Error::io(action, path, err),
    }
}

/// Returns a unique name for a temporary entry.
pub(crate) fn temp_name() -> String {
    format!("{TEMP_PREFIX}{}.tmp", uuid::Uuid::new_v4().simple())
}

/// Writes `contents` to `target` through a temporary file in `temp_dir`,
/// renamed over the target, so readers see the old or the new file and
/// never a partial one. `temp_dir` must be on the target's filesystem.
pub(crate) fn write_atomic(target: &Path, temp_dir: &Path, contents: &[u8]) -> Result<()> {
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(|err| io_error("creating", parent, err))?;
    }
    let temp = temp_dir.join(temp_name());
    let written = File::create(&temp).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    if let Err(err) = written {
        let _ = fs::remove_file(&temp);
        return Err(io_error("writing", &temp, err));
    }
    fs::rename(&temp, target).map_err(|err| {
        let _ = fs::remove_file(&temp);
        io_error("renaming into", target, err)
    })
}

/// Appends `text` with one `write` call on a file opened for appending, so
/// lines that two processes append at once do not interleave.
pub(crate) fn append(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|err| io_error("creating", parent, err))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|err| io_error("opening", path, err))?;
    file.write_all(text.as_bytes()).map_err(|err| io_error("appending to", path, err))
}

/// An exclusive lock on the store, released when dropped. Every process and
/// thread opens the lock file itself, so two holders always exclude each other.
pub(crate) struct StoreLock {
    _file: File,
}

pub(crate) fn lock(root: &Path) -> Result<StoreLock> {
    let path = root.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|err| io_error("opening the lock file", &path, err))?;
    file.lock().map_err(|err| io_error("locking", &path, err))?;
    Ok(StoreLock { _file: file })
}

/// Names of the subfolders of `dir`, sorted, without temporary ones; empty
/// when `dir` does not exist.
pub(crate) fn subdirs(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io_error("listing", dir, err)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| io_error("listing", dir, err))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(TEMP_PREFIX) {
            continue;
        }
        if entry.path().is_dir() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Reads the key/value folder `dir`: each file below it is one entry whose
/// key is its path relative to `dir` (keys may contain `/`). Sorted by key;
/// empty when `dir` does not exist.
pub(crate) fn read_values(dir: &Path) -> Result<Vec<(String, String)>> {
    let mut values = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((current, prefix)) = pending.pop() {
        let entries = match fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(err) if err.kind() == ErrorKind::NotFound => continue,
            Err(err) => return Err(io_error("listing", &current, err)),
        };
        for entry in entries {
            let entry = entry.map_err(|err| io_error("listing", &current, err))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let key = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            let path = entry.path();
            if path.is_dir() {
                pending.push((path, key));
            } else {
                let value = fs::read_to_string(&path).map_err(|err| io_error("reading", &path, err))?;
                values.push((key, value));
            }
        }
    }
    values.sort();
    Ok(values)
}

/// Reads one value of a key/value folder; `None` when it is missing.
pub(crate) fn read_value(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io_error("reading", path, err)),
    }
}

/// Removes a file; returns false when it did not exist.
pub(crate) fn remove_file(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(false),
        Err(err) => Err(io_error("removing", path, err)),
    }
}

pub(crate) fn create_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|err| io_error("creating", path, err))
}

/// Renames a folder; the target must not exist.
pub(crate) fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|err| io_error("renaming into", to, err))
}

/// A `meta.yaml` document. Keys this crate does not know, such as those a
/// newer Python mlflow writes, are kept when the document is rewritten.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meta {
    map: Mapping,
}

impl Meta {
    /// Reads `<dir>/meta.yaml`; `None` when the file does not exist. A file
    /// that is not a YAML mapping is an error naming the file.
    pub(crate) fn read(dir: &Path) -> Result<Option<Meta>> {
        let path = dir.join(META);
        let Some(text) = read_value(&path)? else {
            return Ok(None);
        };
        let corrupt = |message: String| Error::Parse {
            what: "local store metadata",
            location: path.display().to_string(),
            message: format!("{message}; repair the file from a backup or remove its folder"),
        };
        match serde_yaml::from_str::<Yaml>(&text) {
            Ok(Yaml::Mapping(map)) => Ok(Some(Meta { map })),
            Ok(_) => Err(corrupt("it is empty or not a YAML mapping".into())),
            Err(err) => Err(corrupt(format!("it is not valid YAML ({err})"))),
        }
    }

    /// Returns a string field; numbers are given as their decimal text,
    /// because older MLflow versions wrote experiment ids as integers.
    pub(crate) fn text(&self, key: &str) -> Option<String> {
        match self.map.get(key)? {
            Yaml::String(text) => Some(text.clone()),
            Yaml::Number(number) => Some(number.to_string()),
            Yaml::Bool(flag) => Some(flag.to_string()),
            _ => None,
        }
    }

    pub(crate) fn int(&self, key: &str) -> Option<i64> {
        match self.map.get(key)? {
            Yaml::Number(number) => number.as_i64().or_else(|| number.as_f64().map(|f| f as i64)),
            Yaml::String(text) => text.trim().parse().ok(),
            _ => None,
        }
    }

    pub(crate) fn set(&mut self, key: &str, value: impl Into<Yaml>) {
        self.map.insert(Yaml::String(key.to_string()), value.into());
    }

    pub(crate) fn set_opt(&mut self, key: &str, value: Option<impl Into<Yaml>>) {
        match value {
            Some(value) => self.set(key, value),
            None => self.set(key, Yaml::Null),
        }
    }

    pub(crate) fn remove(&mut self, key: &str) {
        self.map.remove(key);
    }

    /// Writes the document to `<dir>/meta.yaml` atomically, keys sorted as
    /// Python mlflow writes them.
    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        let mut entries: Vec<(&Yaml, &Yaml)> = self.map.iter().collect();
        entries.sort_by_key(|(key, _)| key.as_str().unwrap_or_default().to_string());
        let sorted: Mapping = entries.into_iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let text = serde_yaml::to_string(&sorted).map_err(|err| Error::Parse {
            what: "local store metadata",
            location: dir.join(META).display().to_string(),
            message: format!("it cannot be encoded as YAML ({err})"),
        })?;
        write_atomic(&dir.join(META), dir, text.as_bytes())
    }
}

/// Path of `key` in the key/value folder `folder` below `dir`.
pub(crate) fn value_path(dir: &Path, folder: &str, key: &str) -> PathBuf {
    let mut path = dir.join(folder);
    for part in key.split('/') {
        path.push(part);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_keeps_unknown_keys_and_sorts() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(META), "zeta: 1\nname: x\nexperiment_id: 7\n").unwrap();
        let mut meta = Meta::read(dir.path()).unwrap().unwrap();
        assert_eq!(meta.text("experiment_id").as_deref(), Some("7"));
        meta.set("name", "y");
        meta.write(dir.path()).unwrap();
        let text = fs::read_to_string(dir.path().join(META)).unwrap();
        assert_eq!(text, "experiment_id: 7\nname: y\nzeta: 1\n");
    }

    #[test]
    fn corrupt_meta_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(META), "name: [unclosed").unwrap();
        let err = Meta::read(dir.path()).unwrap_err();
        assert_eq!(err.kind(), "parse");
        assert!(err.to_string().contains(&dir.path().join(META).display().to_string()), "{err}");
        fs::write(dir.path().join(META), "").unwrap();
        assert!(Meta::read(dir.path()).unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn values_with_slashes_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(&value_path(dir.path(), "tags", "a/b"), dir.path(), b"1").unwrap();
        write_atomic(&value_path(dir.path(), "tags", "c"), dir.path(), b"").unwrap();
        assert_eq!(
            read_values(&dir.path().join("tags")).unwrap(),
            vec![("a/b".to_string(), "1".to_string()), ("c".to_string(), String::new())]
        );
        assert!(subdirs(dir.path()).unwrap() == vec!["tags".to_string()]);
    }
}
