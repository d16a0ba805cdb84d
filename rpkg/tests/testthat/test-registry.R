# Every registry function against the real servers and a local file store.

fit <- lm(mpg ~ wt + hp, data = mtcars)

# Logs `fit` to a new run and returns what mlflow_log_model() returned.
log_fit <- function(model = fit) {
  with(mlflow_start_run(), mlflow_log_model(model, "model"))
}

tag_map <- function(tags) {
  setNames(vapply(tags, function(t) t$value, ""), vapply(tags, function(t) t$key, ""))
}

test_each_backend("registered model create, tag, rename, update and delete", {
  name <- unique_name("rm")
  created <- mlflow_create_registered_model(name, tags = list(team = "risk"), description = "first")
  expect_s3_class(created, "mlflow_registered_model")
  expect_equal(tag_map(created$tags)[["team"]], "risk")

  mlflow_set_registered_model_tag(name, "tier", 1)
  expect_equal(tag_map(mlflow_get_registered_model(name)$tags)[["tier"]], "1")
  mlflow_delete_registered_model_tag(name, "tier")
  expect_false("tier" %in% names(tag_map(mlflow_get_registered_model(name)$tags)))

  updated <- mlflow_update_registered_model(name, "second")
  expect_equal(updated$description, "second")

  renamed <- mlflow_rename_registered_model(name, paste0(name, "-new"))
  expect_equal(renamed$name, paste0(name, "-new"))
  expect_error(mlflow_get_registered_model(name), class = "mlflowreg_error_not_found")

  mlflow_delete_registered_model(paste0(name, "-new"))
  expect_error(mlflow_get_registered_model(paste0(name, "-new")), class = "mlflowreg_error_not_found")
})

test_each_backend("create_registered_model on an existing name is already_exists", {
  name <- unique_name("dup")
  mlflow_create_registered_model(name)
  err <- expect_error(mlflow_create_registered_model(name), class = "mlflowreg_error_already_exists")
  expect_equal(err$error_code, "RESOURCE_ALREADY_EXISTS")
})

test_each_backend("search returns every page", {
  prefix <- unique_name("page")
  names <- sprintf("%s-%02d", prefix, 1:7)
  for (name in names) mlflow_create_registered_model(name)
  filter <- sprintf("name LIKE '%s-%%'", prefix)

  all <- mlflow_search_registered_models(filter = filter, order_by = "name ASC")
  expect_equal(vapply(all$registered_models, function(m) m$name, ""), names)
  expect_null(all$next_page_token)

  first <- mlflow_search_registered_models(filter = filter, max_results = 3, order_by = "name ASC")
  expect_equal(vapply(first$registered_models, function(m) m$name, ""), names[1:3])
  expect_type(first$next_page_token, "character")
  rest <- mlflow_search_registered_models(filter = filter, order_by = "name ASC",
    page_token = first$next_page_token)
  expect_equal(vapply(rest$registered_models, function(m) m$name, ""), names[4:7])
})

test_each_backend("model version update, tags, stages, search and delete", {
  mlflow_set_experiment(unique_name("mv"))
  name <- unique_name("mv")
  logged <- log_fit()
  v1 <- mlflow_register_model(logged$model_uri, name, tags = list(candidate = "yes"))
  v2 <- mlflow_register_model(logged$model_uri, name)
  expect_equal(c(v1$version, v2$version), c("1", "2"))
  expect_equal(tag_map(mlflow_get_model_version(name, 1)$tags)[["candidate"]], "yes")

  expect_equal(mlflow_update_model_version(name, 1, "baseline")$description, "baseline")
  mlflow_set_model_version_tag(name, 2, "validated", TRUE)
  expect_equal(tag_map(mlflow_get_model_version(name, 2)$tags)[["validated"]], "TRUE")
  mlflow_delete_model_version_tag(name, 2, "validated")
  expect_length(mlflow_get_model_version(name, 2)$tags, 0)

  staged <- mlflow_transition_model_version_stage(name, 1, "production")
  expect_equal(staged$current_stage, "Production")
  mlflow_transition_model_version_stage(name, 2, "Production", archive_existing_versions = TRUE)
  expect_equal(mlflow_get_model_version(name, 1)$current_stage, "Archived")
  expect_equal(mlflow_get_model_version(name, 2)$current_stage, "Production")
  latest <- mlflow_get_latest_versions(name, stages = "Production")
  expect_equal(vapply(latest, function(v) v$version, ""), "2")

  found <- mlflow_search_model_versions(filter = sprintf("name = '%s'", name))
  expect_setequal(vapply(found$model_versions, function(v) v$version, ""), c("1", "2"))

  uri <- mlflow_get_model_version_download_uri(name, 2)
  expect_equal(uri, logged$artifact_uri)
  model <- mlflow_load_model(sprintf("models:/%s/Production", name))
  expect_equal(mlflow_predict(model, mtcars), predict(fit, mtcars))

  mlflow_delete_model_version(name, 1)
  expect_error(mlflow_get_model_version(name, 1), class = "mlflowreg_error_not_found")
})

test_each_backend("alias round trip and models:/name@alias", {
  mlflow_set_experiment(unique_name("alias"))
  name <- unique_name("alias")
  logged <- log_fit()
  mlflow_register_model(logged$model_uri, name)

  mlflow_set_registered_model_alias(name, "champion", 1)
  expect_equal(mlflow_get_model_version_by_alias(name, "champion")$version, "1")
  expect_equal(mlflow_get_model_version(name, 1)$aliases[[1]], "champion")
  model <- mlflow_load_model(sprintf("models:/%s@champion", name))
  expect_equal(mlflow_predict(model, mtcars), predict(fit, mtcars))

  mlflow_delete_registered_model_alias(name, "champion")
  expect_error(mlflow_get_model_version_by_alias(name, "champion"), class = "mlflowreg_error_not_found")
  expect_error(mlflow_load_model(sprintf("models:/%s@champion", name)), class = "mlflowreg_error_not_found")
})

test_each_backend("register reuses an existing registered model", {
  mlflow_set_experiment(unique_name("reuse"))
  name <- unique_name("reuse")
  mlflow_create_registered_model(name, description = "kept")
  version <- mlflow_register_model(log_fit()$model_uri, name)
  expect_equal(version$version, "1")
  expect_equal(mlflow_get_registered_model(name)$description, "kept")
})

test_that("waiting on a pending version times out clearly", {
  local_tracking(strict_server())
  mlflow_set_experiment(unique_name("pending"))
  name <- unique_name("pending")
  logged <- log_fit()
  mlflow_create_registered_model(name)

  started <- Sys.time()
  err <- expect_error(
    mlflow_create_model_version(name, logged$artifact_uri, run_id = logged$run_id,
      tags = list(mlflowreg.test.hold = "PENDING"), await_registration_for = 1),
    class = "mlflowreg_error_registration"
  )
  expect_lt(as.numeric(difftime(Sys.time(), started, units = "secs")), 20)
  expect_match(conditionMessage(err), "PENDING_REGISTRATION", fixed = TRUE)
  expect_match(conditionMessage(err), "await_registration_for", fixed = TRUE)

  failed <- expect_error(
    mlflow_create_model_version(name, logged$artifact_uri, run_id = logged$run_id,
      tags = list(mlflowreg.test.hold = "FAILED")),
    class = "mlflowreg_error_registration"
  )
  expect_match(conditionMessage(failed), "held as failed by the strict registry fixture", fixed = TRUE)
})

# A crate-only model logged the way R mlflow logs it, through the core's
# directory upload (R mlflow itself would need Python).
log_crate_only <- function(run_id) {
  dir <- file.path(withr::local_tempdir(.local_envir = parent.frame()), "m")
  dir.create(dir)
  saveRDS(serialize(function(d) stats::predict(fit, d), NULL), file.path(dir, "crate.bin"))
  writeLines(c("flavors:", "  crate:", "    version: 0.1.0", "    model: crate.bin"), file.path(dir, "MLmodel"))
  client <- mlflow_client()
  mlflowreg:::rust_json(mlflowreg:::log_model_dir_(client$tracking_uri, client$origin, run_id, dir, "model"))
}

test_that("crate-only model fails azureml preflight, then repair registers", {
  local_tracking(strict_server())
  mlflow_set_experiment(unique_name("repair"))
  name <- unique_name("repair")
  run <- mlflow_start_run()
  logged <- log_crate_only(run$run_id)
  mlflow_end_run()

  problems <- mlflowreg_validate_model(logged$model_uri, profile = "azureml")
  expect_equal(nrow(problems), 1)
  expect_equal(problems$field, "flavors.python_function")
  expect_match(problems$fix, "mlflowreg_repair_model()", fixed = TRUE)
  expect_equal(nrow(mlflowreg_validate_model(logged$model_uri, profile = "mlflow")), 0)

  err <- expect_error(mlflow_register_model(logged$model_uri, name, profile = "azureml"),
    class = "mlflowreg_error_validation")
  expect_match(conditionMessage(err), "flavors.python_function", fixed = TRUE)
  expect_error(mlflow_get_registered_model(name), class = "mlflowreg_error_not_found")

  repaired <- mlflowreg_repair_model(logged$model_uri)
  expect_equal(repaired$source, logged$artifact_uri)
  expect_true(all(c("code/mlflowreg_pyfunc.py", "code/mlflowreg_predict.R", "MLmodel") %in% repaired$uploaded))
  expect_equal(tail(repaired$uploaded, 1), "MLmodel")
  expect_length(mlflowreg_repair_model(logged$model_uri)$uploaded, 0)
  expect_equal(nrow(mlflowreg_validate_model(logged$model_uri, profile = "azureml")), 0)

  version <- mlflow_register_model(logged$model_uri, name, profile = "azureml")
  expect_equal(version$status, "READY")
  model <- mlflow_load_model(sprintf("models:/%s/1", name))
  expect_equal(mlflow_predict(model, mtcars), predict(fit, mtcars))
})

test_that("validate a local model needs no server", {
  withr::local_envvar(MLFLOW_TRACKING_URI = "http://127.0.0.1:9")
  dir <- file.path(withr::local_tempdir(), "m")
  mlflow_save_model(fit, dir)
  problems <- mlflowreg_validate_model(dir, profile = "databricks-uc")
  expect_equal(problems$field, c("signature.inputs", "signature.outputs"))
  expect_equal(nrow(mlflowreg_validate_model(dir, profile = "azureml")), 0)
})

test_each_backend("bad registry input names the value", {
  expect_error(mlflow_transition_model_version_stage("m", 1, "Prod"),
    class = "mlflowreg_error_invalid_argument", regexp = "\"Prod\"")
  expect_error(mlflow_transition_model_version_stage("m", 1, "Staging", archive_existing_versions = "no"),
    class = "mlflowreg_error_invalid_argument", regexp = "TRUE or FALSE")
  expect_error(mlflow_create_registered_model(""), class = "mlflowreg_error_invalid_argument",
    regexp = "`name` must be a non-empty string")
  expect_error(mlflowreg_validate_model("x", profile = "azure"),
    class = "mlflowreg_error_invalid_argument", regexp = "\"azure\"")
  expect_error(mlflow_get_model_version(unique_name("nope"), 1), class = "mlflowreg_error_not_found")
  expect_error(mlflow_register_model("runs:/0123456789abcdef0123456789abcdef/model", unique_name("x")),
    class = "mlflowreg_error_not_found")
  no_model <- withr::local_tempdir()
  expect_error(mlflowreg_validate_model(no_model), class = "mlflowreg_error_invalid_argument",
    regexp = "no MLmodel file")
  bad_yaml <- withr::local_tempdir()
  writeLines("flavors: [unclosed", file.path(bad_yaml, "MLmodel"))
  expect_error(mlflowreg_validate_model(bad_yaml), class = "mlflowreg_error_parse")
})
