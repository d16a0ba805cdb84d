//! `azureml://` tracking and artifact URIs of an Azure ML workspace.

use percent_encoding::percent_decode_str;
use url::Url;

use crate::error::{Error, Result};

const PROVIDER: &str = "Microsoft.MachineLearningServices";

/// The form a tracking URI must have, for error messages.
const TRACKING_FORM: &str = "azureml://<region>.api.azureml.ms/mlflow/v1.0/subscriptions/<subscription id>/\
resourceGroups/<resource group>/providers/Microsoft.MachineLearningServices/workspaces/<workspace>";

/// An Azure ML workspace, as its `azureml://` tracking URI names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// `https://<host>[:port]`, which serves both the MLflow API and the
    /// run-history service of the workspace.
    base: Url,
    subscription: String,
    resource_group: String,
    name: String,
}

/// Location of a run's artifact (or directory of artifacts), as an
/// `azureml://` artifact URI names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactLocation {
    pub experiment_id: String,
    pub run_id: String,
    /// Path below the run's artifact root, `/`-separated, no leading `/`;
    /// empty for the root itself.
    pub path: String,
}

impl Workspace {
    /// Parses an `azureml://` tracking URI; returns `None` for any other scheme.
    ///
    /// The query string that Azure ML sometimes appends is ignored. The
    /// subscription, resource group and workspace segments are required.
    pub fn from_tracking_uri(text: &str) -> Result<Option<Self>> {
        let text = text.trim();
        let Some(rest) = text.strip_prefix("azureml://") else {
            return Ok(None);
        };
        let rest = rest.split(['?', '#']).next().unwrap_or(rest);
        let invalid = |reason: String| Error::invalid("tracking URI", text, format!("{reason}; the form is {TRACKING_FORM}"));
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let base = Url::parse(&format!("https://{host}"))
            .ok()
            .filter(|url| url.host_str().is_some_and(|h| !h.is_empty()))
            .ok_or_else(|| invalid(format!("its host {host:?} is not a valid host name")))?;

        let segments = decoded_segments(path);
        let mlflow_prefix = segments.len() >= 2
            && segments[0].eq_ignore_ascii_case("mlflow")
            && segments[1].starts_with(['v', 'V']);
        if !mlflow_prefix {
            return Err(invalid("its path does not start with /mlflow/v1.0".to_string()));
        }
        let scope = &segments[2..];
        let subscription = scope_value(scope, "subscriptions").ok_or_else(|| invalid("it names no subscription".into()))?;
        let resource_group =
            scope_value(scope, "resourceGroups").ok_or_else(|| invalid("it names no resource group".into()))?;
        let name = scope_value(scope, "workspaces").ok_or_else(|| invalid("it names no workspace".into()))?;
        let provider = scope_value(scope, "providers");
        if !provider.is_some_and(|p| p.eq_ignore_ascii_case(PROVIDER)) {
            return Err(invalid(format!("it does not name the provider {PROVIDER}")));
        }
        let expected_order = ["subscriptions", "resourceGroups", "providers", "workspaces"];
        let in_order = scope.len() == 8
            && scope.iter().step_by(2).zip(expected_order).all(|(seen, want)| seen.eq_ignore_ascii_case(want));
        if !in_order {
            return Err(invalid("its path has segments in another order or extra segments".to_string()));
        }
        Ok(Some(Workspace {
            base,
            subscription,
            resource_group,
            name,
        }))
    }

    /// Returns the workspace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `<host>[:port]` of the workspace's service endpoint.
    pub fn authority(&self) -> String {
        match self.base.port() {
            Some(port) => format!("{}:{port}", self.base.host_str().unwrap_or_default()),
            None => self.base.host_str().unwrap_or_default().to_string(),
        }
    }

    /// Builds `https://<host>/history/v1.0/<workspace scope>/experimentids/<experiment>/runs/<run>/<tail>`,
    /// the run-history route of one run; `tail` is split at `/` and each
    /// segment percent-encoded.
    pub fn run_history_url(&self, experiment_id: &str, run_id: &str, tail: &str) -> Url {
        let mut url = self.base.clone();
        {
            let mut segments = url.path_segments_mut().expect("https URLs have a path");
            segments.clear();
            segments.extend(["history", "v1.0", "subscriptions", &self.subscription, "resourceGroups"]);
            segments.extend([self.resource_group.as_str(), "providers", PROVIDER, "workspaces", &self.name]);
            segments.extend(["experimentids", experiment_id, "runs", run_id]);
            segments.extend(tail.split('/').filter(|s| !s.is_empty()));
        }
        url
    }

    /// The route that returns a fresh token for a job's run.
    pub fn token_url(&self, experiment_id: &str, run_id: &str) -> Url {
        self.run_history_url(experiment_id, run_id, "token")
    }

    /// Parses a run artifact URI of this workspace:
    /// `azureml://<host>/mlflow/v<n>/<workspace scope>/experiments/<id>/runs/<id>/artifacts[/<path>]`,
    /// or the short `azureml://experiments/<id>/runs/<id>/artifacts[/<path>]`.
    ///
    /// A URI on another host or in another workspace is rejected, because
    /// the workspace token must not be sent anywhere else.
    pub fn artifact_location(&self, artifact_uri: &str) -> Result<ArtifactLocation> {
        let invalid = |reason: String| Error::invalid("artifact URI", artifact_uri, reason);
        let rest = artifact_uri
            .strip_prefix("azureml://")
            .ok_or_else(|| invalid("it does not start with azureml://".into()))?;
        let rest = rest.split(['?', '#']).next().unwrap_or(rest);
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let segments = decoded_segments(path);

        let run_part: &[String] = if host.eq_ignore_ascii_case("experiments") {
            // Short form: the host position contains the first path segment.
            return parse_run_part(&[&["experiments".to_string()], segments.as_slice()].concat())
                .ok_or_else(|| invalid(run_form_reason()));
        } else {
            &segments
        };
        if !host.eq_ignore_ascii_case(&self.authority()) {
            return Err(Error::Unsupported(format!(
                "the artifact URI {artifact_uri} on host {host}, which is not the tracking host {}; \
                 mlflowreg sends the workspace token only to the tracking host",
                self.authority()
            )));
        }
        if run_part.iter().any(|s| s.eq_ignore_ascii_case("datastores")) {
            return Err(Error::Unsupported(format!(
                "the datastore artifact URI {artifact_uri}; give the run's artifact URI \
                 (azureml://.../experiments/<id>/runs/<id>/artifacts/...) or runs:/<run id>/<path>"
            )));
        }
        let in_workspace = run_part.len() >= 10
            && run_part[0].eq_ignore_ascii_case("mlflow")
            && run_part[3].eq_ignore_ascii_case(&self.subscription)
            && run_part[5].eq_ignore_ascii_case(&self.resource_group)
            && run_part[9].eq_ignore_ascii_case(&self.name);
        if !in_workspace {
            return Err(invalid(format!(
                "it is not in the tracking workspace {}; expected azureml://{}/mlflow/v2.0/subscriptions/{}/\
                 resourceGroups/{}/providers/{PROVIDER}/workspaces/{}/experiments/<id>/runs/<id>/artifacts/...",
                self.name,
                self.authority(),
                self.subscription,
                self.resource_group,
                self.name
            )));
        }
        parse_run_part(&run_part[10..]).ok_or_else(|| invalid(run_form_reason()))
    }

    /// Builds the artifact URI of a run's artifact in this workspace, the
    /// form [`Workspace::artifact_location`] parses.
    pub fn artifact_uri(&self, experiment_id: &str, run_id: &str, path: &str) -> String {
        let mut uri = format!(
            "azureml://{}/mlflow/v2.0/subscriptions/{}/resourceGroups/{}/providers/{PROVIDER}/workspaces/{}/\
             experiments/{experiment_id}/runs/{run_id}/artifacts",
            self.authority(),
            self.subscription,
            self.resource_group,
            self.name
        );
        let path = path.trim_matches('/');
        if !path.is_empty() {
            uri.push('/');
            uri.push_str(path);
        }
        uri
    }
}

fn run_form_reason() -> String {
    "it names no run; expected .../experiments/<experiment id>/runs/<run id>/artifacts[/<path>]".to_string()
}

/// Reads `experiments/<id>/runs/<id>/artifacts[/<path>...]`.
///
/// NOTE: the experiment segment is used as an experiment id for the
/// `experimentids/` routes. Azure ML's public docs do not say whether run
/// artifact URIs can name the experiment instead.
fn parse_run_part(segments: &[String]) -> Option<ArtifactLocation> {
    let ok = segments.len() >= 5
        && segments[0].eq_ignore_ascii_case("experiments")
        && segments[2].eq_ignore_ascii_case("runs")
        && segments[4].eq_ignore_ascii_case("artifacts")
        && !segments[1].is_empty()
        && !segments[3].is_empty();
    ok.then(|| ArtifactLocation {
        experiment_id: segments[1].clone(),
        run_id: segments[3].clone(),
        path: segments[5..].join("/"),
    })
}

/// Splits a URI path at `/`, percent-decodes each segment and drops empty ones.
fn decoded_segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect()
}

/// Returns the non-empty segment after `key` (compared without case).
fn scope_value(segments: &[String], key: &str) -> Option<String> {
    let position = segments.iter().position(|s| s.eq_ignore_ascii_case(key))?;
    segments.get(position + 1).filter(|v| !v.is_empty()).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "azureml://eastus.api.azureml.ms/mlflow/v1.0/subscriptions/s-1/resourceGroups/rg-1/providers/Microsoft.MachineLearningServices/workspaces/ws-1";

    fn workspace() -> Workspace {
        Workspace::from_tracking_uri(URI).unwrap().unwrap()
    }

    #[test]
    fn tracking_uri_parses_with_query() {
        let ws = Workspace::from_tracking_uri(&format!("{URI}?x=1&y=2")).unwrap().unwrap();
        assert_eq!(ws, workspace());
        assert_eq!(ws.name(), "ws-1");
        assert_eq!(ws.authority(), "eastus.api.azureml.ms");
        assert_eq!(Workspace::from_tracking_uri("http://127.0.0.1:5000").unwrap(), None);
    }

    #[test]
    fn malformed_tracking_uris_name_the_missing_part() {
        let cases = [
            ("azureml://h/mlflow/v1.0/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w", "no subscription"),
            ("azureml://h/mlflow/v1.0/subscriptions/s/providers/Microsoft.MachineLearningServices/workspaces/w", "no resource group"),
            ("azureml://h/mlflow/v1.0/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices", "no workspace"),
            ("azureml://h/mlflow/v1.0/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/", "no workspace"),
            ("azureml://h/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w", "/mlflow/v1.0"),
            ("azureml://h/mlflow/v1.0/subscriptions/s/resourceGroups/rg/providers/Other/workspaces/w", "provider"),
            ("azureml:///mlflow/v1.0/subscriptions/s", "host"),
        ];
        for (uri, expected) in cases {
            let err = Workspace::from_tracking_uri(uri).unwrap_err();
            assert_eq!(err.kind(), "invalid_argument", "{uri}");
            let text = err.to_string();
            assert!(text.contains(expected), "{uri}: {text}");
            assert!(text.contains(uri), "{uri}: {text}");
            assert!(text.contains("the form is azureml://"), "{uri}: {text}");
        }
    }

    #[test]
    fn run_history_urls_are_below_the_workspace() {
        let url = workspace().token_url("exp 1", "run-1");
        assert_eq!(
            url.as_str(),
            "https://eastus.api.azureml.ms/history/v1.0/subscriptions/s-1/resourceGroups/rg-1/providers/\
             Microsoft.MachineLearningServices/workspaces/ws-1/experimentids/exp%201/runs/run-1/token"
        );
        let url = workspace().run_history_url("e", "r", "artifacts/batch/metadata");
        assert!(url.path().ends_with("/experimentids/e/runs/r/artifacts/batch/metadata"), "{url}");
    }

    #[test]
    fn artifact_uris_round_trip() {
        let ws = workspace();
        let uri = ws.artifact_uri("e-1", "r-1", "model/sub dir");
        let location = ws.artifact_location(&uri.replace(' ', "%20")).unwrap();
        assert_eq!(
            location,
            ArtifactLocation { experiment_id: "e-1".into(), run_id: "r-1".into(), path: "model/sub dir".into() }
        );
        let root = ws.artifact_location(&ws.artifact_uri("e-1", "r-1", "")).unwrap();
        assert_eq!(root.path, "");
        let short = ws.artifact_location("azureml://experiments/e-2/runs/r-2/artifacts/model").unwrap();
        assert_eq!(short, ArtifactLocation { experiment_id: "e-2".into(), run_id: "r-2".into(), path: "model".into() });
    }

    #[test]
    fn artifact_uris_elsewhere_are_rejected() {
        let ws = workspace();
        let other_host = ws.artifact_uri("e", "r", "m").replace("eastus.api.azureml.ms", "other.example");
        let err = ws.artifact_location(&other_host).unwrap_err();
        assert_eq!(err.kind(), "unsupported");
        assert!(err.to_string().contains("only to the tracking host"), "{err}");

        let other_ws = ws.artifact_uri("e", "r", "m").replace("workspaces/ws-1", "workspaces/ws-2");
        let err = ws.artifact_location(&other_ws).unwrap_err();
        assert_eq!(err.kind(), "invalid_argument");
        assert!(err.to_string().contains("not in the tracking workspace ws-1"), "{err}");

        let no_run = "azureml://eastus.api.azureml.ms/mlflow/v2.0/subscriptions/s-1/resourceGroups/rg-1/providers/Microsoft.MachineLearningServices/workspaces/ws-1/experiments/e";
        let err = ws.artifact_location(no_run).unwrap_err();
        assert!(err.to_string().contains("names no run"), "{err}");

        let datastore = "azureml://eastus.api.azureml.ms/subscriptions/s-1/resourcegroups/rg-1/workspaces/ws-1/datastores/d/paths/x";
        assert_eq!(ws.artifact_location(datastore).unwrap_err().kind(), "unsupported");
    }
}
