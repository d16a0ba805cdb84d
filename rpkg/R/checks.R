# Argument checks. Each names the argument, what was expected and what
# was given, and raises `mlflowreg_error_invalid_argument`.

describe_value <- function(x) {
  if (is.null(x)) {
    return("NULL")
  }
  if (is.atomic(x) && length(x) == 1) {
    if (is.na(x)) {
      return("NA")
    }
    if (is.character(x)) {
      return(encodeString(x, quote = "\""))
    }
    return(format(x))
  }
  sprintf("a %s of length %d", paste(class(x), collapse = "/"), length(x))
}

abort_argument <- function(arg, expected, x, call) {
  mlflowreg_abort(
    sprintf("`%s` must be %s, not %s.", arg, expected, describe_value(x)),
    kind = "invalid_argument",
    call = call
  )
}

check_string <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env(),
                         allow_null = FALSE) {
  if (allow_null && is.null(x)) {
    return(invisible(x))
  }
  if (!is.character(x) || length(x) != 1 || is.na(x) || !nzchar(x)) {
    expected <- if (allow_null) "a non-empty string or NULL" else "a non-empty string"
    abort_argument(arg, expected, x, call)
  }
  invisible(x)
}

# A single finite number of at least `min`; with `whole = TRUE` also a
# whole number, as counts, steps and milliseconds are.
check_number <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env(),
                         min = -Inf, allow_null = FALSE, whole = FALSE) {
  if (allow_null && is.null(x)) {
    return(invisible(x))
  }
  if (!is.numeric(x) || length(x) != 1 || !is.finite(x) || x < min || (whole && x != round(x))) {
    kind <- if (whole) "a whole number" else "a number"
    expected <- if (is.finite(min)) sprintf("%s >= %s", kind, format(min)) else kind
    abort_argument(arg, expected, x, call)
  }
  invisible(x)
}

# One of `choices`. The whole `choices` vector, the usual default of such
# an argument, means its first element, as with match.arg().
check_choice <- function(x, choices, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  if (identical(x, choices)) {
    return(choices[[1]])
  }
  if (!is.character(x) || length(x) != 1 || is.na(x) || !x %in% choices) {
    abort_argument(arg, sprintf("one of %s", paste0('"', choices, '"', collapse = ", ")), x, call)
  }
  x
}

# A path inside a run's artifacts: a non-empty string that is relative and
# has no ".." segment, so it cannot leave the run's artifact root.
check_artifact_path <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env(),
                                allow_null = FALSE) {
  check_string(x, arg = arg, call = call, allow_null = allow_null)
  if (is.null(x)) {
    return(invisible(x))
  }
  parts <- strsplit(x, "[/\\\\]")[[1]]
  if (grepl("^([/\\\\]|[A-Za-z]:)", x) || ".." %in% parts) {
    abort_argument(arg, "a relative path without \"..\" inside the run's artifacts", x, call)
  }
  invisible(x)
}

# A client from mlflow_client() (or R mlflow's), or NULL. Functions that
# may not use their client (a local model path needs none) call this so a
# wrong value is still reported.
check_client <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  if (!is.null(x) && !inherits(x, "mlflowreg_client") &&
    !(inherits(x, "mlflow_client") && is.function(x$get_host_creds))) {
    abort_argument(arg, "a client made by mlflow_client() or NULL", x, call)
  }
  invisible(x)
}

# A character vector of non-empty strings without NA (order_by clauses,
# experiment ids); NULL and empty lists are allowed. Returns it unlisted.
check_strings <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env(),
                          expected = "a character vector of non-empty strings") {
  if (is.list(x) && !all(vapply(x, function(item) is.character(item) && length(item) == 1, logical(1)))) {
    abort_argument(arg, expected, x, call)
  }
  values <- unlist(x)
  if (length(values) == 0) {
    return(NULL)
  }
  if (!is.character(values) || anyNA(values) || any(!nzchar(values))) {
    abort_argument(arg, expected, x, call)
  }
  values
}

check_flag <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  if (!is.logical(x) || length(x) != 1 || is.na(x)) {
    abort_argument(arg, "TRUE or FALSE", x, call)
  }
  invisible(x)
}

# Tags are a named list (or named character vector) of scalar values, as
# in R mlflow. Returns them as a JSON object string ("" for none).
tags_json <- function(tags, arg = rlang::caller_arg(tags), call = rlang::caller_env()) {
  if (is.null(tags) || length(tags) == 0) {
    return("")
  }
  keys <- names(tags)
  if (!(is.list(tags) || is.character(tags)) || is.null(keys) ||
    anyNA(keys) || any(!nzchar(keys)) || anyDuplicated(keys)) {
    abort_argument(arg, "a named list with unique, non-empty names", tags, call)
  }
  values <- lapply(keys, function(key) {
    value <- tags[[key]]
    if (!is.atomic(value) || length(value) != 1 || is.na(value)) {
      abort_argument(sprintf("%s$%s", arg, key), "a single non-NA value", value, call)
    }
    as.character(value)
  })
  names(values) <- keys
  as.character(jsonlite::toJSON(values, auto_unbox = TRUE))
}

`%||%` <- function(x, y) if (is.null(x)) y else x

# Registered model names: the MLflow server rejects "/" and ":".
check_model_name <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env(),
                             allow_null = FALSE) {
  check_string(x, arg = arg, call = call, allow_null = allow_null)
  if (!is.null(x) && grepl("[/:]", x)) {
    mlflowreg_abort(
      c(sprintf("`%s` %s contains \"/\" or \":\", which MLflow does not allow in model names.",
        arg, describe_value(x)), i = "Use letters, digits, \"-\", \"_\", \".\" or spaces."),
      kind = "invalid_argument", call = call
    )
  }
  invisible(x)
}
