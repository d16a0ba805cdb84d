# Run artifacts.

#' Log a file or directory as run artifacts
#'
#' A file is uploaded to `<artifact_path>/<file name>`; the contents of a
#' directory are uploaded under `artifact_path`. No Python is involved.
#'
#' @param path Local file or directory.
#' @param artifact_path Folder inside the run's artifacts; `NULL` for the root.
#' @inheritParams mlflow_log_param
#' @return The uploaded artifact paths, invisibly.
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
#' @param path Folder inside the run's artifacts; `NULL` for the root.
#' @param run_id The run; by default the active run.
#' @param client A client, or `NULL` for the active run's or the default.
#' @return A tibble with `path`, `is_dir` and `file_size` (bytes, `NA` for
#'   directories).
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
#' @param path File or folder inside the run's artifacts.
#' @inheritParams mlflow_list_artifacts
#' @return The local path of the downloaded file or folder, in a new
#'   temporary directory.
#' @export
mlflow_download_artifacts <- function(path, run_id = NULL, client = NULL) {
  check_artifact_path(path)
  client <- logging_client(client)
  run_id <- query_run(run_id)
  dest <- file.path(tempfile("mlflowreg-artifacts-"), basename(path))
  tracking_call("download_artifacts", client, run_id = run_id, path = path, dest = dest)
}
