//! MLflow's on-disk model format for R models.
//!
//! A saved model directory holds:
//!
//! ```text
//! MLmodel                    flavors: crate (R) and python_function (Python)
//! crate.bin                  the serialized R function (see [`rds`])
//! code/mlflowreg_pyfunc.py   the pyfunc loader module
//! code/mlflowreg_predict.R   the R side of the loader
//! conda.yaml, python_env.yaml, requirements.txt
//! ```
//!
//! The `python_function` flavor makes registries that demand one (Azure ML)
//! accept the model, and lets `mlflow.pyfunc.load_model` predict with it by
//! running the R function in `Rscript`.

mod mlmodel;
pub mod rds;
mod save;

pub use mlmodel::{
    format_utc, CrateFlavor, MlModel, PyFuncEnv, PyFuncFlavor, Signature, CRATE_FLAVOR,
    MLMODEL_FILE, PYFUNC_FLAVOR,
};
pub use save::{pyfunc_flavor, pyfunc_support_files, save_crate_model, SaveOptions};

/// File name of the serialized R function inside a model directory.
pub const CRATE_FILE: &str = "crate.bin";

/// Version string R mlflow writes into the `crate` flavor.
pub const CRATE_FLAVOR_VERSION: &str = "0.1.0";

/// Directory, relative to the model, that pyfunc prepends to `sys.path`.
pub const PYFUNC_CODE_DIR: &str = "code";

/// Python module named by the `loader_module` key.
pub const PYFUNC_LOADER_MODULE: &str = "mlflowreg_pyfunc";

/// Python version written to `python_env.yaml` for environment managers that
/// rebuild the serving environment. The loader itself runs on Python 3.9 or newer.
pub const DEFAULT_PYTHON_VERSION: &str = "3.11";

/// Files the pyfunc loader needs, as (path inside the model, contents).
pub const PYFUNC_CODE_FILES: [(&str, &str); 2] = [
    (
        "code/mlflowreg_pyfunc.py",
        include_str!("pyfunc/mlflowreg_pyfunc.py"),
    ),
    (
        "code/mlflowreg_predict.R",
        include_str!("pyfunc/mlflowreg_predict.R"),
    ),
];
