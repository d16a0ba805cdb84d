//! Azure Machine Learning workspaces as MLflow tracking servers.
//!
//! Azure ML serves MLflow's REST API at the https form of its `azureml://`
//! tracking URI and keeps run artifacts in the workspace's blob storage,
//! reached through its run-history service:
//!
//! - [`Workspace`]: the `azureml://<host>/mlflow/v1.0/subscriptions/...`
//!   tracking URI, parsed and checked, and the run-history routes below it.
//! - [`JobToken`]: the bearer token of a job (`MLFLOW_TRACKING_TOKEN`),
//!   refreshed through the run-history token route before it expires and
//!   once after a 401. [`crate::http::Http`] applies it to every request.
//! - [`run_history`]: the artifact routes that hand out SAS URLs of blobs,
//!   used by the `azureml://` artifact store in [`crate::artifacts`].

pub mod run_history;
mod token;
mod workspace;

pub use token::{decode_claims, JobToken, TokenClaims, REFRESH_MARGIN_SECS};
pub use workspace::{ArtifactLocation, Workspace};

use crate::error::{Error, Result};
use crate::http::{Credentials, Secret};

/// Reads the credentials for `tracking_uri` from the process environment.
/// See [`credentials_from_lookup`].
pub fn credentials_from_env(tracking_uri: &str) -> Result<Credentials> {
    credentials_from_lookup(tracking_uri, |name| std::env::var(name).ok())
}

/// Reads the credentials for `tracking_uri` through `lookup`.
///
/// For anything but an `azureml://` URI this is [`Credentials::from_lookup`].
/// For a workspace, `MLFLOW_TRACKING_TOKEN` must be set. Azure ML also sets
/// `MLFLOW_RUN_ID` and `MLFLOW_EXPERIMENT_ID` in a job, and with both set the
/// token is renewed through that run's token route. Without them the token
/// is used as given until it expires.
pub fn credentials_from_lookup(tracking_uri: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Credentials> {
    let Some(workspace) = Workspace::from_tracking_uri(tracking_uri)? else {
        return Ok(Credentials::from_lookup(lookup));
    };
    let get = |name: &str| lookup(name).map(|value| value.trim().to_string()).filter(|v| !v.is_empty());
    if let (Some(username), Some(password)) = (get("MLFLOW_TRACKING_USERNAME"), get("MLFLOW_TRACKING_PASSWORD")) {
        // Basic auth wins over a token in every MLflow client; keep that here.
        return Ok(Credentials::Basic {
            username,
            password: Secret::new(password),
        });
    }
    let Some(token) = get("MLFLOW_TRACKING_TOKEN") else {
        return Err(Error::Authentication(format!(
            "no token for the Azure ML workspace {}: MLFLOW_TRACKING_TOKEN is not set. Azure ML sets it \
             in a job; elsewhere set it to the output of `az account get-access-token --resource \
             https://ml.azure.com --query accessToken --output tsv`",
            workspace.name()
        )));
    };
    let job_token = match (get("MLFLOW_EXPERIMENT_ID"), get("MLFLOW_RUN_ID")) {
        (Some(experiment_id), Some(run_id)) => JobToken::shared(token, workspace.token_url(&experiment_id, &run_id)),
        _ => JobToken::new(token, None),
    };
    Ok(Credentials::AzureMl(job_token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const URI: &str = "azureml://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.MachineLearningServices/workspaces/ws-1";

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn workspace_without_token_is_authentication_error() {
        let err = credentials_from_lookup(URI, lookup(&[("MLFLOW_RUN_ID", "r")])).unwrap_err();
        assert_eq!(err.kind(), "authentication");
        assert!(err.to_string().contains("MLFLOW_TRACKING_TOKEN is not set"), "{err}");
        assert!(err.to_string().contains("ws-1"), "{err}");
    }

    #[test]
    fn job_variables_enable_refresh() {
        let creds = credentials_from_lookup(
            URI,
            lookup(&[("MLFLOW_TRACKING_TOKEN", "t"), ("MLFLOW_RUN_ID", "run-9"), ("MLFLOW_EXPERIMENT_ID", "exp-3")]),
        )
        .unwrap();
        let Credentials::AzureMl(token) = creds else { panic!("not an Azure ML token: {creds:?}") };
        assert!(token.can_refresh());
        assert_eq!(
            token.refresh_route().as_deref(),
            Some(
                "/history/v1.0/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.MachineLearningServices/workspaces/ws-1/experimentids/exp-3/runs/run-9/token"
            )
        );
    }

    #[test]
    fn clients_of_one_job_share_its_token() {
        let vars = [("MLFLOW_TRACKING_TOKEN", "t"), ("MLFLOW_RUN_ID", "run-shared"), ("MLFLOW_EXPERIMENT_ID", "e")];
        let first = credentials_from_lookup(URI, lookup(&vars)).unwrap();
        let second = credentials_from_lookup(URI, lookup(&vars)).unwrap();
        assert_eq!(first, second, "a rebuilt client must continue with the renewed token");
        let other_vars = [("MLFLOW_TRACKING_TOKEN", "t2"), ("MLFLOW_RUN_ID", "run-shared"), ("MLFLOW_EXPERIMENT_ID", "e")];
        let other = credentials_from_lookup(URI, lookup(&other_vars)).unwrap();
        assert_ne!(first, other, "a new starting token starts a new state");
        let outside = [("MLFLOW_TRACKING_TOKEN", "t")];
        let user = credentials_from_lookup(URI, lookup(&outside)).unwrap();
        assert_ne!(user, credentials_from_lookup(URI, lookup(&outside)).unwrap());
    }

    #[test]
    fn token_outside_job_is_not_refreshed() {
        let creds = credentials_from_lookup(URI, lookup(&[("MLFLOW_TRACKING_TOKEN", "t"), ("MLFLOW_RUN_ID", "r")])).unwrap();
        let Credentials::AzureMl(token) = creds else { panic!("not an Azure ML token") };
        assert!(!token.can_refresh());
    }

    #[test]
    fn other_servers_keep_plain_credentials() {
        let creds = credentials_from_lookup("http://127.0.0.1:5000", lookup(&[("MLFLOW_TRACKING_TOKEN", "t")])).unwrap();
        assert_eq!(creds, Credentials::Bearer(Secret::new("t")));
        let creds = credentials_from_lookup("http://127.0.0.1:5000", lookup(&[])).unwrap();
        assert_eq!(creds, Credentials::None);
    }
}
