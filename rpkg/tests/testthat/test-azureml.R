# Azure ML workspaces, through the gateway test double and Azurite that
# scripts/test.sh starts (MLFLOWREG_TEST_AZUREML_* variables).

azureml_env <- function(variable) server_uri(variable)

# Calls a test control of the gateway double (plain HTTP on loopback, GET).
azureml_control <- function(path) {
  connection <- url(paste0(azureml_env("MLFLOWREG_TEST_AZUREML_CONTROL"), path))
  on.exit(close(connection))
  jsonlite::fromJSON(paste(readLines(connection, warn = FALSE), collapse = ""), simplifyVector = FALSE)
}

new_azureml_job <- function() {
  azureml_control(paste0("/job?experiment=", unique_name("r-azureml")))
}

# Sets the variables Azure ML sets in a job, for the rest of the calling test.
local_azureml_job <- function(job, in_job = TRUE, ..., env = parent.frame()) {
  uri <- azureml_env("MLFLOWREG_TEST_AZUREML_URI")
  withr::local_envvar(
    c(
      MLFLOW_TRACKING_URI = uri,
      MLFLOW_TRACKING_TOKEN = job$token,
      MLFLOW_RUN_ID = if (in_job) job$run_id else NA,
      MLFLOW_EXPERIMENT_ID = if (in_job) job$experiment_id else NA,
      MLFLOW_TRACKING_SERVER_CERT_PATH = azureml_env("MLFLOWREG_TEST_AZUREML_CA"),
      MLFLOW_HTTP_REQUEST_MAX_RETRIES = "1",
      MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR = "0.1",
      ...
    ),
    .local_envir = env
  )
  local_tracking(uri, env = env)
}

# TRUE when the registry has the model `name`, asked with a token of a fresh job.
azureml_has_registered_model <- function(name) {
  checker <- new_azureml_job()
  withr::local_envvar(
    MLFLOW_TRACKING_TOKEN = checker$token,
    MLFLOW_RUN_ID = checker$run_id,
    MLFLOW_EXPERIMENT_ID = checker$experiment_id
  )
  client <- mlflow_client(azureml_env("MLFLOWREG_TEST_AZUREML_URI"))
  tryCatch(
    {
      mlflow_get_registered_model(name, client = client)
      TRUE
    },
    mlflowreg_error_not_found = function(cnd) FALSE
  )
}

test_that("a job logs, registers and loads a model on Azure ML", {
  job <- new_azureml_job()
  local_azureml_job(job)
  name <- unique_name("r-azureml-lm")
  fit <- lm(mpg ~ wt + hp, data = mtcars)

  run <- mlflow_start_run()
  expect_equal(run$run_id, job$run_id)
  expect_match(run$artifact_uri, "^azureml://127\\.0\\.0\\.1:[0-9]+/mlflow/v2\\.0/subscriptions/")
  logged <- mlflow_log_model(fit, "model", registered_model_name = name)
  mlflow_end_run()

  expect_equal(logged$model_version$status, "READY")
  expect_match(logged$model_version$source, "^azureml://.*/runs/[0-9a-f]+/artifacts/model$")
  blobs <- unlist(azureml_control(paste0("/blobs?run=", job$run_id))$blobs)
  expect_true("model/MLmodel" %in% blobs)
  expect_true("model/crate.bin" %in% blobs)

  model <- mlflow_load_model(sprintf("models:/%s/%s", name, logged$model_version$version))
  expect_identical(mlflow_predict(model, mtcars), predict(fit, mtcars))
  stats <- azureml_control("/stats")
  expect_null(stats$logged_model_or_proxy_requests)
})

test_that("a malformed azureml URI names what is missing", {
  bad <- "azureml://127.0.0.1:1/mlflow/v1.0/subscriptions/s/providers/Microsoft.MachineLearningServices/workspaces/w"
  err <- expect_error(mlflow_client(bad), class = "mlflowreg_error_invalid_argument")
  expect_match(conditionMessage(err), "names no resource group", fixed = TRUE)
  expect_match(conditionMessage(err), bad, fixed = TRUE)
})

test_that("a missing token is an authentication error", {
  job <- new_azureml_job()
  local_azureml_job(job)
  withr::local_envvar(MLFLOW_TRACKING_TOKEN = NA)
  err <- expect_error(mlflow_client(), class = "mlflowreg_error_authentication")
  expect_match(conditionMessage(err), "MLFLOW_TRACKING_TOKEN is not set", fixed = TRUE)
  expect_match(conditionMessage(err), "az account get-access-token", fixed = TRUE)
})

test_that("a refused token renewal registers nothing", {
  job <- new_azureml_job()
  local_azureml_job(job)
  name <- unique_name("r-azureml-refused-renewal")
  mlflow_start_run()
  azureml_control(sprintf("/configure?run=%s&refresh_status=403", job$run_id))
  azureml_control(sprintf("/revoke?run=%s", job$run_id))

  err <- expect_error(
    mlflow_log_model(function(df) df$wt, "model", registered_model_name = name),
    class = "mlflowreg_error_authentication"
  )
  expect_match(conditionMessage(err), sprintf("runs/%s/token returned 403", job$run_id), fixed = TRUE)
  expect_false(grepl(job$token, conditionMessage(err), fixed = TRUE))
  expect_false(azureml_has_registered_model(name))
})

test_that("a refused SAS URL is a storage error and registers nothing", {
  job <- new_azureml_job()
  local_azureml_job(job)
  name <- unique_name("r-azureml-refused-sas")
  azureml_control(sprintf("/configure?run=%s&sas_mode=forbidden", job$run_id))
  mlflow_start_run()

  err <- expect_error(
    mlflow_log_model(function(df) df$wt, "model", registered_model_name = name),
    class = "mlflowreg_error_storage"
  )
  expect_equal(err$status, 403L)
  expect_match(conditionMessage(err), "AuthorizationFailure", fixed = TRUE)
  expect_false(grepl("sig=", conditionMessage(err), fixed = TRUE))
  expect_false(azureml_has_registered_model(name))
  expect_length(azureml_control(paste0("/blobs?run=", job$run_id))$blobs, 0)
})

test_that("a blob endpoint that never answers times out as a storage error", {
  job <- new_azureml_job()
  local_azureml_job(job, MLFLOW_HTTP_REQUEST_TIMEOUT = "2", MLFLOW_HTTP_REQUEST_MAX_RETRIES = "0")
  azureml_control(sprintf("/configure?run=%s&sas_mode=timeout", job$run_id))
  mlflow_start_run()

  started <- Sys.time()
  err <- expect_error(
    mlflow_log_model(function(df) df$wt, "model"),
    class = "mlflowreg_error_storage"
  )
  expect_null(err$status)
  expect_match(conditionMessage(err), "no response", fixed = TRUE)
  expect_lt(as.numeric(difftime(Sys.time(), started, units = "secs")), 20)
})
