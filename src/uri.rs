//! Tracking URIs and model URIs, parsed once into types.

use std::path::PathBuf;

use url::Url;

use crate::error::{Error, Result};

/// The location where runs and models are tracked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackingUri {
    /// An MLflow server; the URL is the REST base without a trailing slash.
    Http(Url),
    /// A local file store directory.
    File(PathBuf),
}

impl TrackingUri {
    /// Parses a tracking URI as users set it in `MLFLOW_TRACKING_URI`.
    ///
    /// `azureml://<host>/<path>` becomes `https://<host>/<path>` with any
    /// query string dropped, which is the REST base Azure ML serves MLflow at.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::invalid("tracking URI", text, "it is empty"));
        }
        // Error messages show the URI without a password or query string.
        let shown = shown_uri(text);
        if let Some(rest) = text.strip_prefix("azureml://") {
            // Rejects a URI without subscription, resource group or workspace.
            crate::azureml::Workspace::from_tracking_uri(text)?;
            let without_query = rest.split('?').next().unwrap_or(rest);
            return Self::parse_http(&format!("https://{without_query}"), text);
        }
        if text.starts_with("http://") || text.starts_with("https://") {
            return Self::parse_http(text, text);
        }
        if let Some(path) = file_uri_path(text) {
            return Ok(TrackingUri::File(path));
        }
        if text.contains("://") {
            let scheme = text.split("://").next().unwrap_or_default();
            return Err(Error::invalid(
                "tracking URI",
                shown,
                format!("the scheme {scheme:?} is not supported; use http://, https://, azureml:// or file:"),
            ));
        }
        Ok(TrackingUri::File(PathBuf::from(text)))
    }

    fn parse_http(text: &str, original: &str) -> Result<Self> {
        let shown = shown_uri(original);
        let mut url = Url::parse(text)
            .map_err(|err| Error::invalid("tracking URI", shown.clone(), format!("it is not a valid URL ({err})")))?;
        if url.host_str().map_or(true, str::is_empty) {
            return Err(Error::invalid("tracking URI", shown, "it has no host"));
        }
        let trimmed = url.path().trim_end_matches('/').to_string();
        url.set_path(&trimmed);
        Ok(TrackingUri::Http(url))
    }
}

/// A reference to a model, as `mlflow_load_model()` and `register` take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelUri {
    /// A directory on this machine.
    Local(PathBuf),
    /// `runs:/<run_id>/<path>`: a path inside a run's artifacts.
    Run { run_id: String, path: String },
    /// `models:/<name>/<version>`, `models:/<name>/<stage>`, `models:/<name>@<alias>`.
    Registered { name: String, selector: VersionSelector },
    /// Any other artifact URI (`mlflow-artifacts:`, `http(s):`, ...).
    Artifact(String),
}

/// The version of a registered model that a `models:/` URI selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSelector {
    Version(String),
    Alias(String),
    /// A stage (`Production`, `Staging`, ...) or `latest`.
    Stage(String),
}

impl ModelUri {
    /// Parses a model URI or local path.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::invalid("model URI", crate::http::redact_uri(text), reason);
        if text.trim().is_empty() {
            return Err(invalid("it is empty"));
        }
        if let Some(rest) = text.strip_prefix("runs:/") {
            let rest = rest.trim_start_matches('/');
            let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
            if run_id.is_empty() {
                return Err(invalid("it has no run id; write runs:/<run_id>/<artifact path>"));
            }
            let path = path.trim_matches('/');
            check_relative(path).map_err(|reason| invalid(&reason))?;
            return Ok(ModelUri::Run {
                run_id: run_id.to_string(),
                path: path.to_string(),
            });
        }
        if let Some(rest) = text.strip_prefix("models:/") {
            let rest = rest.trim_start_matches('/').trim_end_matches('/');
            if let Some((name, alias)) = rest.split_once('@') {
                if name.is_empty() || alias.is_empty() || alias.contains('/') {
                    return Err(invalid("write models:/<name>@<alias>"));
                }
                return Ok(ModelUri::Registered {
                    name: name.to_string(),
                    selector: VersionSelector::Alias(alias.to_string()),
                });
            }
            let Some((name, which)) = rest.rsplit_once('/') else {
                return Err(invalid(
                    "it names no version; write models:/<name>/<version> or models:/<name>@<alias>",
                ));
            };
            if name.is_empty() || which.is_empty() {
                return Err(invalid("write models:/<name>/<version> or models:/<name>@<alias>"));
            }
            let selector = if which.bytes().all(|b| b.is_ascii_digit()) {
                VersionSelector::Version(which.to_string())
            } else {
                VersionSelector::Stage(which.to_string())
            };
            return Ok(ModelUri::Registered {
                name: name.to_string(),
                selector,
            });
        }
        if let Some(path) = text.strip_prefix("file://") {
            return Ok(ModelUri::Local(PathBuf::from(path)));
        }
        if let Some(path) = text.strip_prefix("file:") {
            return Ok(ModelUri::Local(PathBuf::from(path)));
        }
        if text.contains(":/") && !looks_like_windows_drive(text) {
            return Ok(ModelUri::Artifact(text.to_string()));
        }
        Ok(ModelUri::Local(PathBuf::from(text)))
    }
}

fn looks_like_windows_drive(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 3 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' && (bytes[2] == b'/' || bytes[2] == b'\\')
}

/// Replaces the password of a `scheme://user:password@host` text with
/// `***`, for error messages about URIs that may not parse.
/// Returns a URI for error messages: the password masked by
/// [`redact_userinfo`] and the query string and fragment dropped, because
/// either may hold a credential.
fn shown_uri(text: &str) -> String {
    let masked = redact_userinfo(text);
    masked.split(['?', '#']).next().unwrap_or_default().to_string()
}

pub fn redact_userinfo(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return text.to_string();
    };
    let user = rest[..at].split(':').next().unwrap_or_default();
    format!("{scheme}://{user}:***@{}", &rest[at + 1..])
}

/// Returns the local path of a `file:` URI, or `None` for other schemes.
/// `file:///a%20b` is percent-decoded to `/a b`, as Python mlflow writes
/// such URIs; `file:relative/path` and `file://relative` stay relative.
pub fn file_uri_path(uri: &str) -> Option<PathBuf> {
    let rest = uri.strip_prefix("file:")?;
    if rest.starts_with("///") || rest.starts_with("//localhost/") {
        if let Ok(path) = Url::parse(uri).map_err(drop).and_then(|url| url.to_file_path()) {
            return Some(path);
        }
    }
    Some(PathBuf::from(rest.strip_prefix("//").unwrap_or(rest)))
}

/// Checks that an artifact path is relative and stays inside its root.
pub fn check_relative(path: &str) -> std::result::Result<(), String> {
    if path.starts_with('/') || path.starts_with('\\') {
        return Err(format!("the artifact path {path:?} is absolute; give a path relative to the run's artifacts"));
    }
    if path.split(['/', '\\']).any(|part| part == "..") {
        return Err(format!("the artifact path {path:?} contains \"..\"; give a path inside the run's artifacts"));
    }
    Ok(())
}

/// Joins artifact path segments with `/`, skipping empty ones.
pub fn join_artifact_path(base: &str, child: &str) -> String {
    let base = base.trim_matches('/');
    let child = child.trim_matches('/');
    match (base.is_empty(), child.is_empty()) {
        (true, _) => child.to_string(),
        (_, true) => base.to_string(),
        _ => format!("{base}/{child}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azureml_uri_becomes_https_without_query() {
        let uri = TrackingUri::parse(
            "azureml://eastus.api.azureml.ms/mlflow/v1.0/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws?x=1",
        )
        .unwrap();
        let TrackingUri::Http(url) = uri else { panic!("not http") };
        assert_eq!(
            url.as_str(),
            "https://eastus.api.azureml.ms/mlflow/v1.0/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
        );
    }

    #[test]
    fn http_uri_loses_trailing_slash() {
        let TrackingUri::Http(url) = TrackingUri::parse("http://127.0.0.1:5000/").unwrap() else {
            panic!("not http")
        };
        assert_eq!(url.as_str(), "http://127.0.0.1:5000/");
        let TrackingUri::Http(url) = TrackingUri::parse("http://127.0.0.1:5000/prefix/").unwrap() else {
            panic!("not http")
        };
        assert_eq!(url.path(), "/prefix");
    }

    #[test]
    fn file_and_bare_paths_are_file_stores() {
        assert_eq!(
            TrackingUri::parse("file:///tmp/mlruns").unwrap(),
            TrackingUri::File("/tmp/mlruns".into())
        );
        assert_eq!(
            TrackingUri::parse("mlruns").unwrap(),
            TrackingUri::File("mlruns".into())
        );
        assert_eq!(
            TrackingUri::parse("file:///tmp/my%20runs").unwrap(),
            TrackingUri::File("/tmp/my runs".into())
        );
        assert_eq!(TrackingUri::parse("file:mlruns").unwrap(), TrackingUri::File("mlruns".into()));
        let err = TrackingUri::parse("databricks://profile").unwrap_err();
        assert!(err.to_string().contains("\"databricks\""), "{err}");
    }

    #[test]
    fn invalid_uri_errors_hide_password() {
        for bad in ["http://alice:S3cr3t@[::1", "ftp://alice:S3cr3t@host", "http://alice:S3cr3t@127.0.0.1:99999"] {
            let message = TrackingUri::parse(bad).unwrap_err().to_string();
            assert!(!message.contains("S3cr3t"), "{message}");
            assert!(message.contains("alice:***@"), "{message}");
        }
    }

    #[test]
    fn model_uris_parse() {
        assert_eq!(
            ModelUri::parse("runs:/abc/model").unwrap(),
            ModelUri::Run { run_id: "abc".into(), path: "model".into() }
        );
        assert_eq!(
            ModelUri::parse("models:/my model/3").unwrap(),
            ModelUri::Registered {
                name: "my model".into(),
                selector: VersionSelector::Version("3".into())
            }
        );
        assert_eq!(
            ModelUri::parse("models:/m@champion").unwrap(),
            ModelUri::Registered {
                name: "m".into(),
                selector: VersionSelector::Alias("champion".into())
            }
        );
        assert_eq!(
            ModelUri::parse("models:/m/Production").unwrap(),
            ModelUri::Registered {
                name: "m".into(),
                selector: VersionSelector::Stage("Production".into())
            }
        );
        assert_eq!(
            ModelUri::parse("mlflow-artifacts:/1/abc/artifacts/model").unwrap(),
            ModelUri::Artifact("mlflow-artifacts:/1/abc/artifacts/model".into())
        );
        assert_eq!(ModelUri::parse("/tmp/m").unwrap(), ModelUri::Local("/tmp/m".into()));
    }

    #[test]
    fn bad_model_uris_are_rejected() {
        for bad in ["", "runs:/", "models:/onlyname", "models:/m@", "runs:/abc/../x"] {
            let err = ModelUri::parse(bad).unwrap_err();
            assert_eq!(err.kind(), "invalid_argument", "{bad}");
        }
    }
}
