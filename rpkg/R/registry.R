# The model registry.

new_model_version <- function(version) {
  structure(version, class = "mlflow_model_version")
}

new_registered_model <- function(model) {
  structure(model, class = "mlflow_registered_model")
}

#' Create a registered model
#'
#' @param name Name of the registered model.
#' @param tags Named list of tags.
#' @param description Description, or `NULL`.
#' @param client A client, or `NULL` for the default.
#' @return The registered model, a list of class `mlflow_registered_model`.
#' @export
mlflow_create_registered_model <- function(name, tags = NULL, description = NULL, client = NULL) {
  check_string(name)
  check_string(description, allow_null = TRUE)
  tags <- tags_json(tags)
  client <- resolve_client(client)
  new_registered_model(rust_call(create_registered_model_, client, name, tags, description %||% ""))
}

#' Get a registered model
#'
#' @inheritParams mlflow_create_registered_model
#' @return The registered model, a list of class `mlflow_registered_model`.
#' @export
mlflow_get_registered_model <- function(name, client = NULL) {
  check_string(name)
  new_registered_model(rust_call(get_registered_model_, resolve_client(client), name))
}

#' Create a model version
#'
#' Unlike R mlflow, the tags are sent, and the call waits until the
#' version is READY (as Python's `MlflowClient` does), raising
#' `mlflowreg_error_registration` when it fails or the wait times out.
#'
#' @param name Name of the registered model, which must exist.
#' @param source Artifact URI of the model files, such as the
#'   `artifact_uri` that [mlflow_log_model()] returns.
#' @param run_id Run that produced the model, or `NULL`.
#' @param tags Named list of version tags.
#' @param run_link Link to the run, or `NULL`.
#' @param description Description, or `NULL`.
#' @param await_registration_for Seconds to wait for READY; 0 to return at once.
#' @param client A client, or `NULL` for the default.
#' @return The model version, a list of class `mlflow_model_version`.
#' @export
mlflow_create_model_version <- function(name, source, run_id = NULL, tags = NULL, run_link = NULL,
                                        description = NULL, await_registration_for = 300,
                                        client = NULL) {
  check_string(name)
  check_string(source)
  check_string(run_id, allow_null = TRUE)
  check_string(run_link, allow_null = TRUE)
  check_string(description, allow_null = TRUE)
  check_number(await_registration_for, min = 0)
  tags <- tags_json(tags)
  client <- resolve_client(client)
  new_model_version(rust_call(
    create_model_version_, client, name, source, run_id %||% "", tags, run_link %||% "",
    description %||% "", as.numeric(await_registration_for)
  ))
}

#' Get a model version
#'
#' @param name Name of the registered model.
#' @param version Version number, as a string or number.
#' @param client A client, or `NULL` for the default.
#' @return The model version, a list of class `mlflow_model_version`.
#' @export
mlflow_get_model_version <- function(name, version, client = NULL) {
  check_string(name)
  version <- version_string(version)
  new_model_version(rust_call(get_model_version_, resolve_client(client), name, version))
}

#' Register a model
#'
#' Registers the model at `model_uri` as a new version of `name`, like
#' Python's `mlflow.register_model()`: creates the registered model when it
#' does not exist, resolves `runs:/` URIs to the artifact URI the server
#' accepts, and waits until the version is READY.
#'
#' @param model_uri `runs:/<run_id>/<path>`, an artifact URI, or
#'   `models:/<name>/<version>`.
#' @param name Name of the registered model.
#' @param tags Named list of version tags.
#' @param await_registration_for Seconds to wait for READY; 0 to return at once.
#' @param client A client, or `NULL` for the default.
#' @return The model version, a list of class `mlflow_model_version`.
#' @export
mlflow_register_model <- function(model_uri, name, tags = NULL, await_registration_for = 300,
                                  client = NULL) {
  check_string(model_uri)
  check_string(name)
  check_number(await_registration_for, min = 0)
  tags <- tags_json(tags)
  client <- resolve_client(client)
  new_model_version(rust_call(
    register_model_, client, model_uri, name, tags, as.numeric(await_registration_for)
  ))
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

#' @export
print.mlflow_model_version <- function(x, ...) {
  cat(sprintf("<model version %s/%s: %s>\n", x$name, x$version, x$status %||% "?"))
  cat(sprintf("  source: %s\n", x$source %||% ""))
  invisible(x)
}

#' @export
print.mlflow_registered_model <- function(x, ...) {
  cat(sprintf("<registered model %s>\n", x$name))
  invisible(x)
}
