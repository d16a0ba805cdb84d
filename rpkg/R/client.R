# Tracking URI and clients.

.globals <- new.env(parent = emptyenv())

#' Set the tracking URI
#'
#' Sets the MLflow server that later calls in this R session talk to. It
#' takes precedence over the `MLFLOW_TRACKING_URI` environment variable.
#' No server is contacted until a call needs one.
#'
#' @param uri A non-empty string: `http://host:port`, `https://...`, an
#'   Azure ML `azureml://...` URI, or a local store: a directory path or
#'   `file:` URI, used without any server. No default.
#' @return `uri`, invisibly.
#' @section Conditions:
#' `mlflowreg_error_invalid_argument` when `uri` is not a non-empty string
#' or not a valid URI. See [mlflowreg_conditions].
#' @seealso [mlflow_get_tracking_uri()], [mlflow_client()].
#' @examples
#' old <- mlflow_get_tracking_uri()
#' mlflow_set_tracking_uri("http://127.0.0.1:5000")
#' mlflow_get_tracking_uri()
#' mlflow_set_tracking_uri(old)
#' @export
mlflow_set_tracking_uri <- function(uri) {
  check_string(uri)
  # Parse it now, so a malformed URI fails here rather than at the next
  # call; no request is sent.
  checked <- client_base_url_(uri, "mlflow_set_tracking_uri()")
  if (inherits(checked, "mlflowreg_rust_error") && !identical(checked$kind, "unsupported")) {
    rust_result(checked)
  }
  .globals$tracking_uri <- uri
  invisible(uri)
}

#' Get the tracking URI
#'
#' Returns the URI set by [mlflow_set_tracking_uri()], else the
#' `MLFLOW_TRACKING_URI` environment variable, else `"mlruns"`, as R mlflow
#' does: a local store in `./mlruns`, created on first use, in the layout
#' Python mlflow reads.
#'
#' @return A string.
#' @section Conditions:
#' None.
#' @examples
#' mlflow_get_tracking_uri()
#' @export
mlflow_get_tracking_uri <- function() {
  tracking_uri_with_origin()$uri
}

tracking_uri_with_origin <- function() {
  if (!is.null(.globals$tracking_uri)) {
    return(list(uri = .globals$tracking_uri, origin = "mlflow_set_tracking_uri()"))
  }
  env_uri <- Sys.getenv("MLFLOW_TRACKING_URI")
  if (nzchar(env_uri)) {
    return(list(uri = env_uri, origin = "MLFLOW_TRACKING_URI"))
  }
  list(uri = "mlruns", origin = "the default (no MLFLOW_TRACKING_URI set)")
}

#' Create an MLflow client
#'
#' A client names a tracking server. Creating one checks the URI and
#' contacts no server. Credentials and transport settings are read from the
#' environment each time a call is made: `MLFLOW_TRACKING_TOKEN`,
#' `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD`,
#' `MLFLOW_TRACKING_INSECURE_TLS`, `MLFLOW_TRACKING_SERVER_CERT_PATH`,
#' `MLFLOW_TRACKING_CLIENT_CERT_PATH`, and `MLFLOW_HTTP_REQUEST_MAX_RETRIES`,
#' `MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`, `MLFLOW_HTTP_REQUEST_TIMEOUT`.
#'
#' @param tracking_uri A non-empty string, the server's URI, or `NULL`
#'   (default) for [mlflow_get_tracking_uri()].
#' @return An object of class `mlflowreg_client` (and `mlflow_client`), a
#'   list with `tracking_uri` (with any password in it shown as `***`),
#'   `origin` (where the URI came from, as error messages name it) and
#'   `server_url` (the server's base URL; an `azureml://` URI becomes its
#'   `https://` form).
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: `tracking_uri` is neither a
#'   non-empty string nor `NULL`, or is not a URI mlflowreg can use.
#' * `mlflowreg_error_authentication`: an `azureml://` URI without a token
#'   in `MLFLOW_TRACKING_TOKEN`, or with an expired one.
#'
#' See [mlflowreg_conditions].
#' @examples
#' mlflow_client("http://127.0.0.1:5000")
#'
#' # An Azure ML workspace's tracking URI, as its MLflow settings show it.
#' # Outside an Azure ML job it needs a token in MLFLOW_TRACKING_TOKEN.
#' azure_uri <- paste0(
#'   "azureml://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/",
#'   "00000000-0000-0000-0000-000000000000/resourceGroups/my-group/providers/",
#'   "Microsoft.MachineLearningServices/workspaces/my-workspace"
#' )
#' tryCatch(
#'   mlflow_client(azure_uri),
#'   mlflowreg_error_authentication = function(e) conditionMessage(e)
#' )
#' @export
mlflow_client <- function(tracking_uri = NULL) {
  check_string(tracking_uri, allow_null = TRUE)
  if (is.null(tracking_uri)) {
    current <- tracking_uri_with_origin()
  } else {
    current <- list(uri = tracking_uri, origin = "the `tracking_uri` argument of mlflow_client()")
  }
  base_url <- rust_json(client_base_url_(current$uri, current$origin))
  # The URI as given may hold a password; it is kept in an environment so
  # that print(), str() and format() show only the redacted form.
  handle <- new.env(parent = emptyenv())
  handle$uri <- current$uri
  structure(
    list(
      tracking_uri = redact_uri(current$uri),
      origin = current$origin,
      server_url = base_url,
      handle = handle
    ),
    class = c("mlflowreg_client", "mlflow_client")
  )
}

# Replaces the password in `scheme://user:password@host` with ***.
redact_uri <- function(uri) {
  sub("^([A-Za-z][A-Za-z0-9+.-]*://[^/@:]*):[^/@]*@", "\\1:***@", uri)
}

# Returns `client`, or the default client when it is NULL. A client made by
# R mlflow's mlflow_client() is converted: its host and credentials are
# used for the calls made with it.
resolve_client <- function(client, call = rlang::caller_env()) {
  if (is.null(client)) {
    return(mlflow_client())
  }
  if (inherits(client, "mlflowreg_client")) {
    return(client)
  }
  if (inherits(client, "mlflow_client") && is.function(client$get_host_creds)) {
    return(from_r_mlflow_client(client))
  }
  abort_argument("client", "a client made by mlflow_client() or NULL", client, call)
}

from_r_mlflow_client <- function(client) {
  creds <- client$get_host_creds()
  env <- c(
    MLFLOW_TRACKING_TOKEN = creds$token %||% "",
    MLFLOW_TRACKING_USERNAME = creds$username %||% "",
    MLFLOW_TRACKING_PASSWORD = creds$password %||% "",
    MLFLOW_TRACKING_INSECURE_TLS = if (isTRUE(as.logical(creds$insecure))) "true" else ""
  )
  env <- env[nzchar(env)]
  result <- mlflow_client(creds$host)
  result$origin <- "the client made by mlflow::mlflow_client()"
  result$env <- env
  result
}

# Calls a Rust export with the client's URI, origin and, while it runs, the
# client's credential variables set in the environment (the Rust client
# reads credentials from there).
invoke_rust <- function(client, fun, ...) {
  env <- client$env
  if (length(env) > 0) {
    old <- Sys.getenv(names(env), unset = NA, names = TRUE)
    on.exit({
      unset <- names(old)[is.na(old)]
      if (length(unset)) Sys.unsetenv(unset)
      if (any(!is.na(old))) do.call(Sys.setenv, as.list(old[!is.na(old)]))
    }, add = TRUE)
    do.call(Sys.setenv, as.list(env))
  }
  uri <- if (is.environment(client$handle)) client$handle$uri else client$tracking_uri
  fun(uri, client$origin, ...)
}
