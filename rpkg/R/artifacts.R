# Run artifacts: logging, listing and downloading files, the number of
# files moved at once, and the progress bar.

#' Log a file or directory as run artifacts
#'
#' A file is uploaded to `<artifact_path>/<file name>`; the contents of a
#' directory are uploaded under `artifact_path`. No Python is involved.
#' Files stream from disk, so memory use does not grow with their size, and
#' several go at once (see [mlflowreg-options]). Files of at least
#' `MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE` bytes (500 MiB by default) go
#' in parallel parts when the server stores artifacts in an object store and
#' offers multipart uploads.
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
  uploaded <- transfer_call(log_artifact_, client, "Uploading", run_id, normalizePath(path),
    artifact_path %||% "")
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
#'   temporary directory. Several files are downloaded at once (see
#'   [mlflowreg-options]).
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
  transfer_call(download_artifacts_, client, "Downloading", run_id, path, dest)
}

#' Options of mlflowreg
#'
#' @description
#' * `mlflowreg.artifact_workers`: the number of files uploaded or
#'   downloaded at once, and of parts of one multipart upload. It takes
#'   precedence over the environment variable `MLFLOWREG_ARTIFACT_WORKERS`;
#'   the default is 8.
#' * `mlflowreg.progress`: `TRUE` shows a progress bar (from the cli
#'   package) for uploads and downloads that take longer than
#'   `getOption("cli.progress_show_after", 2)` seconds, `FALSE` never
#'   shows one. The default, `NULL`, shows it in interactive sessions
#'   only. A function is called instead of drawing a bar, about every 0.1
#'   seconds during a transfer and once at its end, with the arguments
#'   `done_bytes`, `total_bytes`, `done_files`, `total_files` and
#'   `finished` (`TRUE` on the last call).
#'
#' A progress function that raises an error cancels the transfer with an
#' error of class `mlflowreg_error_cancelled`; Ctrl-C stops a transfer with
#' R's usual interrupt.
#' @name mlflowreg-options
NULL

# Calls a transfer export with the progress callback as its last argument,
# with `mlflowreg.artifact_workers` in effect.
transfer_call <- function(fun, client, label, ..., call = rlang::caller_env()) {
  progress <- transfer_progress(label, envir = call)
  with_artifact_workers(rust_call(fun, client, ..., progress, call = call), call = call)
}

# Evaluates `code` with MLFLOWREG_ARTIFACT_WORKERS set from the R option
# `mlflowreg.artifact_workers`, when that is set. The Rust core reads the
# variable, also for the parts of a multipart upload.
with_artifact_workers <- function(code, call = rlang::caller_env()) {
  workers <- getOption("mlflowreg.artifact_workers")
  if (is.null(workers)) {
    return(code)
  }
  if (!is.numeric(workers) || length(workers) != 1 || is.na(workers) || workers < 1 ||
    workers != trunc(workers)) {
    abort_argument("options(mlflowreg.artifact_workers)", "a whole number of at least 1", workers, call)
  }
  old <- Sys.getenv("MLFLOWREG_ARTIFACT_WORKERS", unset = NA)
  Sys.setenv(MLFLOWREG_ARTIFACT_WORKERS = format(workers, scientific = FALSE))
  on.exit(
    if (is.na(old)) Sys.unsetenv("MLFLOWREG_ARTIFACT_WORKERS") else Sys.setenv(MLFLOWREG_ARTIFACT_WORKERS = old),
    add = TRUE
  )
  code
}

# Returns the progress callback for a transfer: NULL for none, the user's
# function, or one that draws a cli progress bar owned by the frame `envir`
# (so cli removes the bar when that frame exits, also on error).
transfer_progress <- function(label, envir) {
  setting <- getOption("mlflowreg.progress")
  if (is.function(setting)) {
    return(setting)
  }
  show <- if (is.null(setting)) interactive() else isTRUE(setting)
  if (!show) {
    return(NULL)
  }
  bar <- NULL
  function(done_bytes, total_bytes, done_files, total_files, finished) {
    files <- sprintf("%d/%d files", as.integer(done_files), as.integer(total_files))
    if (is.null(bar)) {
      if (finished) {
        return(invisible(NULL))
      }
      bar <<- cli::cli_progress_bar(
        name = label,
        total = if (total_bytes > 0) total_bytes else NA,
        format = paste(
          "{cli::pb_name} {cli::pb_bar} {cli::pb_current_bytes}/{cli::pb_total_bytes}",
          "{cli::pb_extra$files} {cli::pb_rate_bytes} {cli::pb_eta}"
        ),
        extra = list(files = files),
        clear = TRUE,
        .envir = envir
      )
    }
    if (finished) {
      cli::cli_progress_done(id = bar, .envir = envir)
      return(invisible(NULL))
    }
    cli::cli_progress_update(
      id = bar,
      set = done_bytes,
      total = if (total_bytes > 0) total_bytes else NA,
      extra = list(files = files),
      .envir = envir
    )
    invisible(NULL)
  }
}

# The artifact URI of `run_id` when it is a run on the active-run stack
# (recorded when it started), else "" so that Rust looks it up.
known_artifact_uri <- function(run_id) {
  for (entry in .globals$run_stack) {
    if (identical(entry$run_id, run_id) && is.character(entry$artifact_uri) && length(entry$artifact_uri) == 1) {
      return(entry$artifact_uri)
    }
  }
  ""
}
