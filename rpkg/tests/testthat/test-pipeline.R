# save -> log -> register -> load -> predict against the real MLflow servers
# and a local file store.

fit <- lm(mpg ~ wt + hp, data = mtcars)

# Writes a model directory the way R mlflow 3.10 does: crate flavor only.
write_crate_only_model <- function(dir, fn) {
  dir.create(dir, recursive = TRUE)
  saveRDS(serialize(fn, NULL), file.path(dir, "crate.bin"))
  writeLines(c("flavors:", "  crate:", "    version: 0.1.0", "    model: crate.bin"),
    file.path(dir, "MLmodel"))
  dir
}

test_each_backend("log, register, load and predict", {
  experiment <- unique_name("e2e")
  experiment_id <- mlflow_set_experiment(experiment)
  name <- unique_name("lm-mtcars")

  run <- mlflow_start_run()
  expect_s3_class(run, "mlflow_run")
  expect_equal(run$experiment_id, experiment_id)
  expect_equal(run$status, "RUNNING")
  logged <- mlflow_log_model(fit, "model", registered_model_name = name)
  mlflow_end_run()

  expect_equal(logged$model_uri, paste0("runs:/", run$run_id, "/model"))
  expect_equal(logged$artifact_uri, paste0(run$artifact_uri, "/model"))
  expect_setequal(names(logged$flavors), c("crate", "python_function"))
  version <- logged$model_version
  expect_s3_class(version, "mlflow_model_version")
  expect_equal(version$name, name)
  expect_equal(version$version, "1")
  expect_equal(version$status, "READY")
  expect_equal(version$run_id, run$run_id)
  expect_equal(version$source, logged$artifact_uri)

  ended <- mlflow_get_run(run$run_id)
  expect_equal(ended$status, "FINISHED")
  history <- ended$tags[[1]]$value[ended$tags[[1]]$key == "mlflow.log-model.history"]
  logged_models <- jsonlite::fromJSON(history, simplifyVector = FALSE)
  expect_length(logged_models, 1)
  expect_equal(logged_models[[1]]$artifact_path, "model")
  expect_equal(logged_models[[1]]$run_id, run$run_id)
  expect_equal(logged_models[[1]]$flavors$python_function$loader_module, "mlflowreg_pyfunc")

  for (uri in c(paste0("models:/", name, "/1"), logged$model_uri, logged$artifact_uri)) {
    model <- mlflow_load_model(uri)
    expect_equal(mlflow_predict(model, mtcars), predict(fit, mtcars), tolerance = 0, info = uri)
  }
})

test_each_backend("registered model loads and predicts in a fresh session", {
  mlflow_set_experiment(unique_name("fresh"))
  name <- unique_name("fresh-lm")
  with(mlflow_start_run(), {
    mlflow_log_model(fit, "model", registered_model_name = name)
  })

  out <- run_fresh_r(sprintf(
    'library(mlflowreg)
     mlflow_set_tracking_uri(%s)
     model <- mlflow_load_model("models:/%s/1")
     cat(sprintf("%%.17g", mlflow_predict(model, mtcars)), sep = "\\n")',
    deparse(mlflow_get_tracking_uri()), name
  ))
  expect_equal(as.numeric(out), unname(predict(fit, mtcars)), tolerance = 0)
})

test_each_backend("with() ends the run as FAILED on error and re-raises", {
  mlflow_set_experiment(unique_name("with"))
  run <- mlflow_start_run()
  expect_error(with(run, stop("training diverged")), "training diverged")
  expect_null(mlflowreg:::active_run_id())
  expect_equal(mlflow_get_run(run$run_id)$status, "FAILED")
})

test_each_backend("MLFLOW_RUN_ID resumes an existing run", {
  mlflow_set_experiment(unique_name("resume"))
  first <- mlflow_start_run()
  mlflow_end_run()
  withr::local_envvar(MLFLOW_RUN_ID = first$run_id)

  resumed <- mlflow_start_run()
  expect_equal(resumed$run_id, first$run_id)
  expect_equal(resumed$status, "RUNNING")
  mlflow_end_run()
})

test_each_backend("a second run needs nested = TRUE", {
  mlflow_set_experiment(unique_name("nested"))
  parent <- mlflow_start_run()
  expect_error(mlflow_start_run(), class = "mlflowreg_error_invalid_argument", regexp = "already active")
  child <- mlflow_start_run(nested = TRUE)
  tags <- child$tags[[1]]
  expect_equal(tags$value[tags$key == "mlflow.parentRunId"], parent$run_id)
  mlflow_end_run()
  mlflow_end_run()
  expect_null(mlflowreg:::active_run_id())
})

test_each_backend("create_model_version sends tags and description", {
  mlflow_set_experiment(unique_name("tags"))
  name <- unique_name("tagged")
  logged <- with(mlflow_start_run(), mlflow_log_model(fit, "model"))
  registered <- mlflow_create_registered_model(name, tags = list(team = "risk"), description = "lm")
  expect_equal(registered$name, name)
  expect_equal(registered$description, "lm")

  version <- mlflow_create_model_version(name, logged$artifact_uri, run_id = logged$run_id,
    tags = list(stage = "candidate", trained_rows = 32), description = "first")
  fetched <- mlflow_get_model_version(name, 1)
  tag_values <- setNames(
    vapply(fetched$tags, function(t) t$value, ""),
    vapply(fetched$tags, function(t) t$key, "")
  )
  expect_equal(tag_values[["stage"]], "candidate")
  expect_equal(tag_values[["trained_rows"]], "32")
  expect_equal(fetched$description, "first")
  expect_equal(version$status, "READY")
})

test_that("strict registry rejects crate-only model and accepts ours", {
  local_tracking(strict_server())
  mlflow_set_experiment(unique_name("strict"))
  client <- mlflow_client()
  name <- unique_name("strict-lm")
  run <- mlflow_start_run()
  crate_only <- write_crate_only_model(file.path(withr::local_tempdir(), "m"), function(d) 1)
  old <- mlflowreg:::rust_json(mlflowreg:::log_model_dir_(
    client$tracking_uri, client$origin, run$run_id, crate_only, "r-mlflow-model"
  ))
  ours <- mlflow_log_model(fit, "model")
  mlflow_end_run()
  mlflow_create_registered_model(name)

  err <- expect_error(
    mlflow_create_model_version(name, old$artifact_uri, run_id = run$run_id),
    class = "mlflowreg_error_api"
  )
  expect_equal(err$status, 400L)
  expect_equal(err$error_code, "INVALID_PARAMETER_VALUE")
  expect_match(conditionMessage(err), paste(
    "Flavors must contain a top level python_function key with a loader_module sub-key under it"
  ), fixed = TRUE)

  version <- mlflow_create_model_version(name, ours$artifact_uri, run_id = run$run_id)
  expect_equal(version$status, "READY")
  expect_equal(version$version, "1")
})

test_that("unreachable server names the URI and its origin", {
  withr::local_envvar(
    MLFLOW_HTTP_REQUEST_MAX_RETRIES = "0",
    MLFLOW_HTTP_REQUEST_TIMEOUT = "5",
    MLFLOW_TRACKING_URI = "http://127.0.0.1:9"
  )
  globals <- mlflowreg:::.globals
  old <- globals$tracking_uri
  globals$tracking_uri <- NULL
  withr::defer(globals$tracking_uri <- old)
  started <- Sys.time()
  err <- expect_error(mlflow_get_run("abc"), class = "mlflowreg_error_unreachable")
  expect_lt(as.numeric(difftime(Sys.time(), started, units = "secs")), 30)
  expect_match(conditionMessage(err), "http://127.0.0.1:9/", fixed = TRUE)
  expect_match(conditionMessage(err), "MLFLOW_TRACKING_URI", fixed = TRUE)
})

test_each_backend("server errors carry MLflow's error code", {
  err <- expect_error(mlflow_get_model_version(unique_name("missing"), 1),
    class = "mlflowreg_error_not_found")
  expect_equal(err$error_code, "RESOURCE_DOES_NOT_EXIST")
  expect_equal(err$status, 404L)
  expect_match(conditionMessage(err), "RESOURCE_DOES_NOT_EXIST", fixed = TRUE)
})

test_that("bad registry arguments fail before any request", {
  local_tracking("http://127.0.0.1:9")
  expect_error(mlflow_create_model_version("", "s"), class = "mlflowreg_error_invalid_argument")
  expect_error(mlflow_get_model_version("m", 1.5), class = "mlflowreg_error_invalid_argument",
    regexp = "version number")
  expect_error(mlflow_create_registered_model("m", tags = list("no name")),
    class = "mlflowreg_error_invalid_argument", regexp = "named list")
})

test_that("with() keeps the user's error when ending the run fails", {
  local_tracking(tracking_server())
  mlflow_set_experiment(unique_name("with-fail"))
  run <- mlflow_start_run()
  withr::local_envvar(MLFLOW_HTTP_REQUEST_MAX_RETRIES = "0", MLFLOW_HTTP_REQUEST_TIMEOUT = "3")
  # Point the run's client at a closed port so ending the run fails.
  globals <- mlflowreg:::.globals
  stack <- globals$run_stack
  stack[[length(stack)]]$client <- mlflow_client("http://127.0.0.1:9")
  globals$run_stack <- stack
  expect_warning(
    expect_error(with(run, stop("original user error")), "original user error"),
    class = "mlflowreg_warning", regexp = "Could not mark run"
  )
  expect_null(mlflowreg:::active_run_id())
})

test_each_backend("MLFLOW_RUN_ID is used once and not for nested runs", {
  mlflow_set_experiment(unique_name("job"))
  job <- mlflow_start_run()
  mlflow_end_run()
  withr::local_envvar(MLFLOW_RUN_ID = paste0(" ", job$run_id, " "))

  resumed <- mlflow_start_run()
  expect_equal(resumed$run_id, job$run_id)
  child <- mlflow_start_run(nested = TRUE)
  expect_false(identical(child$run_id, job$run_id))
  mlflow_end_run()
  mlflow_end_run()
  again <- mlflow_start_run()
  expect_false(identical(again$run_id, job$run_id))
  mlflow_end_run()
})

test_each_backend("MLFLOW_RUN_ID naming a missing run says so", {
  withr::local_envvar(MLFLOW_RUN_ID = "0123456789abcdef0123456789abcdef")
  globals <- mlflowreg:::.globals
  globals$consumed_job_run_id <- NULL
  expect_error(mlflow_start_run(), class = "mlflowreg_error_not_found", regexp = "MLFLOW_RUN_ID")
})

test_that("log_model rejects a bad artifact path before starting a run", {
  local_tracking(tracking_server())
  expect_error(mlflow_log_model(fit, "/abs"), class = "mlflowreg_error_invalid_argument",
    regexp = "relative path")
  expect_error(mlflow_log_model(fit, "a/../b"), class = "mlflowreg_error_invalid_argument")
  expect_null(mlflowreg:::active_run_id())
})

test_each_backend("invalid registered model names fail before logging", {
  mlflow_set_experiment(unique_name("names"))
  for (bad in c("team/model", "a:b", "")) {
    expect_error(mlflow_log_model(fit, "model", registered_model_name = bad),
      class = "mlflowreg_error_invalid_argument")
  }
  expect_null(mlflowreg:::active_run_id())
})

test_that("client never shows the password of its URI", {
  client <- mlflow_client("http://alice:S3cr3tPW@127.0.0.1:9")
  shown <- c(capture.output(print(client)), capture.output(str(client)), format(client))
  expect_false(any(grepl("S3cr3tPW", shown, fixed = TRUE)))
  expect_equal(client$tracking_uri, "http://alice:***@127.0.0.1:9")
  err <- expect_error(mlflow_client("http://alice:S3cr3tPW@[::1"), class = "mlflowreg_error_invalid_argument")
  expect_false(grepl("S3cr3tPW", conditionMessage(err), fixed = TRUE))
  expect_error(mlflow_set_tracking_uri("ftp://alice:S3cr3tPW@host"), class = "mlflowreg_error_invalid_argument")
})

test_each_backend("end_run checks status and end_time", {
  mlflow_set_experiment(unique_name("end"))
  mlflow_start_run()
  expect_error(mlflow_end_run(status = "DONE"), class = "mlflowreg_error_invalid_argument", regexp = "\"DONE\"")
  expect_error(mlflow_end_run(end_time = as.POSIXct(NA)), class = "mlflowreg_error_invalid_argument")
  expect_error(mlflow_end_run(end_time = 1e300), class = "mlflowreg_error_invalid_argument")
  expect_false(is.null(mlflowreg:::active_run_id()))
  mlflow_end_run()
})
