#' mlflowreg: save, log and register R models in MLflow registries
#'
#' mlflowreg replaces the model functions of the `mlflow` R package, with
#' the same names and arguments. It saves models with R mlflow's `crate`
#' flavor plus a `python_function` flavor whose loader runs the R model, so
#' registries that require a `python_function` flavor (Azure Machine
#' Learning) accept them, and it uploads and downloads artifacts without
#' Python.
#'
#' Start with `vignette("azureml-registration", package = "mlflowreg")`,
#' which goes from a fitted model to a registered version that Python can
#' serve.
#'
#' @section Configuration:
#' mlflowreg reads the environment variables that the MLflow clients read,
#' each time a request is made:
#' * `MLFLOW_TRACKING_URI`: the server, or a local store (a directory path
#'   or `file:` URI), unless [mlflow_set_tracking_uri()] set one. Without
#'   either, mlflowreg uses the local store `./mlruns`, as R mlflow does.
#' * `MLFLOW_TRACKING_TOKEN`, or `MLFLOW_TRACKING_USERNAME` and
#'   `MLFLOW_TRACKING_PASSWORD`: credentials. Basic auth wins over a token.
#' * `MLFLOW_TRACKING_INSECURE_TLS`, `MLFLOW_TRACKING_SERVER_CERT_PATH`,
#'   `MLFLOW_TRACKING_CLIENT_CERT_PATH`: TLS settings.
#' * `MLFLOW_HTTP_REQUEST_MAX_RETRIES` (default 7),
#'   `MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR` (seconds, default 2) and
#'   `MLFLOW_HTTP_REQUEST_TIMEOUT` (seconds per attempt, default 120):
#'   retries of 408, 429, 5xx responses and connection errors.
#' * `MLFLOW_RUN_ID`, `MLFLOW_EXPERIMENT_ID`, `MLFLOW_EXPERIMENT_NAME`: the
#'   run and experiment a scheduled job belongs to.
#' * `MLFLOWREG_ARTIFACT_WORKERS`: files uploaded or downloaded at once
#'   (default 4).
#'
#' Errors are described in [mlflowreg_conditions].
#'
#' @keywords internal
"_PACKAGE"

#' Conditions signalled by mlflowreg
#'
#' Every error that mlflowreg raises is an `rlang` error of class
#' `mlflowreg_error` plus one class `mlflowreg_error_<kind>` that says what
#' went wrong, so code can handle one kind with [tryCatch()] or
#' [rlang::try_fetch()]. The message names the value at fault and what to
#' do next. A failed call leaves nothing half-written: a model directory is
#' written next to its destination and renamed into place.
#'
#' @section Error classes:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type or
#'   value, or a model URI does not name a model.
#' * `mlflowreg_error_unsafe_model`: a model function would not load in a
#'   fresh R session, for example because it calls a function of a package
#'   without `package::`.
#' * `mlflowreg_error_not_a_model_directory`: `mlflow_save_model()` was
#'   asked to replace a directory that is not an MLflow model.
#' * `mlflowreg_error_parse`: an `MLmodel` file or a server response cannot
#'   be parsed.
#' * `mlflowreg_error_io`: reading or writing a local file failed.
#' * `mlflowreg_error_configuration`: an `MLFLOW_*` setting is invalid, such
#'   as a certificate file that does not exist.
#' * `mlflowreg_error_unreachable`: the server could not be reached, after
#'   the retries `MLFLOW_HTTP_REQUEST_MAX_RETRIES` allows.
#' * `mlflowreg_error_not_found`: the server returned HTTP 404, so the
#'   experiment, run, model or version does not exist.
#' * `mlflowreg_error_already_exists`: the server returned
#'   `RESOURCE_ALREADY_EXISTS`, for example for a registered model name that
#'   is taken.
#' * `mlflowreg_error_api`: any other error response from the server. The
#'   condition has the fields `status` (the HTTP status) and `error_code`
#'   (MLflow's error code, such as `INVALID_PARAMETER_VALUE`); a strict
#'   registry's HTTP 400 for a model without a `python_function` flavor
#'   arrives as this kind.
#' * `mlflowreg_error_validation`: a model breaks a rule of the registry it
#'   is registered in (see [mlflowreg_validate_model()]), so no version was
#'   created.
#' * `mlflowreg_error_registration`: a new model version ended in
#'   `FAILED_REGISTRATION`, or did not become `READY` in time.
#' * `mlflowreg_error_authentication`: an Azure ML token is missing,
#'   expired or rejected, or could not be renewed.
#' * `mlflowreg_error_storage`: Azure Blob Storage rejected or did not
#'   finish an artifact transfer. `status` is the HTTP status, or `NULL`
#'   when no response arrived.
#' * `mlflowreg_error_unsupported`: a feature mlflowreg does not have, such
#'   as a search filter with `OR` on the local store, or a model without the
#'   `crate` flavor.
#'
#' `mlflowreg_error_not_found` and `mlflowreg_error_already_exists` also
#' carry `status` and `error_code`.
#'
#' @section Warnings:
#' * `mlflowreg_warning_undefined_names`: a model function uses names that
#'   are defined nowhere; harmless when they are data columns.
#' * `mlflowreg_warning`: a model was logged but recording it in the run
#'   failed, or arguments were passed that mlflowreg ignores (the message
#'   says which).
#'
#' @name mlflowreg_conditions
#' @examples
#' # An invalid argument:
#' err <- tryCatch(mlflow_set_tracking_uri(NA), mlflowreg_error = function(e) e)
#' class(err)
#' conditionMessage(err)
#'
#' # A directory that holds no model:
#' tryCatch(
#'   mlflow_load_model(tempdir()),
#'   mlflowreg_error_invalid_argument = function(e) "not a model directory"
#' )
NULL
