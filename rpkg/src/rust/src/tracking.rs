//! Dispatch of the tracking operations behind the `tracking_` export, so
//! each thin R wrapper needs no export of its own.

use mlflowreg::tracking::{Metric, Param, Tag};
use mlflowreg::{pipeline, Client, Error};
use serde::Deserialize;
use serde_json::{json, Value};


/// Every argument any tracking operation takes; each operation reads its own.
#[derive(Deserialize, Default)]
struct Args {
    experiment_id: Option<String>,
    experiment_ids: Option<Vec<String>>,
    run_id: Option<String>,
    new_name: Option<String>,
    key: Option<String>,
    value: Option<String>,
    path: Option<String>,
    artifact_path: Option<String>,
    dest: Option<String>,
    filter: Option<String>,
    view_type: Option<String>,
    order_by: Option<Vec<String>>,
    max_results: Option<usize>,
    page_token: Option<String>,
    metrics: Option<Vec<Metric>>,
    params: Option<Vec<Param>>,
    tags: Option<Vec<Tag>>,
}

fn required<'a>(value: &'a Option<String>, name: &'static str, operation: &str) -> Result<&'a str, Error> {
    value.as_deref().ok_or_else(|| Error::InvalidArgument {
        name,
        value: String::new(),
        reason: format!("{operation} needs it"),
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|err| Error::Unsupported(format!("encoding the result as JSON ({err})")))
}

/// Runs `operation` with the arguments in `args_json` and returns its
/// result as JSON.
pub(crate) fn run(client: &Client, operation: &str, args_json: &str) -> Result<Value, Error> {
    let args: Args = serde_json::from_str(args_json).map_err(|err| Error::InvalidArgument {
        name: "tracking arguments",
        value: args_json.to_string(),
        reason: err.to_string(),
    })?;
    dispatch(client, operation, &args)
}

fn dispatch(client: &Client, operation: &str, args: &Args) -> Result<Value, Error> {
    let experiment_id = || required(&args.experiment_id, "experiment_id", operation);
    let run_id = || required(&args.run_id, "run_id", operation);
    let key = || required(&args.key, "key", operation);
    let order_by = args.order_by.clone().unwrap_or_default();
    let done = |()| json!({});

    match operation {
        "get_experiment" => to_json(&client.get_experiment(experiment_id()?)?),
        "delete_experiment" => client.delete_experiment(experiment_id()?).map(done),
        "restore_experiment" => client.restore_experiment(experiment_id()?).map(done),
        "rename_experiment" => client
            .rename_experiment(experiment_id()?, required(&args.new_name, "new_name", operation)?)
            .map(done),
        "set_experiment_tag" => client
            .set_experiment_tag(experiment_id()?, key()?, args.value.as_deref().unwrap_or(""))
            .map(done),
        "search_experiments" => {
            let (experiments, token) = client.search_experiments(
                args.filter.as_deref(),
                args.view_type.as_deref().unwrap_or("ACTIVE_ONLY"),
                &order_by,
                args.max_results,
                args.page_token.as_deref(),
            )?;
            Ok(json!({ "experiments": to_json(&experiments)?, "next_page_token": token }))
        }
        "search_runs" => {
            let (runs, token) = client.search_runs(
                args.experiment_ids.as_deref().unwrap_or_default(),
                args.filter.as_deref(),
                args.view_type.as_deref().unwrap_or("ACTIVE_ONLY"),
                &order_by,
                args.max_results,
                args.page_token.as_deref(),
            )?;
            Ok(json!({ "runs": to_json(&runs)?, "next_page_token": token }))
        }
        "delete_run" => client.delete_run(run_id()?).map(done),
        "restore_run" => client.restore_run(run_id()?).map(done),
        "set_tag" => client.set_tag(run_id()?, key()?, args.value.as_deref().unwrap_or("")).map(done),
        "delete_tag" => client.delete_tag(run_id()?, key()?).map(done),
        "log_param" => client.log_param(run_id()?, key()?, args.value.as_deref().unwrap_or("")).map(done),
        "log_batch" => client
            .log_batch(
                run_id()?,
                args.metrics.as_deref().unwrap_or_default(),
                args.params.as_deref().unwrap_or_default(),
                args.tags.as_deref().unwrap_or_default(),
            )
            .map(done),
        "get_metric_history" => to_json(&client.get_metric_history(run_id()?, key()?)?),
        "log_artifact" => {
            let local = std::path::Path::new(required(&args.path, "path", operation)?);
            to_json(&pipeline::log_artifact(client, run_id()?, local, args.artifact_path.as_deref().unwrap_or(""))?)
        }
        "list_artifacts" => to_json(&pipeline::list_artifacts(client, run_id()?, args.path.as_deref().unwrap_or(""))?),
        "download_artifacts" => {
            let dest = std::path::Path::new(required(&args.dest, "dest", operation)?);
            let local = pipeline::download_artifacts(client, run_id()?, args.path.as_deref().unwrap_or(""), dest)?;
            Ok(json!(local.display().to_string()))
        }
        other => Err(Error::InvalidArgument {
            name: "tracking operation",
            value: other.to_string(),
            reason: "it is not a tracking operation this package knows".into(),
        }),
    }
}
