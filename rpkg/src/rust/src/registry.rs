//! Dispatch of the registry operations behind the `registry_` export, so
//! each thin R wrapper needs no export of its own.

use mlflowreg::{Client, Error};
use serde::Deserialize;
use serde_json::{json, Value};


/// Every argument any registry operation takes; each operation reads its own.
#[derive(Deserialize, Default)]
struct Args {
    name: Option<String>,
    new_name: Option<String>,
    version: Option<String>,
    description: Option<String>,
    key: Option<String>,
    value: Option<String>,
    alias: Option<String>,
    stage: Option<String>,
    archive_existing_versions: Option<bool>,
    stages: Option<Vec<String>>,
    filter: Option<String>,
    order_by: Option<Vec<String>>,
    max_results: Option<usize>,
    page_token: Option<String>,
}

fn required<'a>(value: &'a Option<String>, name: &'static str, operation: &str) -> Result<&'a str, Error> {
    value.as_deref().ok_or_else(|| Error::InvalidArgument {
        name,
        value: String::new(),
        reason: format!("{operation} needs it"),
    })
}

/// Runs `operation` with the arguments in `args_json` and returns its
/// result as JSON.
pub(crate) fn run(client: &Client, operation: &str, args_json: &str) -> Result<Value, Error> {
    let args: Args = serde_json::from_str(args_json).map_err(|err| Error::InvalidArgument {
        name: "registry arguments",
        value: args_json.to_string(),
        reason: err.to_string(),
    })?;
    dispatch(client, operation, &args)
}

fn dispatch(client: &Client, operation: &str, args: &Args) -> Result<Value, Error> {
    let name = || required(&args.name, "name", operation);
    let version = || required(&args.version, "version", operation);
    let key = || required(&args.key, "key", operation);
    let alias = || required(&args.alias, "alias", operation);
    let order_by = args.order_by.clone().unwrap_or_default();
    let done = |()| json!({});

    match operation {
        "get_registered_model" => to_json(&client.get_registered_model(name()?)?),
        "rename_registered_model" => {
            to_json(&client.rename_registered_model(name()?, required(&args.new_name, "new_name", operation)?)?)
        }
        "update_registered_model" => {
            to_json(&client.update_registered_model(name()?, args.description.as_deref().unwrap_or(""))?)
        }
        "delete_registered_model" => client.delete_registered_model(name()?).map(done),
        "set_registered_model_tag" => client
            .set_registered_model_tag(name()?, key()?, args.value.as_deref().unwrap_or(""))
            .map(done),
        "delete_registered_model_tag" => client.delete_registered_model_tag(name()?, key()?).map(done),
        "search_registered_models" => {
            let (models, token) = client.search_registered_models(
                args.filter.as_deref(),
                &order_by,
                args.max_results,
                args.page_token.as_deref(),
            )?;
            Ok(json!({ "registered_models": to_json(&models)?, "next_page_token": token }))
        }
        "get_latest_versions" => {
            let stages: Vec<&str> = args.stages.iter().flatten().map(String::as_str).collect();
            to_json(&client.get_latest_versions(name()?, &stages)?)
        }
        "update_model_version" => to_json(&client.update_model_version(
            name()?,
            version()?,
            args.description.as_deref().unwrap_or(""),
        )?),
        "delete_model_version" => client.delete_model_version(name()?, version()?).map(done),
        "search_model_versions" => {
            let (versions, token) = client.search_model_versions(
                args.filter.as_deref(),
                &order_by,
                args.max_results,
                args.page_token.as_deref(),
            )?;
            Ok(json!({ "model_versions": to_json(&versions)?, "next_page_token": token }))
        }
        "transition_model_version_stage" => to_json(&client.transition_model_version_stage(
            name()?,
            version()?,
            required(&args.stage, "stage", operation)?,
            args.archive_existing_versions.unwrap_or(false),
        )?),
        "set_model_version_tag" => client
            .set_model_version_tag(name()?, version()?, key()?, args.value.as_deref().unwrap_or(""))
            .map(done),
        "delete_model_version_tag" => client.delete_model_version_tag(name()?, version()?, key()?).map(done),
        "get_model_version_download_uri" => {
            Ok(json!(client.get_model_version_download_uri(name()?, version()?)?))
        }
        "set_registered_model_alias" => client.set_registered_model_alias(name()?, alias()?, version()?).map(done),
        "delete_registered_model_alias" => client.delete_registered_model_alias(name()?, alias()?).map(done),
        "get_model_version_by_alias" => to_json(&client.get_model_version_by_alias(name()?, alias()?)?),
        other => Err(Error::InvalidArgument {
            name: "registry operation",
            value: other.to_string(),
            reason: "it is not a registry operation this package knows".into(),
        }),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|err| Error::Unsupported(format!("encoding the result as JSON ({err})")))
}
