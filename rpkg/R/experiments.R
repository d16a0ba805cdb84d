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
#' @param name Name of the experiment.
#' @param artifact_location Where its runs store artifacts; `NULL` for the
#'   server's default.
#' @param client A client, or `NULL` for the default.
#' @param tags Named list of experiment tags.
#' @return The new experiment's id.
#' @export
mlflow_create_experiment <- function(name, artifact_location = NULL, client = NULL, tags = NULL) {
  check_string(name)
  check_string(artifact_location, allow_null = TRUE)
  tags <- tags_json(tags)
  rust_call(create_experiment_, resolve_client(client), name, artifact_location %||% "", tags)
}

#' Get an experiment
#'
#' @param experiment_id Id of the experiment; by default the active one.
#' @param name Name of the experiment, instead of an id.
#' @param client A client, or `NULL` for the default.
#' @return A one-row tibble with `experiment_id`, `name`,
#'   `artifact_location`, `lifecycle_stage`, `creation_time`,
#'   `last_update_time` and `tags`.
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
#' @param filter Filter string such as `"name LIKE 'churn%'"`, or `NULL`.
#' @param experiment_view_type `"ACTIVE_ONLY"`, `"DELETED_ONLY"` or `"ALL"`.
#' @param max_results Largest number of experiments to return; `NULL` for all.
#' @param order_by Character vector of order clauses.
#' @param page_token Token from an earlier search, or `NULL`.
#' @param client A client, or `NULL` for the default.
#' @return A list with `experiments` (a tibble) and `next_page_token`.
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
#' @param experiment_id Id of the experiment; by default the active one
#'   for `mlflow_rename_experiment()` and `mlflow_set_experiment_tag()`.
#' @param client A client, or `NULL` for the default.
#' @return `NULL`, invisibly.
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
#' @param new_name The new name.
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
#' @param key Tag key.
#' @param value Tag value, converted to a string.
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
