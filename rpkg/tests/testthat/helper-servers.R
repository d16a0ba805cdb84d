# The MLflow servers the tests run against. scripts/test.sh starts them and
# exports their URIs; without them the tests fail rather than skip. Tests
# defined with test_each_backend() also run against a local file store.

server_uri <- function(variable) {
  uri <- Sys.getenv(variable)
  if (!nzchar(uri)) {
    stop(sprintf(
      "%s is not set; run the tests with scripts/test.sh, which starts the MLflow servers.",
      variable
    ), call. = FALSE)
  }
  uri
}

tracking_server <- function() server_uri("MLFLOWREG_TEST_TRACKING_URI")
strict_server <- function() server_uri("MLFLOWREG_TEST_STRICT_URI")

# Points mlflowreg at `uri` for the rest of the calling test, and ends any
# run the test leaves active.
local_tracking <- function(uri, env = parent.frame()) {
  globals <- mlflowreg:::.globals
  old <- globals$tracking_uri
  mlflow_set_tracking_uri(uri)
  withr::defer(
    {
      while (!is.null(mlflowreg:::active_run_id())) {
        try(mlflow_end_run(status = "KILLED"), silent = TRUE)
        globals$run_stack <- utils::head(globals$run_stack, -1)
      }
      globals$tracking_uri <- old
      globals$active_experiment_id <- NULL
    },
    envir = env
  )
  invisible(uri)
}

# The backends that test_each_backend() runs a test against: the plain
# MLflow test server, and a local file store in a new temporary directory.
test_backends <- c("server", "local")

# Points mlflowreg at `backend` for the rest of the calling test and returns
# the tracking URI.
use_backend <- function(backend, env = parent.frame()) {
  if (identical(backend, "server")) {
    return(local_tracking(tracking_server(), env = env))
  }
  store <- file.path(withr::local_tempdir(.local_envir = env), "mlruns")
  local_tracking(store, env = env)
}

# Defines the test once per backend, named "<desc> [server]" and
# "<desc> [local]". Inside `code`, the variable `backend` names the backend
# and the tracking URI already points at it.
test_each_backend <- function(desc, code) {
  code <- substitute(code)
  for (backend in test_backends) {
    test <- bquote(testthat::test_that(.(sprintf("%s [%s]", desc, backend)), {
      backend <- .(backend)
      use_backend(backend)
      .(code)
    }))
    eval(test, parent.frame())
  }
}

unique_name <- function(prefix) {
  paste0(prefix, "-", format(Sys.time(), "%H%M%S"), "-", paste(sample(letters, 8), collapse = ""))
}

# Runs R code in a fresh `Rscript --vanilla` process and returns what it
# printed; the process sees the same library paths as this one.
run_fresh_r <- function(code) {
  script <- tempfile(fileext = ".R")
  writeLines(code, script)
  on.exit(unlink(script))
  libs <- paste(.libPaths(), collapse = .Platform$path.sep)
  out <- suppressWarnings(system2(
    file.path(R.home("bin"), "Rscript"),
    c("--vanilla", shQuote(script)),
    stdout = TRUE, stderr = TRUE,
    env = paste0("R_LIBS=", shQuote(libs))
  ))
  status <- attr(out, "status") %||% 0L
  if (status != 0) {
    stop("fresh R session failed:\n", paste(out, collapse = "\n"), call. = FALSE)
  }
  out
}

`%||%` <- function(x, y) if (is.null(x)) y else x

# Predictions of `fn` (saved at `dir`) computed in a fresh R session on
# mtcars, as the full-precision text of each double.
fresh_predictions <- function(dir) {
  out <- run_fresh_r(sprintf(
    'fn <- unserialize(readRDS(file.path(%s, "crate.bin")))
     cat(sprintf("%%.17g", fn(mtcars)), sep = "\\n")',
    deparse(dir)
  ))
  as.numeric(out)
}
