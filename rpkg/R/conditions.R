# Conditions signalled by mlflowreg.
#
# Every error has class `mlflowreg_error` and a kind class
# `mlflowreg_error_<kind>`: invalid_argument, not_a_model_directory,
# parse, io, configuration, unreachable, not_found, already_exists, api,
# registration, unsupported, unsafe_model, authentication (a token that is
# missing, expired, rejected or could not be renewed) and storage (Azure
# Blob Storage refused or did not finish a transfer; `status` is NULL when no
# response arrived).

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
rust_result <- function(x, call = rlang::caller_env()) {
  if (!inherits(x, "mlflowreg_rust_error")) {
    return(x)
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
