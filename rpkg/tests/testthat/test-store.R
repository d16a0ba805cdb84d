# The local file store: the default tracking URI, bad store paths, and two
# processes writing to one store at once. Everything a server also does is
# covered by the test_each_backend() tests in the other files.

fit <- lm(mpg ~ wt + hp, data = mtcars)

# Every file below `dir` with its md5 sum, to show that a call changed nothing.
store_snapshot <- function(dir) {
  files <- sort(list.files(dir, recursive = TRUE, all.files = TRUE, include.dirs = TRUE))
  paths <- file.path(dir, files)
  sums <- rep("directory", length(paths))
  is_file <- !dir.exists(paths)
  sums[is_file] <- unname(tools::md5sum(paths[is_file]))
  stats::setNames(sums, files)
}

# Runs the tracking-URI default: no mlflow_set_tracking_uri(), no
# MLFLOW_TRACKING_URI, working directory `dir`.
local_default_uri <- function(dir, env = parent.frame()) {
  withr::local_envvar(MLFLOW_TRACKING_URI = NA, .local_envir = env)
  withr::local_dir(dir, .local_envir = env)
  globals <- mlflowreg:::.globals
  old <- globals$tracking_uri
  globals$tracking_uri <- NULL
  withr::defer({
    while (!is.null(mlflowreg:::active_run_id())) {
      try(mlflow_end_run(status = "KILLED"), silent = TRUE)
      globals$run_stack <- utils::head(globals$run_stack, -1)
    }
    globals$tracking_uri <- old
    globals$active_experiment_id <- NULL
  }, envir = env)
}

test_that("default tracking URI is ./mlruns and needs no server", {
  dir <- normalizePath(withr::local_tempdir())
  local_default_uri(dir)
  expect_equal(mlflow_get_tracking_uri(), "mlruns")
  expect_equal(format(mlflow_client())[[1]], sprintf("<mlflow client> file://%s/mlruns/", dir))

  experiment_id <- mlflow_set_experiment("local-default")
  logged <- with(mlflow_start_run(), {
    mlflow_log_param("alpha", 0.5)
    mlflow_log_model(fit, "model", registered_model_name = "default-lm")
  })
  expect_true(file.exists(file.path(dir, "mlruns", experiment_id, "meta.yaml")))
  expect_true(file.exists(file.path(dir, "mlruns", "0", "meta.yaml")))
  param_file <- file.path(dir, "mlruns", experiment_id, logged$run_id, "params", "alpha")
  expect_equal(readChar(param_file, 100), "0.5")
  expect_equal(logged$artifact_uri, sprintf("file://%s/mlruns/%s/%s/artifacts/model", dir, experiment_id, logged$run_id))
  expect_true(file.exists(file.path(dir, "mlruns", experiment_id, logged$run_id, "artifacts", "model", "MLmodel")))
  expect_true(file.exists(file.path(dir, "mlruns", "models", "default-lm", "version-1", "meta.yaml")))

  mlflow_set_registered_model_alias("default-lm", "champion", 1)
  model <- mlflow_load_model("models:/default-lm@champion")
  expect_equal(mlflow_predict(model, mtcars), predict(fit, mtcars), tolerance = 0)
  problems <- mlflowreg_validate_model("models:/default-lm/1", profile = "azureml")
  expect_equal(nrow(problems), 0)
})

test_that("store path that is a file names the path", {
  file <- file.path(withr::local_tempdir(), "mlruns")
  writeLines("not a store", file)
  err <- expect_error(mlflow_set_tracking_uri(file), class = "mlflowreg_error_configuration")
  expect_match(conditionMessage(err), file, fixed = TRUE)
  expect_match(conditionMessage(err), "is a file, not a directory", fixed = TRUE)

  # Set through the environment, the path is checked at the first call.
  local_default_uri(withr::local_tempdir())
  withr::local_envvar(MLFLOW_TRACKING_URI = file)
  err <- expect_error(mlflow_set_experiment("x"), class = "mlflowreg_error_configuration")
  expect_match(conditionMessage(err), file, fixed = TRUE)
  expect_equal(readLines(file), "not a store")
})

test_that("read-only store names the path and changes nothing", {
  store <- file.path(withr::local_tempdir(), "mlruns")
  local_tracking(store)
  mlflow_set_experiment("kept")
  mlflow_create_registered_model("kept-model")
  before <- store_snapshot(store)
  Sys.chmod(store, "0555")
  withr::defer(Sys.chmod(store, "0755"))

  err <- expect_error(mlflow_create_registered_model("new-model"), class = "mlflowreg_error_configuration")
  expect_match(conditionMessage(err), store, fixed = TRUE)
  expect_match(conditionMessage(err), "read-only", fixed = TRUE)
  expect_error(mlflow_start_run(), class = "mlflowreg_error_configuration")
  expect_equal(mlflow_get_registered_model("kept-model")$name, "kept-model")
  expect_equal(store_snapshot(store), before)
})

test_that("corrupt meta.yaml names the file and changes nothing", {
  store <- file.path(withr::local_tempdir(), "mlruns")
  local_tracking(store)
  id <- mlflow_set_experiment("corrupt")
  run <- mlflow_start_run()
  mlflow_end_run()
  meta <- file.path(store, id, run$run_id, "meta.yaml")
  writeLines("run_id: [unclosed", meta)
  before <- store_snapshot(store)

  err <- expect_error(mlflow_set_tag("k", "v", run_id = run$run_id), class = "mlflowreg_error_parse")
  expect_match(conditionMessage(err), meta, fixed = TRUE)
  expect_error(mlflow_search_runs(experiment_ids = id), class = "mlflowreg_error_parse")
  expect_equal(store_snapshot(store), before)
})

test_that("unsupported search filter is named", {
  local_tracking(file.path(withr::local_tempdir(), "mlruns"))
  filter <- "name = 'a' OR name = 'b'"
  err <- expect_error(mlflow_search_registered_models(filter = filter), class = "mlflowreg_error_unsupported")
  expect_match(conditionMessage(err), filter, fixed = TRUE)
})

test_that("two processes registering at once get versions 1 to 100", {
  store <- file.path(withr::local_tempdir(), "mlruns")
  local_tracking(store)
  mlflow_set_experiment("concurrent")
  logged <- with(mlflow_start_run(), mlflow_log_model(fit, "model"))
  mlflow_create_registered_model("shared")

  script <- withr::local_tempfile(fileext = ".R")
  writeLines(sprintf(
    'library(mlflowreg)
     mlflow_set_tracking_uri(%s)
     for (i in 1:50) mlflow_create_model_version("shared", %s, await_registration_for = 0)',
    deparse(store), deparse(logged$artifact_uri)
  ), script)
  libs <- paste(.libPaths(), collapse = .Platform$path.sep)
  rscript <- file.path(R.home("bin"), "Rscript")
  workers <- lapply(1:2, function(i) {
    processx::process$new(rscript, c("--vanilla", script), env = c("current", R_LIBS = libs),
      stdout = "|", stderr = "2>&1", cleanup = TRUE)
  })
  withr::defer(for (worker in workers) if (worker$is_alive()) worker$kill())
  for (worker in workers) {
    worker$wait(timeout = 120000)
    expect_false(worker$is_alive())
    expect_equal(worker$get_exit_status(), 0L, info = worker$read_all_output())
  }

  versions <- mlflow_search_model_versions(filter = "name = 'shared'")$model_versions
  numbers <- sort(as.integer(vapply(versions, function(v) v$version, "")))
  expect_equal(numbers, 1:100)
  expect_equal(length(list.files(file.path(store, "models", "shared"), pattern = "^version-")), 100)
})
