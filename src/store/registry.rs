//! Registered models, model versions, their tags and aliases in the local store.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::disk::{self, Meta};
use super::search::{self, Datum, Fields, Key, OrderKey};
use super::{already_exists, check_key, compact, invalid_parameter, not_found, pairs_json, FileStore, Request};
use crate::error::Result;
use crate::tracking::now_millis;

/// Folder of the registry below the store root.
pub(super) const MODELS: &str = "models";
const VERSION_PREFIX: &str = "version-";
/// Stage of a deleted version. Python mlflow keeps the folder so version
/// numbers are never reused, and so does this store.
const DELETED_STAGE: &str = "Deleted_Internal";
const READY: &str = "READY";
/// Results per search page when the request names none, as the server's default.
const DEFAULT_SEARCH_RESULTS: usize = 100;

/// Returns the canonical spelling of a stage, matched without case.
fn canonical_stage(stage: &str) -> Result<&'static str> {
    crate::registry::STAGES
        .iter()
        .find(|s| s.eq_ignore_ascii_case(stage))
        .copied()
        .ok_or_else(|| {
            invalid_parameter(format!(
                "Invalid Model Version stage: {stage}. Value must be one of {}.",
                crate::registry::STAGES.join(", ")
            ))
        })
}

/// Checks a registered model name: it becomes a folder name, so it may not
/// be empty, `.`, `..`, or contain a path separator or `%` (Python mlflow's rules).
fn check_model_name(parameter: &str, name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '%', '\0']) {
        return Err(invalid_parameter(format!(
            "Invalid value {name:?} for parameter '{parameter}': registered model names must not be \
             empty, '.' or '..', and must not contain '/', '\\' or '%'"
        )));
    }
    Ok(())
}

/// Parses a version number as MLflow does: a positive integer.
fn version_number(version: &str) -> Result<u64> {
    version
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| invalid_parameter(format!("Parameter 'version' must be an integer, got '{version}'.")))
}

fn check_alias(alias: &str) -> Result<()> {
    let valid = !alias.is_empty() && alias.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(invalid_parameter(format!(
            "Invalid alias name: '{alias}'. Names may only contain alphanumerics, underscores (_), and dashes (-)."
        )));
    }
    let lower = alias.to_lowercase();
    let version_like = lower.len() > 1 && lower.starts_with('v') && lower[1..].bytes().all(|b| b.is_ascii_digit());
    if lower == "latest" || version_like {
        return Err(invalid_parameter(format!(
            "'{alias}' alias name (case insensitive) is reserved; use another alias name"
        )));
    }
    Ok(())
}

struct RegisteredModel {
    name: String,
    dir: PathBuf,
    meta: Meta,
    tags: Vec<(String, String)>,
    /// (alias, version number) pairs from the `aliases/` folder.
    aliases: Vec<(String, String)>,
    /// Every version, deleted ones included.
    versions: Vec<Version>,
}

impl RegisteredModel {
    fn live_versions(&self) -> impl Iterator<Item = &Version> {
        self.versions.iter().filter(|v| !v.is_deleted())
    }

    /// The newest version in each stage, as `latest_versions` lists them.
    fn latest_versions(&self, stages: &[&str]) -> Vec<&Version> {
        let mut latest: Vec<&Version> = Vec::new();
        for stage in crate::registry::STAGES {
            if !stages.is_empty() && !stages.contains(&stage) {
                continue;
            }
            if let Some(newest) = self.live_versions().filter(|v| v.stage() == stage).max_by_key(|v| v.number) {
                latest.push(newest);
            }
        }
        latest
    }

    fn json(&self) -> Value {
        let latest: Vec<Value> = self.latest_versions(&[]).into_iter().map(|v| v.json(&self.aliases)).collect();
        let aliases: Vec<Value> =
            self.aliases.iter().map(|(alias, version)| json!({ "alias": alias, "version": version })).collect();
        compact(json!({
            "name": self.name,
            "creation_timestamp": self.meta.int("creation_timestamp"),
            "last_updated_timestamp": self.meta.int("last_updated_timestamp"),
            "description": self.meta.text("description"),
            "latest_versions": latest,
            "tags": pairs_json(&self.tags),
            "aliases": aliases,
        }))
    }

    /// Records a change of the model or one of its versions.
    fn touch(&mut self) -> Result<()> {
        self.meta.set("last_updated_timestamp", now_millis());
        self.meta.write(&self.dir)
    }
}

impl Fields for RegisteredModel {
    fn supports(key: &Key) -> bool {
        match key {
            Key::Attribute(name) => matches!(name.as_str(), "name" | "creation_timestamp" | "last_updated_timestamp"),
            Key::Tag(_) => true,
            _ => false,
        }
    }

    fn field(&self, key: &Key) -> Option<Datum> {
        match key {
            Key::Attribute(name) if name == "name" => Some(Datum::Text(self.name.clone())),
            Key::Attribute(name) => self.meta.int(name).map(|n| Datum::Number(n as f64)),
            Key::Tag(tag) => self.tags.iter().find(|(k, _)| k == tag).map(|(_, v)| Datum::Text(v.clone())),
            _ => None,
        }
    }
}

struct Version {
    /// Name of the registered model, from its folder.
    name: String,
    number: u64,
    dir: PathBuf,
    meta: Meta,
    tags: Vec<(String, String)>,
    /// Aliases of the model that point at this version.
    aliases: Vec<String>,
}

impl Version {
    fn stage(&self) -> String {
        self.meta.text("current_stage").unwrap_or_else(|| "None".to_string())
    }

    fn is_deleted(&self) -> bool {
        self.stage() == DELETED_STAGE
    }

    fn json(&self, model_aliases: &[(String, String)]) -> Value {
        let number = self.number.to_string();
        let aliases: Vec<&String> = model_aliases.iter().filter(|(_, v)| *v == number).map(|(a, _)| a).collect();
        compact(json!({
            "name": self.name,
            "version": number,
            "creation_timestamp": self.meta.int("creation_timestamp"),
            "last_updated_timestamp": self.meta.int("last_updated_timestamp"),
            "current_stage": self.stage(),
            "description": self.meta.text("description"),
            "source": self.meta.text("source"),
            "run_id": self.meta.text("run_id"),
            "run_link": self.meta.text("run_link"),
            "status": self.meta.text("status").unwrap_or_else(|| READY.to_string()),
            "status_message": self.meta.text("status_message"),
            "tags": pairs_json(&self.tags),
            "aliases": aliases,
        }))
    }

    fn touch(&mut self) -> Result<()> {
        self.meta.set("last_updated_timestamp", now_millis());
        self.meta.write(&self.dir)
    }
}

impl Fields for Version {
    fn supports(key: &Key) -> bool {
        match key {
            Key::Attribute(name) => matches!(
                name.as_str(),
                "name" | "version_number" | "run_id" | "source_path" | "current_stage"
                    | "creation_timestamp" | "last_updated_timestamp"
            ),
            Key::Tag(_) => true,
            _ => false,
        }
    }

    fn field(&self, key: &Key) -> Option<Datum> {
        match key {
            Key::Attribute(name) => match name.as_str() {
                "name" => Some(Datum::Text(self.name.clone())),
                "version_number" => Some(Datum::Number(self.number as f64)),
                "run_id" => self.meta.text("run_id").map(Datum::Text),
                "source_path" => self.meta.text("source").map(Datum::Text),
                "current_stage" => Some(Datum::Text(self.stage())),
                other => self.meta.int(other).map(|n| Datum::Number(n as f64)),
            },
            Key::Tag(tag) => self.tags.iter().find(|(k, _)| k == tag).map(|(_, v)| Datum::Text(v.clone())),
            _ => None,
        }
    }
}

/// A model version bundled with its model's aliases for JSON output.
struct FoundVersion {
    version: Version,
    model_aliases: Vec<(String, String)>,
}

impl Fields for FoundVersion {
    fn supports(key: &Key) -> bool {
        Version::supports(key)
    }

    fn field(&self, key: &Key) -> Option<Datum> {
        self.version.field(key)
    }
}

fn model_not_found(name: &str) -> crate::Error {
    not_found(format!("Registered Model with name={name} not found"))
}

fn version_not_found(name: &str, version: &str) -> crate::Error {
    not_found(format!("Model Version (name={name}, version={version}) not found"))
}

impl FileStore {
    fn model_dir(&self, name: &str) -> PathBuf {
        self.models().join(name)
    }

    /// Reads the model in `dir`; `None` when the folder has no meta.yaml.
    fn read_model(&self, name: &str, dir: &Path) -> Result<Option<RegisteredModel>> {
        let Some(meta) = Meta::read(dir)? else {
            return Ok(None);
        };
        let tags = disk::read_values(&dir.join("tags"))?;
        let aliases: Vec<(String, String)> = disk::read_values(&dir.join("aliases"))?
            .into_iter()
            .map(|(alias, version)| (alias, version.trim().to_string()))
            .collect();
        let mut versions = Vec::new();
        for folder in disk::subdirs(dir)? {
            let Some(number) = folder.strip_prefix(VERSION_PREFIX).and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            let version_dir = dir.join(&folder);
            let Some(version_meta) = Meta::read(&version_dir)? else { continue };
            let text = number.to_string();
            versions.push(Version {
                name: name.to_string(),
                number,
                tags: disk::read_values(&version_dir.join("tags"))?,
                aliases: aliases.iter().filter(|(_, v)| *v == text).map(|(a, _)| a.clone()).collect(),
                dir: version_dir,
                meta: version_meta,
            });
        }
        versions.sort_by_key(|v| v.number);
        Ok(Some(RegisteredModel { name: name.to_string(), dir: dir.to_path_buf(), meta, tags, aliases, versions }))
    }

    fn load_model(&self, name: &str) -> Result<RegisteredModel> {
        check_model_name("name", name)?;
        self.read_model(name, &self.model_dir(name))?.ok_or_else(|| model_not_found(name))
    }

    fn all_models(&self) -> Result<Vec<RegisteredModel>> {
        let mut models = Vec::new();
        for name in disk::subdirs(&self.models())? {
            if name.starts_with('.') {
                continue;
            }
            models.extend(self.read_model(&name, &self.model_dir(&name))?);
        }
        Ok(models)
    }

    /// Returns the model and the position of a live version in its list.
    fn load_version(&self, name: &str, version: &str) -> Result<(RegisteredModel, usize)> {
        let number = version_number(version)?;
        let model = self.load_model(name)?;
        let index = model
            .versions
            .iter()
            .position(|v| v.number == number && !v.is_deleted())
            .ok_or_else(|| version_not_found(name, version))?;
        Ok((model, index))
    }

    pub(super) fn create_registered_model(&self, request: &Request) -> Result<Value> {
        let name = request.required("name")?;
        check_model_name("name", &name)?;
        let tags = request.key_values("tags")?;
        for (key, _) in &tags {
            check_key("key", key)?;
        }
        self.prepare(true)?;
        let _lock = disk::lock(&self.root)?;
        let target = self.model_dir(&name);
        if target.exists() {
            return Err(already_exists(format!("Registered Model (name={name}) already exists.")));
        }
        let now = now_millis();
        let mut meta = Meta::default();
        meta.set("creation_timestamp", now);
        meta.set_opt("description", request.text("description").filter(|d| !d.is_empty()));
        meta.set("last_updated_timestamp", now);
        meta.set("name", name.as_str());

        // Built at the store root, which Python mlflow reads no models
        // from, then renamed into models/.
        let temp = self.root.join(disk::temp_name());
        let built = (|| {
            disk::create_dir(&temp)?;
            for (key, value) in &tags {
                disk::write_atomic(&disk::value_path(&temp, "tags", key), &temp, value.as_bytes())?;
            }
            meta.write(&temp)?;
            disk::create_dir(&self.models())?;
            disk::rename(&temp, &target)
        })();
        if let Err(err) = built {
            let _ = std::fs::remove_dir_all(&temp);
            return Err(err);
        }
        Ok(json!({ "registered_model": self.load_model(&name)?.json() }))
    }

    pub(super) fn get_registered_model(&self, request: &Request) -> Result<Value> {
        let name = request.required("name")?;
        self.prepare(false)?;
        Ok(json!({ "registered_model": self.load_model(&name)?.json() }))
    }

    /// Renames the model folder, then the names inside it, under the lock.
    pub(super) fn rename_registered_model(&self, request: &Request) -> Result<Value> {
        let name = request.required("name")?;
        let new_name = request.required("new_name")?;
        check_model_name("name", &name)?;
        check_model_name("new_name", &new_name)?;
        self.prepare(true)?;
        let _lock = disk::lock(&self.root)?;
        self.load_model(&name)?;
        let target = self.model_dir(&new_name);
        if target.exists() {
            return Err(already_exists(format!("Registered Model (name={new_name}) already exists.")));
        }
        disk::rename(&self.model_dir(&name), &target)?;
        let mut model = self.load_model(&new_name)?;
        let now = now_millis();
        for version in &mut model.versions {
            version.meta.set("name", new_name.as_str());
            version.meta.set("last_updated_timestamp", now);
            version.meta.write(&version.dir)?;
        }
        model.meta.set("name", new_name.as_str());
        model.touch()?;
        Ok(json!({ "registered_model": self.load_model(&new_name)?.json() }))
    }

    pub(super) fn update_registered_model(&self, request: &Request) -> Result<Value> {
        let name = request.required("name")?;
        self.prepare(true)?;
        let mut model = self.load_model(&name)?;
        model.meta.set_opt("description", request.text("description"));
        model.touch()?;
        Ok(json!({ "registered_model": self.load_model(&name)?.json() }))
    }

    /// Deletes a model with all its versions: the folder is first renamed
    /// out of `models/`, so readers never see a partly removed model.
    pub(super) fn delete_registered_model(&self, request: &Request) -> Result<Value> {
        let name = request.required("name")?;
        self.prepare(true)?;
        let _lock = disk::lock(&self.root)?;
        let model = self.load_model(&name)?;
        let doomed = self.root.join(disk::temp_name());
        disk::rename(&model.dir, &doomed)?;
        std::fs::remove_dir_all(&doomed).map_err(|err| disk::io_error("removing", &doomed, err))?;
        Ok(json!({}))
    }

    pub(super) fn search_registered_models(&self, request: &Request) -> Result<Value> {
        let filter = request.text("filter").unwrap_or_default();
        let clauses = search::parse_filter::<RegisteredModel>(&filter)?;
        let order = search::parse_order_by::<RegisteredModel>(&request.strings("order_by"))?;
        let max_results = request.max_results(DEFAULT_SEARCH_RESULTS)?;
        self.prepare(false)?;
        let mut found = Vec::new();
        for model in self.all_models()? {
            if search::matches(&clauses, &model, &filter)? {
                found.push(model);
            }
        }
        let tiebreak = [OrderKey { key: Key::Attribute("name".into()), ascending: true }];
        search::sort(&mut found, &order, &tiebreak);
        let (page, next) = search::paginate(found, max_results, request.text("page_token").as_deref())?;
        let models: Vec<Value> = page.iter().map(RegisteredModel::json).collect();
        Ok(compact(json!({ "registered_models": models, "next_page_token": next })))
    }

    pub(super) fn get_latest_versions(&self, request: &Request) -> Result<Value> {
        let name = request.required("name")?;
        let mut stages = Vec::new();
        for stage in request.strings("stages") {
            stages.push(canonical_stage(&stage)?);
        }
        self.prepare(false)?;
        let model = self.load_model(&name)?;
        let versions: Vec<Value> = model.latest_versions(&stages).into_iter().map(|v| v.json(&model.aliases)).collect();
        Ok(json!({ "model_versions": versions }))
    }

    pub(super) fn set_registered_model_tag(&self, request: &Request) -> Result<Value> {
        let name = request.required("name")?;
        let key = request.required("key")?;
        check_key("key", &key)?;
        let value = request.text("value").unwrap_or_default();
        self.prepare(true)?;
        let mut model = self.load_model(&name)?;
        disk::write_atomic(&disk::value_path(&model.dir, "tags", &key), &model.dir, value.as_bytes())?;
        model.touch()?;
        Ok(json!({}))
    }

    pub(super) fn delete_registered_model_tag(&self, request: &Request) -> Result<Value> {
        let name = request.required("name")?;
        let key = request.required("key")?;
        check_key("key", &key)?;
        self.prepare(true)?;
        let mut model = self.load_model(&name)?;
        if disk::remove_file(&disk::value_path(&model.dir, "tags", &key))? {
            model.touch()?;
        }
        Ok(json!({}))
    }

    pub(super) fn set_alias(&self, request: &Request) -> Result<Value> {
        let name = request.required("name")?;
        let alias = request.required("alias")?;
        let version = request.required("version")?;
        check_alias(&alias)?;
        self.prepare(true)?;
        let (mut model, index) = self.load_version(&name, &version)?;
        let number = model.versions[index].number.to_string();
        disk::write_atomic(&disk::value_path(&model.dir, "aliases", &alias), &model.dir, number.as_bytes())?;
        model.touch()?;
        Ok(json!({}))
    }

    pub(super) fn delete_alias(&self, request: &Request) -> Result<Value> {
        let name = request.required("name")?;
        let alias = request.required("alias")?;
        check_alias(&alias)?;
        self.prepare(true)?;
        let mut model = self.load_model(&name)?;
        if disk::remove_file(&disk::value_path(&model.dir, "aliases", &alias))? {
            model.touch()?;
        }
        Ok(json!({}))
    }

    /// Returns the version an alias points at; `latest` is the newest version.
    pub(super) fn get_model_version_by_alias(&self, request: &Request) -> Result<Value> {
        let name = request.required("name")?;
        let alias = request.required("alias")?;
        self.prepare(false)?;
        let model = self.load_model(&name)?;
        let version = if alias.eq_ignore_ascii_case("latest") {
            model.live_versions().max_by_key(|v| v.number)
        } else {
            let number = model.aliases.iter().find(|(a, _)| *a == alias).map(|(_, v)| v.clone());
            model.live_versions().find(|v| Some(v.number.to_string()) == number)
        };
        // MLflow returns 400, not 404, for a missing alias.
        let version = version.ok_or_else(|| invalid_parameter(format!("Registered model alias {alias} not found.")))?;
        Ok(json!({ "model_version": version.json(&model.aliases) }))
    }

    /// Creates the next version under the store lock: the number is one
    /// more than the largest existing one (deleted versions included), and
    /// the folder is built under a temporary name and renamed into place.
    pub(super) fn create_model_version(&self, request: &Request) -> Result<Value> {
        let name = request.required("name")?;
        check_model_name("name", &name)?;
        let source = request.required("source")?;
        let tags = request.key_values("tags")?;
        for (key, _) in &tags {
            check_key("key", key)?;
        }
        self.prepare(true)?;
        let _lock = disk::lock(&self.root)?;
        let mut model = self.load_model(&name)?;
        let number = model.versions.iter().map(|v| v.number).max().unwrap_or(0) + 1;
        let now = now_millis();
        let nonempty = |key: &str| request.text(key).filter(|t| !t.is_empty());
        let mut meta = Meta::default();
        meta.set("creation_timestamp", now);
        meta.set("current_stage", "None");
        meta.set_opt("description", nonempty("description"));
        meta.set("last_updated_timestamp", now);
        meta.set("name", name.as_str());
        meta.set_opt("run_id", nonempty("run_id"));
        meta.set_opt("run_link", nonempty("run_link"));
        meta.set("source", source.as_str());
        meta.set("status", READY);
        meta.set_opt("status_message", None::<String>);
        meta.set("storage_location", source.as_str());
        meta.set_opt("user_id", None::<String>);
        meta.set("version", number);

        let temp = model.dir.join(disk::temp_name());
        let target = model.dir.join(format!("{VERSION_PREFIX}{number}"));
        let built = (|| {
            disk::create_dir(&temp)?;
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
        model.touch()?;
        let (model, index) = self.load_version(&name, &number.to_string())?;
        Ok(json!({ "model_version": model.versions[index].json(&model.aliases) }))
    }

    pub(super) fn get_model_version(&self, request: &Request) -> Result<Value> {
        let name = request.required("name")?;
        let version = request.required("version")?;
        self.prepare(false)?;
        let (model, index) = self.load_version(&name, &version)?;
        Ok(json!({ "model_version": model.versions[index].json(&model.aliases) }))
    }

    pub(super) fn update_model_version(&self, request: &Request) -> Result<Value> {
        let name = request.required("name")?;
        let version = request.required("version")?;
        self.prepare(true)?;
        let (mut model, index) = self.load_version(&name, &version)?;
        let entry = &mut model.versions[index];
        entry.meta.set_opt("description", request.text("description"));
        entry.touch()?;
        let (model, index) = self.load_version(&name, &version)?;
        Ok(json!({ "model_version": model.versions[index].json(&model.aliases) }))
    }

    /// Marks a version deleted and removes the aliases that point at it.
    pub(super) fn delete_model_version(&self, request: &Request) -> Result<Value> {
        let name = request.required("name")?;
        let version = request.required("version")?;
        self.prepare(true)?;
        let (mut model, index) = self.load_version(&name, &version)?;
        let aliases = model.versions[index].aliases.clone();
        let entry = &mut model.versions[index];
        entry.meta.set("current_stage", DELETED_STAGE);
        entry.touch()?;
        for alias in aliases {
            disk::remove_file(&disk::value_path(&model.dir, "aliases", &alias))?;
        }
        model.touch()?;
        Ok(json!({}))
    }

    pub(super) fn search_model_versions(&self, request: &Request) -> Result<Value> {
        let filter = request.text("filter").unwrap_or_default();
        let clauses = search::parse_filter::<FoundVersion>(&filter)?;
        let order = search::parse_order_by::<FoundVersion>(&request.strings("order_by"))?;
        let max_results = request.max_results(DEFAULT_SEARCH_RESULTS)?;
        self.prepare(false)?;
        let mut found = Vec::new();
        for model in self.all_models()? {
            let model_aliases = model.aliases.clone();
            for version in model.versions.into_iter().filter(|v| !v.is_deleted()) {
                let candidate = FoundVersion { version, model_aliases: model_aliases.clone() };
                if search::matches(&clauses, &candidate, &filter)? {
                    found.push(candidate);
                }
            }
        }
        let tiebreak = [
            OrderKey { key: Key::Attribute("last_updated_timestamp".into()), ascending: false },
            OrderKey { key: Key::Attribute("name".into()), ascending: true },
            OrderKey { key: Key::Attribute("version_number".into()), ascending: false },
        ];
        search::sort(&mut found, &order, &tiebreak);
        let (page, next) = search::paginate(found, max_results, request.text("page_token").as_deref())?;
        let versions: Vec<Value> = page.iter().map(|f| f.version.json(&f.model_aliases)).collect();
        Ok(compact(json!({ "model_versions": versions, "next_page_token": next })))
    }

    /// Moves a version to a stage; with `archive_existing_versions`, the
    /// other versions in that stage (Staging or Production only) are archived.
    pub(super) fn transition_stage(&self, request: &Request) -> Result<Value> {
        let name = request.required("name")?;
        let version = request.required("version")?;
        let stage = canonical_stage(&request.required("stage")?)?;
        let archive = request.flag("archive_existing_versions")?;
        if archive && !matches!(stage, "Staging" | "Production") {
            return Err(invalid_parameter(format!(
                "Model version transition cannot archive existing model versions because '{stage}' is not an \
                 Active stage. Valid stages are Staging, Production"
            )));
        }
        self.prepare(true)?;
        let _lock = disk::lock(&self.root)?;
        let (mut model, index) = self.load_version(&name, &version)?;
        if archive {
            for (i, other) in model.versions.iter_mut().enumerate() {
                if i != index && !other.is_deleted() && other.stage() == stage {
                    other.meta.set("current_stage", "Archived");
                    other.touch()?;
                }
            }
        }
        let entry = &mut model.versions[index];
        entry.meta.set("current_stage", stage);
        entry.touch()?;
        model.touch()?;
        let (model, index) = self.load_version(&name, &version)?;
        Ok(json!({ "model_version": model.versions[index].json(&model.aliases) }))
    }

    pub(super) fn set_model_version_tag(&self, request: &Request) -> Result<Value> {
        let name = request.required("name")?;
        let version = request.required("version")?;
        let key = request.required("key")?;
        check_key("key", &key)?;
        let value = request.text("value").unwrap_or_default();
        self.prepare(true)?;
        let (mut model, index) = self.load_version(&name, &version)?;
        let dir = model.versions[index].dir.clone();
        disk::write_atomic(&disk::value_path(&dir, "tags", &key), &dir, value.as_bytes())?;
        model.touch()?;
        Ok(json!({}))
    }

    pub(super) fn delete_model_version_tag(&self, request: &Request) -> Result<Value> {
        let name = request.required("name")?;
        let version = request.required("version")?;
        let key = request.required("key")?;
        check_key("key", &key)?;
        self.prepare(true)?;
        let (mut model, index) = self.load_version(&name, &version)?;
        if disk::remove_file(&disk::value_path(&model.versions[index].dir, "tags", &key))? {
            model.touch()?;
        }
        Ok(json!({}))
    }

    /// Returns the artifact URI of a version's files. A `runs:/<run>/<path>`
    /// source resolves to the run's artifact URI, or to the MLflow 3 logged
    /// model of that run and name. A `models:/m-<id>` source resolves to
    /// that logged model.
    pub(super) fn get_download_uri(&self, request: &Request) -> Result<Value> {
        let name = request.required("name")?;
        let version = request.required("version")?;
        self.prepare(false)?;
        let (model, index) = self.load_version(&name, &version)?;
        let meta = &model.versions[index].meta;
        let source = meta
            .text("storage_location")
            .filter(|s| !s.is_empty())
            .or_else(|| meta.text("source"))
            .unwrap_or_default();
        Ok(json!({ "artifact_uri": self.resolve_source(&source)? }))
    }

    fn resolve_source(&self, source: &str) -> Result<String> {
        if let Some(rest) = source.strip_prefix("runs:/") {
            let rest = rest.trim_start_matches('/');
            let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
            let path = path.trim_matches('/');
            let (root, experiment_dir) = self.run_artifact_uri(run_id)?;
            let joined = if path.is_empty() { root.clone() } else { format!("{}/{path}", root.trim_end_matches('/')) };
            let exists = crate::uri::file_uri_path(&joined).is_some_and(|p| p.exists());
            if !exists && !path.is_empty() {
                if let Some(location) = self.logged_model_location(None, Some((&experiment_dir, run_id, path)))? {
                    return Ok(location);
                }
            }
            return Ok(joined);
        }
        if let Some(model_id) = source.strip_prefix("models:/").filter(|id| id.starts_with("m-") && !id.contains('/')) {
            if let Some(location) = self.logged_model_location(Some(model_id), None)? {
                return Ok(location);
            }
        }
        Ok(source.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_canonical_and_checked() {
        assert_eq!(canonical_stage("production").unwrap(), "Production");
        assert_eq!(canonical_stage("Prod").unwrap_err().kind(), "api");
    }

    #[test]
    fn aliases_reserve_latest_and_versions() {
        assert!(check_alias("champion").is_ok());
        assert!(check_alias("Latest").is_err());
        assert!(check_alias("v12").is_err());
        assert!(check_alias("a b").is_err());
        assert!(check_alias("v").is_ok());
    }

    #[test]
    fn model_names_cannot_escape_the_folder() {
        for bad in ["", ".", "..", "a/b", "a\\b", "50%"] {
            assert!(check_model_name("name", bad).is_err(), "{bad}");
        }
        assert!(check_model_name("name", "my model-1").is_ok());
    }
}
