//! Writing a model directory atomically.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{
    format_utc, rds, CrateFlavor, MlModel, PyFuncEnv, PyFuncFlavor, CRATE_FILE, CRATE_FLAVOR,
    CRATE_FLAVOR_VERSION, DEFAULT_PYTHON_VERSION, MLMODEL_FILE, PYFUNC_CODE_DIR, PYFUNC_CODE_FILES,
    PYFUNC_FLAVOR, PYFUNC_LOADER_MODULE,
};
use crate::error::{Error, Result};

/// What a saved model records besides the R function.
#[derive(Debug, Clone, Default)]
pub struct SaveOptions {
    /// Run the model is logged to; written as `run_id`.
    pub run_id: Option<String>,
    /// Path of the model inside the run's artifacts; written as `artifact_path`.
    pub artifact_path: Option<String>,
    /// Python version for `python_env.yaml`; [`DEFAULT_PYTHON_VERSION`] when unset.
    pub python_version: Option<String>,
}

const CONDA_FILE: &str = "conda.yaml";
const VIRTUALENV_FILE: &str = "python_env.yaml";
const REQUIREMENTS_FILE: &str = "requirements.txt";

/// Packages the pyfunc loader imports. R itself comes from `r-base` in the
/// conda environment, or from the serving image.
const REQUIREMENTS: &str = "mlflow>=2.0\npandas\n";

/// Saves an R model as an MLflow model directory at `path`.
///
/// `serialized` is the output of R's `serialize(fn, NULL)`. The directory is
/// built in a hidden sibling and renamed into place, so a failed save leaves
/// nothing at `path`. An existing MLflow model directory (one with an
/// `MLmodel` file) or an empty directory at `path` is replaced; anything else
/// there is an [`Error::NotAModelDirectory`] and is left untouched.
pub fn save_crate_model(path: &Path, serialized: &[u8], options: &SaveOptions) -> Result<MlModel> {
    let replace_existing = check_destination(path)?;
    let parent = parent_dir(path);
    let created_parent = create_missing_parents(&parent)?;

    let result = write_staged(&parent, path, serialized, options, replace_existing);
    if result.is_err() {
        if let Some(top) = created_parent {
            let _ = fs::remove_dir_all(top);
        }
    }
    result
}

/// Returns whether `path` contains something that a save may replace.
fn check_destination(path: &Path) -> Result<bool> {
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(Error::io("inspecting", path, err)),
    };
    if !metadata.is_dir() {
        return Err(Error::NotAModelDirectory {
            path: path.to_path_buf(),
        });
    }
    if path.join(MLMODEL_FILE).is_file() {
        return Ok(true);
    }
    let mut entries = fs::read_dir(path).map_err(|err| Error::io("listing", path, err))?;
    if entries.next().is_none() {
        return Ok(true);
    }
    Err(Error::NotAModelDirectory {
        path: path.to_path_buf(),
    })
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates `dir` and its missing ancestors; returns the topmost one created,
/// so that a failed save can remove what it made.
fn create_missing_parents(dir: &Path) -> Result<Option<PathBuf>> {
    let mut topmost = None;
    let mut current = Some(dir);
    while let Some(candidate) = current {
        if candidate.exists() {
            break;
        }
        topmost = Some(candidate.to_path_buf());
        current = candidate.parent().filter(|p| !p.as_os_str().is_empty());
    }
    if topmost.is_some() {
        fs::create_dir_all(dir).map_err(|err| Error::io("creating", dir, err))?;
    }
    Ok(topmost)
}

fn write_staged(
    parent: &Path,
    path: &Path,
    serialized: &[u8],
    options: &SaveOptions,
    replace_existing: bool,
) -> Result<MlModel> {
    let staging = tempfile::Builder::new()
        .prefix(".mlflowreg-save-")
        .tempdir_in(parent)
        .map_err(|err| Error::io("creating a staging directory in", parent, err))?;
    let model = write_model_files(staging.path(), serialized, options)?;

    if replace_existing {
        swap_into_place(staging.path(), path)?;
    } else {
        fs::rename(staging.path(), path).map_err(|err| Error::io("renaming into", path, err))?;
    }
    // The staging path no longer exists; dropping the guard is a no-op then.
    drop(staging);
    Ok(model)
}

/// Replaces the directory at `path` with `staged`, restoring the old one if
/// the second rename fails.
fn swap_into_place(staged: &Path, path: &Path) -> Result<()> {
    let parent = parent_dir(path);
    let backup = parent.join(format!(".mlflowreg-old-{}", uuid::Uuid::new_v4().simple()));
    fs::rename(path, &backup).map_err(|err| Error::io("moving aside", path, err))?;
    if let Err(err) = fs::rename(staged, path) {
        let _ = fs::rename(&backup, path);
        return Err(Error::io("renaming into", path, err));
    }
    // The new model is in place; a previous model that cannot be removed
    // (a read-only folder, say) is left beside it rather than failing a
    // save that succeeded.
    if let Err(err) = fs::remove_dir_all(&backup) {
        tracing::warn!(path = %backup.display(), error = %err, "could not remove the previous model");
    }
    Ok(())
}

/// Writes every file of the model into `dir` and returns its `MLmodel`.
/// `MLmodel` is written last, so a directory without it is never a model.
pub(crate) fn write_model_files(dir: &Path, serialized: &[u8], options: &SaveOptions) -> Result<MlModel> {
    rds::write_crate_file(&dir.join(CRATE_FILE), serialized)?;

    let code_dir = dir.join(PYFUNC_CODE_DIR);
    fs::create_dir(&code_dir).map_err(|err| Error::io("creating", &code_dir, err))?;
    let python_version = options
        .python_version
        .as_deref()
        .unwrap_or(DEFAULT_PYTHON_VERSION);
    for (relative, contents) in pyfunc_support_files(python_version) {
        write_file(&dir.join(relative), &contents)?;
    }

    let model = crate_mlmodel(options, python_version, directory_size(dir)?)?;
    write_file(&dir.join(MLMODEL_FILE), &model.to_yaml()?)?;
    Ok(model)
}

/// Builds the `MLmodel` of a saved R model: the `crate` flavor exactly as R
/// mlflow writes it, plus a `python_function` flavor pointing at the loader.
fn crate_mlmodel(options: &SaveOptions, python_version: &str, size_bytes: u64) -> Result<MlModel> {
    let mut model = MlModel {
        artifact_path: options.artifact_path.clone(),
        model_uuid: Some(uuid::Uuid::new_v4().simple().to_string()),
        run_id: options.run_id.clone(),
        utc_time_created: Some(format_utc(SystemTime::now())),
        model_size_bytes: Some(size_bytes),
        ..MlModel::default()
    };
    model.set_flavor(
        CRATE_FLAVOR,
        &CrateFlavor {
            version: CRATE_FLAVOR_VERSION.to_string(),
            model: CRATE_FILE.to_string(),
        },
    )?;
    model.set_flavor(PYFUNC_FLAVOR, &pyfunc_flavor(python_version))?;
    Ok(model)
}

/// The `python_function` flavor of every model this crate saves.
/// `python_version` matches `python_env.yaml`, so pyfunc does not warn
/// that the version is unknown.
pub fn pyfunc_flavor(python_version: &str) -> PyFuncFlavor {
    PyFuncFlavor {
        loader_module: PYFUNC_LOADER_MODULE.to_string(),
        python_version: Some(python_version.to_string()),
        data: Some(CRATE_FILE.to_string()),
        code: Some(PYFUNC_CODE_DIR.to_string()),
        env: Some(PyFuncEnv {
            conda: Some(CONDA_FILE.to_string()),
            virtualenv: Some(VIRTUALENV_FILE.to_string()),
        }),
        extra: Default::default(),
    }
}

/// The files the `python_function` flavor needs besides `crate.bin`, as
/// (path inside the model, contents): the loader code and the environment
/// files.
pub fn pyfunc_support_files(python_version: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = PYFUNC_CODE_FILES
        .iter()
        .map(|(path, contents)| (path.to_string(), contents.to_string()))
        .collect();
    files.push((REQUIREMENTS_FILE.to_string(), REQUIREMENTS.to_string()));
    files.push((CONDA_FILE.to_string(), conda_yaml(python_version)));
    files.push((VIRTUALENV_FILE.to_string(), python_env_yaml(python_version)));
    files
}

fn conda_yaml(python_version: &str) -> String {
    format!(
        "channels:\n- conda-forge\ndependencies:\n- python={python_version}\n- r-base\n- pip\n\
         - pip:\n  - mlflow>=2.0\n  - pandas\nname: mlflow-env\n"
    )
}

fn python_env_yaml(python_version: &str) -> String {
    format!(
        "python: '{python_version}'\nbuild_dependencies:\n- pip\ndependencies:\n- -r {REQUIREMENTS_FILE}\n"
    )
}

fn write_file(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).map_err(|err| Error::io("writing", path, err))
}

/// Sums the sizes of the regular files below `dir`, in bytes.
fn directory_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = fs::read_dir(&current).map_err(|err| Error::io("listing", &current, err))?;
        for entry in entries {
            let entry = entry.map_err(|err| Error::io("listing", &current, err))?;
            let metadata = entry
                .metadata()
                .map_err(|err| Error::io("inspecting", entry.path(), err))?;
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                total += metadata.len();
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialized_null() -> Vec<u8> {
        let mut bytes = b"X\n".to_vec();
        for word in [3i32, 0x0004_0202, 0x0003_0500, 5] {
            bytes.extend_from_slice(&word.to_be_bytes());
        }
        bytes.extend_from_slice(b"UTF-8");
        bytes.extend_from_slice(&254i32.to_be_bytes());
        bytes
    }

    #[test]
    fn save_writes_both_flavors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/model");
        let model = save_crate_model(&path, &serialized_null(), &SaveOptions::default()).unwrap();

        let read_back = MlModel::read_dir(&path).unwrap();
        assert_eq!(read_back, model);
        assert_eq!(
            read_back.crate_flavor().unwrap().unwrap(),
            CrateFlavor {
                version: "0.1.0".into(),
                model: "crate.bin".into()
            }
        );
        let pyfunc = read_back.pyfunc_flavor().unwrap().unwrap();
        assert_eq!(pyfunc.loader_module, "mlflowreg_pyfunc");
        assert_eq!(pyfunc.code.as_deref(), Some("code"));
        assert_eq!(pyfunc.data.as_deref(), Some("crate.bin"));
        assert_eq!(model.model_uuid.as_ref().map(String::len), Some(32));
        assert!(model.run_id.is_none());
        for (relative, contents) in PYFUNC_CODE_FILES {
            assert_eq!(fs::read_to_string(path.join(relative)).unwrap(), contents);
        }
        assert!(path.join("python_env.yaml").is_file());
        assert_eq!(
            rds::read_crate_file(&path.join("crate.bin")).unwrap(),
            serialized_null()
        );
    }

    #[test]
    fn save_replaces_previous_model() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model");
        let first = save_crate_model(&path, &serialized_null(), &SaveOptions::default()).unwrap();
        fs::write(path.join("stale.txt"), "old").unwrap();
        let second = save_crate_model(&path, &serialized_null(), &SaveOptions::default()).unwrap();

        assert_ne!(first.model_uuid, second.model_uuid);
        assert!(!path.join("stale.txt").exists());
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("model")]);
    }

    #[test]
    fn save_refuses_foreign_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("important.csv"), "a,b\n").unwrap();

        let err = save_crate_model(&path, &serialized_null(), &SaveOptions::default()).unwrap_err();
        assert_eq!(err.kind(), "not_a_model_directory");
        assert_eq!(fs::read_to_string(path.join("important.csv")).unwrap(), "a,b\n");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn failed_save_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/parent/model");
        let err = save_crate_model(&path, b"not R", &SaveOptions::default()).unwrap_err();
        assert_eq!(err.kind(), "parse");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn logged_save_records_run() {
        let dir = tempfile::tempdir().unwrap();
        let options = SaveOptions {
            run_id: Some("0123abcd".into()),
            artifact_path: Some("model".into()),
            python_version: Some("3.10".into()),
        };
        let model = save_crate_model(&dir.path().join("m"), &serialized_null(), &options).unwrap();
        assert_eq!(model.run_id.as_deref(), Some("0123abcd"));
        assert_eq!(model.artifact_path.as_deref(), Some("model"));
        let env = fs::read_to_string(dir.path().join("m/python_env.yaml")).unwrap();
        assert!(env.starts_with("python: '3.10'\n"), "{env}");
    }
}
