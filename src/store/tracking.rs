//! Experiments, runs, params, metrics and tags of the local store.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::disk::{self, Meta};
use super::search::{self, Datum, Fields, Key, OrderKey};
use super::{
    already_exists, check_id, check_key, compact, float_json, invalid_parameter, invalid_state, not_found,
    pairs_json, FileStore, Request,
};
use crate::error::{Error, Result};
use crate::tracking::now_millis;

/// Folder of deleted experiments.
pub(super) const TRASH: &str = ".trash";
const DEFAULT_EXPERIMENT_ID: &str = "0";
const DEFAULT_EXPERIMENT_NAME: &str = "Default";
/// Experiment subfolders that are not runs (MLflow 3.17's `FileStore`).
const RESERVED_FOLDERS: [&str; 4] = ["tags", "datasets", "traces", "models"];
const ACTIVE: &str = "active";
const DELETED: &str = "deleted";
const RUN_NAME_TAG: &str = "mlflow.runName";
const USER_TAG: &str = "mlflow.user";
const LOGGED_MODELS_TAG: &str = "mlflow.log-model.history";
/// `SourceType.LOCAL`, which Python mlflow writes into every run's meta.yaml.
const SOURCE_TYPE_LOCAL: i64 = 4;
/// Results per search page when the request names none, as the server's default.
const DEFAULT_SEARCH_RESULTS: usize = 1000;

/// Run statuses by the integer `meta.yaml` stores (MLflow's `RunStatus` enum).
const RUN_STATUSES: [(i64, &str); 5] = [(1, "RUNNING"), (2, "SCHEDULED"), (3, "FINISHED"), (4, "FAILED"), (5, "KILLED")];

fn status_name(code: Option<i64>) -> &'static str {
    let code = code.unwrap_or(1);
    RUN_STATUSES.iter().find(|(c, _)| *c == code).map_or("RUNNING", |(_, name)| name)
}

fn status_code(name: &str) -> Result<i64> {
    RUN_STATUSES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map(|(code, _)| *code)
        .ok_or_else(|| {
            invalid_parameter(format!(
                "Invalid value {name:?} for parameter 'status': use one of RUNNING, SCHEDULED, FINISHED, FAILED, KILLED"
            ))
        })
}

/// Formats a metric value for a metrics file as Python's `str(float)`
/// reads it back: `nan`, `inf`, `-inf`, or the shortest exact decimal.
fn metric_text(value: f64) -> String {
    if value.is_nan() {
        "nan".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        format!("{value:?}")
    }
}

pub(super) struct Experiment {
    id: String,
    dir: PathBuf,
    meta: Meta,
    tags: Vec<(String, String)>,
}

impl Experiment {
    fn name(&self) -> String {
        self.meta.text("name").unwrap_or_default()
    }

    fn is_active(&self) -> bool {
        self.meta.text("lifecycle_stage").as_deref() != Some(DELETED)
    }

    fn json(&self) -> Value {
        compact(json!({
            "experiment_id": self.id,
            "name": self.name(),
            "artifact_location": self.meta.text("artifact_location"),
            "lifecycle_stage": self.meta.text("lifecycle_stage").unwrap_or_else(|| ACTIVE.to_string()),
            "creation_time": self.meta.int("creation_time"),
            "last_update_time": self.meta.int("last_update_time"),
            "tags": pairs_json(&self.tags),
        }))
    }
}

impl Fields for Experiment {
    fn supports(key: &Key) -> bool {
        match key {
            Key::Attribute(name) => {
                matches!(name.as_str(), "name" | "experiment_id" | "creation_time" | "last_update_time" | "lifecycle_stage")
            }
            Key::Tag(_) => true,
            _ => false,
        }
    }

    fn field(&self, key: &Key) -> Option<Datum> {
        match key {
            Key::Attribute(name) => match name.as_str() {
                "name" => Some(Datum::Text(self.name())),
                "experiment_id" => Some(Datum::Text(self.id.clone())),
                "lifecycle_stage" => self.meta.text("lifecycle_stage").map(Datum::Text),
                other => self.meta.int(other).map(|n| Datum::Number(n as f64)),
            },
            Key::Tag(tag) => lookup(&self.tags, tag).map(Datum::Text),
            _ => None,
        }
    }
}

fn lookup(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// One recorded value of a metric.
#[derive(Debug, Clone, PartialEq)]
struct MetricPoint {
    timestamp: i64,
    value: f64,
    step: i64,
}

impl MetricPoint {
    fn json(&self, key: &str) -> Value {
        json!({ "key": key, "value": float_json(self.value), "timestamp": self.timestamp, "step": self.step })
    }
}

pub(super) struct Run {
    id: String,
    experiment_id: String,
    dir: PathBuf,
    meta: Meta,
    params: Vec<(String, String)>,
    tags: Vec<(String, String)>,
    /// The latest value of each metric: the largest (step, timestamp, value).
    metrics: Vec<(String, MetricPoint)>,
}

impl Run {
    fn is_active(&self) -> bool {
        self.meta.text("lifecycle_stage").as_deref() != Some(DELETED)
    }

    fn run_name(&self) -> Option<String> {
        self.meta
            .text("run_name")
            .filter(|name| !name.is_empty())
            .or_else(|| lookup(&self.tags, RUN_NAME_TAG))
    }

    fn info_json(&self) -> Value {
        compact(json!({
            "run_id": self.id,
            "run_uuid": self.id,
            "run_name": self.run_name(),
            "experiment_id": self.experiment_id,
            "user_id": self.meta.text("user_id"),
            "status": status_name(self.meta.int("status")),
            "start_time": self.meta.int("start_time"),
            "end_time": self.meta.int("end_time"),
            "artifact_uri": self.meta.text("artifact_uri"),
            "lifecycle_stage": self.meta.text("lifecycle_stage").unwrap_or_else(|| ACTIVE.to_string()),
        }))
    }

    fn json(&self) -> Value {
        let metrics: Vec<Value> = self.metrics.iter().map(|(key, point)| point.json(key)).collect();
        json!({
            "info": self.info_json(),
            "data": { "metrics": metrics, "params": pairs_json(&self.params), "tags": pairs_json(&self.tags) },
            "inputs": {},
        })
    }

    /// Rejects writes to a deleted run, as MLflow does.
    fn require_active(&self) -> Result<()> {
        if self.is_active() {
            Ok(())
        } else {
            Err(invalid_parameter(format!(
                "The run {} must be in the 'active' state. Current state is deleted.",
                self.id
            )))
        }
    }
}

impl Fields for Run {
    fn supports(key: &Key) -> bool {
        match key {
            Key::Attribute(name) => matches!(
                name.as_str(),
                "run_id" | "run_name" | "status" | "user_id" | "artifact_uri" | "lifecycle_stage"
                    | "experiment_id" | "start_time" | "end_time"
            ),
            _ => true,
        }
    }

    fn field(&self, key: &Key) -> Option<Datum> {
        match key {
            Key::Attribute(name) => match name.as_str() {
                "run_id" => Some(Datum::Text(self.id.clone())),
                "run_name" => self.run_name().map(Datum::Text),
                "status" => Some(Datum::Text(status_name(self.meta.int("status")).to_string())),
                "experiment_id" => Some(Datum::Text(self.experiment_id.clone())),
                "start_time" | "end_time" => self.meta.int(name).map(|n| Datum::Number(n as f64)),
                other => self.meta.text(other).map(Datum::Text),
            },
            Key::Metric(metric) => self.metrics.iter().find(|(k, _)| k == metric).map(|(_, p)| Datum::Number(p.value)),
            Key::Param(param) => lookup(&self.params, param).map(Datum::Text),
            Key::Tag(tag) => lookup(&self.tags, tag).map(Datum::Text),
        }
    }
}

/// Reads the lines of a metrics file: `<timestamp> <value> [<step> [...]]`.
fn read_metric_file(path: &Path) -> Result<Vec<MetricPoint>> {
    let text = std::fs::read_to_string(path).map_err(|err| disk::io_error("reading", path, err))?;
    let corrupt = |line: &str| Error::Parse {
        what: "local store metric file",
        location: path.display().to_string(),
        message: format!("the line {line:?} is not \"<timestamp> <value> <step>\"; repair or remove the line"),
    };
    let mut points = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if !matches!(parts.len(), 2 | 3 | 5) {
            return Err(corrupt(line));
        }
        let timestamp = parts[0].parse::<i64>().map_err(|_| corrupt(line))?;
        let value = parts[1].parse::<f64>().map_err(|_| corrupt(line))?;
        let step = if parts.len() >= 3 { parts[2].parse::<i64>().map_err(|_| corrupt(line))? } else { 0 };
        points.push(MetricPoint { timestamp, value, step });
    }
    Ok(points)
}

fn latest(points: &[MetricPoint]) -> Option<MetricPoint> {
    points
        .iter()
        .max_by(|a, b| (a.step, a.timestamp).cmp(&(b.step, b.timestamp)).then(a.value.total_cmp(&b.value)))
        .cloned()
}

/// Lists the metric files below `dir` by key (keys may contain `/`).
fn metric_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((current, prefix)) = pending.pop() {
        let entries = match std::fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(disk::io_error("listing", &current, err)),
        };
        for entry in entries {
            let entry = entry.map_err(|err| disk::io_error("listing", &current, err))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let key = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            if entry.path().is_dir() {
                pending.push((entry.path(), key));
            } else {
                files.push((key, entry.path()));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Returns a random id of 18 digits, as Python mlflow gives new experiments.
fn new_experiment_id() -> String {
    let random = uuid::Uuid::new_v4().as_u128();
    (100_000_000_000_000_000u128 + random % 900_000_000_000_000_000u128).to_string()
}

/// Returns a run name such as `quiet-otter-417`, for runs created without one.
fn random_run_name() -> String {
    const ADJECTIVES: [&str; 12] =
        ["amber", "brisk", "calm", "deft", "eager", "fond", "gentle", "hardy", "keen", "lucid", "nimble", "quiet"];
    const NOUNS: [&str; 12] =
        ["badger", "cedar", "comet", "delta", "falcon", "harbor", "lark", "maple", "otter", "quartz", "river", "wren"];
    let random = uuid::Uuid::new_v4().as_u128();
    let adjective = ADJECTIVES[(random % 12) as usize];
    let noun = NOUNS[((random / 12) % 12) as usize];
    format!("{adjective}-{noun}-{}", (random / 144) % 1000)
}

impl FileStore {
    /// Experiment folders as (id, folder), active ones first.
    fn experiment_dirs(&self) -> Result<Vec<(String, PathBuf)>> {
        let mut dirs = Vec::new();
        for name in disk::subdirs(&self.root)? {
            if name.starts_with('.') || name == super::registry::MODELS {
                continue;
            }
            dirs.push((name.clone(), self.root.join(name)));
        }
        for name in disk::subdirs(&self.trash())? {
            if !name.starts_with('.') {
                dirs.push((name.clone(), self.trash().join(name)));
            }
        }
        Ok(dirs)
    }

    /// Reads the experiment in `dir`; `None` when the folder has no
    /// meta.yaml or it names another id (Python mlflow skips both).
    fn read_experiment(&self, id: &str, dir: &Path) -> Result<Option<Experiment>> {
        let Some(meta) = Meta::read(dir)? else {
            return Ok(None);
        };
        if meta.text("experiment_id").as_deref() != Some(id) {
            return Ok(None);
        }
        let tags = disk::read_values(&dir.join("tags"))?;
        Ok(Some(Experiment { id: id.to_string(), dir: dir.to_path_buf(), meta, tags }))
    }

    fn all_experiments(&self) -> Result<Vec<Experiment>> {
        let mut experiments = Vec::new();
        for (id, dir) in self.experiment_dirs()? {
            experiments.extend(self.read_experiment(&id, &dir)?);
        }
        Ok(experiments)
    }

    fn load_experiment(&self, id: &str) -> Result<Experiment> {
        check_id("experiment_id", id)?;
        for dir in [self.root.join(id), self.trash().join(id)] {
            if let Some(experiment) = self.read_experiment(id, &dir)? {
                return Ok(experiment);
            }
        }
        Err(not_found(format!("Could not find experiment with ID {id}")))
    }

    pub(super) fn has_default_experiment(&self) -> bool {
        self.root.join(DEFAULT_EXPERIMENT_ID).is_dir() || self.trash().join(DEFAULT_EXPERIMENT_ID).is_dir()
    }

    /// Creates experiment `0` ("Default"), the one runs go to when no
    /// experiment is set, unless another process just did.
    pub(super) fn create_default_experiment(&self) -> Result<()> {
        let _lock = disk::lock(&self.root)?;
        if self.has_default_experiment() {
            return Ok(());
        }
        self.write_new_experiment(DEFAULT_EXPERIMENT_ID, DEFAULT_EXPERIMENT_NAME, None, &[])
    }

    /// Writes a new experiment folder in a temporary folder and renames it
    /// into place, so readers never see a half-written experiment.
    fn write_new_experiment(&self, id: &str, name: &str, location: Option<String>, tags: &[(String, String)]) -> Result<()> {
        let target = self.root.join(id);
        let location = match location {
            None => self.file_uri(&target),
            Some(path) if !path.contains(':') => {
                let absolute = std::path::absolute(&path).map_err(|err| Error::io("resolving", &path, err))?;
                self.file_uri(&absolute)
            }
            Some(uri) => uri,
        };
        let now = now_millis();
        let mut meta = Meta::default();
        meta.set("artifact_location", location);
        meta.set("creation_time", now);
        meta.set("experiment_id", id);
        meta.set("last_update_time", now);
        meta.set("lifecycle_stage", ACTIVE);
        meta.set("name", name);

        let temp = self.root.join(disk::temp_name());
        let built = (|| {
            disk::create_dir(&temp)?;
            for (key, value) in tags {
                disk::write_atomic(&disk::value_path(&temp, "tags", key), &temp, value.as_bytes())?;
            }
            meta.write(&temp)?;
            disk::rename(&temp, &target)
        })();
        if built.is_err() {
            let _ = std::fs::remove_dir_all(&temp);
        }
        built
    }

    pub(super) fn create_experiment(&self, request: &Request) -> Result<Value> {
        let name = request.required("name")?;
        let tags = request.key_values("tags")?;
        for (key, _) in &tags {
            check_key("key", key)?;
        }
        let location = request.text("artifact_location").filter(|l| !l.is_empty());
        self.prepare(true)?;
        let _lock = disk::lock(&self.root)?;
        if let Some(existing) = self.all_experiments()?.into_iter().find(|e| e.name() == name) {
            let state = if existing.is_active() { "" } else { " in deleted state; restore it or choose another name" };
            return Err(already_exists(format!("Experiment '{name}' already exists{state}.")));
        }
        // Ids have 18 random digits, so a clash is rare; the tries are
        // bounded all the same.
        let id = (0..100)
            .map(|_| new_experiment_id())
            .find(|id| !self.root.join(id).exists() && !self.trash().join(id).exists())
            .ok_or_else(|| invalid_state("no unused experiment id found in 100 tries".to_string()))?;
        self.write_new_experiment(&id, &name, location, &tags)?;
        Ok(json!({ "experiment_id": id }))
    }

    pub(super) fn get_experiment(&self, request: &Request) -> Result<Value> {
        let id = request.required("experiment_id")?;
        self.prepare(false)?;
        Ok(json!({ "experiment": self.load_experiment(&id)?.json() }))
    }

    pub(super) fn get_experiment_by_name(&self, request: &Request) -> Result<Value> {
        let name = request.required("experiment_name")?;
        self.prepare(false)?;
        match self.all_experiments()?.into_iter().find(|e| e.name() == name) {
            Some(experiment) => Ok(json!({ "experiment": experiment.json() })),
            None => Err(not_found(format!("Could not find experiment with name '{name}'"))),
        }
    }

    pub(super) fn search_experiments(&self, request: &Request) -> Result<Value> {
        let filter = request.text("filter").unwrap_or_default();
        let clauses = search::parse_filter::<Experiment>(&filter)?;
        let order = search::parse_order_by::<Experiment>(&request.strings("order_by"))?;
        let view = request.text("view_type").unwrap_or_else(|| "ACTIVE_ONLY".to_string());
        let max_results = request.max_results(DEFAULT_SEARCH_RESULTS)?;
        self.prepare(false)?;

        let mut found = Vec::new();
        for experiment in self.all_experiments()? {
            let in_view = match view.as_str() {
                "ALL" => true,
                "DELETED_ONLY" => !experiment.is_active(),
                _ => experiment.is_active(),
            };
            if in_view && search::matches(&clauses, &experiment, &filter)? {
                found.push(experiment);
            }
        }
        let tiebreak = [
            OrderKey { key: Key::Attribute("creation_time".into()), ascending: false },
            OrderKey { key: Key::Attribute("experiment_id".into()), ascending: true },
        ];
        search::sort(&mut found, &order, &tiebreak);
        let (page, next) = search::paginate(found, max_results, request.text("page_token").as_deref())?;
        let experiments: Vec<Value> = page.iter().map(Experiment::json).collect();
        Ok(compact(json!({ "experiments": experiments, "next_page_token": next })))
    }

    pub(super) fn delete_experiment(&self, request: &Request) -> Result<Value> {
        let id = request.required("experiment_id")?;
        check_id("experiment_id", &id)?;
        if id == DEFAULT_EXPERIMENT_ID {
            return Err(invalid_parameter(format!(
                "Cannot delete the default experiment '{DEFAULT_EXPERIMENT_ID}'. This is an internally reserved experiment."
            )));
        }
        self.prepare(true)?;
        let _lock = disk::lock(&self.root)?;
        let mut experiment = self
            .read_experiment(&id, &self.root.join(&id))?
            .ok_or_else(|| not_found(format!("Could not find experiment with ID {id}")))?;

        let target = self.trash().join(&id);
        if target.exists() {
            return Err(invalid_state(format!(
                "Cannot delete experiment {id}: {} already exists; remove it first",
                target.display()
            )));
        }

        // Runs first, then the experiment, then the move into .trash/, as
        // Python mlflow deletes an experiment.
        let now = now_millis();
        for mut run in self.experiment_runs(&experiment)? {
            if run.is_active() {
                run.meta.set("lifecycle_stage", DELETED);
                run.meta.set("deleted_time", now);
                run.meta.write(&run.dir)?;
            }
        }
        experiment.meta.set("lifecycle_stage", DELETED);
        experiment.meta.set("last_update_time", now);
        experiment.meta.write(&experiment.dir)?;
        disk::create_dir(&self.trash())?;
        disk::rename(&experiment.dir, &target)?;
        Ok(json!({}))
    }

    pub(super) fn restore_experiment(&self, request: &Request) -> Result<Value> {
        let id = request.required("experiment_id")?;
        check_id("experiment_id", &id)?;
        self.prepare(true)?;
        let _lock = disk::lock(&self.root)?;
        let experiment = self
            .read_experiment(&id, &self.trash().join(&id))?
            .ok_or_else(|| not_found(format!("Could not find deleted experiment with ID {id}")))?;
        let target = self.root.join(&id);
        if target.exists() {
            return Err(already_exists(format!(
                "Cannot restore experiment with ID {id}. An experiment with same ID already exists."
            )));
        }
        disk::rename(&experiment.dir, &target)?;
        let mut experiment = Experiment { dir: target, ..experiment };
        for mut run in self.experiment_runs(&experiment)? {
            if !run.is_active() {
                run.meta.set("lifecycle_stage", ACTIVE);
                run.meta.remove("deleted_time");
                run.meta.write(&run.dir)?;
            }
        }
        experiment.meta.set("lifecycle_stage", ACTIVE);
        experiment.meta.set("last_update_time", now_millis());
        experiment.meta.write(&experiment.dir)?;
        Ok(json!({}))
    }

    pub(super) fn rename_experiment(&self, request: &Request) -> Result<Value> {
        let id = request.required("experiment_id")?;
        let new_name = request.required("new_name")?;
        self.prepare(true)?;
        let _lock = disk::lock(&self.root)?;
        let mut experiment = self.load_experiment(&id)?;
        if !experiment.is_active() {
            return Err(invalid_state(format!(
                "Cannot rename experiment {id} in non-active lifecycle stage; restore it first"
            )));
        }
        if self.all_experiments()?.iter().any(|e| e.name() == new_name && e.id != id) {
            return Err(already_exists(format!("Experiment '{new_name}' already exists.")));
        }
        experiment.meta.set("name", new_name);
        experiment.meta.set("last_update_time", now_millis());
        experiment.meta.write(&experiment.dir)?;
        Ok(json!({}))
    }

    pub(super) fn set_experiment_tag(&self, request: &Request) -> Result<Value> {
        let id = request.required("experiment_id")?;
        let key = request.required("key")?;
        check_key("key", &key)?;
        let value = request.text("value").unwrap_or_default();
        self.prepare(true)?;
        let experiment = self.load_experiment(&id)?;
        if !experiment.is_active() {
            return Err(invalid_parameter(format!(
                "The experiment {id} must be in the 'active' lifecycle_stage to set tags"
            )));
        }
        disk::write_atomic(&disk::value_path(&experiment.dir, "tags", &key), &experiment.dir, value.as_bytes())?;
        Ok(json!({}))
    }

    /// Reads the runs of an experiment; folders without meta.yaml are skipped.
    fn experiment_runs(&self, experiment: &Experiment) -> Result<Vec<Run>> {
        let mut runs = Vec::new();
        for name in disk::subdirs(&experiment.dir)? {
            if RESERVED_FOLDERS.contains(&name.as_str()) || name.starts_with('.') {
                continue;
            }
            let dir = experiment.dir.join(&name);
            if let Some(run) = self.read_run(&experiment.id, &dir)? {
                runs.push(run);
            }
        }
        Ok(runs)
    }

    /// Reads the run in `dir`; `None` when the folder is not a run.
    fn read_run(&self, experiment_id: &str, dir: &Path) -> Result<Option<Run>> {
        let Some(meta) = Meta::read(dir)? else {
            return Ok(None);
        };
        let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if meta.text("run_id").or_else(|| meta.text("run_uuid")).as_deref() != Some(id.as_str()) {
            return Ok(None);
        }
        let mut metrics = Vec::new();
        for (key, path) in metric_files(&dir.join("metrics"))? {
            if let Some(point) = latest(&read_metric_file(&path)?) {
                metrics.push((key, point));
            }
        }
        Ok(Some(Run {
            id,
            experiment_id: experiment_id.to_string(),
            dir: dir.to_path_buf(),
            params: disk::read_values(&dir.join("params"))?,
            tags: disk::read_values(&dir.join("tags"))?,
            meta,
            metrics,
        }))
    }

    /// Finds a run in any experiment, active or deleted.
    pub(super) fn load_run(&self, run_id: &str) -> Result<Run> {
        check_id("run_id", run_id)?;
        for (experiment_id, dir) in self.experiment_dirs()? {
            let candidate = dir.join(run_id);
            if candidate.join(disk::META).is_file() {
                if let Some(run) = self.read_run(&experiment_id, &candidate)? {
                    return Ok(run);
                }
            }
        }
        Err(not_found(format!("Run '{run_id}' not found")))
    }

    pub(super) fn create_run(&self, request: &Request) -> Result<Value> {
        let experiment_id = request
            .text("experiment_id")
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| DEFAULT_EXPERIMENT_ID.to_string());
        let mut tags = request.key_values("tags")?;
        for (key, _) in &tags {
            check_key("key", key)?;
        }
        self.prepare(true)?;
        let experiment = self.load_experiment(&experiment_id)?;
        if !experiment.is_active() {
            return Err(invalid_state(format!(
                "Could not create run under non-active experiment with ID {experiment_id}."
            )));
        }
        let tag_name = lookup(&tags, RUN_NAME_TAG);
        let requested = request.text("run_name").filter(|n| !n.is_empty());
        if let (Some(name), Some(tag)) = (&requested, &tag_name) {
            if name != tag {
                return Err(invalid_parameter(format!(
                    "Both 'run_name' argument and '{RUN_NAME_TAG}' tag are specified, but with different values \
                     (run_name='{name}', {RUN_NAME_TAG}='{tag}')."
                )));
            }
        }
        let run_name = requested.or(tag_name.clone()).unwrap_or_else(random_run_name);
        if tag_name.is_none() {
            tags.push((RUN_NAME_TAG.to_string(), run_name.clone()));
        }
        let user_id = request
            .text("user_id")
            .filter(|u| !u.is_empty())
            .or_else(|| lookup(&tags, USER_TAG))
            .unwrap_or_default();
        let start_time = request.int("start_time")?.unwrap_or_else(now_millis);

        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let location = experiment.meta.text("artifact_location").unwrap_or_else(|| self.file_uri(&experiment.dir));
        let mut meta = Meta::default();
        meta.set("artifact_uri", format!("{}/{run_id}/artifacts", location.trim_end_matches('/')));
        meta.set_opt("end_time", None::<i64>);
        meta.set("entry_point_name", "");
        meta.set("experiment_id", experiment_id.as_str());
        meta.set("lifecycle_stage", ACTIVE);
        meta.set("run_id", run_id.as_str());
        meta.set("run_name", run_name.as_str());
        meta.set("source_name", "");
        meta.set("source_type", SOURCE_TYPE_LOCAL);
        meta.set("source_version", "");
        meta.set("start_time", start_time);
        meta.set("status", 1);
        meta.set("tags", serde_yaml::Value::Sequence(Vec::new()));
        meta.set("user_id", user_id);
        meta.set_opt("deleted_time", None::<i64>);

        // Built in a temporary folder of the experiment and renamed into
        // place, so the run appears with its tags or not at all.
        let temp = experiment.dir.join(disk::temp_name());
        let target = experiment.dir.join(&run_id);
        let built = (|| {
            for folder in ["metrics", "params", "artifacts", "tags"] {
                disk::create_dir(&temp.join(folder))?;
            }
            for (key, value) in &tags {
                disk::write_atomic(&disk::value_path(&temp, "tags", key), &temp, value.as_bytes())?;
            }
            meta.write(&temp)?;
            disk::rename(&temp, &target)
        })();
        if let Err(err) = built {
            let _ = std::fs::remove_dir_all(&temp);
            return Err(err);
        }
        let run = self.read_run(&experiment_id, &target)?.ok_or_else(|| not_found(format!("Run '{run_id}' not found")))?;
        Ok(json!({ "run": run.json() }))
    }

    pub(super) fn get_run(&self, request: &Request) -> Result<Value> {
        let run_id = request.required("run_id")?;
        self.prepare(false)?;
        Ok(json!({ "run": self.load_run(&run_id)?.json() }))
    }

    pub(super) fn update_run(&self, request: &Request) -> Result<Value> {
        let run_id = request.text("run_id").filter(|id| !id.is_empty()).map_or_else(|| request.required("run_uuid"), Ok)?;
        self.prepare(true)?;
        let mut run = self.load_run(&run_id)?;
        run.require_active()?;
        if let Some(status) = request.text("status").filter(|s| !s.is_empty()) {
            run.meta.set("status", status_code(&status)?);
        }
        if let Some(end_time) = request.int("end_time")? {
            run.meta.set("end_time", end_time);
        }
        if let Some(name) = request.text("run_name").filter(|n| !n.is_empty()) {
            disk::write_atomic(&disk::value_path(&run.dir, "tags", RUN_NAME_TAG), &run.dir, name.as_bytes())?;
            run.meta.set("run_name", name);
        }
        run.meta.write(&run.dir)?;
        let run = self.load_run(&run_id)?;
        Ok(json!({ "run_info": run.info_json() }))
    }

    pub(super) fn delete_run(&self, request: &Request) -> Result<Value> {
        self.set_run_lifecycle(request, DELETED)
    }

    pub(super) fn restore_run(&self, request: &Request) -> Result<Value> {
        self.set_run_lifecycle(request, ACTIVE)
    }

    fn set_run_lifecycle(&self, request: &Request, stage: &str) -> Result<Value> {
        let run_id = request.required("run_id")?;
        self.prepare(true)?;
        let mut run = self.load_run(&run_id)?;
        run.meta.set("lifecycle_stage", stage);
        if stage == DELETED {
            run.meta.set("deleted_time", now_millis());
        } else {
            run.meta.remove("deleted_time");
        }
        run.meta.write(&run.dir)?;
        Ok(json!({}))
    }

    /// Loads an active run for a write; the run id may come as `run_id` or
    /// as the older `run_uuid`.
    fn writable_run(&self, request: &Request) -> Result<Run> {
        let run_id = match request.text("run_id").filter(|id| !id.is_empty()) {
            Some(id) => id,
            None => request.required("run_uuid")?,
        };
        self.prepare(true)?;
        let run = self.load_run(&run_id)?;
        run.require_active()?;
        Ok(run)
    }

    /// Checks that logging `value` for `key` keeps params immutable, as
    /// MLflow requires; re-logging the same value is allowed.
    /// NOTE: the check and the write are not under the store lock, so two
    /// processes logging different values for one key at the same moment
    /// can both succeed, and the last write wins.
    fn check_param(run: &Run, key: &str, value: &str) -> Result<()> {
        match lookup(&run.params, key) {
            Some(current) if current != value => Err(invalid_parameter(format!(
                "Changing param values is not allowed. Param with key='{key}' was already logged with \
                 value='{current}' for run ID='{}'. Attempted logging new value '{value}'.",
                run.id
            ))),
            _ => Ok(()),
        }
    }

    fn write_param(run: &Run, key: &str, value: &str) -> Result<()> {
        disk::write_atomic(&disk::value_path(&run.dir, "params", key), &run.dir, value.as_bytes())
    }

    /// Writes a run tag; `mlflow.runName` also renames the run.
    fn write_run_tag(run: &mut Run, key: &str, value: &str) -> Result<()> {
        disk::write_atomic(&disk::value_path(&run.dir, "tags", key), &run.dir, value.as_bytes())?;
        if key == RUN_NAME_TAG {
            run.meta.set("run_name", value);
            run.meta.write(&run.dir)?;
        }
        Ok(())
    }

    pub(super) fn log_param(&self, request: &Request) -> Result<Value> {
        let key = request.required("key")?;
        check_key("key", &key)?;
        let value = request.text("value").unwrap_or_default();
        let run = self.writable_run(request)?;
        Self::check_param(&run, &key, &value)?;
        Self::write_param(&run, &key, &value)?;
        Ok(json!({}))
    }

    pub(super) fn log_metric(&self, request: &Request) -> Result<Value> {
        let key = request.required("key")?;
        check_key("key", &key)?;
        let value = request
            .float("value")?
            .ok_or_else(|| invalid_parameter("Missing value for required parameter 'value'.".to_string()))?;
        let point = MetricPoint {
            timestamp: request.int("timestamp")?.unwrap_or_else(now_millis),
            value,
            step: request.int("step")?.unwrap_or(0),
        };
        let run = self.writable_run(request)?;
        Self::append_metric(&run, &key, &[point])?;
        Ok(json!({}))
    }

    fn append_metric(run: &Run, key: &str, points: &[MetricPoint]) -> Result<()> {
        let text: String = points
            .iter()
            .map(|p| format!("{} {} {}\n", p.timestamp, metric_text(p.value), p.step))
            .collect();
        let mut path = run.dir.join("metrics");
        for part in key.split('/') {
            path.push(part);
        }
        disk::append(&path, &text)
    }

    pub(super) fn log_batch(&self, request: &Request) -> Result<Value> {
        let params = request.key_values("params")?;
        let tags = request.key_values("tags")?;
        let mut metrics: Vec<(String, Vec<MetricPoint>)> = Vec::new();
        for item in request.array("metrics") {
            let key = item.get("key").and_then(Value::as_str).unwrap_or_default().to_string();
            check_key("metrics.key", &key)?;
            let value = item
                .get("value")
                .and_then(super::float_value)
                .ok_or_else(|| invalid_parameter(format!("Invalid metric {item}: 'value' must be a number")))?;
            let field = |name: &str| item.get(name).and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()));
            let point = MetricPoint {
                timestamp: field("timestamp").unwrap_or_else(now_millis),
                value,
                step: field("step").unwrap_or(0),
            };
            match metrics.iter_mut().find(|(k, _)| *k == key) {
                Some((_, points)) => points.push(point),
                None => metrics.push((key, vec![point])),
            }
        }
        for (key, value) in &params {
            check_key("params.key", key)?;
            if params.iter().any(|(k, v)| k == key && v != value) {
                return Err(invalid_parameter(format!(
                    "Duplicate parameter keys have been submitted: [{key}]. Please ensure the request contains only one param value per param key."
                )));
            }
        }
        for (key, _) in &tags {
            check_key("tags.key", key)?;
        }

        let mut run = self.writable_run(request)?;
        for (key, value) in &params {
            Self::check_param(&run, key, value)?;
        }
        for (key, value) in &params {
            Self::write_param(&run, key, value)?;
        }
        for (key, points) in &metrics {
            Self::append_metric(&run, key, points)?;
        }
        for (key, value) in &tags {
            Self::write_run_tag(&mut run, key, value)?;
        }
        Ok(json!({}))
    }

    pub(super) fn set_tag(&self, request: &Request) -> Result<Value> {
        let key = request.required("key")?;
        check_key("key", &key)?;
        let value = request.text("value").unwrap_or_default();
        let mut run = self.writable_run(request)?;
        Self::write_run_tag(&mut run, &key, &value)?;
        Ok(json!({}))
    }

    pub(super) fn delete_tag(&self, request: &Request) -> Result<Value> {
        let key = request.required("key")?;
        check_key("key", &key)?;
        let run = self.writable_run(request)?;
        if !disk::remove_file(&disk::value_path(&run.dir, "tags", &key))? {
            return Err(not_found(format!("No tag with name: {key} in run with id {}", run.id)));
        }
        Ok(json!({}))
    }

    /// Appends a logged model's `MLmodel` (as JSON) to the run tag
    /// `mlflow.log-model.history`, as the MLflow server does.
    pub(super) fn log_model(&self, request: &Request) -> Result<Value> {
        let model_json = request.required("model_json")?;
        let model: Value = serde_json::from_str(&model_json)
            .map_err(|err| invalid_parameter(format!("Invalid value for parameter 'model_json': it is not JSON ({err})")))?;
        let mut run = self.writable_run(request)?;
        let mut history = match lookup(&run.tags, LOGGED_MODELS_TAG) {
            Some(text) => match serde_json::from_str::<Value>(&text) {
                Ok(Value::Array(items)) => items,
                _ => Vec::new(),
            },
            None => Vec::new(),
        };
        history.push(model);
        let text = serde_json::to_string(&history).unwrap_or_default();
        Self::write_run_tag(&mut run, LOGGED_MODELS_TAG, &text)?;
        Ok(json!({}))
    }

    pub(super) fn get_metric_history(&self, request: &Request) -> Result<Value> {
        let run_id = match request.text("run_id").filter(|id| !id.is_empty()) {
            Some(id) => id,
            None => request.required("run_uuid")?,
        };
        let key = request.required("metric_key")?;
        check_key("metric_key", &key)?;
        self.prepare(false)?;
        let run = self.load_run(&run_id)?;
        let path = disk::value_path(&run.dir, "metrics", &key);
        let points = if path.is_file() { read_metric_file(&path)? } else { Vec::new() };
        let max_results = request.max_results(usize::MAX)?;
        let (page, next) = search::paginate(points, max_results, request.text("page_token").as_deref())?;
        let metrics: Vec<Value> = page.iter().map(|p| p.json(&key)).collect();
        Ok(compact(json!({ "metrics": metrics, "next_page_token": next })))
    }

    pub(super) fn search_runs(&self, request: &Request) -> Result<Value> {
        let filter = request.text("filter").unwrap_or_default();
        let clauses = search::parse_filter::<Run>(&filter)?;
        let order = search::parse_order_by::<Run>(&request.strings("order_by"))?;
        let view = request.text("run_view_type").unwrap_or_else(|| "ACTIVE_ONLY".to_string());
        let max_results = request.max_results(DEFAULT_SEARCH_RESULTS)?;
        self.prepare(false)?;

        let mut found = Vec::new();
        for experiment_id in request.strings("experiment_ids") {
            check_id("experiment_ids", &experiment_id)?;
            let Ok(experiment) = self.load_experiment(&experiment_id) else {
                continue;
            };
            for run in self.experiment_runs(&experiment)? {
                let in_view = match view.as_str() {
                    "ALL" => true,
                    "DELETED_ONLY" => !run.is_active(),
                    _ => run.is_active(),
                };
                if in_view && search::matches(&clauses, &run, &filter)? {
                    found.push(run);
                }
            }
        }
        let tiebreak = [
            OrderKey { key: Key::Attribute("start_time".into()), ascending: false },
            OrderKey { key: Key::Attribute("run_id".into()), ascending: true },
        ];
        search::sort(&mut found, &order, &tiebreak);
        let (page, next) = search::paginate(found, max_results, request.text("page_token").as_deref())?;
        let runs: Vec<Value> = page.iter().map(Run::json).collect();
        Ok(compact(json!({ "runs": runs, "next_page_token": next })))
    }

    /// Lists the artifacts directly under `path` of a run whose artifacts
    /// are on this machine.
    pub(super) fn list_artifacts(&self, request: &Request) -> Result<Value> {
        let run_id = request.required("run_id")?;
        let path = request.text("path").unwrap_or_default();
        self.prepare(false)?;
        let run = self.load_run(&run_id)?;
        let root_uri = run.meta.text("artifact_uri").unwrap_or_default();
        let repo = crate::artifacts::LocalArtifacts::for_uri(&root_uri)?;
        let files: Vec<Value> = crate::artifacts::ArtifactRepository::list(&repo, &path)?
            .into_iter()
            .map(|info| compact(json!({ "path": info.path, "is_dir": info.is_dir, "file_size": info.file_size })))
            .collect();
        Ok(json!({ "root_uri": root_uri, "files": files }))
    }

    /// Returns the artifact URI of a run, for resolving `runs:/` sources.
    pub(super) fn run_artifact_uri(&self, run_id: &str) -> Result<(String, PathBuf)> {
        let run = self.load_run(run_id)?;
        let experiment_dir = run.dir.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok((run.meta.text("artifact_uri").unwrap_or_default(), experiment_dir))
    }

    /// Finds the artifact location of an MLflow 3 logged model (`m-<id>`)
    /// stored under `<experiment>/models/<id>/meta.yaml`, optionally only
    /// among those of `experiment_dir` made by `run_id` under `name`.
    pub(super) fn logged_model_location(&self, model_id: Option<&str>, from_run: Option<(&Path, &str, &str)>) -> Result<Option<String>> {
        let experiments: Vec<PathBuf> = match from_run {
            Some((dir, _, _)) => vec![dir.to_path_buf()],
            None => self.experiment_dirs()?.into_iter().map(|(_, dir)| dir).collect(),
        };
        for experiment_dir in experiments {
            let models = experiment_dir.join("models");
            for name in disk::subdirs(&models)? {
                if model_id.is_some_and(|id| id != name) {
                    continue;
                }
                let Some(meta) = Meta::read(&models.join(&name))? else { continue };
                if let Some((_, run_id, model_name)) = from_run {
                    if meta.text("source_run_id").as_deref() != Some(run_id) || meta.text("name").as_deref() != Some(model_name) {
                        continue;
                    }
                }
                if let Some(location) = meta.text("artifact_location") {
                    return Ok(Some(location));
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_text_reads_back_in_python_form() {
        assert_eq!(metric_text(1.25), "1.25");
        assert_eq!(metric_text(1.0), "1.0");
        assert_eq!(metric_text(f64::NAN), "nan");
        assert_eq!(metric_text(f64::NEG_INFINITY), "-inf");
        assert_eq!(metric_text(1e300).parse::<f64>().unwrap(), 1e300);
        assert_eq!(metric_text(0.1 + 0.2).parse::<f64>().unwrap(), 0.1 + 0.2);
    }

    #[test]
    fn latest_metric_is_largest_step_then_timestamp() {
        let points = [
            MetricPoint { timestamp: 5, value: 1.0, step: 2 },
            MetricPoint { timestamp: 9, value: 3.0, step: 1 },
            MetricPoint { timestamp: 6, value: 2.0, step: 2 },
        ];
        assert_eq!(latest(&points).unwrap().value, 2.0);
    }

    #[test]
    fn experiment_ids_have_eighteen_digits() {
        for _ in 0..100 {
            let id = new_experiment_id();
            assert_eq!(id.len(), 18, "{id}");
            assert!(!id.starts_with('0'));
        }
    }
}
