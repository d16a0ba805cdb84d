# Experiments and runs.

rust_call <- function(fun, client, ..., call = rlang::caller_env()) {
  rust_json(invoke_rust(client, fun, ...), call = call)
}

#' Set the active experiment
#'
#' Makes an experiment the one new runs go to, creating it when no
#' experiment of that name exists yet.
#'
#' @param experiment_name A non-empty string, the experiment's name, or
#'   `NULL` (default).
#' @param experiment_id A non-empty string, the id of an existing
#'   experiment, or `NULL` (default). Give exactly one of `experiment_name`
#'   and `experiment_id`.
#' @param artifact_location A string, where a newly created experiment
#'   stores artifacts, or `NULL` (default) for the server's default.
#' @return The experiment id (a string), invisibly.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   both or neither of `experiment_name` and `experiment_id` are given.
#' * `mlflowreg_error_not_found`: no experiment has that `experiment_id`.
#' * `mlflowreg_error_unreachable`: the server could not be reached.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' id <- mlflow_set_experiment("mlflowreg-examples")
#' id
#' @export
mlflow_set_experiment <- function(experiment_name = NULL, experiment_id = NULL,
                                  artifact_location = NULL) {
  check_string(experiment_name, allow_null = TRUE)
  check_string(experiment_id, allow_null = TRUE)
  check_string(artifact_location, allow_null = TRUE)
  if (is.null(experiment_name) == is.null(experiment_id)) {
    mlflowreg_abort(
      "Give exactly one of `experiment_name` and `experiment_id`.",
      kind = "invalid_argument"
    )
  }
  client <- mlflow_client()
  if (!is.null(experiment_id)) {
    id <- tracking_call("get_experiment", client, experiment_id = experiment_id)$experiment_id
  } else {
    existing <- rust_call(get_experiment_by_name_, client, experiment_name)
    if (is.null(existing)) {
      id <- rust_call(create_experiment_, client, experiment_name, artifact_location %||% "", "")
    } else {
      id <- existing$experiment_id
    }
  }
  .globals$active_experiment_id <- id
  invisible(id)
}

# The experiment a new run goes to: the active one, else the job's
# MLFLOW_EXPERIMENT_ID or MLFLOW_EXPERIMENT_NAME, else the default "0".
active_experiment_id <- function(client) {
  if (!is.null(.globals$active_experiment_id)) {
    return(.globals$active_experiment_id)
  }
  env_id <- Sys.getenv("MLFLOW_EXPERIMENT_ID")
  if (nzchar(env_id)) {
    return(env_id)
  }
  env_name <- Sys.getenv("MLFLOW_EXPERIMENT_NAME")
  if (nzchar(env_name)) {
    existing <- rust_call(get_experiment_by_name_, client, env_name)
    if (!is.null(existing)) {
      return(existing$experiment_id)
    }
    return(rust_call(create_experiment_, client, env_name, "", ""))
  }
  "0"
}

active_run_id <- function() {
  stack <- .globals$run_stack
  if (length(stack) == 0) NULL else stack[[length(stack)]]$run_id
}

# The run a job hands over in MLFLOW_RUN_ID, used by the first top-level
# mlflow_start_run() only: like Python mlflow, later runs and nested runs
# are new runs.
job_run_id <- function(parent) {
  id <- trimws(Sys.getenv("MLFLOW_RUN_ID"))
  if (!nzchar(id) || !is.null(parent) || identical(.globals$consumed_job_run_id, id)) {
    return(NULL)
  }
  id
}

# The tags R mlflow sets on every new run.
run_context_tags <- function() {
  script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  list(
    mlflow.user = Sys.info()[["user"]],
    mlflow.source.name = if (length(script) == 1) script else "R",
    mlflow.source.type = "LOCAL"
  )
}

# Converts a time to milliseconds since the epoch; -1 means "now" to the
# Rust exports, which take no NA.
as_epoch_millis <- function(x, arg, call) {
  if (is.null(x)) {
    return(-1)
  }
  if (inherits(x, "POSIXt")) {
    x <- round(as.numeric(as.POSIXct(x)) * 1000)
  }
  # Up to the year 9999 in milliseconds: larger values are not times.
  if (!is.numeric(x) || length(x) != 1 || !is.finite(x) || x < 0 || x > 253402300799999) {
    abort_argument(arg, "a POSIXct time or milliseconds since 1970 before the year 10000", x, call)
  }
  x
}

#' Start a run
#'
#' Starts a new run, or resumes the run `run_id` (by default the job's
#' `MLFLOW_RUN_ID`, as Azure ML and other schedulers set it), and makes it
#' the active run. Use it with [with()] to end the run automatically, or
#' end it with [mlflow_end_run()].
#'
#' @param run_id A string, the id of an existing run to resume, or `NULL`
#'   (default).
#' @param experiment_id A string, the experiment of a new run, or `NULL`
#'   (default) for the active experiment, else `MLFLOW_EXPERIMENT_ID`, else
#'   `MLFLOW_EXPERIMENT_NAME`, else `"0"`.
#' @param start_time The start time as a POSIXct or as milliseconds since
#'   the epoch, or `NULL` (default) for now.
#' @param tags A named list of scalar run tags, or `NULL` (default).
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the default client.
#' @param nested `TRUE` to start a run inside the active run, `FALSE`
#'   (default) otherwise.
#' @return The run: a one-row tibble of class `mlflow_run` with R mlflow's
#'   columns (`run_uuid`, `experiment_id`, `run_name`, `status`,
#'   `start_time`, `artifact_uri`, `metrics`, `params`, `tags`, `run_id`,
#'   ...).
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   a run is active already and `nested` is `FALSE`.
#' * `mlflowreg_error_not_found`: the run or experiment does not exist.
#' * `mlflowreg_error_unreachable`: the server could not be reached.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' mlflow_set_experiment("mlflowreg-examples")
#' run <- mlflow_start_run(tags = list(purpose = "example"))
#' run
#' mlflow_end_run()
#' @export
mlflow_start_run <- function(run_id = NULL, experiment_id = NULL, start_time = NULL,
                             tags = NULL, client = NULL, nested = FALSE) {
  check_string(run_id, allow_null = TRUE)
  check_string(experiment_id, allow_null = TRUE)
  check_flag(nested)
  start_ms <- as_epoch_millis(start_time, "start_time", rlang::current_env())
  user_tags <- tags_json(tags)
  client <- resolve_client(client)

  parent <- active_run_id()
  if (!is.null(parent) && !nested) {
    mlflowreg_abort(
      c(
        sprintf("Run %s is already active.", parent),
        i = "End it with `mlflow_end_run()`, or pass `nested = TRUE` to start a child run."
      ),
      kind = "invalid_argument"
    )
  }

  existing <- run_id %||% job_run_id(parent)
  if (!is.null(existing)) {
    run <- tryCatch(
      rust_call(get_run_, client, existing),
      mlflowreg_error_not_found = function(err) {
        from_env <- is.null(run_id)
        mlflowreg_abort(
          c(
            sprintf("Run %s does not exist in the tracking store.", describe_value(existing)),
            i = if (from_env) "The id came from MLFLOW_RUN_ID; unset it or set it to an existing run." else
              "Pass the id of an existing run, or NULL to start a new one."
          ),
          kind = "not_found", parent = err
        )
      }
    )
    if (is.null(run_id)) {
      .globals$consumed_job_run_id <- existing
    }
    if (!identical(run$info$status, "RUNNING")) {
      rust_call(update_run_, client, existing, "RUNNING", -1)
      run <- rust_call(get_run_, client, existing)
    }
  } else {
    tags_list <- run_context_tags()
    if (!is.null(parent)) {
      tags_list[["mlflow.parentRunId"]] <- parent
    }
    if (nzchar(user_tags)) {
      tags_list <- utils::modifyList(tags_list, jsonlite::fromJSON(user_tags))
    }
    experiment <- experiment_id %||% active_experiment_id(client)
    run <- rust_call(create_run_, client, experiment, "", start_ms, tags_json(tags_list))
  }
  entry <- list(run_id = run$info$run_id, client = client, artifact_uri = run$info$artifact_uri)
  .globals$run_stack <- c(.globals$run_stack, list(entry))
  new_run(run)
}

#' End a run
#'
#' Marks a run terminated and removes it from the stack of active runs.
#'
#' @param status One of `"FINISHED"` (default), `"FAILED"` or `"KILLED"`.
#' @param end_time The end time as a POSIXct or as milliseconds since the
#'   epoch, or `NULL` (default) for now.
#' @param run_id A string, the run to end, or `NULL` (default) for the
#'   active run.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the one the run was started with.
#' @return The ended run, a one-row tibble of class `mlflow_run`,
#'   invisibly.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   no run is active and `run_id` is `NULL`. A `status` that is not one of
#'   the three raises `rlang::arg_match()`'s error.
#' * `mlflowreg_error_not_found`: the run does not exist.
#' * `mlflowreg_error_unreachable`: the server could not be reached.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' mlflow_set_experiment("mlflowreg-examples")
#' mlflow_start_run()
#' ended <- mlflow_end_run(status = "KILLED")
#' ended$status
#' @export
mlflow_end_run <- function(status = c("FINISHED", "FAILED", "KILLED"), end_time = NULL,
                           run_id = NULL, client = NULL) {
  status <- run_status_arg(status)
  check_string(run_id, allow_null = TRUE)
  end_ms <- as_epoch_millis(end_time, "end_time", rlang::current_env())
  active <- active_run_id()
  run_id <- run_id %||% active
  if (is.null(run_id)) {
    mlflowreg_abort("There is no active run to end.", kind = "invalid_argument")
  }
  stack <- .globals$run_stack
  position <- Position(function(entry) identical(entry$run_id, run_id), stack, right = TRUE)
  if (is.null(client) && !is.na(position)) {
    client <- stack[[position]]$client
  }
  client <- resolve_client(client)
  if (end_ms < 0) {
    end_ms <- round(as.numeric(Sys.time()) * 1000)
  }
  rust_call(update_run_, client, run_id, status, end_ms)
  if (!is.na(position)) {
    .globals$run_stack <- stack[-position]
  }
  invisible(new_run(rust_call(get_run_, client, run_id)))
}

run_status_arg <- function(status, call = rlang::caller_env()) {
  allowed <- c("FINISHED", "FAILED", "KILLED")
  if (identical(status, allowed)) {
    return("FINISHED")
  }
  if (!is.character(status) || length(status) != 1 || !status %in% allowed) {
    abort_argument("status", sprintf("one of %s", paste0('"', allowed, '"', collapse = ", ")), status, call)
  }
  status
}

#' Get a run
#'
#' @param run_id A string, the run's id, or `NULL` (default) for the active
#'   run.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the default client.
#' @return The run: a one-row tibble of class `mlflow_run`, as
#'   [mlflow_start_run()] returns it.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: `run_id` is not a string, or is
#'   `NULL` while no run is active.
#' * `mlflowreg_error_not_found`: the run does not exist.
#' * `mlflowreg_error_unreachable`: the server could not be reached.
#'
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' mlflow_set_experiment("mlflowreg-examples")
#' run <- mlflow_start_run()
#' mlflow_end_run()
#' run <- mlflow_get_run(run$run_id)
#' run$status
#' run
#' @export
mlflow_get_run <- function(run_id = NULL, client = NULL) {
  check_string(run_id, allow_null = TRUE)
  run_id <- run_id %||% active_run_id()
  if (is.null(run_id)) {
    mlflowreg_abort("`run_id` is NULL and there is no active run.", kind = "invalid_argument")
  }
  new_run(rust_call(get_run_, resolve_client(client), run_id))
}

# The active run's id, starting a run first when none is active (as R
# mlflow's logging functions do).
active_run_id_or_start <- function(client) {
  run_id <- active_run_id()
  if (is.null(run_id)) {
    run_id <- mlflow_start_run(client = client)$run_id
  }
  run_id
}

active_run_client <- function() {
  stack <- .globals$run_stack
  if (length(stack) == 0) NULL else stack[[length(stack)]]$client
}

millis_to_posix <- function(x) {
  if (is.null(x)) {
    return(as.POSIXct(NA))
  }
  as.POSIXct(as.numeric(x) / 1000, origin = "1970-01-01", tz = "UTC")
}

key_value_tibble <- function(entries) {
  tibble::tibble(
    key = vapply(entries, function(e) e$key, character(1)),
    value = vapply(entries, function(e) e$value %||% "", character(1))
  )
}

# Builds R mlflow's run tibble from the REST API's run object.
new_run <- function(run) {
  info <- run$info
  data <- run$data
  metrics <- data$metrics %||% list()
  result <- tibble::tibble(
    run_uuid = info$run_id,
    experiment_id = info$experiment_id,
    run_name = info$run_name %||% NA_character_,
    user_id = info$user_id %||% NA_character_,
    status = info$status %||% NA_character_,
    start_time = millis_to_posix(info$start_time),
    end_time = millis_to_posix(info$end_time),
    artifact_uri = info$artifact_uri %||% NA_character_,
    lifecycle_stage = info$lifecycle_stage %||% NA_character_,
    run_id = info$run_id,
    metrics = list(tibble::tibble(
      key = vapply(metrics, function(m) m$key, character(1)),
      value = vapply(metrics, function(m) as.numeric(m$value), numeric(1)),
      timestamp = millis_to_posix(vapply(metrics, function(m) as.numeric(m$timestamp %||% NA), numeric(1))),
      step = vapply(metrics, function(m) as.numeric(m$step %||% 0), numeric(1))
    )),
    params = list(key_value_tibble(data$params %||% list())),
    tags = list(key_value_tibble(data$tags %||% list()))
  )
  class(result) <- c("mlflow_run", class(result))
  result
}

#' Run code inside a run
#'
#' Evaluates `expr` and ends the run: `FINISHED` when `expr` succeeds,
#' `FAILED` when it raises an error, which is then raised again, and
#' `KILLED` on an interrupt.
#'
#' @param data A run from [mlflow_start_run()].
#' @param expr Code to evaluate.
#' @param ... Ignored.
#' @return The value of `expr`, invisibly.
#' @section Conditions:
#' Those of [mlflow_end_run()], and any error `expr` raises.
#' See [mlflowreg_conditions].
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' mlflow_set_experiment("mlflowreg-examples")
#' logged <- with(mlflow_start_run(), {
#'   mlflow_log_model(lm(mpg ~ wt, data = mtcars), "model")
#' })
#' mlflow_get_run(logged$run_id)$status
#' @export
with.mlflow_run <- function(data, expr, ...) {
  run_id <- data$run_id
  # Ends the run, but never lets a failure to reach the server hide the
  # error of `expr`: that failure becomes a warning, and the run leaves the
  # stack of active runs either way.
  end_quietly <- function(status) {
    tryCatch(
      mlflow_end_run(status = status, run_id = run_id),
      error = function(err) {
        .globals$run_stack <- Filter(function(entry) !identical(entry$run_id, run_id), .globals$run_stack)
        rlang::warn(
          sprintf("Could not mark run %s %s: %s", run_id, status, conditionMessage(err)),
          class = "mlflowreg_warning"
        )
      }
    )
  }
  value <- tryCatch(
    expr,
    error = function(err) {
      end_quietly("FAILED")
      stop(err)
    },
    interrupt = function(cnd) {
      end_quietly("KILLED")
      rlang::interrupt()
    }
  )
  mlflow_end_run(status = "FINISHED", run_id = run_id)
  invisible(value)
}
