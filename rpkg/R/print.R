# format() and print() methods for the objects users get back: clients,
# runs, registered models, model versions and logged models. format()
# returns the lines; print() writes them to standard output. cli styles them
# (bold headers, coloured statuses) where the terminal supports it and
# leaves plain text otherwise, as in knitr output and logs.

# One "• label: value" line per non-empty value.
format_fields <- function(fields) {
  fields <- fields[!vapply(fields, function(value) is.null(value) || identical(value, ""), TRUE)]
  if (length(fields) == 0) {
    return(character())
  }
  paste0(cli::symbol$bullet, " ", cli::col_grey(paste0(names(fields), ":")), " ", unlist(fields))
}

format_header <- function(kind, title) {
  paste(cli::style_bold(paste0("<", kind, ">")), title)
}

# Milliseconds since the epoch, as MLflow sends them, to a UTC time string.
format_millis <- function(millis) {
  if (is.null(millis) || length(millis) != 1 || is.na(millis)) {
    return(NULL)
  }
  format(as.POSIXct(as.numeric(millis) / 1000, origin = "1970-01-01", tz = "UTC"),
    "%Y-%m-%d %H:%M:%S UTC")
}

format_time <- function(time) {
  if (length(time) != 1 || is.na(time)) {
    return(NULL)
  }
  format(time, "%Y-%m-%d %H:%M:%S UTC", tz = "UTC")
}

# A status coloured by outcome: green when done, red when failed, yellow
# while in progress.
format_status <- function(status) {
  if (is.null(status) || length(status) != 1 || is.na(status)) {
    return("unknown")
  }
  colour <- switch(status,
    READY = ,
    FINISHED = cli::col_green,
    FAILED_REGISTRATION = ,
    FAILED = ,
    KILLED = cli::col_red,
    PENDING_REGISTRATION = ,
    RUNNING = ,
    SCHEDULED = cli::col_yellow,
    identity
  )
  colour(status)
}

# "key = value, ..." for a list of {key, value} records or a key/value tibble.
format_tags <- function(tags, hide_system = TRUE) {
  if (is.data.frame(tags)) {
    keys <- tags$key
    values <- tags$value
  } else {
    keys <- vapply(tags, function(tag) tag$key %||% "", "")
    values <- vapply(tags, function(tag) tag$value %||% "", "")
  }
  if (hide_system) {
    # MLflow's own tags (mlflow.user, mlflow.source.name, ...) fill a
    # screen for every run and say little; they stay in the object.
    user <- !startsWith(keys, "mlflow.")
    keys <- keys[user]
    values <- values[user]
  }
  if (length(keys) == 0) {
    return(NULL)
  }
  paste0(keys, " = ", values, collapse = ", ")
}

#' @export
format.mlflowreg_client <- function(x, ...) {
  fields <- list(`tracking URI` = sprintf("%s (from %s)", x$tracking_uri, x$origin))
  c(format_header("mlflow client", x$server_url), format_fields(fields))
}

#' @export
print.mlflowreg_client <- function(x, ...) {
  writeLines(format(x, ...))
  invisible(x)
}

# A run is a one-row tibble, as in R mlflow. Anything else (a subset, or
# rows bound together) prints as the tibble it is.
is_single_run <- function(x) {
  nrow(x) == 1 && all(c("run_id", "status", "experiment_id") %in% names(x))
}

#' @export
format.mlflow_run <- function(x, ...) {
  if (!is_single_run(x)) {
    return(NextMethod())
  }
  title <- x$run_id
  if (!is.na(x$run_name %||% NA)) {
    title <- sprintf("%s (%s)", x$run_id, x$run_name)
  }
  counts <- sprintf("%d metrics, %d params, %d tags",
    nrow(x$metrics[[1]]), nrow(x$params[[1]]), nrow(x$tags[[1]]))
  fields <- list(
    status = format_status(x$status),
    experiment_id = x$experiment_id,
    started = format_time(x$start_time),
    ended = format_time(x$end_time),
    artifact_uri = if (!is.na(x$artifact_uri)) x$artifact_uri,
    data = counts,
    tags = format_tags(x$tags[[1]])
  )
  c(format_header("mlflow run", title), format_fields(fields))
}

#' @export
print.mlflow_run <- function(x, ...) {
  if (!is_single_run(x)) {
    return(NextMethod())
  }
  writeLines(format(x, ...))
  invisible(x)
}

#' @export
format.mlflow_registered_model <- function(x, ...) {
  latest <- vapply(x$latest_versions %||% list(), function(version) {
    stage <- version$current_stage %||% "None"
    label <- if (identical(stage, "None")) "" else paste0(stage, ", ")
    sprintf("%s (%s%s)", version$version, label, format_status(version$status))
  }, "")
  aliases <- vapply(x$aliases %||% list(), function(alias) {
    sprintf("%s -> %s", alias$alias, alias$version)
  }, "")
  fields <- list(
    description = x$description,
    `latest versions` = if (length(latest) > 0) paste(latest, collapse = ", "),
    aliases = if (length(aliases) > 0) paste(aliases, collapse = ", "),
    tags = format_tags(x$tags %||% list(), hide_system = FALSE),
    created = format_millis(x$creation_timestamp),
    updated = format_millis(x$last_updated_timestamp)
  )
  c(format_header("mlflow registered model", x$name), format_fields(fields))
}

#' @export
print.mlflow_registered_model <- function(x, ...) {
  writeLines(format(x, ...))
  invisible(x)
}

#' @export
format.mlflow_model_version <- function(x, ...) {
  status <- format_status(x$status)
  if (!is.null(x$status_message) && nzchar(x$status_message)) {
    status <- sprintf("%s (%s)", status, x$status_message)
  }
  stage <- x$current_stage
  if (identical(stage, "None")) {
    stage <- NULL
  }
  fields <- list(
    status = status,
    source = x$source,
    run_id = x$run_id,
    aliases = if (length(x$aliases) > 0) paste(unlist(x$aliases), collapse = ", "),
    stage = stage,
    description = x$description,
    tags = format_tags(x$tags %||% list(), hide_system = FALSE),
    created = format_millis(x$creation_timestamp)
  )
  title <- sprintf("%s, version %s", x$name, x$version)
  c(format_header("mlflow model version", title), format_fields(fields))
}

#' @export
print.mlflow_model_version <- function(x, ...) {
  writeLines(format(x, ...))
  invisible(x)
}

#' @export
format.mlflow_logged_model <- function(x, ...) {
  registered <- NULL
  if (!is.null(x$model_version)) {
    version <- x$model_version
    registered <- sprintf("%s, version %s (%s)", version$name, version$version,
      format_status(version$status))
  }
  fields <- list(
    run_id = x$run_id,
    artifact_uri = x$artifact_uri,
    flavors = paste(names(x$flavors), collapse = ", "),
    registered = registered
  )
  c(format_header("mlflow logged model", x$model_uri), format_fields(fields))
}

#' @export
print.mlflow_logged_model <- function(x, ...) {
  writeLines(format(x, ...))
  invisible(x)
}
