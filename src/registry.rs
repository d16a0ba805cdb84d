//! Registered models and model versions: the registry half of the REST API.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::client::{decode, Client};
use crate::error::{Error, Result};
use crate::serde_util::{lenient_i64, string_or_number};
use crate::tracking::Tag;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModel {
    pub name: String,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub creation_timestamp: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub last_updated_timestamp: Option<i64>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub latest_versions: Vec<ModelVersion>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub aliases: Vec<Alias>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    pub alias: String,
    #[serde(deserialize_with = "string_or_number")]
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub name: String,
    #[serde(deserialize_with = "string_or_number")]
    pub version: String,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub creation_timestamp: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub last_updated_timestamp: Option<i64>,
    #[serde(default)]
    pub current_stage: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub run_link: Option<String>,
    /// `PENDING_REGISTRATION`, `FAILED_REGISTRATION` or `READY`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub status_message: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// Arguments of `model-versions/create` beyond name and source.
#[derive(Debug, Clone, Default)]
pub struct NewModelVersion {
    pub run_id: Option<String>,
    pub tags: Vec<Tag>,
    pub run_link: Option<String>,
    pub description: Option<String>,
}

/// Status of a version that finished registering.
pub const READY: &str = "READY";
/// Status of a version whose registration failed.
pub const FAILED_REGISTRATION: &str = "FAILED_REGISTRATION";

/// Stages a model version can be in.
pub const STAGES: [&str; 4] = ["None", "Staging", "Production", "Archived"];

/// Seconds between two polls of a version that is not READY yet, as in
/// Python mlflow.
pub const REGISTRATION_POLL_SECS: u64 = 3;

impl Client {
    /// Creates a registered model. After a failure that leaves unknown
    /// whether the server created it, a model of that name that exists by
    /// then is taken as the result instead of sending the create again.
    ///
    /// NOTE: a model of the same name created by someone else in that
    /// moment is also taken as this call's result.
    pub fn create_registered_model(&self, name: &str, tags: &[Tag], description: Option<&str>) -> Result<RegisteredModel> {
        let mut body = json!({ "name": name, "tags": tags });
        if let Some(text) = description {
            body["description"] = json!(text);
        }
        let took_effect = || match self.get_registered_model(name) {
            Ok(model) => Ok(Some(json!({ "registered_model": model }))),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        };
        let response = self.call_checked(Method::POST, "registered-models/create", &body, &took_effect)?;
        decode(response["registered_model"].clone(), "registered-models/create")
    }

    pub fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let response = self.call(Method::GET, "registered-models/get", &json!({ "name": name }))?;
        decode(response["registered_model"].clone(), "registered-models/get")
    }

    /// Creates the registered model, or returns the existing one.
    pub fn ensure_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        match self.create_registered_model(name, &[], None) {
            Err(err) if err.is_already_exists() => self.get_registered_model(name),
            other => other,
        }
    }

    /// Creates a model version without ever creating two for one call.
    ///
    /// The versions of `name` that already have this run (or, without a
    /// run, this source) are listed first. After a failure that leaves
    /// unknown whether the server created the version, a version that was
    /// not in that list is taken as the result instead of sending the
    /// create again. When the call is interrupted, such a version is
    /// deleted, so an interrupted call leaves no version behind.
    pub fn create_model_version(&self, name: &str, source: &str, extra: &NewModelVersion) -> Result<ModelVersion> {
        let mut body = json!({ "name": name, "source": source, "tags": extra.tags });
        if let Some(run_id) = &extra.run_id {
            body["run_id"] = json!(run_id);
        }
        if let Some(link) = &extra.run_link {
            body["run_link"] = json!(link);
        }
        if let Some(text) = &extra.description {
            body["description"] = json!(text);
        }
        let run_id = extra.run_id.as_deref();
        // Without this list a lost response could not be told apart from a
        // version made earlier, so an ambiguous failure is then an error.
        let before: Result<Vec<String>> = self
            .versions_of_source(name, source, run_id)
            .map(|versions| versions.into_iter().map(|v| v.version).collect());
        if let Err(err) = &before {
            tracing::warn!(
                name, error = %err,
                "listing the existing versions failed; a lost model-versions/create response will be an error"
            );
        }
        let new_versions = || -> Result<Vec<ModelVersion>> {
            let known = before.as_ref().map_err(|err| {
                Error::NotFound(format!("the versions that existed before could not be listed ({err})"))
            })?;
            let now = self.versions_of_source(name, source, run_id)?;
            Ok(now.into_iter().filter(|v| !known.contains(&v.version)).collect())
        };
        let took_effect = || {
            let newest = new_versions()?.into_iter().max_by_key(|v| v.version.parse::<u64>().unwrap_or(0));
            Ok(newest.map(|version| json!({ "model_version": version })))
        };
        let response = match self.call_checked(Method::POST, "model-versions/create", &body, &took_effect) {
            Err(Error::Interrupted) => {
                // An attempt cut short may still have created the version.
                let cleanup = self.with_cancel(crate::cancel::CancelToken::new());
                if let Ok(found) = new_versions() {
                    for version in found {
                        if let Err(err) = cleanup.delete_model_version(name, &version.version) {
                            tracing::warn!(name, version = %version.version, error = %err,
                                "deleting the model version of an interrupted call failed");
                        }
                    }
                }
                return Err(Error::Interrupted);
            }
            other => other?,
        };
        decode(response["model_version"].clone(), "model-versions/create")
    }

    /// Returns the versions of `name` made from `run_id`, or from `source`
    /// when there is no run.
    fn versions_of_source(&self, name: &str, source: &str, run_id: Option<&str>) -> Result<Vec<ModelVersion>> {
        let mut filter = format!("name = {}", filter_string(name));
        if let Some(run_id) = run_id {
            filter.push_str(&format!(" and run_id = {}", filter_string(run_id)));
        }
        let (versions, _) = self.search_model_versions(Some(&filter), &[], None, None)?;
        Ok(versions
            .into_iter()
            .filter(|v| v.name == name && (run_id.is_some() || v.source.as_deref() == Some(source)))
            .collect())
    }

    pub fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion> {
        let response = self.call(Method::GET, "model-versions/get", &json!({ "name": name, "version": version }))?;
        decode(response["model_version"].clone(), "model-versions/get")
    }

    /// Returns the artifact URI a version's files can be downloaded from.
    pub fn get_model_version_download_uri(&self, name: &str, version: &str) -> Result<String> {
        let response = self.call(
            Method::GET,
            "model-versions/get-download-uri",
            &json!({ "name": name, "version": version }),
        )?;
        Ok(response["artifact_uri"].as_str().unwrap_or_default().to_string())
    }

    pub fn get_model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        let response = self
            .call(Method::GET, "registered-models/alias", &json!({ "name": name, "alias": alias }))
            .map_err(|err| match err {
                // MLflow 3.17 returns 400 INVALID_PARAMETER_VALUE for a missing alias.
                Error::Api { status: 400, message, .. } if message.contains("not found") => Error::NotFound(format!(
                    "registered model {name:?} has no alias {alias:?} ({message}); set it with \
                     mlflow_set_registered_model_alias()"
                )),
                other => other,
            })?;
        decode(response["model_version"].clone(), "registered-models/alias")
    }

    /// Returns the latest version in each of `stages` (all stages when empty).
    pub fn get_latest_versions(&self, name: &str, stages: &[&str]) -> Result<Vec<ModelVersion>> {
        let response = self.call(
            Method::POST,
            "registered-models/get-latest-versions",
            &json!({ "name": name, "stages": stages }),
        )?;
        match response.get("model_versions") {
            Some(list) => decode(list.clone(), "registered-models/get-latest-versions"),
            None => Ok(Vec::new()),
        }
    }

    pub fn rename_registered_model(&self, name: &str, new_name: &str) -> Result<RegisteredModel> {
        let response = self.call(
            Method::POST,
            "registered-models/rename",
            &json!({ "name": name, "new_name": new_name }),
        )?;
        decode(response["registered_model"].clone(), "registered-models/rename")
    }

    pub fn update_registered_model(&self, name: &str, description: &str) -> Result<RegisteredModel> {
        let response = self.call(
            Method::PATCH,
            "registered-models/update",
            &json!({ "name": name, "description": description }),
        )?;
        decode(response["registered_model"].clone(), "registered-models/update")
    }

    pub fn delete_registered_model(&self, name: &str) -> Result<()> {
        self.call(Method::DELETE, "registered-models/delete", &json!({ "name": name }))
            .map(drop)
    }

    pub fn set_registered_model_tag(&self, name: &str, key: &str, value: &str) -> Result<()> {
        let body = json!({ "name": name, "key": key, "value": value });
        self.call(Method::POST, "registered-models/set-tag", &body).map(drop)
    }

    pub fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        let body = json!({ "name": name, "key": key });
        self.call(Method::DELETE, "registered-models/delete-tag", &body).map(drop)
    }

    /// Searches registered models, following `next_page_token` until
    /// `max_results` models (all when `None`) have been read. Returns the
    /// models and the token of the next page, if any is left.
    pub fn search_registered_models(
        &self,
        filter: Option<&str>,
        order_by: &[String],
        max_results: Option<usize>,
        page_token: Option<&str>,
    ) -> Result<(Vec<RegisteredModel>, Option<String>)> {
        self.search_pages("registered-models/search", "registered_models", filter, order_by, max_results, page_token)
    }

    /// Searches model versions, with the paging of [`Client::search_registered_models`].
    pub fn search_model_versions(
        &self,
        filter: Option<&str>,
        order_by: &[String],
        max_results: Option<usize>,
        page_token: Option<&str>,
    ) -> Result<(Vec<ModelVersion>, Option<String>)> {
        self.search_pages("model-versions/search", "model_versions", filter, order_by, max_results, page_token)
    }

    fn search_pages<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        field: &str,
        filter: Option<&str>,
        order_by: &[String],
        max_results: Option<usize>,
        page_token: Option<&str>,
    ) -> Result<(Vec<T>, Option<String>)> {
        let mut query = json!({ "order_by": order_by });
        if let Some(filter) = filter {
            query["filter"] = json!(filter);
        }
        self.search_all(Method::GET, endpoint, field, query, max_results, page_token)
    }

    pub fn update_model_version(&self, name: &str, version: &str, description: &str) -> Result<ModelVersion> {
        let body = json!({ "name": name, "version": version, "description": description });
        let response = self.call(Method::PATCH, "model-versions/update", &body)?;
        decode(response["model_version"].clone(), "model-versions/update")
    }

    pub fn delete_model_version(&self, name: &str, version: &str) -> Result<()> {
        let body = json!({ "name": name, "version": version });
        self.call(Method::DELETE, "model-versions/delete", &body).map(drop)
    }

    /// Moves a version to `stage` (one of [`STAGES`]), archiving the other
    /// versions in that stage when `archive_existing_versions` is true.
    pub fn transition_model_version_stage(
        &self,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing_versions: bool,
    ) -> Result<ModelVersion> {
        let Some(stage) = STAGES.iter().find(|s| s.eq_ignore_ascii_case(stage)) else {
            return Err(Error::invalid("stage", stage, format!("use one of {}", STAGES.join(", "))));
        };
        let body = json!({
            "name": name,
            "version": version,
            "stage": stage,
            "archive_existing_versions": archive_existing_versions,
        });
        let response = self.call(Method::POST, "model-versions/transition-stage", &body)?;
        decode(response["model_version"].clone(), "model-versions/transition-stage")
    }

    pub fn set_model_version_tag(&self, name: &str, version: &str, key: &str, value: &str) -> Result<()> {
        let body = json!({ "name": name, "version": version, "key": key, "value": value });
        self.call(Method::POST, "model-versions/set-tag", &body).map(drop)
    }

    pub fn delete_model_version_tag(&self, name: &str, version: &str, key: &str) -> Result<()> {
        let body = json!({ "name": name, "version": version, "key": key });
        self.call(Method::DELETE, "model-versions/delete-tag", &body).map(drop)
    }

    pub fn set_registered_model_alias(&self, name: &str, alias: &str, version: &str) -> Result<()> {
        let body = json!({ "name": name, "alias": alias, "version": version });
        self.call(Method::POST, "registered-models/alias", &body).map(drop)
    }

    pub fn delete_registered_model_alias(&self, name: &str, alias: &str) -> Result<()> {
        let body = json!({ "name": name, "alias": alias });
        self.call(Method::DELETE, "registered-models/alias", &body).map(drop)
    }

    /// Polls a version every `poll` until it is READY, for at most `timeout`.
    /// A version that is already READY returns without a request.
    pub fn wait_for_model_version(&self, version: ModelVersion, timeout: Duration, poll: Duration) -> Result<ModelVersion> {
        let started = Instant::now();
        let mut current = version;
        loop {
            match current.status.as_deref() {
                None | Some(READY) => return Ok(current),
                Some(FAILED_REGISTRATION) => {
                    return Err(Error::Registration {
                        message: current.status_message.clone().unwrap_or_default(),
                        name: current.name,
                        version: current.version,
                        status: FAILED_REGISTRATION.to_string(),
                    })
                }
                Some(status) => {
                    let elapsed = started.elapsed();
                    if elapsed >= timeout {
                        return Err(Error::Registration {
                            message: format!(
                                "still not READY after {} s; raise await_registration_for or check the registry",
                                timeout.as_secs()
                            ),
                            name: current.name.clone(),
                            version: current.version.clone(),
                            status: status.to_string(),
                        });
                    }
                    self.cancel_token().sleep(poll.min(timeout - elapsed))?;
                    current = self.get_model_version(&current.name, &current.version)?;
                }
            }
        }
    }
}

/// Quotes a value for an MLflow search filter. The server's parser reads a
/// single-quoted string with backslash escapes.
fn filter_string(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}
