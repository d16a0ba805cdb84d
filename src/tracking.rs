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
    #[serde(deserialize_with = "crate::serde_util::lenient_f64", serialize_with = "crate::serde_util::f64_or_text")]
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

/// Per-request limits of `runs/log-batch` on the MLflow server.
pub const BATCH_MAX_METRICS: usize = 1000;
pub const BATCH_MAX_PARAMS: usize = 100;
pub const BATCH_MAX_TAGS: usize = 100;
pub const BATCH_MAX_ENTITIES: usize = 1000;

/// Encodes a metric for the REST API. JSON has no NaN or infinity, so those
/// go as the strings "NaN", "Infinity" and "-Infinity", which the server's
/// protobuf JSON parser reads as the double values.
fn metric_json(metric: &Metric) -> Value {
    json!({
        "key": metric.key,
        "value": serde_json::to_value(metric).map(|m| m["value"].clone()).unwrap_or(Value::Null),
        "timestamp": metric.timestamp.unwrap_or_else(now_millis),
        "step": metric.step.unwrap_or(0),
    })
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

    pub fn delete_experiment(&self, experiment_id: &str) -> Result<()> {
        self.call(Method::POST, "experiments/delete", &json!({ "experiment_id": experiment_id }))
            .map(drop)
    }

    pub fn restore_experiment(&self, experiment_id: &str) -> Result<()> {
        self.call(Method::POST, "experiments/restore", &json!({ "experiment_id": experiment_id }))
            .map(drop)
    }

    pub fn rename_experiment(&self, experiment_id: &str, new_name: &str) -> Result<()> {
        let body = json!({ "experiment_id": experiment_id, "new_name": new_name });
        self.call(Method::POST, "experiments/update", &body).map(drop)
    }

    pub fn set_experiment_tag(&self, experiment_id: &str, key: &str, value: &str) -> Result<()> {
        let body = json!({ "experiment_id": experiment_id, "key": key, "value": value });
        self.call(Method::POST, "experiments/set-experiment-tag", &body).map(drop)
    }

    /// Searches experiments, following pages until `max_results` are read
    /// (all when `None`). `view_type` is `ACTIVE_ONLY`, `DELETED_ONLY` or `ALL`.
    pub fn search_experiments(
        &self,
        filter: Option<&str>,
        view_type: &str,
        order_by: &[String],
        max_results: Option<usize>,
        page_token: Option<&str>,
    ) -> Result<(Vec<Experiment>, Option<String>)> {
        let mut body = json!({ "view_type": view_type, "order_by": order_by });
        if let Some(filter) = filter {
            body["filter"] = json!(filter);
        }
        self.search_all(Method::POST, "experiments/search", "experiments", body, max_results, page_token)
    }

    /// Searches runs of `experiment_ids`, following pages like
    /// [`Client::search_experiments`].
    pub fn search_runs(
        &self,
        experiment_ids: &[String],
        filter: Option<&str>,
        run_view_type: &str,
        order_by: &[String],
        max_results: Option<usize>,
        page_token: Option<&str>,
    ) -> Result<(Vec<Run>, Option<String>)> {
        let mut body = json!({
            "experiment_ids": experiment_ids,
            "run_view_type": run_view_type,
            "order_by": order_by,
        });
        if let Some(filter) = filter.filter(|f| !f.is_empty()) {
            body["filter"] = json!(filter);
        }
        self.search_all(Method::POST, "runs/search", "runs", body, max_results, page_token)
    }

    pub fn delete_run(&self, run_id: &str) -> Result<()> {
        self.call(Method::POST, "runs/delete", &json!({ "run_id": run_id })).map(drop)
    }

    pub fn restore_run(&self, run_id: &str) -> Result<()> {
        self.call(Method::POST, "runs/restore", &json!({ "run_id": run_id })).map(drop)
    }

    pub fn delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        self.call(Method::POST, "runs/delete-tag", &json!({ "run_id": run_id, "key": key }))
            .map(drop)
    }

    pub fn log_param(&self, run_id: &str, key: &str, value: &str) -> Result<()> {
        let body = json!({ "run_id": run_id, "run_uuid": run_id, "key": key, "value": value });
        self.call(Method::POST, "runs/log-parameter", &body).map(drop)
    }

    pub fn log_metric(&self, run_id: &str, metric: &Metric) -> Result<()> {
        let mut body = metric_json(metric);
        body["run_id"] = json!(run_id);
        body["run_uuid"] = json!(run_id);
        self.call(Method::POST, "runs/log-metric", &body).map(drop)
    }

    /// Logs metrics, params and tags in as few `runs/log-batch` requests as
    /// the server's limits allow ([`BATCH_MAX_METRICS`], [`BATCH_MAX_PARAMS`],
    /// [`BATCH_MAX_TAGS`], [`BATCH_MAX_ENTITIES`] per request).
    pub fn log_batch(&self, run_id: &str, metrics: &[Metric], params: &[Param], tags: &[Tag]) -> Result<()> {
        let (mut m, mut p, mut t) = (0, 0, 0);
        while m < metrics.len() || p < params.len() || t < tags.len() {
            let take_params = (params.len() - p).min(BATCH_MAX_PARAMS);
            let take_tags = (tags.len() - t).min(BATCH_MAX_TAGS).min(BATCH_MAX_ENTITIES - take_params);
            let room = BATCH_MAX_ENTITIES - take_params - take_tags;
            let take_metrics = (metrics.len() - m).min(BATCH_MAX_METRICS).min(room);
            let body = json!({
                "run_id": run_id,
                "metrics": metrics[m..m + take_metrics].iter().map(metric_json).collect::<Vec<_>>(),
                "params": &params[p..p + take_params],
                "tags": &tags[t..t + take_tags],
            });
            self.call(Method::POST, "runs/log-batch", &body)?;
            m += take_metrics;
            p += take_params;
            t += take_tags;
        }
        Ok(())
    }

    /// Returns every recorded value of a metric, following pages.
    pub fn get_metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Metric>> {
        let mut metrics = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = json!({ "run_id": run_id, "run_uuid": run_id, "metric_key": key, "max_results": 25000 });
            if let Some(token) = &token {
                query["page_token"] = json!(token);
            }
            let response = self.call(Method::GET, "metrics/get-history", &query)?;
            if let Some(page) = response.get("metrics") {
                metrics.extend(decode::<Vec<Metric>>(page.clone(), "metrics/get-history")?);
            }
            token = response["next_page_token"].as_str().filter(|t| !t.is_empty()).map(str::to_string);
            if token.is_none() {
                return Ok(metrics);
            }
        }
    }

    /// Lists the artifacts directly under `path` of a run.
    pub fn list_run_artifacts(&self, run_id: &str, path: &str) -> Result<Value> {
        self.call(Method::GET, "artifacts/list", &json!({ "run_id": run_id, "path": path }))
    }
}
