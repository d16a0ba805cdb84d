# The model registry.

new_model_version <- function(version) {
  structure(version, class = "mlflow_model_version")
}

new_registered_model <- function(model) {
  model$latest_versions <- lapply(model$latest_versions, new_model_version)
  structure(model, class = "mlflow_registered_model")
}

# Runs a registry operation of the Rust core with named arguments; NULL
# arguments are left out.
registry_call <- function(operation, client, ..., call = rlang::caller_env()) {
  args <- Filter(Negate(is.null), list(...))
  body <- as.character(jsonlite::toJSON(args, auto_unbox = TRUE, null = "null"))
  rust_json(invoke_rust(client, registry_, operation, body), call = call)
}

# The R side's `profile` argument as the Rust exports take it.
profile_arg <- function(profile, arg = rlang::caller_arg(profile), call = rlang::caller_env()) {
  if (is.null(profile)) {
    return("")
  }
  check_string(profile, arg = arg, call = call)
  allowed <- c("mlflow", "azureml", "databricks-uc", "none")
  if (!profile %in% allowed) {
    abort_argument(arg, sprintf("one of %s, or NULL", paste0('"', allowed, '"', collapse = ", ")),
      profile, call)
  }
  profile
}

#' Create a registered model
#'
#' Creates an empty registered model, to which [mlflow_create_model_version()]
#' adds versions. [mlflow_register_model()] and [mlflow_log_model()] create
#' it when missing, so this is needed only to set tags or a description
#' first.
#'
#' @param name A non-empty string: the registered model's name. No default.
#' @param tags A named list (or named character vector) of scalar tag
#'   values, or `NULL` (default) for none.
#' @param description A string, or `NULL` (default) for none.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the default client.
#' @return The registered model: a list of class `mlflow_registered_model`
#'   with the server's fields (`name`, `creation_timestamp`, `description`,
#'   `latest_versions`, `tags`, `aliases`, ...).
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type.
#' * `mlflowreg_error_already_exists`: a registered model of that name
#'   exists.
#' * `mlflowreg_error_unreachable`: the server could not be reached.
#' * `mlflowreg_error_api`: the server rejected the request; `status` and
#'   `error_code` say why.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' name <- "mlflowreg-example-registered"
#' model <- tryCatch(
#'   mlflow_create_registered_model(name, tags = list(team = "pricing"),
#'     description = "Linear model of fuel use"),
#'   mlflowreg_error_already_exists = function(e) mlflow_get_registered_model(name)
#' )
#' model
#' @export
mlflow_create_registered_model <- function(name, tags = NULL, description = NULL, client = NULL) {
  check_model_name(name)
  check_string(description, allow_null = TRUE)
  tags <- tags_json(tags)
  client <- resolve_client(client)
  new_registered_model(rust_call(create_registered_model_, client, name, tags, description %||% ""))
}

#' Get a registered model
#'
#' @inheritParams mlflow_create_registered_model
#' @return The registered model: a list of class `mlflow_registered_model`,
#'   as [mlflow_create_registered_model()] returns it, with the latest
#'   version of each stage in `latest_versions` and the `aliases`.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type.
#' * `mlflowreg_error_not_found`: no registered model has that name.
#' * `mlflowreg_error_unreachable`: the server could not be reached.
#' * `mlflowreg_error_api`: the server rejected the request; `status` and
#'   `error_code` say why.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' name <- "mlflowreg-example-registered"
#' model <- tryCatch(
#'   mlflow_get_registered_model(name),
#'   mlflowreg_error_not_found = function(e) mlflow_create_registered_model(name)
#' )
#' model$name
#' @export
mlflow_get_registered_model <- function(name, client = NULL) {
  check_string(name)
  new_registered_model(rust_call(get_registered_model_, resolve_client(client), name))
}

#' Rename a registered model
#'
#' Its versions move with it; `models:/` URIs must then use the new name.
#'
#' @param name A non-empty string: the registered model. No default.
#' @param new_name A non-empty string: the new name. No default.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the default client.
#' @return The renamed registered model, of class `mlflow_registered_model`.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type.
#' * `mlflowreg_error_not_found`: the registered model does not exist.
#' * `mlflowreg_error_already_exists`: `new_name` is taken.
#' * `mlflowreg_error_unreachable`: the server could not be reached.
#' * `mlflowreg_error_authentication`: an Azure ML token is missing,
#'   expired or could not be renewed.
#' * `mlflowreg_error_api`: the server rejected the request; `status` and
#'   `error_code` say why.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' name <- basename(tempfile("mlflowreg-example-"))
#' mlflow_create_registered_model(name)
#' mlflow_rename_registered_model(name, paste0(name, "-renamed"))
#' mlflow_delete_registered_model(paste0(name, "-renamed"))
#' @export
mlflow_rename_registered_model <- function(name, new_name, client = NULL) {
  check_string(name)
  check_model_name(new_name)
  new_registered_model(registry_call("rename_registered_model", resolve_client(client),
    name = name, new_name = new_name))
}

#' Update a registered model's description
#'
#' @param name A non-empty string: the registered model. No default.
#' @param description A string: the new description. No default.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the default client.
#' @return The updated registered model, of class `mlflow_registered_model`.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type.
#' * `mlflowreg_error_not_found`: the registered model does not exist.
#' * `mlflowreg_error_unreachable`: the server could not be reached.
#' * `mlflowreg_error_authentication`: an Azure ML token is missing,
#'   expired or could not be renewed.
#' * `mlflowreg_error_api`: the server rejected the request; `status` and
#'   `error_code` say why.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' name <- "mlflowreg-example-registered"
#' tryCatch(mlflow_create_registered_model(name),
#'   mlflowreg_error_already_exists = function(e) NULL)
#' mlflow_update_registered_model(name, "Linear models of fuel use")
#' @export
mlflow_update_registered_model <- function(name, description, client = NULL) {
  check_string(name)
  if (!is.character(description) || length(description) != 1 || is.na(description)) {
    abort_argument("description", "a string", description, rlang::current_env())
  }
  new_registered_model(registry_call("update_registered_model", resolve_client(client),
    name = name, description = description))
}

#' Delete a registered model and all its versions
#'
#' The server deletes the versions' registry entries; the run artifacts
#' they point at stay.
#'
#' @param name A non-empty string: the registered model. No default.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the default client.
#' @return `NULL`, invisibly.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type.
#' * `mlflowreg_error_not_found`: the registered model does not exist.
#' * `mlflowreg_error_unreachable`: the server could not be reached.
#' * `mlflowreg_error_authentication`: an Azure ML token is missing,
#'   expired or could not be renewed.
#' * `mlflowreg_error_api`: the server rejected the request; `status` and
#'   `error_code` say why.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' name <- basename(tempfile("mlflowreg-example-"))
#' mlflow_create_registered_model(name)
#' mlflow_delete_registered_model(name)
#' @export
mlflow_delete_registered_model <- function(name, client = NULL) {
  check_string(name)
  registry_call("delete_registered_model", resolve_client(client), name = name)
  invisible(NULL)
}

#' Set or delete a tag of a registered model
#'
#' @param name A non-empty string: the registered model. No default.
#' @param key A non-empty string: the tag key. No default.
#' @param value A single non-`NA` value, sent as a string. No default.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the default client.
#' @return `NULL`, invisibly.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type.
#' * `mlflowreg_error_not_found`: the registered model does not exist.
#' * `mlflowreg_error_unreachable`: the server could not be reached.
#' * `mlflowreg_error_authentication`: an Azure ML token is missing,
#'   expired or could not be renewed.
#' * `mlflowreg_error_api`: the server rejected the request; `status` and
#'   `error_code` say why.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' name <- "mlflowreg-example-registered"
#' tryCatch(mlflow_create_registered_model(name),
#'   mlflowreg_error_already_exists = function(e) NULL)
#' mlflow_set_registered_model_tag(name, "team", "pricing")
#' mlflow_get_registered_model(name)
#' mlflow_delete_registered_model_tag(name, "team")
#' @export
mlflow_set_registered_model_tag <- function(name, key, value, client = NULL) {
  check_string(name)
  check_string(key)
  value <- scalar_text(value)
  registry_call("set_registered_model_tag", resolve_client(client), name = name, key = key, value = value)
  invisible(NULL)
}

#' @rdname mlflow_set_registered_model_tag
#' @export
mlflow_delete_registered_model_tag <- function(name, key, client = NULL) {
  check_string(name)
  check_string(key)
  registry_call("delete_registered_model_tag", resolve_client(client), name = name, key = key)
  invisible(NULL)
}

#' Search registered models
#'
#' Unlike R mlflow, this sends a GET request, which the server requires,
#' and follows the server's pages itself.
#'
#' @param filter A string, a filter such as `"name LIKE 'churn%'"`, or
#'   `NULL` (default) for all registered models.
#' @param max_results A number >= 1, the largest number of results to
#'   return, or `NULL` (default) for all.
#' @param order_by A character vector (or list) of order clauses such as
#'   `"name ASC"`. Default `list()`: the server's order.
#' @param page_token A string from an earlier search's `next_page_token`,
#'   or `NULL` (default) to start at the first page.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the default client.
#' @return A list with `registered_models` (a list of
#'   `mlflow_registered_model` objects) and `next_page_token` (`NULL` when
#'   there are no more).
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type.
#' * `mlflowreg_error_unreachable`: the server could not be reached.
#' * `mlflowreg_error_authentication`: an Azure ML token is missing,
#'   expired or could not be renewed.
#' * `mlflowreg_error_api`: the server rejected the request; `status` and
#'   `error_code` say why.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' tryCatch(mlflow_create_registered_model("mlflowreg-example-registered"),
#'   mlflowreg_error_already_exists = function(e) NULL)
#' found <- mlflow_search_registered_models(filter = "name LIKE 'mlflowreg-example-%'")
#' vapply(found$registered_models, function(model) model$name, "")
#' @export
mlflow_search_registered_models <- function(filter = NULL, max_results = NULL, order_by = list(),
                                            page_token = NULL, client = NULL) {
  check_string(filter, allow_null = TRUE)
  check_number(max_results, min = 1, allow_null = TRUE, whole = TRUE)
  check_string(page_token, allow_null = TRUE)
  order_by <- order_by_arg(order_by)
  result <- registry_call("search_registered_models", resolve_client(client),
    filter = filter, max_results = max_results, order_by = order_by, page_token = page_token)
  list(
    registered_models = lapply(result$registered_models, new_registered_model),
    next_page_token = result$next_page_token
  )
}

#' Search model versions
#'
#' @inheritParams mlflow_search_registered_models
#' @param filter A string, a filter such as `"name = 'churn'"` or
#'   `"run_id = '<id>'"`, or `NULL` (default) for all versions.
#' @return A list with `model_versions` (a list of `mlflow_model_version`
#'   objects) and `next_page_token` (`NULL` when there are no more).
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type.
#' * `mlflowreg_error_unreachable`: the server could not be reached.
#' * `mlflowreg_error_authentication`: an Azure ML token is missing,
#'   expired or could not be renewed.
#' * `mlflowreg_error_api`: the server rejected the request; `status` and
#'   `error_code` say why.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' mlflow_set_experiment("mlflowreg-examples")
#' logged <- with(mlflow_start_run(), {
#'   mlflow_log_model(lm(mpg ~ wt, data = mtcars), "model",
#'     registered_model_name = "mlflowreg-example-versions")
#' })
#' version <- logged$model_version$version
#' found <- mlflow_search_model_versions("name = 'mlflowreg-example-versions'")
#' length(found$model_versions)
#' @export
mlflow_search_model_versions <- function(filter = NULL, max_results = NULL, order_by = list(),
                                         page_token = NULL, client = NULL) {
  check_string(filter, allow_null = TRUE)
  check_number(max_results, min = 1, allow_null = TRUE, whole = TRUE)
  check_string(page_token, allow_null = TRUE)
  order_by <- order_by_arg(order_by)
  result <- registry_call("search_model_versions", resolve_client(client),
    filter = filter, max_results = max_results, order_by = order_by, page_token = page_token)
  list(
    model_versions = lapply(result$model_versions, new_model_version),
    next_page_token = result$next_page_token
  )
}

order_by_arg <- function(order_by, call = rlang::caller_env()) {
  order_by <- check_strings(order_by, arg = "order_by", call = call,
    expected = "a character vector of order clauses")
  if (is.null(order_by)) NULL else I(order_by)
}

#' Get the latest versions of a registered model
#'
#' @param name A non-empty string: the registered model. No default.
#' @param stages A character vector (or list) of stages to look in, from
#'   `"None"`, `"Staging"`, `"Production"` and `"Archived"` (any case).
#'   Default `list()`: every stage.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the default client.
#' @return A list of `mlflow_model_version` objects, the newest in each
#'   stage.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   a stage is not one of the four.
#' * `mlflowreg_error_not_found`: the registered model does not exist.
#' * `mlflowreg_error_unreachable`: the server could not be reached.
#' * `mlflowreg_error_authentication`: an Azure ML token is missing,
#'   expired or could not be renewed.
#' * `mlflowreg_error_api`: the server rejected the request; `status` and
#'   `error_code` say why.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' mlflow_set_experiment("mlflowreg-examples")
#' logged <- with(mlflow_start_run(), {
#'   mlflow_log_model(lm(mpg ~ wt, data = mtcars), "model",
#'     registered_model_name = "mlflowreg-example-versions")
#' })
#' version <- logged$model_version$version
#' mlflow_get_latest_versions("mlflowreg-example-versions", stages = "None")
#' @export
mlflow_get_latest_versions <- function(name, stages = list(), client = NULL) {
  check_string(name)
  stages <- check_strings(stages, expected = "a character vector of stages")
  stages <- vapply(stages, stage_arg, character(1), arg = "stages", call = rlang::current_env(),
    USE.NAMES = FALSE)
  versions <- registry_call("get_latest_versions", resolve_client(client), name = name, stages = I(stages))
  lapply(versions, new_model_version)
}

stage_arg <- function(stage, arg = "stage", call = rlang::caller_env()) {
  allowed <- c("None", "Staging", "Production", "Archived")
  if (!is.character(stage) || length(stage) != 1 || is.na(stage) ||
    !tolower(stage) %in% tolower(allowed)) {
    abort_argument(arg, sprintf("one of %s", paste0('"', allowed, '"', collapse = ", ")), stage, call)
  }
  allowed[match(tolower(stage), tolower(allowed))]
}

#' Create a model version
#'
#' Adds a version to an existing registered model from model files that are
#' already uploaded. It checks the model's `MLmodel` against the registry's
#' rules first (see [mlflowreg_validate_model()]) and raises
#' `mlflowreg_error_validation` before any version exists when the model
#' breaks one. Unlike R mlflow, the tags are sent, and the call waits until
#' the version is `READY` (as Python's `MlflowClient` does).
#'
#' @param name A non-empty string: the registered model, which must exist.
#'   No default.
#' @param source A non-empty string: where the model files are, such as the
#'   `artifact_uri` that [mlflow_log_model()] returns, a `runs:/` URI (with
#'   its `run_id`) or a `models:/` URI. No default.
#' @param run_id A string, the run that produced the model, or `NULL`
#'   (default).
#' @param tags A named list of scalar version tags, or `NULL` (default).
#' @param run_link A string, a link to the run, or `NULL` (default).
#' @param description A string, or `NULL` (default).
#' @param await_registration_for A number >= 0: seconds to wait for the
#'   version to be `READY`, or 0 to return at once. Default 300.
#' @param profile A string naming the registry rules to check: `"mlflow"`,
#'   `"azureml"`, `"databricks-uc"` or `"none"` to skip the check; `NULL`
#'   (default) picks `"azureml"` for an Azure ML tracking URI, else
#'   `"mlflow"`.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the default client.
#' @return The model version: a list of class `mlflow_model_version` with
#'   the server's fields (`name`, `version` as a string, `status`,
#'   `source`, `run_id`, `aliases`, `tags`, ...).
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type.
#' * `mlflowreg_error_validation`: the model breaks a rule of `profile`,
#'   such as Azure ML's demand for a `python_function` flavor; nothing was
#'   registered.
#' * `mlflowreg_error_not_found`: the registered model or the source does
#'   not exist.
#' * `mlflowreg_error_api`: the server rejected the version. A strict
#'   registry such as Azure ML answers HTTP 400 (`status` 400) for a model
#'   without a `python_function` flavor when the check is skipped.
#' * `mlflowreg_error_registration`: the version ended in
#'   `FAILED_REGISTRATION` or was not `READY` in time.
#' * `mlflowreg_error_unreachable`, `mlflowreg_error_authentication`: the
#'   server could not be reached, or rejected the credentials.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' mlflow_set_experiment("mlflowreg-examples")
#' logged <- with(mlflow_start_run(), {
#'   mlflow_log_model(lm(mpg ~ wt, data = mtcars), "model")
#' })
#' name <- "mlflowreg-example-versions"
#' tryCatch(
#'   mlflow_create_registered_model(name),
#'   mlflowreg_error_already_exists = function(e) NULL
#' )
#' mlflow_create_model_version(name, logged$artifact_uri, run_id = logged$run_id,
#'   tags = list(data = "mtcars"))
#' @export
mlflow_create_model_version <- function(name, source, run_id = NULL, tags = NULL, run_link = NULL,
                                        description = NULL, await_registration_for = 300,
                                        profile = NULL, client = NULL) {
  check_string(name)
  check_string(source)
  check_string(run_id, allow_null = TRUE)
  check_string(run_link, allow_null = TRUE)
  check_string(description, allow_null = TRUE)
  check_number(await_registration_for, min = 0)
  profile <- profile_arg(profile)
  tags <- tags_json(tags)
  client <- resolve_client(client)
  new_model_version(rust_call(
    create_model_version_, client, name, source, run_id %||% "", tags, run_link %||% "",
    description %||% "", as.numeric(await_registration_for), profile
  ))
}

#' Get a model version
#'
#' @param name A non-empty string: the registered model. No default.
#' @param version The version number, as a whole number or a string of
#'   digits such as `"3"`. No default.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the default client.
#' @return The model version: a list of class `mlflow_model_version`, as
#'   [mlflow_create_model_version()] returns it.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   `version` is not a version number.
#' * `mlflowreg_error_not_found`: the model or the version does not exist.
#' * `mlflowreg_error_unreachable`: the server could not be reached.
#' * `mlflowreg_error_api`: the server rejected the request; `status` and
#'   `error_code` say why.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' mlflow_set_experiment("mlflowreg-examples")
#' logged <- with(mlflow_start_run(), {
#'   mlflow_log_model(lm(mpg ~ wt, data = mtcars), "model",
#'     registered_model_name = "mlflowreg-example-versions")
#' })
#' version <- mlflow_get_model_version("mlflowreg-example-versions",
#'   logged$model_version$version)
#' version$status
#' version
#' @export
mlflow_get_model_version <- function(name, version, client = NULL) {
  check_string(name)
  version <- version_string(version)
  new_model_version(rust_call(get_model_version_, resolve_client(client), name, version))
}

#' Update a model version's description
#'
#' @inheritParams mlflow_get_model_version
#' @param description A string: the new description. No default.
#' @return The updated model version, of class `mlflow_model_version`.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   `version` is not a version number.
#' * `mlflowreg_error_not_found`: the model or the version does not exist.
#' * `mlflowreg_error_unreachable`: the server could not be reached.
#' * `mlflowreg_error_authentication`: an Azure ML token is missing,
#'   expired or could not be renewed.
#' * `mlflowreg_error_api`: the server rejected the request; `status` and
#'   `error_code` say why.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' mlflow_set_experiment("mlflowreg-examples")
#' logged <- with(mlflow_start_run(), {
#'   mlflow_log_model(lm(mpg ~ wt, data = mtcars), "model",
#'     registered_model_name = "mlflowreg-example-versions")
#' })
#' version <- logged$model_version$version
#' mlflow_update_model_version("mlflowreg-example-versions", version,
#'   "Fitted on mtcars")
#' @export
mlflow_update_model_version <- function(name, version, description, client = NULL) {
  check_string(name)
  version <- version_string(version)
  if (!is.character(description) || length(description) != 1 || is.na(description)) {
    abort_argument("description", "a string", description, rlang::current_env())
  }
  new_model_version(registry_call("update_model_version", resolve_client(client),
    name = name, version = version, description = description))
}

#' Delete a model version
#'
#' The run artifacts the version points at stay.
#'
#' @inheritParams mlflow_get_model_version
#' @return `NULL`, invisibly.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   `version` is not a version number.
#' * `mlflowreg_error_not_found`: the model or the version does not exist.
#' * `mlflowreg_error_unreachable`: the server could not be reached.
#' * `mlflowreg_error_authentication`: an Azure ML token is missing,
#'   expired or could not be renewed.
#' * `mlflowreg_error_api`: the server rejected the request; `status` and
#'   `error_code` say why.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' mlflow_set_experiment("mlflowreg-examples")
#' logged <- with(mlflow_start_run(), {
#'   mlflow_log_model(lm(mpg ~ wt, data = mtcars), "model",
#'     registered_model_name = "mlflowreg-example-versions")
#' })
#' version <- logged$model_version$version
#' mlflow_delete_model_version("mlflowreg-example-versions", version)
#' @export
mlflow_delete_model_version <- function(name, version, client = NULL) {
  check_string(name)
  version <- version_string(version)
  registry_call("delete_model_version", resolve_client(client), name = name, version = version)
  invisible(NULL)
}

#' Transition a model version to a stage
#'
#' Unlike R mlflow, `archive_existing_versions` is sent as a JSON boolean,
#' which the server requires. MLflow deprecates stages in favour of aliases
#' ([mlflow_set_registered_model_alias()]).
#'
#' @inheritParams mlflow_get_model_version
#' @param stage One of `"None"`, `"Staging"`, `"Production"` or
#'   `"Archived"` (any case). No default.
#' @param archive_existing_versions `TRUE` to move the versions already in
#'   `stage` to `"Archived"`, `FALSE` (default) to leave them.
#' @return The updated model version, of class `mlflow_model_version`.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   `stage` is not one of the four.
#' * `mlflowreg_error_not_found`: the model or the version does not exist.
#' * `mlflowreg_error_unreachable`: the server could not be reached.
#' * `mlflowreg_error_authentication`: an Azure ML token is missing,
#'   expired or could not be renewed.
#' * `mlflowreg_error_api`: the server rejected the request; `status` and
#'   `error_code` say why.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' mlflow_set_experiment("mlflowreg-examples")
#' logged <- with(mlflow_start_run(), {
#'   mlflow_log_model(lm(mpg ~ wt, data = mtcars), "model",
#'     registered_model_name = "mlflowreg-example-versions")
#' })
#' version <- logged$model_version$version
#' mlflow_transition_model_version_stage("mlflowreg-example-versions", version,
#'   "Staging")
#' @export
mlflow_transition_model_version_stage <- function(name, version, stage,
                                                  archive_existing_versions = FALSE, client = NULL) {
  check_string(name)
  version <- version_string(version)
  stage <- stage_arg(stage)
  check_flag(archive_existing_versions)
  new_model_version(registry_call("transition_model_version_stage", resolve_client(client),
    name = name, version = version, stage = stage,
    archive_existing_versions = archive_existing_versions))
}

#' Set or delete a tag of a model version
#'
#' @inheritParams mlflow_get_model_version
#' @param key A non-empty string: the tag key. No default.
#' @param value A single non-`NA` value, sent as a string. No default.
#' @return `NULL`, invisibly.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   `version` is not a version number.
#' * `mlflowreg_error_not_found`: the model or the version does not exist.
#' * `mlflowreg_error_unreachable`: the server could not be reached.
#' * `mlflowreg_error_authentication`: an Azure ML token is missing,
#'   expired or could not be renewed.
#' * `mlflowreg_error_api`: the server rejected the request; `status` and
#'   `error_code` say why.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' mlflow_set_experiment("mlflowreg-examples")
#' logged <- with(mlflow_start_run(), {
#'   mlflow_log_model(lm(mpg ~ wt, data = mtcars), "model",
#'     registered_model_name = "mlflowreg-example-versions")
#' })
#' version <- logged$model_version$version
#' mlflow_set_model_version_tag("mlflowreg-example-versions", version,
#'   "validated", "yes")
#' mlflow_delete_model_version_tag("mlflowreg-example-versions", version,
#'   "validated")
#' @export
mlflow_set_model_version_tag <- function(name, version, key, value, client = NULL) {
  check_string(name)
  version <- version_string(version)
  check_string(key)
  value <- scalar_text(value)
  registry_call("set_model_version_tag", resolve_client(client),
    name = name, version = version, key = key, value = value)
  invisible(NULL)
}

#' @rdname mlflow_set_model_version_tag
#' @export
mlflow_delete_model_version_tag <- function(name, version, key, client = NULL) {
  check_string(name)
  version <- version_string(version)
  check_string(key)
  registry_call("delete_model_version_tag", resolve_client(client),
    name = name, version = version, key = key)
  invisible(NULL)
}

#' Get the download URI of a model version's files
#'
#' @inheritParams mlflow_get_model_version
#' @return The artifact URI of the version's files, a string.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   `version` is not a version number.
#' * `mlflowreg_error_not_found`: the model or the version does not exist.
#' * `mlflowreg_error_unreachable`: the server could not be reached.
#' * `mlflowreg_error_authentication`: an Azure ML token is missing,
#'   expired or could not be renewed.
#' * `mlflowreg_error_api`: the server rejected the request; `status` and
#'   `error_code` say why.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' mlflow_set_experiment("mlflowreg-examples")
#' logged <- with(mlflow_start_run(), {
#'   mlflow_log_model(lm(mpg ~ wt, data = mtcars), "model",
#'     registered_model_name = "mlflowreg-example-versions")
#' })
#' version <- logged$model_version$version
#' mlflow_get_model_version_download_uri("mlflowreg-example-versions", version)
#' @export
mlflow_get_model_version_download_uri <- function(name, version, client = NULL) {
  check_string(name)
  version <- version_string(version)
  registry_call("get_model_version_download_uri", resolve_client(client), name = name, version = version)
}

#' Set, delete or resolve a registered model alias
#'
#' An alias such as `"champion"` points at one version; load it with
#' `mlflow_load_model("models:/<name>@<alias>")`. Setting an alias that
#' exists moves it to `version`.
#'
#' @inheritParams mlflow_get_model_version
#' @param alias A non-empty string: the alias. No default.
#' @return `mlflow_set_registered_model_alias()` and
#'   `mlflow_delete_registered_model_alias()` return `NULL` invisibly;
#'   `mlflow_get_model_version_by_alias()` returns the model version, of
#'   class `mlflow_model_version`.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   `version` is not a version number.
#' * `mlflowreg_error_not_found`: the model, the version or the alias does
#'   not exist.
#' * `mlflowreg_error_unreachable`: the server could not be reached.
#' * `mlflowreg_error_authentication`: an Azure ML token is missing,
#'   expired or could not be renewed.
#' * `mlflowreg_error_api`: the server rejected the request; `status` and
#'   `error_code` say why.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' mlflow_set_experiment("mlflowreg-examples")
#' logged <- with(mlflow_start_run(), {
#'   mlflow_log_model(lm(mpg ~ wt, data = mtcars), "model",
#'     registered_model_name = "mlflowreg-example-versions")
#' })
#' version <- logged$model_version$version
#' mlflow_set_registered_model_alias("mlflowreg-example-versions", "champion", version)
#' mlflow_get_model_version_by_alias("mlflowreg-example-versions", "champion")
#' model <- mlflow_load_model("models:/mlflowreg-example-versions@champion")
#' mlflow_delete_registered_model_alias("mlflowreg-example-versions", "champion")
#' @export
mlflow_set_registered_model_alias <- function(name, alias, version, client = NULL) {
  check_string(name)
  check_string(alias)
  version <- version_string(version)
  registry_call("set_registered_model_alias", resolve_client(client),
    name = name, alias = alias, version = version)
  invisible(NULL)
}

#' @rdname mlflow_set_registered_model_alias
#' @export
mlflow_delete_registered_model_alias <- function(name, alias, client = NULL) {
  check_string(name)
  check_string(alias)
  registry_call("delete_registered_model_alias", resolve_client(client), name = name, alias = alias)
  invisible(NULL)
}

#' @rdname mlflow_set_registered_model_alias
#' @export
mlflow_get_model_version_by_alias <- function(name, alias, client = NULL) {
  check_string(name)
  check_string(alias)
  new_model_version(registry_call("get_model_version_by_alias", resolve_client(client),
    name = name, alias = alias))
}

#' Register a model
#'
#' Registers the model at `model_uri` as a new version of `name`, like
#' Python's `mlflow.register_model()`: it checks the model against the
#' registry's rules, creates the registered model when it does not exist,
#' resolves a `runs:/` URI to the artifact URI the server accepts, and waits
#' until the version is `READY`.
#'
#' @param model_uri A non-empty string: `runs:/<run_id>/<path>`, an
#'   artifact URI, or `models:/<name>/<version>`. No default.
#' @param name A non-empty string: the registered model. No default.
#' @param tags A named list of scalar version tags, or `NULL` (default).
#' @param await_registration_for A number >= 0: seconds to wait for the
#'   version to be `READY`, or 0 to return at once. Default 300.
#' @inheritParams mlflow_create_model_version
#' @return The new model version: a list of class `mlflow_model_version`,
#'   as [mlflow_create_model_version()] returns it.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   `model_uri` is not a model URI.
#' * `mlflowreg_error_validation`: the model breaks a rule of `profile`;
#'   nothing was registered. [mlflowreg_repair_model()] fixes models that R
#'   mlflow logged.
#' * `mlflowreg_error_not_found`: the run or source model does not exist.
#' * `mlflowreg_error_api`: the server rejected the version.
#' * `mlflowreg_error_registration`: the version ended in
#'   `FAILED_REGISTRATION` or was not `READY` in time.
#' * `mlflowreg_error_unreachable`, `mlflowreg_error_authentication`: the
#'   server could not be reached, or rejected the credentials.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' mlflow_set_experiment("mlflowreg-examples")
#' logged <- with(mlflow_start_run(), {
#'   mlflow_log_model(lm(mpg ~ wt + hp, data = mtcars), "model")
#' })
#' version <- mlflow_register_model(logged$model_uri, "mlflowreg-example-lm",
#'   tags = list(stage = "candidate"))
#' version
#' @export
mlflow_register_model <- function(model_uri, name, tags = NULL, await_registration_for = 300,
                                  profile = NULL, client = NULL) {
  check_string(model_uri)
  check_model_name(name)
  check_number(await_registration_for, min = 0)
  profile <- profile_arg(profile)
  tags <- tags_json(tags)
  client <- resolve_client(client)
  new_model_version(rust_call(
    register_model_, client, model_uri, name, tags, as.numeric(await_registration_for), profile
  ))
}

#' Check a model against a registry's rules
#'
#' Reads the model's `MLmodel` (from a local directory or from the server)
#' and lists the rules of `profile` it breaks, without registering anything.
#' Profiles: `"mlflow"` (at least one flavor), `"azureml"` (also a
#' `python_function` flavor with a `loader_module`, without which Azure ML
#' rejects the version) and `"databricks-uc"` (also a signature with inputs
#' and outputs).
#'
#' @param model A non-empty string: a local model directory or a model URI
#'   (`runs:/`, `models:/`, `mlflow-artifacts:/...`). No default.
#' @param profile One of `"mlflow"`, `"azureml"` or `"databricks-uc"`, or
#'   `NULL` (default) to pick `"azureml"` for an Azure ML tracking URI and
#'   `"mlflow"` otherwise.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the default client. A local directory needs no client.
#' @return A tibble with one row per problem and the columns `profile`,
#'   `field`, `problem` and `fix`; no rows when the model passes.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type,
#'   `profile` is unknown, or `model` names no model.
#' * `mlflowreg_error_parse`: the `MLmodel` file is not valid.
#' * `mlflowreg_error_not_found`, `mlflowreg_error_unreachable`,
#'   `mlflowreg_error_api`: a remote model could not be read.
#'
#' See [mlflowreg_conditions].
#' @examples
#' path <- file.path(tempdir(), "validate-lm")
#' mlflow_save_model(lm(mpg ~ wt, data = mtcars), path)
#' mlflowreg_validate_model(path, profile = "azureml")
#'
#' # Databricks Unity Catalog also needs a signature, which this model lacks:
#' mlflowreg_validate_model(path, profile = "databricks-uc")
#' @export
mlflowreg_validate_model <- function(model, profile = NULL, client = NULL) {
  check_string(model)
  check_client(client)
  profile <- profile_arg(profile)
  if (identical(profile, "none")) {
    abort_argument("profile", 'a profile name (not "none")', profile, rlang::current_env())
  }
  target <- model_target(model, client)
  problems <- rust_json(invoke_rust(target$client, validate_model_, target$model, profile))
  tibble::tibble(
    profile = vapply(problems, function(p) p$profile, character(1)),
    field = vapply(problems, function(p) p$field, character(1)),
    problem = vapply(problems, function(p) p$problem, character(1)),
    fix = vapply(problems, function(p) p$fix, character(1))
  )
}

#' Repair a model that R mlflow logged
#'
#' Adds the `python_function` flavor and its loader files to an R `crate`
#' model in place, so strict registries such as Azure ML accept it and
#' `mlflow.pyfunc.load_model()` can predict with it. Only missing or changed
#' files are uploaded, `MLmodel` last; running it again changes nothing.
#'
#' @param model_uri A non-empty string: a logged model
#'   (`runs:/<run_id>/<path>`, an artifact URI, `models:/...`) or a local
#'   model directory. No default.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the default client. A local directory needs no client.
#' @return A list with `source` (the artifact URI to register), `run_id` and
#'   `uploaded` (the files written), invisibly.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   `model_uri` names no model.
#' * `mlflowreg_error_unsupported`: the model has no `crate` flavor.
#' * `mlflowreg_error_parse`: the `MLmodel` file is not valid.
#' * `mlflowreg_error_io`: writing a local file failed.
#' * `mlflowreg_error_not_found`, `mlflowreg_error_unreachable`,
#'   `mlflowreg_error_api`, `mlflowreg_error_storage`: a remote model could
#'   not be read or written.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A model directory as R mlflow writes it: the crate flavor only.
#' path <- file.path(tempdir(), "r-mlflow-model")
#' dir.create(path)
#' fn <- function(data) predict(stats::lm(mpg ~ wt, data = mtcars), data)
#' saveRDS(serialize(fn, NULL), file.path(path, "crate.bin"))
#' writeLines(c("flavors:", "  crate:", "    version: 0.1.0", "    model: crate.bin"),
#'   file.path(path, "MLmodel"))
#' nrow(mlflowreg_validate_model(path, profile = "azureml"))
#'
#' repaired <- mlflowreg_repair_model(path)
#' repaired$uploaded
#' nrow(mlflowreg_validate_model(path, profile = "azureml"))
#' @export
mlflowreg_repair_model <- function(model_uri, client = NULL) {
  check_string(model_uri)
  check_client(client)
  target <- model_target(model_uri, client)
  result <- rust_json(invoke_rust(target$client, repair_model_, target$model))
  result$uploaded <- as.character(unlist(result$uploaded))
  invisible(result)
}

# A model argument resolved for the Rust exports: local paths need no
# client, so none is built for them.
model_target <- function(model, client, call = rlang::caller_env()) {
  remote <- grepl("^[A-Za-z][A-Za-z0-9+.-]*:/", model) && !startsWith(model, "file:")
  if (!remote) {
    return(list(client = list(tracking_uri = "", origin = ""), model = path.expand(model)))
  }
  list(client = resolve_client(client, call = call), model = model)
}

version_string <- function(version, arg = rlang::caller_arg(version), call = rlang::caller_env()) {
  valid <- length(version) == 1 && !is.na(version) &&
    ((is.numeric(version) && version >= 1 && version == round(version)) ||
      (is.character(version) && grepl("^[0-9]+$", version)))
  if (!valid) {
    abort_argument(arg, "a version number such as 1 or \"1\"", version, call)
  }
  format(version, scientific = FALSE, trim = TRUE)
}

scalar_text <- function(value, arg = rlang::caller_arg(value), call = rlang::caller_env()) {
  if (!is.atomic(value) || length(value) != 1 || is.na(value)) {
    abort_argument(arg, "a single non-NA value", value, call)
  }
  as.character(value)
}
