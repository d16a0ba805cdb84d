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
  uploaded <- transfer_call(log_artifact_, client, "Uploading", run_id, normalizePath(path),
    artifact_path %||% "")
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
#'   temporary directory. Several files are downloaded at once (see
#'   [mlflowreg-options]).
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
