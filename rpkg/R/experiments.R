# Experiments beyond mlflow_set_experiment().

tracking_call <- function(operation, client, ..., call = rlang::caller_env()) {
  args <- Filter(Negate(is.null), list(...))
  body <- as.character(jsonlite::toJSON(args, auto_unbox = TRUE, null = "null", digits = NA))
  rust_json(invoke_rust(client, tracking_, operation, body), call = call)
}

new_experiment <- function(experiment) {
  tags <- experiment$tags %||% list()
  result <- tibble::tibble(
    experiment_id = experiment$experiment_id,
    name = experiment$name,
    artifact_location = experiment$artifact_location %||% NA_character_,
    lifecycle_stage = experiment$lifecycle_stage %||% NA_character_,
    creation_time = millis_to_posix(experiment$creation_time),
    last_update_time = millis_to_posix(experiment$last_update_time),
    tags = list(key_value_tibble(tags))
  )
  class(result) <- c("mlflow_experiment", class(result))
  result
}

#' Create an experiment
#'
#' Creates an experiment and returns its id. Unlike [mlflow_set_experiment()]
#' it does not make the experiment active, and it fails when the name is
#' taken.
#'
#' @param name A non-empty string: the experiment's name. No default.
#' @param artifact_location A string, where the experiment's runs store
#'   artifacts, or `NULL` (default) for the server's default.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the default client.
#' @param tags A named list of scalar experiment tags, or `NULL` (default).
#' @return The new experiment's id, a string.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type.
#' * `mlflowreg_error_already_exists`: an experiment of that name exists
#'   (deleted experiments keep their name).
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
#' id <- mlflow_create_experiment(name, tags = list(team = "pricing"))
#' mlflow_get_experiment(id)
#' mlflow_delete_experiment(id)
#' @export
mlflow_create_experiment <- function(name, artifact_location = NULL, client = NULL, tags = NULL) {
  check_string(name)
  check_string(artifact_location, allow_null = TRUE)
  tags <- tags_json(tags)
  rust_call(create_experiment_, resolve_client(client), name, artifact_location %||% "", tags)
}

#' Get an experiment
#'
#' @param experiment_id A string, the experiment's id, or `NULL` (default)
#'   for the active experiment (see [mlflow_set_experiment()]).
#' @param name A string, the experiment's name instead of an id, or `NULL`
#'   (default). Give at most one of `experiment_id` and `name`.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the default client.
#' @return A one-row tibble of class `mlflow_experiment` with
#'   `experiment_id`, `name`, `artifact_location`, `lifecycle_stage`,
#'   `creation_time`, `last_update_time` and `tags` (a list column of
#'   key/value tibbles).
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   both `experiment_id` and `name` are given.
#' * `mlflowreg_error_not_found`: no experiment has that id or name.
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
#' experiment <- mlflow_get_experiment(name = "mlflowreg-examples")
#' experiment$experiment_id
#' @export
mlflow_get_experiment <- function(experiment_id = NULL, name = NULL, client = NULL) {
  check_string(experiment_id, allow_null = TRUE)
  check_string(name, allow_null = TRUE)
  if (!is.null(experiment_id) && !is.null(name)) {
    mlflowreg_abort("Give `experiment_id` or `name`, not both.", kind = "invalid_argument")
  }
  client <- resolve_client(client)
  if (!is.null(name)) {
    experiment <- rust_call(get_experiment_by_name_, client, name)
    if (is.null(experiment)) {
      mlflowreg_abort(
        c(sprintf("There is no experiment named %s.", describe_value(name)),
          i = "Create it with `mlflow_create_experiment()` or `mlflow_set_experiment()`."),
        kind = "not_found"
      )
    }
    return(new_experiment(experiment))
  }
  experiment_id <- experiment_id %||% active_experiment_id(client)
  new_experiment(tracking_call("get_experiment", client, experiment_id = experiment_id))
}

#' Search experiments
#'
#' @param filter A string, a filter such as `"name LIKE 'churn%'"`, or
#'   `NULL` (default) for all experiments.
#' @param experiment_view_type One of `"ACTIVE_ONLY"` (default),
#'   `"DELETED_ONLY"` or `"ALL"`.
#' @param max_results A number >= 1, the largest number of experiments to
#'   return, or `NULL` (default) for all.
#' @param order_by A character vector (or list) of order clauses such as
#'   `"name ASC"`. Default `list()`: the server's order.
#' @param page_token A string from an earlier search's `next_page_token`,
#'   or `NULL` (default) to start at the first page.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the default client.
#' @return A list with `experiments` (a tibble in the shape of
#'   [mlflow_get_experiment()], one row per experiment) and
#'   `next_page_token` (`NULL` when there are no more).
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   `experiment_view_type` is not one of the three (raised by
#'   `rlang::arg_match()`, without the mlflowreg classes).
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
#' found <- mlflow_search_experiments(filter = "name LIKE 'mlflowreg-%'")
#' found$experiments[, c("experiment_id", "name")]
#' @export
mlflow_search_experiments <- function(filter = NULL,
                                      experiment_view_type = c("ACTIVE_ONLY", "DELETED_ONLY", "ALL"),
                                      max_results = NULL, order_by = list(), page_token = NULL,
                                      client = NULL) {
  check_string(filter, allow_null = TRUE)
  experiment_view_type <- check_choice(experiment_view_type, c("ACTIVE_ONLY", "DELETED_ONLY", "ALL"))
  check_number(max_results, min = 1, allow_null = TRUE, whole = TRUE)
  check_string(page_token, allow_null = TRUE)
  result <- tracking_call("search_experiments", resolve_client(client),
    filter = filter, view_type = experiment_view_type, max_results = max_results,
    order_by = order_by_arg(order_by), page_token = page_token)
  experiments <- lapply(result$experiments, new_experiment)
  list(
    experiments = if (length(experiments)) do.call(rbind, experiments) else new_experiment_empty(),
    next_page_token = result$next_page_token
  )
}

new_experiment_empty <- function() {
  new_experiment(list(experiment_id = "", name = ""))[0, ]
}

#' Delete, restore, rename or tag an experiment
#'
#' `mlflow_delete_experiment()` marks an experiment deleted (the server
#' keeps it, and its name, until it is purged); `mlflow_restore_experiment()`
#' undoes that. `mlflow_rename_experiment()` and
#' `mlflow_set_experiment_tag()` change the experiment in place.
#'
#' @param experiment_id A string, the experiment's id. No default for
#'   `mlflow_delete_experiment()` and `mlflow_restore_experiment()`; `NULL`
#'   (default) for the active experiment in `mlflow_rename_experiment()` and
#'   `mlflow_set_experiment_tag()`.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the default client.
#' @return `NULL`, invisibly.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, a
#'   tag key is longer than 250 characters or a tag value longer than 5000.
#' * `mlflowreg_error_not_found`: the experiment does not exist.
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
#' id <- mlflow_create_experiment(name)
#' mlflow_set_experiment_tag("team", "pricing", experiment_id = id)
#' mlflow_rename_experiment(paste0(name, "-renamed"), experiment_id = id)
#' mlflow_delete_experiment(id)
#' mlflow_restore_experiment(id)
#' mlflow_delete_experiment(id)
#' @export
mlflow_delete_experiment <- function(experiment_id, client = NULL) {
  check_string(experiment_id)
  tracking_call("delete_experiment", resolve_client(client), experiment_id = experiment_id)
  invisible(NULL)
}

#' @rdname mlflow_delete_experiment
#' @export
mlflow_restore_experiment <- function(experiment_id, client = NULL) {
  check_string(experiment_id)
  tracking_call("restore_experiment", resolve_client(client), experiment_id = experiment_id)
  invisible(NULL)
}

#' @rdname mlflow_delete_experiment
#' @param new_name A non-empty string: the new name. No default.
#' @export
mlflow_rename_experiment <- function(new_name, experiment_id = NULL, client = NULL) {
  check_string(new_name)
  check_string(experiment_id, allow_null = TRUE)
  client <- resolve_client(client)
  experiment_id <- experiment_id %||% active_experiment_id(client)
  tracking_call("rename_experiment", client, experiment_id = experiment_id, new_name = new_name)
  invisible(NULL)
}

#' @rdname mlflow_delete_experiment
#' @param key A non-empty string of at most 250 characters: the tag key. No
#'   default.
#' @param value A single non-`NA` value, sent as a string of at most 5000
#'   characters. No default.
#' @export
mlflow_set_experiment_tag <- function(key, value, experiment_id = NULL, client = NULL) {
  check_key(key)
  value <- check_value(value, max_chars = 5000)
  check_string(experiment_id, allow_null = TRUE)
  client <- resolve_client(client)
  experiment_id <- experiment_id %||% active_experiment_id(client)
  tracking_call("set_experiment_tag", client, experiment_id = experiment_id, key = key, value = value)
  invisible(NULL)
}
