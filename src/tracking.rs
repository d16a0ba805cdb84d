//! Experiments and runs: the tracking half of the MLflow REST API.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::{decode, Client};
use crate::error::Result;
use crate::model::MlModel;
use crate::serde_util::lenient_i64;

/// A key/value tag of an experiment, run, registered model or version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

impl Tag {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub experiment_id: String,
    pub name: String,
    #[serde(default)]
    pub artifact_location: Option<String>,
    #[serde(default)]
    pub lifecycle_stage: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub creation_time: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub last_update_time: Option<i64>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub experiment_id: String,
    #[serde(default)]
    pub run_name: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub start_time: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub end_time: Option<i64>,
    #[serde(default)]
    pub artifact_uri: Option<String>,
    #[serde(default)]
    pub lifecycle_stage: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub key: String,
    pub value: f64,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub timestamp: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub step: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunData {
    #[serde(default)]
    pub metrics: Vec<Metric>,
    #[serde(default)]
    pub params: Vec<Param>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub info: RunInfo,
    #[serde(default)]
    pub data: RunData,
}

impl Run {
    /// Returns the value of a run tag.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.data.tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
    }
}

/// Terminal and active run states, as the REST API spells them.
pub const RUN_STATUSES: [&str; 5] = ["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"];

/// Milliseconds since the Unix epoch, the time unit of the REST API.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Client {
    /// Creates an experiment and returns its id.
    pub fn create_experiment(&self, name: &str, artifact_location: Option<&str>, tags: &[Tag]) -> Result<String> {
        let mut body = json!({ "name": name, "tags": tags });
        if let Some(location) = artifact_location {
            body["artifact_location"] = json!(location);
        }
        let response = self.call(Method::POST, "experiments/create", &body)?;
        Ok(response["experiment_id"].as_str().unwrap_or_default().to_string())
    }

    pub fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        let response = self.call(Method::GET, "experiments/get", &json!({ "experiment_id": experiment_id }))?;
        decode(response["experiment"].clone(), "experiments/get")
    }

    /// Returns the experiment called `name`, or `None` when there is none.
    pub fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>> {
        match self.call(Method::GET, "experiments/get-by-name", &json!({ "experiment_name": name })) {
            Ok(response) => decode(response["experiment"].clone(), "experiments/get-by-name").map(Some),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Creates a run in `experiment_id`, started now unless `start_time` is given.
    pub fn create_run(
        &self,
        experiment_id: &str,
        run_name: Option<&str>,
        start_time: Option<i64>,
        tags: &[Tag],
    ) -> Result<Run> {
        let mut body = json!({
            "experiment_id": experiment_id,
            "start_time": start_time.unwrap_or_else(now_millis),
            "tags": tags,
        });
        if let Some(name) = run_name {
            body["run_name"] = json!(name);
        }
        let response = self.call(Method::POST, "runs/create", &body)?;
        decode(response["run"].clone(), "runs/create")
    }

    pub fn get_run(&self, run_id: &str) -> Result<Run> {
        let response = self.call(Method::GET, "runs/get", &json!({ "run_id": run_id }))?;
        decode(response["run"].clone(), "runs/get")
    }

    /// Sets a run's status (one of [`RUN_STATUSES`]) and end time.
    pub fn update_run(&self, run_id: &str, status: &str, end_time: Option<i64>) -> Result<RunInfo> {
        let mut body = json!({ "run_id": run_id, "run_uuid": run_id, "status": status });
        if let Some(end) = end_time {
            body["end_time"] = json!(end);
        }
        let response = self.call(Method::POST, "runs/update", &body)?;
        decode(response["run_info"].clone(), "runs/update")
    }

    pub fn set_tag(&self, run_id: &str, key: &str, value: &str) -> Result<()> {
        let body = json!({ "run_id": run_id, "run_uuid": run_id, "key": key, "value": value });
        self.call(Method::POST, "runs/set-tag", &body).map(drop)
    }

    /// Records a logged model in the run's `mlflow.log-model.history` tag.
    pub fn log_model_metadata(&self, run_id: &str, model: &MlModel) -> Result<()> {
        let model_json = serde_json::to_string(&model.to_json()?).unwrap_or_default();
        let body = json!({ "run_id": run_id, "model_json": model_json });
        self.call(Method::POST, "runs/log-model", &body).map(drop)
    }

    /// Lists the artifacts directly under `path` of a run.
    pub fn list_run_artifacts(&self, run_id: &str, path: &str) -> Result<Value> {
        self.call(Method::GET, "artifacts/list", &json!({ "run_id": run_id, "path": path }))
    }
}
