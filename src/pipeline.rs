//! Save → log → register → download, composed from the other modules.
//! These are the operations the R package calls.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::artifacts::{self, verify, ArtifactRepository, LocalArtifacts, Transfer};
use crate::cancel::CancelToken;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::model::{format_utc, save_crate_model, MlModel, SaveOptions, MLMODEL_FILE};
use crate::registry::{ModelVersion, NewModelVersion, REGISTRATION_POLL_SECS};
use crate::uri::{check_relative, join_artifact_path, ModelUri, VersionSelector};
use crate::validate::{self, Profile};

/// What [`log_model_dir`] and [`log_crate_model`] return.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedModel {
    pub run_id: String,
    pub artifact_path: String,
    /// `runs:/<run_id>/<artifact_path>`.
    pub model_uri: String,
    /// The artifact URI of the model directory, the source a registry accepts.
    pub artifact_uri: String,
    pub mlmodel: MlModel,
    /// Problems that did not stop the upload, such as a failed
    /// `runs/log-model` call (Python mlflow also only warns there).
    pub warnings: Vec<String>,
}

/// Saves the serialized R function as a model and logs it to a run.
pub fn log_crate_model(client: &Client, run_id: &str, artifact_path: &str, serialized: &[u8]) -> Result<LoggedModel> {
    log_crate_model_with(client, run_id, artifact_path, serialized, &Transfer::from_env()?)
}

/// Like [`log_crate_model`], uploading with the workers and progress of `transfer`.
pub fn log_crate_model_with(
    client: &Client,
    run_id: &str,
    artifact_path: &str,
    serialized: &[u8],
    transfer: &Transfer,
) -> Result<LoggedModel> {
    let (_staging, model_dir) = save_for_logging(run_id, artifact_path, serialized)?;
    log_model_dir_with(client, run_id, &model_dir, artifact_path, transfer)
}

/// Saves the serialized R function, with the run it is logged to, in a new
/// temporary directory; the directory is removed when the guard drops.
fn save_for_logging(run_id: &str, artifact_path: &str, serialized: &[u8]) -> Result<(tempfile::TempDir, PathBuf)> {
    let staging = tempfile::Builder::new()
        .prefix("mlflowreg-log-")
        .tempdir()
        .map_err(|err| Error::io("creating a temporary directory in", std::env::temp_dir(), err))?;
    let model_dir = staging.path().join("model");
    let options = SaveOptions {
        run_id: Some(run_id.to_string()),
        artifact_path: Some(artifact_path.to_string()),
        ..SaveOptions::default()
    };
    save_crate_model(&model_dir, serialized, &options)?;
    Ok((staging, model_dir))
}

/// Uploads a saved model directory into a run's artifacts at
/// `artifact_path` and records it in the run.
///
/// The uploaded `MLmodel` gets the run id, the artifact path and the upload
/// time; the local directory is not modified. `MLmodel` is uploaded after
/// every other file, so an interrupted upload leaves no loadable model, and
/// the upload is then listed back: a file missing or of the wrong size
/// fails with [`Error::IncompleteModel`].
pub fn log_model_dir(client: &Client, run_id: &str, model_dir: &Path, artifact_path: &str) -> Result<LoggedModel> {
    log_model_dir_with(client, run_id, model_dir, artifact_path, &Transfer::from_env()?)
}

/// Like [`log_model_dir`], uploading with the workers and progress of `transfer`.
pub fn log_model_dir_with(
    client: &Client,
    run_id: &str,
    model_dir: &Path,
    artifact_path: &str,
    transfer: &Transfer,
) -> Result<LoggedModel> {
    log_and_register_dir(client, run_id, None, model_dir, artifact_path, None, transfer).map(|(logged, _)| logged)
}

/// A registration to make right after logging a model.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The registered model, created when missing.
    pub name: String,
    pub extra: NewModelVersion,
    /// How long to wait for the version to be READY; zero returns at once.
    pub await_for: Duration,
    /// The registry rules the `MLmodel` is checked against before anything
    /// is registered, as for [`register_model`]: `None` skips the check,
    /// `Some(None)` picks the rules from the tracking URI.
    pub profile: Option<Option<Profile>>,
}

/// Saves the serialized R function as a model, logs it to a run and
/// registers it, in fewer sequential round trips than
/// [`log_crate_model_with`] followed by [`register_model`]. The rule check
/// reads the `MLmodel` in memory, the version's source is the artifact URI
/// of the upload (no `runs/get` to resolve `runs:/`), and the listing that
/// verifies the upload also serves the check before registering.
/// `artifact_root` is the run's artifact URI when the caller knows it (it
/// never changes for a run), which saves the `runs/get` that looks it up.
///
/// The outer error means the model was not logged. Once it is logged, a
/// failed registration (the rule check, the registered model or the
/// version) comes back as the inner error, so the caller can say that the
/// model is in the run. A model that fails the rule check creates no
/// registered model.
#[allow(clippy::too_many_arguments)]
pub fn log_crate_model_and_register(
    client: &Client,
    run_id: &str,
    artifact_root: Option<&str>,
    artifact_path: &str,
    serialized: &[u8],
    registration: &Registration,
    transfer: &Transfer,
) -> Result<(LoggedModel, Result<ModelVersion>)> {
    let (_staging, model_dir) = save_for_logging(run_id, artifact_path, serialized)?;
    let (logged, version) =
        log_and_register_dir(client, run_id, artifact_root, &model_dir, artifact_path, Some(registration), transfer)?;
    Ok((logged, version.expect("a registration was requested")))
}

fn log_and_register_dir(
    client: &Client,
    run_id: &str,
    artifact_root: Option<&str>,
    model_dir: &Path,
    artifact_path: &str,
    registration: Option<&Registration>,
    transfer: &Transfer,
) -> Result<(LoggedModel, Option<Result<ModelVersion>>)> {
    check_artifact_path(artifact_path)?;
    let mut mlmodel = MlModel::read_dir(model_dir)?;
    mlmodel.run_id = Some(run_id.to_string());
    mlmodel.artifact_path = Some(artifact_path.to_string());
    mlmodel.utc_time_created = Some(format_utc(SystemTime::now()));
    let yaml = mlmodel.to_yaml()?;

    let root = match artifact_root.filter(|root| !root.is_empty()) {
        Some(root) => root.to_string(),
        None => run_artifact_root(client, run_id)?,
    };
    let artifact_uri = join_uri(&root, artifact_path);
    let model_uri = format!("runs:/{run_id}/{artifact_path}");
    let repo = artifacts::open(client, &root)?;

    // The rule check reads the MLmodel in memory, the one about to be
    // uploaded, so it costs no request.
    let checked = registration.map(|r| match r.profile {
        None => Ok(()),
        Some(profile) => {
            let profile = profile.unwrap_or_else(|| Profile::for_tracking_uri(client.tracking_uri()));
            validate::require(&mlmodel, profile, &model_uri)
        }
    });

    let uploaded = artifacts::upload_dir_with(repo.as_ref(), model_dir, artifact_path, &[MLMODEL_FILE], transfer)?;
    repo.upload_bytes(yaml.as_bytes(), &join_artifact_path(artifact_path, MLMODEL_FILE))?;
    let found = verify_upload(repo.as_ref(), model_dir, &uploaded, artifact_path, yaml.len() as u64)?;
    let metadata = client.log_model_metadata(run_id, &mlmodel);

    // The listing that verified the upload also shows that the files the
    // MLmodel names are there, so registering needs no second listing.
    let version = registration.zip(checked).map(|(r, checked)| {
        checked?;
        let problems = verify::check_promises(&mlmodel, &found);
        if !problems.is_empty() {
            return Err(Error::IncompleteModel { location: artifact_uri.clone(), problems, outcome: "no version was created" });
        }
        let mut extra = r.extra.clone();
        extra.run_id.get_or_insert_with(|| run_id.to_string());
        create_version(client, &r.name, &artifact_uri, &extra, r.await_for)
    });

    let mut warnings = Vec::new();
    if let Err(err) = metadata {
        tracing::warn!(run_id, error = %err, "recording the model in the run failed");
        warnings.push(format!(
            "The model was uploaded, but recording it in run {run_id} (runs/log-model) failed: {err}"
        ));
    }
    let logged = LoggedModel {
        run_id: run_id.to_string(),
        artifact_path: artifact_path.to_string(),
        model_uri,
        artifact_uri,
        mlmodel,
        warnings,
    };
    Ok((logged, version))
}

/// Lists what arrived below `artifact_path` and fails with
/// [`Error::IncompleteModel`] unless every uploaded file and `MLmodel` is
/// there with its local size. Returns the sizes found, by path relative to
/// `artifact_path`. The directories that received files are listed in
/// parallel, so a model with a `code/` folder costs one round trip, not two.
fn verify_upload(
    repo: &dyn ArtifactRepository,
    model_dir: &Path,
    uploaded: &[String],
    artifact_path: &str,
    mlmodel_size: u64,
) -> Result<std::collections::BTreeMap<String, Option<u64>>> {
    let mut expected = Vec::with_capacity(uploaded.len() + 1);
    for relative in uploaded {
        let local = model_dir.join(relative);
        let size = std::fs::metadata(&local).map_err(|err| Error::io("inspecting", &local, err))?.len();
        expected.push((relative.clone(), size));
    }
    expected.push((MLMODEL_FILE.to_string(), mlmodel_size));
    let mut dirs: Vec<String> = expected
        .iter()
        .map(|(relative, _)| join_artifact_path(artifact_path, relative.rsplit_once('/').map_or("", |(dir, _)| dir)))
        .collect();
    dirs.sort();
    dirs.dedup();
    let listing = std::sync::Mutex::new(Vec::new());
    artifacts::for_each_parallel(&dirs, dirs.len(), |dir| {
        let entries = repo.list(dir)?;
        listing.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).extend(entries);
        Ok(())
    })?;
    let listing = listing.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    let found = verify::sizes_below(&listing, artifact_path);
    let problems = verify::compare_with_expected(&found, &expected);
    if problems.is_empty() {
        return Ok(found);
    }
    Err(Error::IncompleteModel {
        location: join_uri(repo.root_uri(), artifact_path),
        problems,
        outcome: "the model was not recorded in the run and no version was created",
    })
}

fn check_artifact_path(artifact_path: &str) -> Result<()> {
    if artifact_path.trim_matches('/').is_empty() {
        return Err(Error::invalid(
            "artifact_path",
            artifact_path,
            "it is empty; name the folder of the model inside the run, such as \"model\"",
        ));
    }
    check_relative(artifact_path).map_err(|reason| Error::invalid("artifact_path", artifact_path, reason))
}

fn join_uri(root: &str, path: &str) -> String {
    let path = path.trim_matches('/');
    if path.is_empty() {
        root.trim_end_matches('/').to_string()
    } else {
        format!("{}/{path}", root.trim_end_matches('/'))
    }
}

/// Where the files of a model URI are: an artifact root and a path below it.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelLocation {
    Local(PathBuf),
    Remote { artifact_uri: String, run_id: Option<String> },
}

/// Resolves a model URI to the artifact URI of its files.
pub fn resolve_model_uri(client: &Client, model_uri: &str) -> Result<ModelLocation> {
    match ModelUri::parse(model_uri)? {
        ModelUri::Local(path) => Ok(ModelLocation::Local(path)),
        ModelUri::Artifact(uri) => Ok(ModelLocation::Remote { artifact_uri: uri, run_id: None }),
        ModelUri::Run { run_id, path } => {
            let run = client.get_run(&run_id)?;
            let root = run.info.artifact_uri.unwrap_or_default();
            Ok(ModelLocation::Remote {
                artifact_uri: join_uri(&root, &path),
                run_id: Some(run_id),
            })
        }
        ModelUri::Registered { name, selector } => {
            let version = registered_version(client, &name, &selector)?;
            let artifact_uri = client.get_model_version_download_uri(&name, &version.version)?;
            Ok(ModelLocation::Remote { artifact_uri, run_id: version.run_id })
        }
    }
}

fn registered_version(client: &Client, name: &str, selector: &VersionSelector) -> Result<ModelVersion> {
    match selector {
        VersionSelector::Version(version) => client.get_model_version(name, version),
        VersionSelector::Alias(alias) => client.get_model_version_by_alias(name, alias),
        VersionSelector::Stage(stage) => {
            let stages: Vec<&str> = if stage.eq_ignore_ascii_case("latest") { vec![] } else { vec![stage.as_str()] };
            let versions = client.get_latest_versions(name, &stages)?;
            versions
                .into_iter()
                .max_by_key(|v| v.version.parse::<u64>().unwrap_or(0))
                .ok_or_else(|| {
                    Error::invalid(
                        "model URI",
                        format!("models:/{name}/{stage}"),
                        format!("registered model {name:?} has no version in stage {stage:?}"),
                    )
                })
        }
    }
}

/// Makes a model available as a local directory. A local path is returned
/// as it is; anything else is downloaded into a new directory `dest`.
pub fn download_model(client: &Client, model_uri: &str, dest: &Path) -> Result<PathBuf> {
    download_model_with(client, model_uri, dest, &Transfer::from_env()?)
}

/// Like [`download_model`], downloading with the workers and progress of `transfer`.
pub fn download_model_with(client: &Client, model_uri: &str, dest: &Path, transfer: &Transfer) -> Result<PathBuf> {
    match resolve_model_uri(client, model_uri)? {
        ModelLocation::Local(path) => download_model_local(&path, model_uri),
        ModelLocation::Remote { artifact_uri, .. } => {
            let repo: Box<dyn ArtifactRepository> = artifacts::open(client, &artifact_uri)?;
            artifacts::download_dir_with(repo.as_ref(), "", dest, transfer)?;
            if !dest.join(MLMODEL_FILE).is_file() {
                let _ = std::fs::remove_dir_all(dest);
                return Err(Error::invalid(
                    "model URI",
                    model_uri,
                    format!("{artifact_uri} holds no MLmodel file, so it is not an MLflow model"),
                ));
            }
            Ok(dest.to_path_buf())
        }
    }
}

/// Checks that a local path is a model directory and returns it.
pub fn download_model_local(path: &Path, model_uri: &str) -> Result<PathBuf> {
    if !path.join(MLMODEL_FILE).is_file() {
        return Err(Error::invalid(
            "model URI",
            model_uri,
            format!("{} has no MLmodel file, so it is not an MLflow model directory", path.display()),
        ));
    }
    Ok(path.to_path_buf())
}

/// Reads the `MLmodel` of the model at `model_uri` without downloading the
/// rest of it. `client` may be `None` for a local path.
pub fn read_model_mlmodel(client: Option<&Client>, model_uri: &str) -> Result<MlModel> {
    let location = match (ModelUri::parse(model_uri)?, client) {
        (ModelUri::Local(path), _) => ModelLocation::Local(path),
        (_, Some(client)) => resolve_model_uri(client, model_uri)?,
        (_, None) => {
            return Err(Error::Configuration(format!(
                "reading {model_uri} needs a tracking server; set MLFLOW_TRACKING_URI"
            )))
        }
    };
    read_mlmodel_at(client, &location, model_uri)
}

fn read_mlmodel_at(client: Option<&Client>, location: &ModelLocation, model_uri: &str) -> Result<MlModel> {
    let no_mlmodel = |place: &str| {
        Error::invalid(
            "model source",
            model_uri,
            format!("{place} has no MLmodel file, so it is not an MLflow model; give the folder the model was logged to"),
        )
    };
    match location {
        ModelLocation::Local(path) => {
            if !path.join(MLMODEL_FILE).is_file() {
                return Err(no_mlmodel(&path.display().to_string()));
            }
            MlModel::read_dir(path)
        }
        ModelLocation::Remote { artifact_uri, .. } => {
            let client = client.expect("remote locations come from a client");
            let repo = artifacts::open(client, artifact_uri)?;
            let scratch = tempfile::tempdir().map_err(|err| Error::io("creating a temporary directory in", std::env::temp_dir(), err))?;
            let local = scratch.path().join(MLMODEL_FILE);
            match repo.download_file(MLMODEL_FILE, &local) {
                Ok(()) => {}
                Err(err) if err.is_not_found() => return Err(no_mlmodel(artifact_uri)),
                Err(err) => return Err(err),
            }
            let text = std::fs::read_to_string(&local).map_err(|err| Error::io("reading", &local, err))?;
            MlModel::from_yaml(&text, &format!("{artifact_uri}/{MLMODEL_FILE}"))
        }
    }
}

/// Checks a model before a version is created from it: its `MLmodel`
/// against the registry's rules (`profile`: `None` skips this, `Some(None)`
/// picks the rules from the tracking URI), and its files against what the
/// `MLmodel` promises ([`verify::check_promises`]), so a model that only
/// partly arrived is never registered.
fn check_before_registering(
    client: &Client,
    location: &ModelLocation,
    model_uri: &str,
    profile: Option<Option<Profile>>,
) -> Result<()> {
    let repo: Box<dyn ArtifactRepository> = match location {
        ModelLocation::Local(path) => Box::new(LocalArtifacts::new(path, &path.display().to_string())),
        ModelLocation::Remote { artifact_uri, .. } => match artifacts::open(client, artifact_uri) {
            Ok(repo) => repo,
            // Without validation nothing needs the files, so a store this
            // crate cannot read does not stop the registration.
            Err(Error::Unsupported(what)) if profile.is_none() => {
                tracing::warn!(
                    model_uri,
                    "the files of the model were not checked before registering, because {what} is not supported"
                );
                return Ok(());
            }
            Err(err) => return Err(err),
        },
    };
    let model = read_mlmodel_at(Some(client), location, model_uri)?;
    if let Some(profile) = profile {
        let profile = profile.unwrap_or_else(|| Profile::for_tracking_uri(client.tracking_uri()));
        validate::require(&model, profile, model_uri)?;
    }
    let found = verify::sizes_below(&artifacts::list_recursive(repo.as_ref(), "")?, "");
    let problems = verify::check_promises(&model, &found);
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::IncompleteModel {
        location: repo.root_uri().to_string(),
        problems,
        outcome: "no version was created",
    })
}

/// Creates a version of the registered model `name` from `source` after
/// checking its `MLmodel` against `profile` and its files (see
/// [`register_model`]), and waits up to `await_for` for it to be READY.
pub fn create_model_version(
    client: &Client,
    name: &str,
    source: &str,
    extra: &NewModelVersion,
    await_for: Duration,
    profile: Option<Option<Profile>>,
) -> Result<ModelVersion> {
    let location = resolve_model_uri(client, source)?;
    check_before_registering(client, &location, source, profile)?;
    let version = client.create_model_version(name, source, extra)?;
    finish_version(client, version, await_for)
}

/// Waits for the new version; when the call is interrupted, during the
/// wait or right after the create, deletes the version, so an interrupted
/// registration leaves no version behind.
fn finish_version(client: &Client, version: ModelVersion, await_for: Duration) -> Result<ModelVersion> {
    let result = client.cancel_token().check().and_then(|()| {
        if await_for.is_zero() {
            return Ok(version.clone());
        }
        client.wait_for_model_version(version.clone(), await_for, Duration::from_secs(REGISTRATION_POLL_SECS))
    });
    if let Err(Error::Interrupted) = result {
        if let Err(err) = uncancelled(client).delete_model_version(&version.name, &version.version) {
            tracing::warn!(name = %version.name, version = %version.version, error = %err,
                "deleting the model version of an interrupted registration failed");
        }
    }
    result
}

/// A copy of `client` for undoing the work of an interrupted call, which
/// its own cancelled token would stop.
fn uncancelled(client: &Client) -> Client {
    client.with_cancel(CancelToken::new())
}

/// Creates the registered model unless it exists; returns true when this
/// call created it.
fn create_registered_model_if_missing(client: &Client, name: &str) -> Result<bool> {
    match client.create_registered_model(name, &[], None) {
        Ok(_) => Ok(true),
        Err(err) if err.is_already_exists() => Ok(false),
        Err(err) => Err(err),
    }
}

/// Registers the model at `model_uri` as a new version of `name`, like
/// Python's `mlflow.register_model`: checks its `MLmodel` against the
/// registry's rules and its files against what the `MLmodel` promises,
/// creates the registered model when it is missing, resolves `runs:/` URIs
/// to the artifact URI the server accepts, and waits up to `await_for` for
/// the version to become READY (no wait when `await_for` is zero).
///
/// `profile` is `None` to skip the rules check, `Some(None)` to pick the
/// rules from the tracking URI ([`Profile::for_tracking_uri`]), or a
/// profile. An interrupted call deletes the version it created and the
/// registered model when this call created it.
pub fn register_model(
    client: &Client,
    model_uri: &str,
    name: &str,
    mut extra: NewModelVersion,
    await_for: Duration,
    profile: Option<Option<Profile>>,
) -> Result<ModelVersion> {
    let location = resolve_model_uri(client, model_uri)?;
    check_before_registering(client, &location, model_uri, profile)?;
    let source = match location {
        ModelLocation::Local(path) => std::fs::canonicalize(&path)
            .map_err(|err| Error::io("resolving", &path, err))?
            .display()
            .to_string(),
        ModelLocation::Remote { artifact_uri, run_id } => {
            if extra.run_id.is_none() {
                extra.run_id = run_id;
            }
            artifact_uri
        }
    };
    create_version(client, name, &source, &extra, await_for)
}

/// Creates the registered model `name` when missing and a version of it
/// from `source`, and waits up to `await_for` for the version to be READY.
/// A failed or interrupted call leaves nothing registered that it created
/// (see [`finish_version`]).
fn create_version(
    client: &Client,
    name: &str,
    source: &str,
    extra: &NewModelVersion,
    await_for: Duration,
) -> Result<ModelVersion> {
    let created_model = create_registered_model_if_missing(client, name)?;
    let mut version_created = false;
    let result = client.create_model_version(name, source, extra).and_then(|version| {
        version_created = true;
        finish_version(client, version, await_for)
    });
    // A registered model made for a registration that left no version (the
    // create failed, or the call was interrupted and its version deleted)
    // is deleted too, so a failed call leaves nothing registered. A version
    // that failed to become READY is kept with its model, for inspection.
    let nothing_left = !version_created || matches!(result, Err(Error::Interrupted));
    if result.is_err() && created_model && nothing_left {
        if let Err(err) = uncancelled(client).delete_registered_model(name) {
            tracing::warn!(name, error = %err, "deleting the registered model of a failed registration failed");
        }
    }
    result
}

/// What [`repair_model`] did.
#[derive(Debug, Clone, Serialize)]
pub struct RepairedModel {
    /// The artifact URI to register, the same folder the model was in.
    pub source: String,
    pub run_id: Option<String>,
    /// Paths, relative to the model folder, that were uploaded; empty when
    /// the model needed no change.
    pub uploaded: Vec<String>,
}

/// Adds the `python_function` flavor and its loader files to an R `crate`
/// model that R mlflow logged, in place, so strict registries accept it.
///
/// Only files that are missing or differ are uploaded, and `MLmodel` last,
/// so running it again uploads nothing. Works on logged models (`runs:/`,
/// artifact URIs, `models:/`) and on local model directories.
pub fn repair_model(client: Option<&Client>, model_uri: &str) -> Result<RepairedModel> {
    let location = match (ModelUri::parse(model_uri)?, client) {
        (ModelUri::Local(path), _) => ModelLocation::Local(path),
        (_, Some(client)) => resolve_model_uri(client, model_uri)?,
        (_, None) => {
            return Err(Error::Configuration(format!(
                "repairing {model_uri} needs a tracking server; set MLFLOW_TRACKING_URI"
            )))
        }
    };
    let mut mlmodel = read_mlmodel_at(client, &location, model_uri)?;
    let crate_flavor = mlmodel.crate_flavor()?.ok_or_else(|| {
        Error::invalid(
            "model URI",
            model_uri,
            "the model has no crate flavor, so it is not an R model this package can repair",
        )
    })?;
    let python_version = mlmodel
        .pyfunc_flavor()
        .ok()
        .flatten()
        .and_then(|f| f.python_version)
        .unwrap_or_else(|| crate::model::DEFAULT_PYTHON_VERSION.to_string());
    let mut wanted = crate::model::pyfunc_support_files(&python_version);

    let mut flavor = crate::model::pyfunc_flavor(&python_version);
    flavor.data = Some(crate_flavor.model.clone());
    let before = mlmodel.to_yaml()?;
    mlmodel.set_flavor(crate::model::PYFUNC_FLAVOR, &flavor)?;
    let after = mlmodel.to_yaml()?;
    if before != after {
        wanted.push((MLMODEL_FILE.to_string(), after));
    }

    match location {
        ModelLocation::Local(path) => {
            let mut uploaded = Vec::new();
            for (relative, contents) in &wanted {
                let target = path.join(relative);
                if std::fs::read_to_string(&target).ok().as_deref() == Some(contents.as_str()) {
                    continue;
                }
                write_atomically(&target, contents)?;
                uploaded.push(relative.clone());
            }
            Ok(RepairedModel {
                source: std::fs::canonicalize(&path).unwrap_or(path).display().to_string(),
                run_id: mlmodel.run_id.clone(),
                uploaded,
            })
        }
        ModelLocation::Remote { artifact_uri, run_id } => {
            let client = client.expect("remote locations come from a client");
            let repo = artifacts::open(client, &artifact_uri)?;
            let scratch = tempfile::tempdir().map_err(|err| Error::io("creating a temporary directory in", std::env::temp_dir(), err))?;
            let mut uploaded = Vec::new();
            // `wanted` ends with MLmodel when it changed, so it goes up last.
            for (index, (relative, contents)) in wanted.iter().enumerate() {
                let copy = scratch.path().join(format!("existing-{index}"));
                let same = match repo.download_file(relative, &copy) {
                    Ok(()) => std::fs::read(&copy).ok().as_deref() == Some(contents.as_bytes()),
                    Err(err) if err.is_not_found() => false,
                    Err(err) => return Err(err),
                };
                if !same {
                    repo.upload_bytes(contents.as_bytes(), relative)?;
                    uploaded.push(relative.clone());
                }
            }
            Ok(RepairedModel {
                source: artifact_uri,
                run_id: run_id.or(mlmodel.run_id.clone()),
                uploaded,
            })
        }
    }
}

fn write_atomically(target: &Path, contents: &str) -> Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|err| Error::io("creating", dir, err))?;
    let part = tempfile::NamedTempFile::new_in(dir).map_err(|err| Error::io("creating a file in", dir, err))?;
    std::fs::write(part.path(), contents).map_err(|err| Error::io("writing", part.path(), err))?;
    part.persist(target).map_err(|err| Error::io("renaming into", target, err.error))?;
    Ok(())
}

/// Uploads a local file or directory into a run's artifacts, as R mlflow's
/// `mlflow_log_artifact()` does: a file goes to `<artifact_path>/<file
/// name>`, a directory's contents go under `artifact_path`. Returns the
/// uploaded artifact paths.
pub fn log_artifact(client: &Client, run_id: &str, local: &Path, artifact_path: &str) -> Result<Vec<String>> {
    log_artifact_with(client, run_id, local, artifact_path, &Transfer::from_env()?)
}

/// Lists the artifacts directly under `path` of a run.
pub fn list_artifacts(client: &Client, run_id: &str, path: &str) -> Result<Vec<artifacts::FileInfo>> {
    run_artifacts(client, run_id)?.list(path)
}

/// Downloads the artifact file or directory at `path` of a run to `dest`,
/// which must not exist yet.
pub fn download_artifacts(client: &Client, run_id: &str, path: &str, dest: &Path) -> Result<PathBuf> {
    download_artifacts_with(client, run_id, path, dest, &Transfer::from_env()?)
}

fn run_artifacts(client: &Client, run_id: &str) -> Result<Box<dyn ArtifactRepository>> {
    let run = client.get_run(run_id)?;
    let root = run.info.artifact_uri.filter(|u| !u.is_empty()).ok_or_else(|| {
        Error::Configuration(format!("run {run_id} has no artifact_uri; the server did not assign an artifact store"))
    })?;
    artifacts::open(client, &root)
}

/// Returns the artifact root URI of a run.
fn run_artifact_root(client: &Client, run_id: &str) -> Result<String> {
    let run = client.get_run(run_id)?;
    run.info.artifact_uri.filter(|u| !u.is_empty()).ok_or_else(|| {
        Error::Configuration(format!("run {run_id} has no artifact_uri; the server did not assign an artifact store"))
    })
}

/// Like [`log_artifact`], uploading with the workers and progress of `transfer`.
pub fn log_artifact_with(
    client: &Client,
    run_id: &str,
    local: &Path,
    artifact_path: &str,
    transfer: &Transfer,
) -> Result<Vec<String>> {
    check_relative(artifact_path).map_err(|reason| Error::invalid("artifact_path", artifact_path, reason))?;
    let metadata = std::fs::metadata(local).map_err(|err| Error::io("reading", local, err))?;
    if metadata.is_dir() {
        // Rejects links leaving the directory before the server is contacted.
        artifacts::local_files(local)?;
    }
    let repo = run_artifacts(client, run_id)?;
    artifacts::upload_path(repo.as_ref(), local, artifact_path, transfer)
}

/// Like [`download_artifacts`], downloading with the workers and progress
/// of `transfer`.
pub fn download_artifacts_with(
    client: &Client,
    run_id: &str,
    path: &str,
    dest: &Path,
    transfer: &Transfer,
) -> Result<PathBuf> {
    check_relative(path).map_err(|reason| Error::invalid("path", path, reason))?;
    let repo = run_artifacts(client, run_id)?;
    artifacts::download_dir_with(repo.as_ref(), path, dest, transfer)?;
    Ok(dest.to_path_buf())
}
