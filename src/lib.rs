//! mlflowreg saves R models in MLflow's model format, logs them to runs and
//! registers them in MLflow model registries, without a Python install.
//!
//! The R package of the same name serializes the R model and calls into this
//! crate for everything else:
//!
//! - [`model`]: the `MLmodel` document, the `crate` and `python_function`
//!   flavors, and atomic writing of a model directory.
//! - [`uri`]: tracking URIs and model URIs parsed into types.
//! - [`http`]: the one HTTP client, with authentication, TLS, timeouts, the
//!   retry policy and MLflow error decoding.
//! - [`client`], [`tracking`], [`registry`]: the MLflow REST API.
//! - [`store`]: the local file store, which serves that API from a
//!   directory in MLflow's own layout, so no server is needed.
//! - [`artifacts`]: artifact stores (proxied `mlflow-artifacts`, local files,
//!   Azure ML run artifacts in blob storage).
//! - [`azureml`]: Azure ML workspaces: `azureml://` URIs, job tokens and the
//!   run-history artifact routes.
//! - [`validate`]: registry acceptance rules checked before registering.
//! - [`pipeline`]: log, register, repair and download, composed from the above.
//! - [`cancel`]: the flag that stops a running operation (Ctrl-C in R).

pub mod artifacts;
pub mod azureml;
pub mod cancel;
pub mod client;
pub mod error;
pub mod http;
pub mod model;
pub mod pipeline;
pub mod registry;
pub mod store;
pub mod tracking;
pub mod uri;
pub mod validate;

mod serde_util;

pub use client::Client;
pub use error::{Error, Result};
pub use model::MlModel;
