# Params, metrics, tags and run queries.

# Limits the MLflow server enforces, in characters.
max_key_chars <- 250
max_param_value_chars <- 6000
max_tag_value_chars <- 8000

check_key <- function(key, arg = rlang::caller_arg(key), call = rlang::caller_env()) {
  check_string(key, arg = arg, call = call)
  if (nchar(key) > max_key_chars) {
    mlflowreg_abort(
      sprintf("`%s` has %d characters; MLflow allows at most %d.", arg, nchar(key), max_key_chars),
      kind = "invalid_argument", call = call
    )
  }
  invisible(key)
}

# Returns `value` as a string after checking it is one non-NA scalar of at
# most `max_chars` characters.
check_value <- function(value, max_chars, arg = rlang::caller_arg(value), call = rlang::caller_env()) {
  text <- scalar_text(value, arg = arg, call = call)
  if (nchar(text) > max_chars) {
    mlflowreg_abort(
      sprintf("`%s` has %d characters; MLflow allows at most %d.", arg, nchar(text), max_chars),
      kind = "invalid_argument", call = call
    )
  }
  text
}

# A metric value for the JSON body: a number, or "NaN", "Infinity" or
# "-Infinity", which JSON numbers cannot express.
metric_value <- function(value, arg = rlang::caller_arg(value), call = rlang::caller_env()) {
  if (!is.numeric(value) || length(value) != 1 || (is.na(value) && !is.nan(value))) {
    abort_argument(arg, "a single number (NaN and Inf are allowed, NA is not)", value, call)
  }
  if (is.nan(value)) {
    return("NaN")
  }
  if (is.infinite(value)) {
    return(if (value > 0) "Infinity" else "-Infinity")
  }
  as.numeric(value)
}

# The run a logging call writes to: `run_id`, else the active run, else a
# new run (as R mlflow's logging functions do).
logging_run <- function(run_id, client, call = rlang::caller_env()) {
  check_string(run_id, allow_null = TRUE, call = call)
  run_id %||% active_run_id_or_start(client)
}

# The run a query reads: `run_id`, else the active run.
query_run <- function(run_id, call = rlang::caller_env()) {
  check_string(run_id, allow_null = TRUE, call = call)
  run_id <- run_id %||% active_run_id()
  if (is.null(run_id)) {
    mlflowreg_abort(
      c("`run_id` is NULL and there is no active run.", i = "Pass `run_id` or start a run with `mlflow_start_run()`."),
      kind = "invalid_argument", call = call
    )
  }
  run_id
}

logging_client <- function(client, call = rlang::caller_env()) {
  resolve_client(client %||% active_run_client(), call = call)
}

#' Log a parameter
#'
#' Records a parameter of the run, such as a hyperparameter. MLflow keeps
#' the first value logged for a key; logging a different value later fails.
#'
#' @param key A non-empty string of at most 250 characters: the parameter
#'   name. No default.
#' @param value A single non-`NA` value, sent as a string of at most 6000
#'   characters. No default.
#' @param run_id A string, the run's id, or `NULL` (default) for the active
#'   run, which is started when none is.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the active run's client, else the default client.
#' @return `value`, invisibly.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   `key` or `value` is too long.
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
#' with(mlflow_start_run(), {
#'   mlflow_log_param("alpha", 0.5)
#'   mlflow_log_param("formula", "mpg ~ wt + hp")
#' })
#' @export
mlflow_log_param <- function(key, value, run_id = NULL, client = NULL) {
  check_key(key)
  text <- check_value(value, max_param_value_chars)
  client <- logging_client(client)
  run_id <- logging_run(run_id, client)
  tracking_call("log_param", client, run_id = run_id, key = key, value = text)
  invisible(value)
}

#' Log a metric
#'
#' Records one value of a metric; log the same key again with a higher
#' `step` to build its history ([mlflow_get_metric_history()]).
#'
#' @param key A non-empty string of at most 250 characters: the metric
#'   name. No default.
#' @param value A single number. `NaN`, `Inf` and `-Inf` are sent as MLflow
#'   expects them; `NA` is rejected. No default.
#' @param timestamp The time as a POSIXct or as milliseconds since the
#'   epoch, or `NULL` (default) for now.
#' @param step A whole number, the step, or `NULL` (default) for 0.
#' @inheritParams mlflow_log_param
#' @return `value`, invisibly.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   `key` is too long.
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
#' with(mlflow_start_run(), {
#'   for (step in 1:3) {
#'     mlflow_log_metric("rmse", 3 / step, step = step)
#'   }
#'   mlflow_get_metric_history("rmse")
#' })
#' @export
mlflow_log_metric <- function(key, value, timestamp = NULL, step = NULL, run_id = NULL, client = NULL) {
  check_key(key)
  number <- metric_value(value)
  time <- as_epoch_millis(timestamp, "timestamp", rlang::current_env())
  check_number(step, allow_null = TRUE, whole = TRUE)
  client <- logging_client(client)
  run_id <- logging_run(run_id, client)
  metric <- list(key = key, value = number, timestamp = if (time < 0) NULL else time, step = step)
  tracking_call("log_batch", client, run_id = run_id, metrics = list(Filter(Negate(is.null), metric)))
  invisible(value)
}

#' Log many metrics, params and tags at once
#'
#' Splits the data into as many requests as the server's limits need
#' (1000 metrics, 100 params, 100 tags per request).
#'
#' @param metrics A data frame with columns `key`, `value` and optionally
#'   `timestamp` (milliseconds since the epoch) and `step`, or `NULL`
#'   (default) for none.
#' @param params A data frame with columns `key` and `value`, or `NULL`
#'   (default) for none.
#' @param tags A data frame with columns `key` and `value`, or `NULL`
#'   (default) for none.
#' @inheritParams mlflow_log_param
#' @return `NULL`, invisibly.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument is not a data frame
#'   with the required columns, or a key or value is invalid or too long.
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
#' with(mlflow_start_run(), {
#'   mlflow_log_batch(
#'     metrics = data.frame(key = c("rmse", "r2"), value = c(2.5, 0.83)),
#'     params = data.frame(key = "formula", value = "mpg ~ wt + hp"),
#'     tags = data.frame(key = "data", value = "mtcars")
#'   )
#' })
#' @export
mlflow_log_batch <- function(metrics = NULL, params = NULL, tags = NULL, run_id = NULL, client = NULL) {
  metric_rows <- batch_rows(metrics, c("key", "value"), "metrics", function(row) {
    check_key(row$key, arg = "metrics$key")
    entry <- list(key = row$key, value = metric_value(row$value, arg = "metrics$value"))
    if (!is.null(row$timestamp) && !is.na(row$timestamp)) entry$timestamp <- as.numeric(row$timestamp)
    if (!is.null(row$step) && !is.na(row$step)) entry$step <- as.numeric(row$step)
    entry
  })
  param_rows <- batch_rows(params, c("key", "value"), "params", function(row) {
    check_key(row$key, arg = "params$key")
    list(key = row$key, value = check_value(row$value, max_param_value_chars, arg = "params$value"))
  })
  tag_rows <- batch_rows(tags, c("key", "value"), "tags", function(row) {
    check_key(row$key, arg = "tags$key")
    list(key = row$key, value = check_value(row$value, max_tag_value_chars, arg = "tags$value"))
  })
  client <- logging_client(client)
  run_id <- logging_run(run_id, client)
  tracking_call("log_batch", client, run_id = run_id,
    metrics = metric_rows, params = param_rows, tags = tag_rows)
  invisible(NULL)
}

batch_rows <- function(frame, columns, arg, convert, call = rlang::caller_env()) {
  if (is.null(frame) || (is.data.frame(frame) && nrow(frame) == 0)) {
    return(list())
  }
  if (!is.data.frame(frame) || !all(columns %in% names(frame))) {
    abort_argument(arg, sprintf("a data frame with columns %s", paste(columns, collapse = ", ")), frame, call)
  }
  lapply(seq_len(nrow(frame)), function(i) convert(as.list(frame[i, , drop = FALSE])))
}

#' Set or delete a run tag
#'
#' @param key A non-empty string of at most 250 characters: the tag key. No
#'   default.
#' @param value A single non-`NA` value, sent as a string of at most 8000
#'   characters. No default.
#' @param run_id A string, the run's id, or `NULL` (default) for the active
#'   run. `mlflow_set_tag()` starts a run when none is active;
#'   `mlflow_delete_tag()` fails instead.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the active run's client, else the default client.
#' @return `NULL`, invisibly.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   `key` or `value` is too long.
#' * `mlflowreg_error_not_found`: the run or, for `mlflow_delete_tag()`, the
#'   tag does not exist.
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
#' with(mlflow_start_run(), {
#'   mlflow_set_tag("data", "mtcars")
#'   mlflow_set_tag("draft", TRUE)
#'   mlflow_delete_tag("draft")
#' })
#' @export
mlflow_set_tag <- function(key, value, run_id = NULL, client = NULL) {
  check_key(key)
  text <- check_value(value, max_tag_value_chars)
  client <- logging_client(client)
  run_id <- logging_run(run_id, client)
  tracking_call("set_tag", client, run_id = run_id, key = key, value = text)
  invisible(NULL)
}

#' @rdname mlflow_set_tag
#' @export
mlflow_delete_tag <- function(key, run_id = NULL, client = NULL) {
  check_key(key)
  client <- logging_client(client)
  run_id <- query_run(run_id)
  tracking_call("delete_tag", client, run_id = run_id, key = key)
  invisible(NULL)
}

#' Get the history of a metric
#'
#' @param metric_key A non-empty string of at most 250 characters: the
#'   metric name. No default.
#' @param run_id A string, the run's id, or `NULL` (default) for the active
#'   run.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the active run's client, else the default client.
#' @return A tibble with `key`, `value`, `timestamp` (POSIXct) and `step`,
#'   one row per logged value.
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
#' mlflow_log_metric("loss", 0.9, step = 1)
#' mlflow_log_metric("loss", 0.4, step = 2)
#' mlflow_end_run()
#' mlflow_get_metric_history("loss", run_id = run$run_id)
#' @export
mlflow_get_metric_history <- function(metric_key, run_id = NULL, client = NULL) {
  check_key(metric_key)
  client <- logging_client(client)
  run_id <- query_run(run_id)
  metrics <- tracking_call("get_metric_history", client, run_id = run_id, key = metric_key)
  metrics_tibble(metrics)
}

metrics_tibble <- function(metrics) {
  tibble::tibble(
    key = vapply(metrics, function(m) m$key, character(1)),
    value = vapply(metrics, function(m) as.numeric(m$value), numeric(1)),
    timestamp = millis_to_posix(vapply(metrics, function(m) as.numeric(m$timestamp %||% NA), numeric(1))),
    step = vapply(metrics, function(m) as.numeric(m$step %||% 0), numeric(1))
  )
}

#' Search runs
#'
#' @param filter A string, a filter such as `"metrics.rmse < 1"`, or `NULL`
#'   (default) for all runs.
#' @param run_view_type One of `"ACTIVE_ONLY"` (default), `"DELETED_ONLY"`
#'   or `"ALL"`.
#' @param experiment_ids A character vector of experiment ids, or `NULL`
#'   (default) for the active experiment.
#' @param order_by A character vector (or list) of order clauses such as
#'   `"metrics.rmse ASC"`. Default `list()`: the server's order.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the default client.
#' @return A tibble with one row per run, in the shape of
#'   [mlflow_get_run()]; every page of results is fetched.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type.
#' * `mlflowreg_error_not_found`: an experiment does not exist.
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
#' with(mlflow_start_run(), mlflow_log_metric("rmse", 2.5))
#' runs <- mlflow_search_runs(filter = "metrics.rmse < 3", order_by = "metrics.rmse ASC")
#' runs[, c("run_id", "status")]
#' @export
mlflow_search_runs <- function(filter = NULL, run_view_type = c("ACTIVE_ONLY", "DELETED_ONLY", "ALL"),
                               experiment_ids = NULL, order_by = list(), client = NULL) {
  check_string(filter, allow_null = TRUE)
  run_view_type <- check_choice(run_view_type, c("ACTIVE_ONLY", "DELETED_ONLY", "ALL"))
  experiment_ids <- check_strings(experiment_ids, expected = "a character vector of experiment ids")
  order_by <- order_by_arg(order_by)
  client <- resolve_client(client)
  experiment_ids <- experiment_ids %||% active_experiment_id(client)
  result <- tracking_call("search_runs", client, experiment_ids = I(experiment_ids), filter = filter,
    view_type = run_view_type, order_by = order_by)
  runs <- lapply(result$runs, new_run)
  if (length(runs) == 0) {
    return(new_run(list(info = list(run_id = "", experiment_id = ""), data = list()))[0, ])
  }
  do.call(rbind, runs)
}

#' Terminate, delete or restore a run
#'
#' `mlflow_set_terminated()` ends a run with a status, like
#' [mlflow_end_run()], and removes it from the active runs.
#' `mlflow_delete_run()` marks a run deleted; `mlflow_restore_run()` undoes
#' that.
#'
#' @param status One of `"FINISHED"` (default), `"FAILED"` or `"KILLED"`.
#' @param end_time The end time as a POSIXct or as milliseconds since the
#'   epoch, or `NULL` (default) for now.
#' @param run_id A string, the run's id. No default for `mlflow_delete_run()`
#'   and `mlflow_restore_run()`; `NULL` (default) for the active run in
#'   `mlflow_set_terminated()`.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the default client.
#' @return `mlflow_set_terminated()` returns the run (a one-row tibble of
#'   class `mlflow_run`); the others return `NULL`. Invisibly.
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
#' mlflow_set_terminated("KILLED")
#' mlflow_delete_run(run$run_id)
#' mlflow_restore_run(run$run_id)
#' mlflow_get_run(run$run_id)$status
#' @export
mlflow_set_terminated <- function(status = c("FINISHED", "FAILED", "KILLED"), end_time = NULL,
                                  run_id = NULL, client = NULL) {
  status <- check_choice(status, c("FINISHED", "FAILED", "KILLED"))
  run_id <- query_run(run_id)
  end_ms <- as_epoch_millis(end_time, "end_time", rlang::current_env())
  if (end_ms < 0) {
    end_ms <- round(as.numeric(Sys.time()) * 1000)
  }
  client <- logging_client(client)
  rust_call(update_run_, client, run_id, status, end_ms)
  # A terminated run is no longer active, so later calls do not log to it.
  stack <- .globals$run_stack
  .globals$run_stack <- Filter(function(entry) !identical(entry$run_id, run_id), stack)
  invisible(mlflow_get_run(run_id, client = client))
}

#' @rdname mlflow_set_terminated
#' @export
mlflow_delete_run <- function(run_id, client = NULL) {
  check_string(run_id)
  tracking_call("delete_run", logging_client(client), run_id = run_id)
  invisible(NULL)
}

#' @rdname mlflow_set_terminated
#' @export
mlflow_restore_run <- function(run_id, client = NULL) {
  check_string(run_id)
  tracking_call("restore_run", logging_client(client), run_id = run_id)
  invisible(NULL)
}

#' Get the id of a run or experiment
#'
#' @param object A run from [mlflow_start_run()] or [mlflow_get_run()], or an
#'   experiment from [mlflow_get_experiment()]. No default.
#' @return The id, a string.
#' @section Conditions:
#' `mlflowreg_error_invalid_argument` when `object` is neither a run nor an
#' experiment. See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' mlflow_set_experiment("mlflowreg-examples")
#' run <- mlflow_start_run()
#' mlflow_end_run()
#' mlflow_id(run)
#' mlflow_id(mlflow_get_experiment())
#' @export
mlflow_id <- function(object) {
  UseMethod("mlflow_id")
}

#' @export
mlflow_id.mlflow_run <- function(object) {
  object$run_uuid
}

#' @export
mlflow_id.mlflow_experiment <- function(object) {
  object$experiment_id
}

#' @export
mlflow_id.default <- function(object) {
  abort_argument("object", "a run or an experiment", object, rlang::current_env())
}
