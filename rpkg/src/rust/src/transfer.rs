//! Exports that move artifact files, with an optional progress callback.
//!
//! R may only be called from the thread R runs on. So the transfer runs on
//! a worker thread and this (R's) thread waits for it in steps of
//! [`POLL_INTERVAL`]. After each step it looks for a user interrupt
//! (Ctrl-C), which cancels the client's token as `interrupt::run` does,
//! and calls the R progress function, when there is one, with the
//! counters. A progress function that fails also cancels the transfer.

use std::os::raw::c_int;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use extendr_api::prelude::*;
use mlflowreg::artifacts::{Progress, ProgressSnapshot, Transfer};
use mlflowreg::cancel::CancelToken;
use mlflowreg::{pipeline, Client, Error};

use crate::{client, json};

extern "C" {
    // Defined in interrupt.c; consumes a pending interrupt.
    fn mlflowreg_interrupt_pending() -> c_int;
}

/// Time between two looks at the worker (and calls of the progress function).
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long R waits for the worker after an interrupt before returning, as
/// in `interrupt::run`.
const GRACE: Duration = Duration::from_millis(750);

/// Calls `callback(done_bytes, total_bytes, done_files, total_files, finished)`.
fn report(callback: &Function, snapshot: ProgressSnapshot, finished: bool) -> extendr_api::Result<Robj> {
    callback.call(Pairlist::from_pairs([
        ("", Robj::from(snapshot.done_bytes as f64)),
        ("", Robj::from(snapshot.total_bytes as f64)),
        ("", Robj::from(snapshot.done_files as f64)),
        ("", Robj::from(snapshot.total_files as f64)),
        ("", Robj::from(finished)),
    ]))
}

/// Runs `task` with a client that a Ctrl-C cancels and a [`Transfer`] from
/// the environment, reporting to `progress` when it is an R function.
fn with_progress<T: Send + 'static>(
    tracking_uri: &str,
    origin: &str,
    progress: Robj,
    task: impl FnOnce(Client, &Transfer) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let cancel = CancelToken::new();
    let client = client(tracking_uri, origin)?.with_cancel(cancel.clone());
    let mut transfer = Transfer::from_env()?;
    let callback: Option<Function> = progress.try_into().ok();
    let counters = Progress::new();
    if let Some(callback) = &callback {
        transfer.progress = Some(counters.clone());
        // A first call before any work, so a callback that fails stops the
        // transfer before it starts.
        if report(callback, counters.snapshot(), false).is_err() {
            return Err(Error::Cancelled("the progress function failed".into()));
        }
    }

    let (sender, receiver) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("mlflowreg-transfer".into())
        .spawn(move || {
            // The receiver is gone when R already returned after an interrupt.
            let _ = sender.send(task(client, &transfer));
        })
        .map_err(|err| Error::Configuration(format!("starting a worker thread failed: {err}")))?;

    let mut callback_failed = false;
    loop {
        match receiver.recv_timeout(POLL_INTERVAL) {
            Ok(result) => {
                if let (Some(callback), false) = (&callback, callback_failed) {
                    let _ = report(callback, counters.snapshot(), true);
                }
                return match result {
                    Err(Error::Interrupted) if callback_failed => {
                        Err(Error::Cancelled("the progress function failed".into()))
                    }
                    other => other,
                };
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // SAFETY: this runs on R's main thread, the only caller of the exports.
                if unsafe { mlflowreg_interrupt_pending() } != 0 {
                    cancel.cancel();
                    break;
                }
                if let (Some(callback), false) = (&callback, callback_failed) {
                    if report(callback, counters.snapshot(), false).is_err() {
                        cancel.cancel();
                        counters.cancel();
                        callback_failed = true;
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Configuration("the transfer's worker thread ended without a result".into()));
            }
        }
    }
    match receiver.recv_timeout(GRACE) {
        Ok(result) => result,
        Err(_) => Err(Error::Interrupted),
    }
}

/// Uploads a local file or directory into a run's artifacts; returns the
/// uploaded artifact paths as JSON.
#[extendr]
fn log_artifact_(tracking_uri: &str, origin: &str, run_id: &str, path: &str, artifact_path: &str, progress: Robj) -> Robj {
    let (run_id, path, artifact_path) = (run_id.to_string(), path.to_string(), artifact_path.to_string());
    json(with_progress(tracking_uri, origin, progress, move |client, transfer| {
        pipeline::log_artifact_with(&client, &run_id, Path::new(&path), &artifact_path, transfer)
    }))
}

/// Downloads a run's artifact path into `dest`; returns `dest` as JSON.
#[extendr]
fn download_artifacts_(tracking_uri: &str, origin: &str, run_id: &str, path: &str, dest: &str, progress: Robj) -> Robj {
    let (run_id, path, dest) = (run_id.to_string(), path.to_string(), dest.to_string());
    json(with_progress(tracking_uri, origin, progress, move |client, transfer| {
        pipeline::download_artifacts_with(&client, &run_id, &path, Path::new(&dest), transfer)
    }))
}

/// Saves the serialized function as a model and logs it to a run, as
/// `log_model_` does, with progress.
#[extendr]
fn log_model_transfer_(
    tracking_uri: &str,
    origin: &str,
    run_id: &str,
    artifact_path: &str,
    serialized: Raw,
    progress: Robj,
) -> Robj {
    let bytes = serialized.as_slice().to_vec();
    let (run_id, artifact_path) = (run_id.to_string(), artifact_path.to_string());
    json(with_progress(tracking_uri, origin, progress, move |client, transfer| {
        pipeline::log_crate_model_with(&client, &run_id, &artifact_path, &bytes, transfer)
    }))
}

/// Logs the serialized function as a model and registers it under `name`,
/// waiting up to `await_secs` for READY. `artifact_root` is the run's
/// artifact URI, or `""` to look it up; `profile` is as for
/// `register_model_`. Returns `{logged, model_version, registration_error}`,
/// where a failed registration of a logged model fills
/// `registration_error` with the fields of an error record instead of
/// failing the call.
#[extendr]
#[allow(clippy::too_many_arguments)]
fn log_model_register_transfer_(
    tracking_uri: &str,
    origin: &str,
    run_id: &str,
    artifact_root: &str,
    artifact_path: &str,
    serialized: Raw,
    name: &str,
    await_secs: f64,
    profile: &str,
    progress: Robj,
) -> Robj {
    let bytes = serialized.as_slice().to_vec();
    let (run_id, artifact_root, artifact_path) = (run_id.to_string(), artifact_root.to_string(), artifact_path.to_string());
    json((|| {
        let registration = pipeline::Registration {
            name: name.to_string(),
            extra: Default::default(),
            await_for: if await_secs.is_finite() && await_secs > 0.0 {
                Duration::from_secs_f64(await_secs)
            } else {
                Duration::ZERO
            },
            profile: crate::profile_choice(profile)?,
        };
        let (logged, version) = with_progress(tracking_uri, origin, progress, move |client, transfer| {
            let root = (!artifact_root.is_empty()).then_some(artifact_root.as_str());
            pipeline::log_crate_model_and_register(&client, &run_id, root, &artifact_path, &bytes, &registration, transfer)
        })?;
        Ok(match version {
            Ok(version) => serde_json::json!({ "logged": logged, "model_version": version }),
            // An interrupt while registering stops the call, as elsewhere.
            Err(Error::Interrupted) => return Err(Error::Interrupted),
            Err(err) => serde_json::json!({
                "logged": logged,
                "registration_error": {
                    "kind": err.kind(),
                    "message": err.to_string(),
                    "status": err.status(),
                    "error_code": err.error_code().unwrap_or(""),
                },
            }),
        })
    })())
}

/// Downloads a model as `download_model_` does, with progress.
#[extendr]
fn download_model_transfer_(tracking_uri: &str, origin: &str, model_uri: &str, dest: &str, progress: Robj) -> Robj {
    json((|| {
        if let mlflowreg::uri::ModelUri::Local(path) = mlflowreg::uri::ModelUri::parse(model_uri)? {
            return pipeline::download_model_local(&path, model_uri);
        }
        let (model_uri, dest) = (model_uri.to_string(), dest.to_string());
        with_progress(tracking_uri, origin, progress, move |client, transfer| {
            pipeline::download_model_with(&client, &model_uri, Path::new(&dest), transfer)
        })
    })())
}

extendr_module! {
    mod transfer;
    fn log_artifact_;
    fn download_artifacts_;
    fn log_model_transfer_;
    fn log_model_register_transfer_;
    fn download_model_transfer_;
}
