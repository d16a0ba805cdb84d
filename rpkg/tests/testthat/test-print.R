# format() and print() of clients, runs, registered models, model versions
# and logged models, on objects built from the server's field names. No
# server is needed.

bullet <- function(label, value) paste0(cli::symbol$bullet, " ", label, ": ", value)

plain_output <- function(env = parent.frame()) {
  withr::local_options(cli.num_colors = 1L, .local_envir = env)
}

version_record <- list(
  name = "mtcars-lm",
  version = "3",
  status = "READY",
  source = "mlflow-artifacts:/1/abc123/artifacts/model",
  run_id = "abc123",
  aliases = list("champion", "prod"),
  current_stage = "None",
  creation_timestamp = 1733342400000,
  tags = list(list(key = "data", value = "mtcars"))
)

test_that("client format shows server and tracking URI origin", {
  plain_output()
  client <- mlflow_client("http://127.0.0.1:5000")
  expect_equal(format(client), c(
    "<mlflow client> http://127.0.0.1:5000/",
    bullet("tracking URI", "http://127.0.0.1:5000 (from the `tracking_uri` argument of mlflow_client())")
  ))
  expect_output(print(client), "<mlflow client> http://127.0.0.1:5000/", fixed = TRUE)
  expect_output(expect_invisible(print(client)))
})

test_that("azureml client shows its https server URL", {
  plain_output()
  withr::local_envvar(MLFLOW_TRACKING_TOKEN = "not-a-real-token")
  uri <- paste0(
    "azureml://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/sub/",
    "resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
  )
  lines <- format(mlflow_client(uri))
  expect_equal(lines[[1]], paste("<mlflow client>", sub("^azureml://", "https://", uri)))
  expect_match(lines[[2]], uri, fixed = TRUE)
})

test_that("model version format shows status, source, aliases", {
  plain_output()
  version <- mlflowreg:::new_model_version(version_record)
  expect_equal(format(version), c(
    "<mlflow model version> mtcars-lm, version 3",
    bullet("status", "READY"),
    bullet("source", "mlflow-artifacts:/1/abc123/artifacts/model"),
    bullet("run_id", "abc123"),
    bullet("aliases", "champion, prod"),
    bullet("tags", "data = mtcars"),
    bullet("created", "2024-12-04 20:00:00 UTC")
  ))
  expect_output(print(version), "version 3", fixed = TRUE)
})

test_that("failed model version shows its status message and stage", {
  plain_output()
  record <- utils::modifyList(version_record, list(
    status = "FAILED_REGISTRATION",
    status_message = "copying the artifacts failed",
    current_stage = "Staging"
  ))
  record$aliases <- list()
  lines <- format(mlflowreg:::new_model_version(record))
  expect_equal(lines[[2]], bullet("status", "FAILED_REGISTRATION (copying the artifacts failed)"))
  expect_true(bullet("stage", "Staging") %in% lines)
  expect_false(any(startsWith(lines, bullet("aliases", ""))))
})

test_that("registered model format shows versions and aliases", {
  plain_output()
  model <- mlflowreg:::new_registered_model(list(
    name = "mtcars-lm",
    description = "Linear model of fuel use",
    latest_versions = list(
      version_record,
      utils::modifyList(version_record, list(version = "2", current_stage = "Production"))
    ),
    aliases = list(list(alias = "champion", version = "3")),
    tags = list(list(key = "team", value = "pricing")),
    creation_timestamp = 1733342400000
  ))
  expect_equal(format(model), c(
    "<mlflow registered model> mtcars-lm",
    bullet("description", "Linear model of fuel use"),
    bullet("latest versions", "3 (READY), 2 (Production, READY)"),
    bullet("aliases", "champion -> 3"),
    bullet("tags", "team = pricing"),
    bullet("created", "2024-12-04 20:00:00 UTC")
  ))
})

test_that("registered model without versions prints its name only", {
  plain_output()
  model <- mlflowreg:::new_registered_model(list(name = "empty"))
  expect_equal(format(model), "<mlflow registered model> empty")
})

run_record <- list(
  info = list(
    run_id = "abc123", experiment_id = "1", run_name = "brave-fox", status = "FINISHED",
    start_time = 1733342400000, end_time = 1733342460000,
    artifact_uri = "mlflow-artifacts:/1/abc123/artifacts"
  ),
  data = list(
    params = list(list(key = "alpha", value = "0.5")),
    tags = list(list(key = "mlflow.user", value = "root"), list(key = "team", value = "pricing"))
  )
)

test_that("run format shows status and hides mlflow tags", {
  plain_output()
  run <- mlflowreg:::new_run(run_record)
  expect_equal(format(run), c(
    "<mlflow run> abc123 (brave-fox)",
    bullet("status", "FINISHED"),
    bullet("experiment_id", "1"),
    bullet("started", "2024-12-04 20:00:00 UTC"),
    bullet("ended", "2024-12-04 20:01:00 UTC"),
    bullet("artifact_uri", "mlflow-artifacts:/1/abc123/artifacts"),
    bullet("data", "0 metrics, 1 params, 2 tags"),
    bullet("tags", "team = pricing")
  ))
  expect_output(print(run), "<mlflow run> abc123 (brave-fox)", fixed = TRUE)
})

test_that("running run omits the end time", {
  plain_output()
  record <- run_record
  record$info$status <- "RUNNING"
  record$info$end_time <- NULL
  lines <- format(mlflowreg:::new_run(record))
  expect_equal(lines[[2]], bullet("status", "RUNNING"))
  expect_false(any(startsWith(lines, bullet("ended", ""))))
})

test_that("several runs print as a tibble", {
  run <- mlflowreg:::new_run(run_record)
  runs <- rbind(run, run)
  expect_s3_class(runs, "tbl_df")
  expect_output(print(runs), "A tibble: 2", fixed = TRUE)
})

test_that("logged model format shows the registered version", {
  plain_output()
  logged <- structure(list(
    model_uri = "runs:/abc123/model",
    run_id = "abc123",
    artifact_path = "model",
    artifact_uri = "mlflow-artifacts:/1/abc123/artifacts/model",
    flavors = list(crate = list(), python_function = list()),
    model_version = mlflowreg:::new_model_version(version_record)
  ), class = "mlflow_logged_model")
  expect_equal(format(logged), c(
    "<mlflow logged model> runs:/abc123/model",
    bullet("run_id", "abc123"),
    bullet("artifact_uri", "mlflow-artifacts:/1/abc123/artifacts/model"),
    bullet("flavors", "crate, python_function"),
    bullet("registered", "mtcars-lm, version 3 (READY)")
  ))
})
