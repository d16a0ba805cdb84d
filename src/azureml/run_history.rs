//! The run-history artifact routes of an Azure ML workspace.
//!
//! Request and response shapes follow the public REST spec of the service
//! (`run-history.json`, stable v1.0, in Azure/azure-rest-api-specs under
//! `specification/machinelearningservices/data-plane/`), in the
//! `...ByExperimentId` form that takes an experiment id:
//!
//! - `POST .../artifacts/batch/metadata` with `{"paths": [{"path": ...}]}`
//!   creates empty artifacts and returns `artifactContentInformation`, a map
//!   from each path as sent to an entry whose `contentUri` is a SAS URL of
//!   the blob to write;
//! - `GET .../artifacts/contentinfo?path=` returns one entry, whose
//!   `contentUri` is a SAS URL to read the blob;
//! - `GET .../artifacts/prefix/contentinfo?path=` pages through the entries
//!   of every artifact below a prefix (`value`, `continuationToken`).
//!
//! A `contentUri` carries a SAS signature, so it never appears in an error.

use std::collections::HashMap;

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::{ArtifactLocation, Workspace};
use crate::error::{Error, Result};
use crate::http::Http;

/// Pages read from `prefix/contentinfo` before giving up, a guard against a
/// service that keeps returning a continuation token.
const MAX_LIST_PAGES: usize = 10_000;

/// One `ArtifactContentInformation` of the spec; unused fields are omitted.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContentInformation {
    content_uri: Option<String>,
    path: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchResult {
    #[serde(default)]
    artifact_content_information: HashMap<String, ContentInformation>,
    #[serde(default)]
    errors: HashMap<String, ErrorResponse>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContentInformationPage {
    #[serde(default)]
    value: Vec<ContentInformation>,
    continuation_token: Option<String>,
}

/// The spec's `ErrorResponse`: `{"error": {"code": ..., "message": ...}}`.
#[derive(Deserialize)]
struct ErrorResponse {
    error: Option<RootError>,
}

#[derive(Deserialize)]
struct RootError {
    code: Option<String>,
    message: Option<String>,
}

/// An artifact below a listed prefix.
#[derive(Debug, Clone)]
pub struct ListedArtifact {
    /// Path below the run's artifact root.
    pub path: String,
    /// SAS URL to read the blob.
    pub content_uri: Url,
}

/// Creates empty artifacts at `paths` (below the run's artifact root) and
/// returns the SAS URL to write each one's bytes to, keyed by path.
pub fn create_empty_artifacts(
    http: &Http,
    workspace: &Workspace,
    run: &ArtifactLocation,
    paths: &[String],
) -> Result<HashMap<String, Url>> {
    let url = workspace.run_history_url(&run.experiment_id, &run.run_id, "artifacts/batch/metadata");
    let body = json!({ "paths": paths.iter().map(|path| json!({ "path": path })).collect::<Vec<_>>() });
    let value = http.send_json(Method::POST, &url, Some(&body))?;
    let mut result: BatchResult = crate::client::decode(value, "run-history artifacts/batch/metadata")?;

    let mut uris = HashMap::new();
    for path in paths {
        if let Some(failure) = result.errors.remove(path) {
            let (code, message) = failure
                .error
                .map(|e| (e.code.unwrap_or_default(), e.message.unwrap_or_default()))
                .unwrap_or_default();
            return Err(Error::invalid(
                "artifact path",
                path.as_str(),
                format!("the Azure ML run-history service did not create it in run {}: {code} {message}", run.run_id),
            ));
        }
        let entry = result.artifact_content_information.remove(path);
        let content_uri = parse_content_uri(entry.and_then(|e| e.content_uri), path, "artifacts/batch/metadata")?;
        uris.insert(path.clone(), content_uri);
    }
    Ok(uris)
}

/// Returns the SAS URL to read the artifact at `path`; a missing artifact
/// is an [`Error::Api`] with status 404.
pub fn content_uri(http: &Http, workspace: &Workspace, run: &ArtifactLocation, path: &str) -> Result<Url> {
    let mut url = workspace.run_history_url(&run.experiment_id, &run.run_id, "artifacts/contentinfo");
    url.query_pairs_mut().append_pair("path", path);
    let value = http.send_json(Method::GET, &url, None)?;
    let entry: ContentInformation = crate::client::decode(value, "run-history artifacts/contentinfo")?;
    parse_content_uri(entry.content_uri, path, "artifacts/contentinfo")
}

/// Lists every artifact whose path starts with `prefix`, following
/// continuation tokens.
pub fn list_prefix(http: &Http, workspace: &Workspace, run: &ArtifactLocation, prefix: &str) -> Result<Vec<ListedArtifact>> {
    let mut listed = Vec::new();
    let mut continuation: Option<String> = None;
    for _ in 0..MAX_LIST_PAGES {
        let mut url = workspace.run_history_url(&run.experiment_id, &run.run_id, "artifacts/prefix/contentinfo");
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("path", prefix);
            if let Some(token) = &continuation {
                query.append_pair("continuationToken", token);
            }
        }
        let value = http.send_json(Method::GET, &url, None)?;
        let page: ContentInformationPage = crate::client::decode(value, "run-history artifacts/prefix/contentinfo")?;
        for entry in page.value {
            let Some(path) = entry.path.filter(|p| !p.is_empty()) else {
                continue;
            };
            let content_uri = parse_content_uri(entry.content_uri, &path, "artifacts/prefix/contentinfo")?;
            listed.push(ListedArtifact { path, content_uri });
        }
        continuation = page.continuation_token.filter(|token| !token.is_empty());
        if continuation.is_none() {
            return Ok(listed);
        }
    }
    Err(Error::Parse {
        what: "server response",
        location: "run-history artifacts/prefix/contentinfo".into(),
        message: format!("still returned a continuation token after {MAX_LIST_PAGES} pages for prefix {prefix:?}"),
    })
}

/// Parses a `contentUri`; the error names the artifact but not the URI,
/// which holds a SAS signature.
fn parse_content_uri(uri: Option<String>, path: &str, route: &str) -> Result<Url> {
    let parse_error = |message: &str| Error::Parse {
        what: "server response",
        location: format!("run-history {route}"),
        message: format!("{message} for artifact {path:?}"),
    };
    let uri = uri.filter(|u| !u.is_empty()).ok_or_else(|| parse_error("no contentUri"))?;
    let url = Url::parse(&uri).map_err(|_| parse_error("a contentUri that is not a URL"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(parse_error("a contentUri that is not an http(s) URL"));
    }
    Ok(url)
}
