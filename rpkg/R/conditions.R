# Conditions signalled by mlflowreg.
#
# Every error has class `mlflowreg_error` and a kind class
# `mlflowreg_error_<kind>`: invalid_argument, not_a_model_directory,
# parse, io, configuration, unreachable, not_found, already_exists, api,
# registration, unsupported, unsafe_model, incomplete_model (files of a
# model missing or of the wrong size), authentication (a token that is
# missing, expired, rejected or could not be renewed), storage (Azure
# Blob Storage refused or did not finish a transfer; `status` is NULL when no
# response arrived) and cancelled (a progress function failed during a
# transfer). An operation stopped with Ctrl-C raises R's interrupt
# condition, not an error.

mlflowreg_abort <- function(message, kind, ..., call = rlang::caller_env()) {
  rlang::abort(
    message,
    class = c(paste0("mlflowreg_error_", kind), "mlflowreg_error"),
    ...,
    call = call
  )
}

# What to do next, by kind of error raised in the Rust core.
rust_error_hints <- c(
  unreachable = paste(
    "Check that the MLflow server is running and that the tracking URI is right;",
    "set it with `mlflow_set_tracking_uri()` or MLFLOW_TRACKING_URI."
  ),
  configuration = "Fix the setting named above, then call the function again.",
  not_found = "Check the name, id or version; it does not exist in the tracking store.",
  unsupported = NA_character_,
  registration = "The version was created but is not usable; see the status message."
)

# Returns `x`, or raises the classed R error that a Rust export returned.
# The Rust core's log events (retries, warnings) of the call are shown
# first. An interrupted call raises the user interrupt again, which the
# Rust side consumed while it stopped the call.
rust_result <- function(x, call = rlang::caller_env()) {
  # `x` is a promise of the Rust call; it must run before its events are read.
  force(x)
  emit_rust_events()
  if (!inherits(x, "mlflowreg_rust_error")) {
    return(x)
  }
  if (identical(x$kind, "interrupted")) {
    rlang::interrupt()
  }
  hint <- unname(rust_error_hints[x$kind])
  message <- x$message
  if (length(hint) == 1 && !is.na(hint)) {
    message <- c(message, i = hint)
  }
  mlflowreg_abort(
    message,
    kind = x$kind,
    status = if (is.na(x$status)) NULL else x$status,
    error_code = if (nzchar(x$error_code)) x$error_code else NULL,
    call = call
  )
}

# Parses the JSON string a Rust export returned, raising its error if any.
rust_json <- function(x, call = rlang::caller_env()) {
  text <- rust_result(x, call = call)
  jsonlite::fromJSON(text, simplifyVector = FALSE)
}

# Shows the log events the Rust core collected since the last call:
# warnings as R warnings of class `mlflowreg_warning_log`, and the rest
# (such as each retry, with method, route, status and attempt) as R
# messages of class `mlflowreg_message_log`, which
# `options(mlflowreg.quiet = TRUE)` turns off.
emit_rust_events <- function() {
  events <- jsonlite::fromJSON(take_events_(), simplifyVector = FALSE)
  quiet <- isTRUE(getOption("mlflowreg.quiet", FALSE))
  for (event in events) {
    if (event$level %in% c("WARN", "ERROR")) {
      rlang::warn(event$message, class = c("mlflowreg_warning_log", "mlflowreg_warning"))
    } else if (!quiet) {
      rlang::inform(event$message, class = c("mlflowreg_message_log", "mlflowreg_message"))
    }
  }
  invisible(NULL)
}
