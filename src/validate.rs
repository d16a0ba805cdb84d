//! Registry acceptance rules, checked before `model-versions/create` so a
//! model a registry would reject fails early with a message saying what to
//! fix.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{MlModel, PYFUNC_FLAVOR};
use crate::uri::TrackingUri;

/// A set of rules a registry applies to the `MLmodel` of a new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// The open-source MLflow server: the model must have an `MLmodel` that
    /// parses and names at least one flavor.
    Mlflow,
    /// Azure Machine Learning: additionally a `python_function` flavor with
    /// a `loader_module` key. Azure ML answers HTTP 400 without one.
    AzureMl,
    /// Databricks Unity Catalog: additionally a signature with inputs and outputs.
    DatabricksUc,
}

impl Profile {
    pub const NAMES: [&'static str; 3] = ["mlflow", "azureml", "databricks-uc"];

    /// Parses a profile name as the R function takes it.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "mlflow" => Ok(Profile::Mlflow),
            "azureml" => Ok(Profile::AzureMl),
            "databricks-uc" => Ok(Profile::DatabricksUc),
            other => Err(Error::invalid(
                "profile",
                other,
                format!("use one of {}", Self::NAMES.join(", ")),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Mlflow => "mlflow",
            Profile::AzureMl => "azureml",
            Profile::DatabricksUc => "databricks-uc",
        }
    }

    /// The profile of the registry behind a tracking URI: `azureml` for
    /// `azureml://` URIs and Azure ML's `*.api.azureml.ms` hosts,
    /// `databricks-uc` for `databricks-uc` URIs, `mlflow` otherwise.
    pub fn for_tracking_uri(uri: &str) -> Self {
        let uri = uri.trim();
        if uri.starts_with("azureml://") {
            return Profile::AzureMl;
        }
        if uri.starts_with("databricks-uc") {
            return Profile::DatabricksUc;
        }
        if let Ok(TrackingUri::Http(url)) = TrackingUri::parse(uri) {
            if url.host_str().is_some_and(|h| h.ends_with(".api.azureml.ms")) {
                return Profile::AzureMl;
            }
        }
        Profile::Mlflow
    }
}

/// One rule a model breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub profile: String,
    /// The `MLmodel` key at fault, such as `flavors.python_function.loader_module`.
    pub field: String,
    pub problem: String,
    pub fix: String,
}

/// Returns every rule of `profile` that `model` breaks; empty when it passes.
pub fn check(model: &MlModel, profile: Profile) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut add = |field: &str, problem: &str, fix: &str| {
        problems.push(Problem {
            profile: profile.name().to_string(),
            field: field.to_string(),
            problem: problem.to_string(),
            fix: fix.to_string(),
        })
    };

    if model.flavors.is_empty() {
        add(
            "flavors",
            "the MLmodel names no flavor, so no client can load the model",
            "save the model with mlflow_save_model() or mlflow_log_model()",
        );
    }

    if profile == Profile::AzureMl {
        let repair = "run mlflowreg_repair_model() on the logged model, or log it again with mlflowreg";
        match model.flavors.get(PYFUNC_FLAVOR) {
            None => add(
                "flavors.python_function",
                "the model has no python_function flavor, which Azure ML requires",
                repair,
            ),
            Some(flavor) => {
                let loader = flavor.get("loader_module").and_then(|v| v.as_str());
                if loader.map_or(true, str::is_empty) {
                    add(
                        "flavors.python_function.loader_module",
                        "the python_function flavor has no loader_module, which Azure ML requires",
                        repair,
                    );
                }
            }
        }
    }

    if profile == Profile::DatabricksUc {
        let signature = model.signature.as_ref();
        let has = |part: Option<&String>| part.is_some_and(|text| !text.trim().is_empty());
        if !has(signature.and_then(|s| s.inputs.as_ref())) {
            add(
                "signature.inputs",
                "the model has no input signature, which Unity Catalog requires",
                "log the model with a signature",
            );
        }
        if !has(signature.and_then(|s| s.outputs.as_ref())) {
            add(
                "signature.outputs",
                "the model has no output signature, which Unity Catalog requires",
                "log the model with a signature",
            );
        }
    }
    problems
}

/// Fails with [`Error::Validation`] when `model` breaks a rule of `profile`.
pub fn require(model: &MlModel, profile: Profile, source: &str) -> Result<()> {
    let problems = check(model, profile);
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Validation {
        source_uri: source.to_string(),
        profile: profile.name().to_string(),
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(yaml: &str) -> MlModel {
        MlModel::from_yaml(yaml, "test").unwrap()
    }

    const CRATE_ONLY: &str = "flavors:\n  crate:\n    version: 0.1.0\n    model: crate.bin\n";

    #[test]
    fn crate_only_fails_azureml_only() {
        let crate_only = model(CRATE_ONLY);
        assert!(check(&crate_only, Profile::Mlflow).is_empty());
        let problems = check(&crate_only, Profile::AzureMl);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "flavors.python_function");
        assert!(problems[0].fix.contains("mlflowreg_repair_model()"));
    }

    #[test]
    fn pyfunc_without_loader_is_named() {
        let no_loader = model("flavors:\n  python_function:\n    data: x\n");
        let problems = check(&no_loader, Profile::AzureMl);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "flavors.python_function.loader_module");
    }

    #[test]
    fn databricks_needs_signature() {
        let fields: Vec<String> = check(&model(CRATE_ONLY), Profile::DatabricksUc)
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(fields, vec!["signature.inputs", "signature.outputs"]);
        let signed = model(
            "flavors:\n  crate: {}\nsignature:\n  inputs: '[{\"type\": \"double\"}]'\n  outputs: '[{\"type\": \"double\"}]'\n",
        );
        assert!(check(&signed, Profile::DatabricksUc).is_empty());
    }

    #[test]
    fn empty_flavors_fail_every_profile() {
        for profile in [Profile::Mlflow, Profile::AzureMl, Profile::DatabricksUc] {
            let problems = check(&model("run_id: x\n"), profile);
            assert!(problems.iter().any(|p| p.field == "flavors"), "{profile:?}");
        }
    }

    #[test]
    fn profile_follows_tracking_uri() {
        assert_eq!(Profile::for_tracking_uri("azureml://eastus.api.azureml.ms/mlflow/v1.0/x"), Profile::AzureMl);
        assert_eq!(Profile::for_tracking_uri("https://eastus.api.azureml.ms/mlflow/v1.0/x"), Profile::AzureMl);
        assert_eq!(Profile::for_tracking_uri("http://127.0.0.1:5000"), Profile::Mlflow);
        assert_eq!(Profile::for_tracking_uri("databricks-uc"), Profile::DatabricksUc);
        assert!(Profile::parse("azure").is_err());
    }

    #[test]
    fn require_lists_problems_in_message() {
        let err = require(&model(CRATE_ONLY), Profile::AzureMl, "runs:/abc/model").unwrap_err();
        assert_eq!(err.kind(), "validation");
        let message = err.to_string();
        assert!(message.contains("runs:/abc/model"), "{message}");
        assert!(message.contains("flavors.python_function"), "{message}");
        assert!(message.contains("azureml"), "{message}");
    }
}
