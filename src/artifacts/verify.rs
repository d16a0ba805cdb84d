//! Checks that a model's files are complete at their destination, so a
//! version is never registered from a model that only partly arrived.
//!
//! Each check takes a recursive listing ([`super::list_recursive`]) and
//! returns one line per problem; an empty list means the check passed.

use std::collections::BTreeMap;

use super::FileInfo;
use crate::model::{MlModel, CRATE_FLAVOR, MLMODEL_FILE, PYFUNC_FLAVOR};

/// Sizes by path relative to `dir`, from a listing of paths relative to the
/// repository root. Directories are left out.
pub fn sizes_below(listing: &[FileInfo], dir: &str) -> BTreeMap<String, Option<u64>> {
    let dir = dir.trim_matches('/');
    listing
        .iter()
        .filter(|entry| !entry.is_dir)
        .filter_map(|entry| {
            let relative = if dir.is_empty() {
                Some(entry.path.as_str())
            } else {
                entry.path.strip_prefix(dir).and_then(|rest| rest.strip_prefix('/'))
            };
            relative.map(|path| (path.to_string(), entry.file_size))
        })
        .collect()
}

/// Compares the files found with the files sent: each expected path must be
/// present with its size. A listing without a size (the store did not say)
/// only has to show the file.
pub fn compare_with_expected(found: &BTreeMap<String, Option<u64>>, expected: &[(String, u64)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, size) in expected {
        match found.get(path) {
            None => problems.push(format!("{path} is missing")),
            Some(Some(actual)) if actual != size => {
                problems.push(format!("{path} has {actual} bytes, expected {size}"))
            }
            Some(_) => {}
        }
    }
    problems
}

/// Checks what an `MLmodel` promises against the files found in its
/// directory: the file of the `crate` flavor, the `data`, `code` and
/// environment files of the `python_function` flavor, and that the files
/// other than `MLmodel` add up to at least `model_size_bytes`.
///
/// "At least", because Python mlflow computes `model_size_bytes` before it
/// copies some files (the `code` directory) into the model.
pub fn check_promises(mlmodel: &MlModel, found: &BTreeMap<String, Option<u64>>) -> Vec<String> {
    let mut problems = Vec::new();
    // A path may name a file or a directory; a directory must hold a file.
    // `non_empty` also rejects a file of 0 bytes.
    let mut require = |what: &str, path: &str, non_empty: bool| {
        let path = path.trim_matches('/');
        if path.is_empty() || path == "." {
            return;
        }
        let prefix = format!("{path}/");
        let is_dir = found.keys().any(|p| p.starts_with(&prefix));
        match found.get(path) {
            None if !is_dir => problems.push(format!("{path} ({what}) is missing")),
            Some(Some(0)) if non_empty => problems.push(format!("{path} ({what}) is empty")),
            _ => {}
        }
    };

    if let Some(flavor) = mlmodel.flavors.get(CRATE_FLAVOR) {
        if let Some(model) = flavor.get("model").and_then(|v| v.as_str()) {
            require("model file of the crate flavor", model, true);
        }
    }
    if let Some(flavor) = mlmodel.flavors.get(PYFUNC_FLAVOR) {
        let text = |key: &str| flavor.get(key).and_then(|v| v.as_str()).map(str::to_string);
        if let Some(data) = text("data") {
            require("data of the python_function flavor", &data, false);
        }
        if let Some(code) = text("code") {
            require("code directory of the python_function flavor", &code, false);
        }
        if let Some(env) = flavor.get("env") {
            for key in ["conda", "virtualenv"] {
                if let Some(file) = env.get(key).and_then(|v| v.as_str()) {
                    require(&format!("{key} environment of the python_function flavor"), file, false);
                }
            }
        } else if let Some(env) = text("env") {
            // MLflow 1 wrote `env: conda.yaml`.
            require("environment of the python_function flavor", &env, false);
        }
    }

    if let Some(promised) = mlmodel.model_size_bytes {
        let total: u64 = found
            .iter()
            .filter(|(path, _)| path.as_str() != MLMODEL_FILE)
            .filter_map(|(_, size)| *size)
            .sum();
        let all_sizes_known = found.values().all(Option::is_some);
        if all_sizes_known && total < promised {
            problems.push(format!(
                "the files add up to {total} bytes, but model_size_bytes in {MLMODEL_FILE} is {promised}"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> FileInfo {
        FileInfo {
            path: path.to_string(),
            is_dir: false,
            file_size: Some(size),
        }
    }

    const MLMODEL: &str = "flavors:
  crate:
    version: 0.1.0
    model: crate.bin
  python_function:
    loader_module: mlflowreg_pyfunc
    code: code
    data: crate.bin
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
model_size_bytes: 60
";

    fn complete() -> Vec<FileInfo> {
        vec![
            file("model/MLmodel", 200),
            file("model/crate.bin", 30),
            file("model/code/mlflowreg_pyfunc.py", 10),
            file("model/conda.yaml", 10),
            file("model/python_env.yaml", 10),
            file("other/x", 5),
        ]
    }

    #[test]
    fn sizes_below_strips_directory() {
        let found = sizes_below(&complete(), "model");
        assert_eq!(found.len(), 5);
        assert_eq!(found.get("crate.bin"), Some(&Some(30)));
        assert!(!found.contains_key("x"));
    }

    #[test]
    fn expected_files_must_match_sizes() {
        let found = sizes_below(&complete(), "model");
        let expected = vec![
            ("crate.bin".to_string(), 30),
            ("conda.yaml".to_string(), 11),
            ("requirements.txt".to_string(), 3),
        ];
        assert_eq!(
            compare_with_expected(&found, &expected),
            vec!["conda.yaml has 10 bytes, expected 11", "requirements.txt is missing"]
        );
    }

    #[test]
    fn complete_model_keeps_its_promises() {
        let mlmodel = MlModel::from_yaml(MLMODEL, "test").unwrap();
        assert!(check_promises(&mlmodel, &sizes_below(&complete(), "model")).is_empty());
    }

    #[test]
    fn missing_crate_file_is_named() {
        let mlmodel = MlModel::from_yaml(MLMODEL, "test").unwrap();
        let listing: Vec<FileInfo> = complete().into_iter().filter(|f| f.path != "model/crate.bin").collect();
        let problems = check_promises(&mlmodel, &sizes_below(&listing, "model"));
        assert!(problems.iter().any(|p| p.starts_with("crate.bin (model file of the crate flavor) is missing")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("add up to 30 bytes")), "{problems:?}");
    }

    #[test]
    fn truncated_file_breaks_size_promise() {
        let mlmodel = MlModel::from_yaml(MLMODEL, "test").unwrap();
        let mut listing = complete();
        listing[1].file_size = Some(29);
        let problems = check_promises(&mlmodel, &sizes_below(&listing, "model"));
        assert_eq!(problems, vec!["the files add up to 59 bytes, but model_size_bytes in MLmodel is 60"]);
    }

    #[test]
    fn missing_code_directory_is_named() {
        let mlmodel = MlModel::from_yaml(MLMODEL, "test").unwrap();
        let listing: Vec<FileInfo> = complete().into_iter().filter(|f| !f.path.contains("/code/")).collect();
        let problems = check_promises(&mlmodel, &sizes_below(&listing, "model"));
        assert!(problems.iter().any(|p| p.starts_with("code (code directory")), "{problems:?}");
    }
}
