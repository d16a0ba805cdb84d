# Saving, logging, loading and predicting with models.

# Packages a fresh `Rscript` session attaches by default, so functions
# found in them need no capturing.
default_packages <- c("base", "stats", "utils", "methods", "graphics", "grDevices", "datasets")

#' Save a model in MLflow's format
#'
#' Writes an MLflow model directory with R mlflow's `crate` flavor and a
#' `python_function` flavor whose loader runs the model in `Rscript`, so
#' registries that require a `python_function` flavor (Azure ML) accept it
#' and `mlflow.pyfunc.load_model()` predicts with it.
#'
#' `model` can be a `carrier::crate()`, a plain function, or any object
#' with a `predict()` method (an `lm` or `glm` fit, for example), which is
#' wrapped as `function(data, ...) predict(model, newdata = data, ...)`.
#' A plain function whose free variables live in the global environment
#' gets copies of them, because R serializes the global environment by
#' reference and the model would not load in a fresh session otherwise.
#'
#' The directory is written next to `path` and renamed into place: a failed
#' save leaves nothing behind. An existing MLflow model at `path` is
#' replaced.
#'
#' @param model The model: a function of the input data, a
#'   `carrier::crate()`, or an object with a `predict()` method. No default.
#' @param path A non-empty string: the directory to write. `~` is expanded.
#'   No default.
#' @param model_spec Ignored; accepted for compatibility with R mlflow.
#'   Default `list()`.
#' @param ... Ignored.
#' @return The expanded `path`, invisibly.
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   `model` is neither a function nor an object with a `predict()` method.
#' * `mlflowreg_error_unsafe_model`: the model would not load in a fresh R
#'   session: it calls a function of a package that R does not attach by
#'   default without writing `package::name`, refers to global variables
#'   from inside another function, or has a `predict()` method defined in
#'   the global environment.
#' * `mlflowreg_error_not_a_model_directory`: `path` is an existing,
#'   non-empty directory that holds no MLflow model.
#' * `mlflowreg_error_io`: writing the directory failed.
#'
#' It warns with class `mlflowreg_warning_undefined_names` when the model
#' function uses names that are defined nowhere (harmless for data
#' columns). See [mlflowreg_conditions].
#' @seealso [mlflow_log_model()] to save and upload in one step,
#'   [mlflow_load_model()].
#' @examples
#' fit <- lm(mpg ~ wt + hp, data = mtcars)
#' path <- file.path(tempdir(), "mtcars-lm")
#' mlflow_save_model(fit, path)
#' list.files(path, recursive = TRUE)
#'
#' # The python_function flavor that strict registries require:
#' cat(readLines(file.path(path, "MLmodel")), sep = "\n")
#'
#' # A plain function works too; the global `ratio` is copied into the model.
#' ratio <- 2
#' double_mpg <- function(data) data$mpg * ratio
#' mlflow_save_model(double_mpg, file.path(tempdir(), "double-mpg"))
#' @export
mlflow_save_model <- function(model, path, model_spec = list(), ...) {
  check_string(path)
  warn_unused_dots(...)
  if (!is.list(model_spec)) {
    abort_argument("model_spec", "a list", model_spec, rlang::current_env())
  }
  fn <- as_model_function(model)
  path <- path.expand(path)
  rust_json(save_model_(path, serialize(fn, NULL)))
  invisible(path)
}

#' Log a model to the active run
#'
#' Saves `model` as [mlflow_save_model()] does and uploads it into the
#' active run's artifacts at `artifact_path`, starting a run when none is
#' active. With `registered_model_name`, it also registers the model as a
#' new version of that registered model (created when missing) and waits
#' until the version is `READY`.
#'
#' @inheritParams mlflow_save_model
#' @param artifact_path A non-empty string: the model's folder inside the
#'   run's artifacts, such as `"model"`. No default.
#' @param ... Ignored.
#' @param registered_model_name A non-empty string, the name to register the
#'   model under, or `NULL` (default) to only log it.
#' @param await_registration_for A number >= 0: seconds to wait for the new
#'   version to be `READY`, or 0 to return at once. Default 300.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the active run's client, else the default client.
#' @return Invisibly, a list of class `mlflow_logged_model` with
#'   `model_uri` (`runs:/<run_id>/<artifact_path>`), `run_id`,
#'   `artifact_path`, `artifact_uri`, `flavors` and, when registered,
#'   `model_version` (an `mlflow_model_version`, see
#'   [mlflow_get_model_version()]).
#' @section Conditions:
#' Those of [mlflow_save_model()], and:
#' * `mlflowreg_error_unreachable`, `mlflowreg_error_not_found`,
#'   `mlflowreg_error_api`: the server could not be reached or rejected a
#'   request. A strict registry's rejection of a model version is an
#'   `mlflowreg_error_api` with `status` 400.
#' * `mlflowreg_error_registration`: the new version failed or was not
#'   `READY` within `await_registration_for` seconds.
#'
#' It warns with class `mlflowreg_warning` when the model was uploaded but
#' recording it in the run failed. See [mlflowreg_conditions].
#' @seealso [mlflow_register_model()] to register a logged model later.
#' @examples
#' # A local store in a temporary directory, so no server is needed. Leave
#' # this line out to use the server that MLFLOW_TRACKING_URI names.
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' fit <- lm(mpg ~ wt + hp, data = mtcars)
#' mlflow_set_experiment("mlflowreg-examples")
#' logged <- with(mlflow_start_run(), {
#'   mlflow_log_model(fit, "model", registered_model_name = "mlflowreg-example-lm")
#' })
#' logged
#' logged$model_version
#' @export
mlflow_log_model <- function(model, artifact_path, ..., registered_model_name = NULL,
                             await_registration_for = 300, client = NULL) {
  check_artifact_path(artifact_path)
  check_model_name(registered_model_name, allow_null = TRUE)
  check_number(await_registration_for, min = 0)
  warn_unused_dots(...)
  check_client(client)
  fn <- as_model_function(model)
  client <- client %||% active_run_client()
  client <- resolve_client(client)
  run_id <- active_run_id_or_start(client)

  serialized <- serialize(fn, NULL)
  if (is.null(registered_model_name)) {
    logged <- transfer_call(log_model_transfer_, client, "Uploading model", run_id, artifact_path, serialized)
  } else {
    # One call logs and registers, which saves the round trips that
    # resolve and re-check the logged model. A registration that fails
    # after the upload comes back in `registration_error`, raised below.
    both <- transfer_call(log_model_register_transfer_, client, "Uploading model", run_id,
      known_artifact_uri(run_id), artifact_path, serialized, registered_model_name,
      as.numeric(await_registration_for), "")
    logged <- both$logged
  }
  for (message in unlist(logged$warnings)) {
    rlang::warn(message, class = "mlflowreg_warning")
  }
  result <- list(
    model_uri = logged$model_uri,
    run_id = logged$run_id,
    artifact_path = logged$artifact_path,
    artifact_uri = logged$artifact_uri,
    flavors = logged$mlmodel$flavors
  )
  if (!is.null(registered_model_name)) {
    result$model_version <- tryCatch(
      new_model_version(registration_result(both)),
      mlflowreg_error = function(err) {
        mlflowreg_abort(
          c(
            sprintf("The model was logged to %s, but registering it as %s failed.",
              logged$model_uri, describe_value(registered_model_name)),
            i = sprintf("Fix the cause below, then call mlflow_register_model(\"%s\", ...).", logged$model_uri)
          ),
          kind = sub("^mlflowreg_error_", "", class(err)[[1]]),
          parent = err
        )
      }
    )
  }
  invisible(structure(result, class = "mlflow_logged_model"))
}

#' Load a model
#'
#' Downloads a model (unless it is a local directory) and returns the R
#' function saved in its `crate` flavor, by R mlflow or by mlflowreg.
#'
#' @param model_uri A non-empty string: a local directory,
#'   `runs:/<run_id>/<path>`, `models:/<name>/<version>`,
#'   `models:/<name>/<stage>`, `models:/<name>@<alias>`, or an artifact URI
#'   such as `mlflow-artifacts:/...`. No default.
#' @param flavor `NULL` (default) or `"crate"`, the only flavor R can load.
#' @param client A client from [mlflow_client()], or `NULL` (default) for
#'   the default client. A local directory needs no client.
#' @return The model function; predict with [mlflow_predict()].
#' @section Conditions:
#' * `mlflowreg_error_invalid_argument`: an argument has the wrong type, or
#'   `model_uri` names no MLflow model (a directory without an `MLmodel`
#'   file, for example).
#' * `mlflowreg_error_unsupported`: the model has no `crate` flavor, or
#'   `model_uri` uses a scheme mlflowreg cannot download from.
#' * `mlflowreg_error_parse`: the `MLmodel` file is not valid.
#' * `mlflowreg_error_unreachable`, `mlflowreg_error_not_found`,
#'   `mlflowreg_error_api`: the server could not be reached, or the run,
#'   model, version or alias does not exist.
#' * `mlflowreg_error_io`: reading or downloading a file failed.
#'
#' See [mlflowreg_conditions].
#' @examples
#' path <- file.path(tempdir(), "mtcars-glm")
#' fit <- glm(am ~ wt, data = mtcars, family = binomial())
#' mlflow_save_model(fit, path)
#'
#' model <- mlflow_load_model(path)
#' head(mlflow_predict(model, mtcars, type = "response"))
#'
#' # From a registry, here in a local store in a temporary directory:
#' mlflow_set_tracking_uri(file.path(tempdir(), "mlruns"))
#' mlflow_set_experiment("mlflowreg-examples")
#' logged <- with(mlflow_start_run(), {
#'   mlflow_log_model(fit, "model", registered_model_name = "mlflowreg-example-glm")
#' })
#' version <- logged$model_version$version
#' model <- mlflow_load_model(paste0("models:/mlflowreg-example-glm/", version))
#' head(mlflow_predict(model, mtcars, type = "response"))
#' @export
mlflow_load_model <- function(model_uri, flavor = NULL, client = NULL) {
  check_string(model_uri)
  check_string(flavor, allow_null = TRUE)
  check_client(client)
  if (!is.null(flavor) && !identical(flavor, "crate")) {
    mlflowreg_abort(
      c(sprintf("`flavor` %s is not supported.", describe_value(flavor)), i = 'Use "crate" or NULL.'),
      kind = "invalid_argument"
    )
  }
  remote <- grepl("^[A-Za-z][A-Za-z0-9+.-]*:/", model_uri) && !startsWith(model_uri, "file:")
  if (remote) {
    client <- resolve_client(client)
  } else {
    client <- list(tracking_uri = "", origin = "")
    model_uri <- path.expand(model_uri)
  }
  staging <- tempfile("mlflowreg-model-")
  on.exit(unlink(staging, recursive = TRUE), add = TRUE)
  progress <- transfer_progress("Downloading model", envir = environment())
  dir <- rust_json(with_artifact_workers(invoke_rust(client, download_model_transfer_, model_uri, staging, progress)))
  mlmodel <- rust_json(read_mlmodel_(dir))
  crate_flavor <- mlmodel$flavors$crate
  if (is.null(crate_flavor)) {
    mlflowreg_abort(
      c(
        sprintf("The model at %s has no `crate` flavor.", describe_value(model_uri)),
        i = sprintf("Its flavors are: %s. R can only load `crate` models.",
          paste(names(mlmodel$flavors), collapse = ", "))
      ),
      kind = "unsupported"
    )
  }
  model_file <- crate_flavor$model %||% ""
  if (!is.character(model_file) || !nzchar(model_file) || grepl("(^|[/\\\\])\\.\\.([/\\\\]|$)", model_file) ||
    startsWith(model_file, "/")) {
    mlflowreg_abort(
      sprintf("The crate flavor of %s names the file %s, which is not a file inside the model.",
        describe_value(model_uri), describe_value(model_file)),
      kind = "parse"
    )
  }
  bytes <- rust_result(read_crate_(file.path(dir, model_file)))
  fn <- unserialize(bytes)
  if (!is.function(fn)) {
    mlflowreg_abort(
      sprintf("The crate file of %s holds an object of class %s, not a function.",
        describe_value(model_uri), paste(class(fn), collapse = "/")),
      kind = "parse"
    )
  }
  fn
}

#' Predict with a loaded model
#'
#' Calls the model function with `data` and the other arguments. It is a
#' generic, so other packages can add methods for their own model classes.
#'
#' @param model A model function from [mlflow_load_model()]. No default.
#' @param data The input, usually a data frame. No default.
#' @param ... Passed to the model function; for a model saved from an
#'   object with a `predict()` method, passed on to `predict()`.
#' @return What the model function returns: for an `lm` fit, a named
#'   numeric vector.
#' @section Conditions:
#' `mlflowreg_error_invalid_argument` when `model` is not a function. Errors
#' of the model function itself are passed through. See
#' [mlflowreg_conditions].
#' @examples
#' path <- file.path(tempdir(), "mtcars-predict")
#' mlflow_save_model(lm(mpg ~ wt + hp, data = mtcars), path)
#' model <- mlflow_load_model(path)
#' mlflow_predict(model, data.frame(wt = c(2.5, 3.5), hp = c(100, 150)))
#' @export
mlflow_predict <- function(model, data, ...) {
  UseMethod("mlflow_predict")
}

#' @rdname mlflow_predict
#' @export
mlflow_predict.default <- function(model, data, ...) {
  if (!is.function(model)) {
    abort_argument("model", "a function from mlflow_load_model()", model, rlang::current_env())
  }
  do.call(model, list(data, ...))
}

# Warns about arguments that R mlflow would pass to other flavors and this
# package ignores, so a misspelled argument does not go unnoticed.
warn_unused_dots <- function(..., call = rlang::caller_env()) {
  extra <- names(list(...))
  if (length(list(...)) == 0) {
    return(invisible())
  }
  shown <- if (is.null(extra)) "unnamed arguments" else paste0("`", extra, "`", collapse = ", ")
  rlang::warn(
    sprintf("Ignoring %s: the crate flavor takes no further arguments. Check the spelling.", shown),
    class = "mlflowreg_warning"
  )
}

# Turns a model into a function that loads and runs in a fresh R session.
as_model_function <- function(model, arg = "model", call = rlang::caller_env()) {
  if (is.null(model) || is.atomic(model)) {
    abort_argument(arg, "a function, a carrier crate, or an object with a predict() method", model, call)
  }
  if (is.function(model)) {
    return(self_contained(model, call = call))
  }
  wrap_predict(model, arg, call)
}

wrap_predict <- function(model, arg, call) {
  method_package <- NULL
  for (cls in class(model)) {
    method <- utils::getS3method("predict", cls, optional = TRUE)
    if (!is.null(method)) {
      method_package <- environmentName(environment(method))
      break
    }
  }
  if (is.null(method_package)) {
    mlflowreg_abort(
      c(
        sprintf("`%s` is an object of class %s with no predict() method.", arg,
          paste(class(model), collapse = "/")),
        i = "Pass a function, a carrier::crate(), or a fitted model that predict() accepts."
      ),
      kind = "invalid_argument",
      call = call
    )
  }
  if (identical(method_package, "R_GlobalEnv") || !nzchar(method_package)) {
    mlflowreg_abort(
      c(
        sprintf("The predict() method for class %s is defined in the global environment.",
          paste(class(model), collapse = "/")),
        i = "A fresh R session would not have it; wrap the model in a function that contains the code."
      ),
      kind = "unsafe_model",
      call = call
    )
  }
  packages <- setdiff(method_package, default_packages)
  env <- new.env(parent = baseenv())
  env$model <- capture_formula_envs(model, call)
  env$packages <- packages
  fn <- function(data, ...) {
    for (package in packages) {
      loadNamespace(package)
    }
    stats::predict(model, newdata = data, ...)
  }
  environment(fn) <- env
  fn
}

# Finds the environment in the chain from `env` that binds `name`.
binding_env <- function(name, env) {
  while (!identical(env, emptyenv())) {
    if (exists(name, envir = env, inherits = FALSE)) {
      return(env)
    }
    env <- parent.env(env)
  }
  NULL
}

# TRUE for environments R serializes by value: neither the global
# environment, a package, a namespace, nor base.
is_user_env <- function(env) {
  !identical(env, globalenv()) && !identical(env, baseenv()) && !identical(env, emptyenv()) &&
    !isNamespace(env) && !startsWith(environmentName(env), "package:")
}

# A function held in a closure's environment is serialized with it, but
# if its own environment is the global one, the globals it uses are not.
check_enclosed_function <- function(name, value, call) {
  if (!is.function(value) || !identical(environment(value), globalenv())) {
    return(invisible())
  }
  globals <- codetools::findGlobals(value, merge = TRUE)
  missing <- Filter(function(g) identical(binding_env(g, globalenv()), globalenv()), globals)
  if (length(missing) > 0) {
    mlflowreg_abort(
      c(
        sprintf(
          "The model function calls `%s`, which uses %s from the global environment; R does not serialize those.",
          name, paste0("`", missing, "`", collapse = ", ")
        ),
        i = "Use carrier::crate() to pass them in, or define the model function at the top level of the script."
      ),
      kind = "unsafe_model",
      call = call
    )
  }
}

# Returns the function with copies of the global variables it uses, or
# raises `mlflowreg_error_unsafe_model` when that cannot be done.
self_contained <- function(fn, call, depth = 0) {
  env <- environment(fn)
  if (is.null(env) || depth > 10) {
    return(fn)
  }
  names <- codetools::findGlobals(fn, merge = TRUE)
  captured <- list()
  foreign <- character()
  undefined <- character()
  for (name in names) {
    where <- binding_env(name, env)
    if (is.null(where)) {
      undefined <- c(undefined, name)
    } else if (identical(where, globalenv())) {
      captured[[name]] <- get(name, envir = where)
    } else if (!identical(env, globalenv()) && is_user_env(where)) {
      check_enclosed_function(name, get(name, envir = where), call)
    } else {
      package <- sub("^package:", "", environmentName(where))
      if (startsWith(environmentName(where), "package:") && !package %in% default_packages) {
        foreign <- c(foreign, sprintf("`%s` from package %s (write `%s::%s`)", name, package, package, name))
      }
    }
  }
  if (length(foreign) > 0) {
    mlflowreg_abort(
      c(
        "The model function uses functions from packages a fresh R session does not attach:",
        rlang::set_names(foreign, rep("*", length(foreign))),
        i = "Call them with `package::name` so the model loads anywhere."
      ),
      kind = "unsafe_model",
      call = call
    )
  }
  if (length(undefined) > 0 && depth == 0) {
    rlang::warn(
      c(
        sprintf("The model function uses names defined nowhere: %s.", paste(undefined, collapse = ", ")),
        i = "Ignore this if they are data columns; otherwise the model fails when called."
      ),
      class = c("mlflowreg_warning_undefined_names", "mlflowreg_warning")
    )
  }
  if (length(captured) == 0) {
    return(fn)
  }
  if (!identical(env, globalenv())) {
    mlflowreg_abort(
      c(
        sprintf(
          "The model function refers to %s in the global environment, which R does not serialize.",
          paste0("`", names(captured), "`", collapse = ", ")
        ),
        i = "Use carrier::crate() to pass them in, or define the function at the top level of the script."
      ),
      kind = "unsafe_model",
      call = call
    )
  }
  new_env <- new.env(parent = globalenv())
  for (name in names(captured)) {
    assign(name, capture_value(captured[[name]], call, depth + 1), envir = new_env)
  }
  environment(fn) <- new_env
  fn
}

# Makes the functions inside a captured value self-contained too: a
# function, or the functions inside a list, whose environment is the
# global environment.
capture_value <- function(value, call, depth) {
  if (depth > 10) {
    return(value)
  }
  if (is.function(value) && identical(environment(value), globalenv())) {
    return(self_contained(value, call = call, depth = depth))
  }
  if (is.list(value) && !is.data.frame(value)) {
    attrs <- attributes(value)
    value <- lapply(value, capture_value, call = call, depth = depth + 1)
    attributes(value) <- attrs
  }
  value
}

# Formulas and terms of a fitted model are evaluated in their environment
# when it predicts. When that is the global environment, R serializes it
# by reference and a fresh session lacks the variables and attached-package
# functions the formula uses (`I(hp / k)`, `splines::ns` called as `ns`).
# This gives each such formula an environment holding copies of them.
capture_formula_envs <- function(model, call, depth = 0) {
  if (depth > 4) {
    return(model)
  }
  if (inherits(model, "formula") && identical(environment(model), globalenv())) {
    return(with_formula_env(model, call))
  }
  if (is.list(model) && !is.data.frame(model)) {
    attrs <- attributes(model)
    model <- lapply(model, capture_formula_envs, call = call, depth = depth + 1)
    attributes(model) <- attrs
  } else if (is.data.frame(model) && inherits(attr(model, "terms"), "formula")) {
    attr(model, "terms") <- capture_formula_envs(attr(model, "terms"), call, depth + 1)
  }
  if (inherits(attr(model, "terms"), "formula") && !is.data.frame(model)) {
    attr(model, "terms") <- capture_formula_envs(attr(model, "terms"), call, depth + 1)
  }
  model
}

with_formula_env <- function(formula, call) {
  env <- new.env(parent = globalenv())
  for (name in all.names(formula)) {
    where <- binding_env(name, globalenv())
    if (is.null(where)) {
      next
    }
    if (identical(where, globalenv())) {
      value <- get(name, envir = where)
      if (!is.data.frame(value)) {
        assign(name, capture_value(value, call, 1), envir = env)
      }
    } else if (startsWith(environmentName(where), "package:") &&
      !sub("^package:", "", environmentName(where)) %in% default_packages) {
      assign(name, get(name, envir = where), envir = env)
    }
  }
  environment(formula) <- env
  formula
}

# Returns the model version of a log-and-register call, or raises its
# registration error as the classed condition the Rust error record names.
registration_result <- function(both, call = rlang::caller_env()) {
  failure <- both$registration_error
  if (is.null(failure)) {
    return(both$model_version)
  }
  record <- structure(
    list(
      kind = failure$kind,
      message = failure$message,
      status = if (is.null(failure$status)) NA_integer_ else as.integer(failure$status),
      error_code = failure$error_code %||% ""
    ),
    class = "mlflowreg_rust_error"
  )
  rust_result(record, call = call)
}
