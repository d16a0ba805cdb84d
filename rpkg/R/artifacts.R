# Run artifacts.

#' Log a file or directory as run artifacts
#'
#' A file is uploaded to `<artifact_path>/<file name>`; the contents of a
#' directory are uploaded under `artifact_path`. No Python is involved.
#'
#' @param path A non-empty string: a local file or directory. No default.
#' @param artifact_path A string, the folder inside the run's artifacts, or
#'   `NULL` (default) for the root.
#' @inheritParams mlflow_log_param
#' @return The uploaded artifact paths (a character vector), invisibly.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   `path` does not exist.
#' * `mlflowreg_error_io`: reading a local file failed.
#' * `mlflowreg_error_storage`: Azure Blob Storage rejected an upload (Azure
#'   ML artifact stores).
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
#' report <- file.path(tempdir(), "report.csv")
#' write.csv(head(mtcars), report)
#' with(mlflow_start_run(), {
#'   mlflow_log_artifact(report, artifact_path = "reports")
#'   mlflow_list_artifacts("reports")
#' })
#' @export
mlflow_log_artifact <- function(path, artifact_path = NULL, run_id = NULL, client = NULL) {
  check_string(path)
  check_artifact_path(artifact_path, allow_null = TRUE)
  path <- path.expand(path)
  if (!file.exists(path)) {
    mlflowreg_abort(
      c(sprintf("`path` %s does not exist.", describe_value(path)), i = "Give an existing file or directory."),
      kind = "invalid_argument"
    )
  }
  client <- logging_client(client)
  run_id <- logging_run(run_id, client)
  uploaded <- tracking_call("log_artifact", client, run_id = run_id,
    path = normalizePath(path), artifact_path = artifact_path %||% "")
  invisible(as.character(unlist(uploaded)))
}

#' List a run's artifacts
#'
#' @param path A string, a folder inside the run's artifacts, or `NULL`
#'   (default) for the root.
#' @param run_id A string, the run's id, or `NULL` (default) for the active
#'   run.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the active run's client, else the default client.
#' @return A tibble with `path`, `is_dir` and `file_size` (bytes, `NA` for
#'   directories), one row per entry directly in `path`.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   `run_id` is `NULL` while no run is active.
#' * `mlflowreg_error_not_found`: the run does not exist.
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
#' run <- mlflow_start_run()
#' mlflow_log_model(lm(mpg ~ wt, data = mtcars), "model")
#' mlflow_list_artifacts("model")
#' mlflow_end_run()
#' @export
mlflow_list_artifacts <- function(path = NULL, run_id = NULL, client = NULL) {
  check_artifact_path(path, allow_null = TRUE)
  client <- logging_client(client)
  run_id <- query_run(run_id)
  files <- tracking_call("list_artifacts", client, run_id = run_id, path = path %||% "")
  tibble::tibble(
    path = vapply(files, function(f) f$path, character(1)),
    is_dir = vapply(files, function(f) isTRUE(f$is_dir), logical(1)),
    file_size = vapply(files, function(f) as.numeric(f$file_size %||% NA), numeric(1))
  )
}

#' Download a run's artifacts
#'
#' @param path A non-empty string: a file or folder inside the run's
#'   artifacts. No default.
#' @inheritParams mlflow_list_artifacts
#' @return The local path of the downloaded file or folder, inside a new
#'   temporary directory.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   `run_id` is `NULL` while no run is active.
#' * `mlflowreg_error_not_found`: the run or the artifact does not exist.
#' * `mlflowreg_error_io`: writing a local file failed.
#' * `mlflowreg_error_storage`: Azure Blob Storage failed a download.
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
#'   mlflow_log_model(lm(mpg ~ wt, data = mtcars), "model")
#' })
#' local <- mlflow_download_artifacts("model", run_id = logged$run_id)
#' list.files(local)
#' @export
mlflow_download_artifacts <- function(path, run_id = NULL, client = NULL) {
  check_artifact_path(path)
  client <- logging_client(client)
  run_id <- query_run(run_id)
  dest <- file.path(tempfile("mlflowreg-artifacts-"), basename(path))
  tracking_call("download_artifacts", client, run_id = run_id, path = path, dest = dest)
}
