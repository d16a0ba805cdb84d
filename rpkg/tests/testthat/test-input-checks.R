# Every argument of every exported function, given a wrong value, raises
# `mlflowreg_error_invalid_argument` with a message that names the argument
# and shows the value, before any request reaches the server.

# Wrong values by kind of argument. NULL is wrong only where the argument
# is required.
bad_values <- list(
  string = list(NULL, NA, NA_character_, "", 1, TRUE, c("a", "b"), list("a")),
  optional_string = list(NA, NA_character_, "", 1, c("a", "b"), list("a")),
  # A description may be empty but must be one string.
  text = list(NULL, NA, NA_character_, 1, c("a", "b")),
  key = list(NULL, NA, "", 1, c("a", "b"), strrep("k", 251)),
  value = list(NULL, NA, c(1, 2), list(1), mean),
  metric = list(NULL, NA, "1", c(1, 2), list(1)),
  flag = list(NULL, NA, "TRUE", 1, c(TRUE, FALSE)),
  wait = list(NULL, NA, -1, Inf, "300", c(1, 2)),
  count = list(NA, 0, 1.5, Inf, "10", c(1, 2)),
  step = list(NA, 1.5, Inf, "1", c(1, 2)),
  time = list(NA, -5, "now", Inf, c(1, 2)),
  version = list(NULL, NA, 0, 1.5, "a", "", c(1, 2)),
  tags = list("x", list(1), list(a = NA), list(a = c(1, 2)), list(a = 1, a = 2)),
  strings = list(1, NA_character_, "", list(1), c("a", NA)),
  stages = list(1, "Bogus", NA, list("Production", 2)),
  run_status = list(NA, "DONE", 1, c("FINISHED", "FAILED")),
  view_type = list(NA, "EVERYTHING", 1, c("ALL", "ACTIVE_ONLY")),
  profile = list(NA, "", "azure", 1, c("mlflow", "azureml")),
  stage = list(NULL, NA, "Bogus", 1),
  client = list("http://127.0.0.1:1", 1, list(tracking_uri = "x")),
  artifact_path = list(NULL, NA, "", 1, "../x", "/abs/model", "a/../../b", "C:\\model", "a\\..\\b"),
  optional_artifact_path = list(NA, "", 1, "../x", "/abs", "a/../b"),
  model = list(NULL, 42, "a string", list(a = 1)),
  function_model = list(NULL, 42, "a string"),
  frame = list("x", 1, data.frame(a = 1)),
  object = list(1, "x", NULL),
  list = list("x", 1, NA),
  flavor = list(NA, "", 1, "python_function"),
  local_path = list(NULL, NA, "", 1, "/nonexistent/mlflowreg/file")
)

# What the message must contain for a bad value: by default the value as
# the checks print it.
expected_fragment <- function(kind, value) {
  if (kind == "key" && is.character(value) && length(value) == 1 && nchar(value) > 250) {
    return("251 characters")
  }
  if (kind == "model" && is.list(value)) {
    return("class list")
  }
  # A tag with a bad value is reported by its own name and value.
  if (kind == "tags" && is.list(value) && !is.null(names(value)) && !anyDuplicated(names(value))) {
    return(mlflowreg:::describe_value(value[[1]]))
  }
  mlflowreg:::describe_value(value)
}

# One entry per exported function: valid values for its arguments, the
# kind of each argument, and the arguments not checked with the reason.
specs <- list(
  mlflow_client = list(valid = list(), kinds = c(tracking_uri = "optional_string")),
  mlflow_set_tracking_uri = list(valid = list(uri = "http://127.0.0.1:1"), kinds = c(uri = "string")),
  mlflow_set_experiment = list(
    valid = list(experiment_name = "e"),
    kinds = c(experiment_name = "optional_string", experiment_id = "optional_string",
      artifact_location = "optional_string")
  ),
  mlflow_create_experiment = list(
    valid = list(name = "e"),
    kinds = c(name = "string", artifact_location = "optional_string", client = "client", tags = "tags")
  ),
  mlflow_get_experiment = list(
    valid = list(experiment_id = "1"),
    kinds = c(experiment_id = "optional_string", name = "optional_string", client = "client")
  ),
  mlflow_search_experiments = list(
    valid = list(),
    kinds = c(filter = "optional_string", experiment_view_type = "view_type", max_results = "count",
      order_by = "strings", page_token = "optional_string", client = "client")
  ),
  mlflow_delete_experiment = list(valid = list(experiment_id = "1"),
    kinds = c(experiment_id = "string", client = "client")),
  mlflow_restore_experiment = list(valid = list(experiment_id = "1"),
    kinds = c(experiment_id = "string", client = "client")),
  mlflow_rename_experiment = list(
    valid = list(new_name = "n", experiment_id = "1"),
    kinds = c(new_name = "string", experiment_id = "optional_string", client = "client")
  ),
  mlflow_set_experiment_tag = list(
    valid = list(key = "k", value = "v", experiment_id = "1"),
    kinds = c(key = "key", value = "value", experiment_id = "optional_string", client = "client")
  ),
  mlflow_start_run = list(
    valid = list(),
    kinds = c(run_id = "optional_string", experiment_id = "optional_string", start_time = "time",
      tags = "tags", client = "client", nested = "flag")
  ),
  mlflow_end_run = list(
    valid = list(run_id = "r1"),
    kinds = c(status = "run_status", end_time = "time", run_id = "optional_string", client = "client")
  ),
  mlflow_set_terminated = list(
    valid = list(run_id = "r1"),
    kinds = c(status = "run_status", end_time = "time", run_id = "optional_string", client = "client")
  ),
  mlflow_get_run = list(valid = list(run_id = "r1"),
    kinds = c(run_id = "optional_string", client = "client")),
  mlflow_delete_run = list(valid = list(run_id = "r1"), kinds = c(run_id = "string", client = "client")),
  mlflow_restore_run = list(valid = list(run_id = "r1"), kinds = c(run_id = "string", client = "client")),
  mlflow_log_param = list(
    valid = list(key = "k", value = "v", run_id = "r1"),
    kinds = c(key = "key", value = "value", run_id = "optional_string", client = "client")
  ),
  mlflow_log_metric = list(
    valid = list(key = "k", value = 1, run_id = "r1"),
    kinds = c(key = "key", value = "metric", timestamp = "time", step = "step",
      run_id = "optional_string", client = "client")
  ),
  mlflow_log_batch = list(
    valid = list(run_id = "r1"),
    kinds = c(metrics = "frame", params = "frame", tags = "frame", run_id = "optional_string",
      client = "client")
  ),
  mlflow_set_tag = list(
    valid = list(key = "k", value = "v", run_id = "r1"),
    kinds = c(key = "key", value = "value", run_id = "optional_string", client = "client")
  ),
  mlflow_delete_tag = list(
    valid = list(key = "k", run_id = "r1"),
    kinds = c(key = "key", run_id = "optional_string", client = "client")
  ),
  mlflow_get_metric_history = list(
    valid = list(metric_key = "k", run_id = "r1"),
    kinds = c(metric_key = "key", run_id = "optional_string", client = "client")
  ),
  mlflow_search_runs = list(
    valid = list(experiment_ids = "1"),
    kinds = c(filter = "optional_string", run_view_type = "view_type", experiment_ids = "strings",
      order_by = "strings", client = "client")
  ),
  mlflow_log_artifact = list(
    valid = list(path = tempdir(), run_id = "r1"),
    kinds = c(path = "local_path", artifact_path = "optional_artifact_path", run_id = "optional_string",
      client = "client")
  ),
  mlflow_list_artifacts = list(
    valid = list(run_id = "r1"),
    kinds = c(path = "optional_artifact_path", run_id = "optional_string", client = "client")
  ),
  mlflow_download_artifacts = list(
    valid = list(path = "model", run_id = "r1"),
    kinds = c(path = "artifact_path", run_id = "optional_string", client = "client")
  ),
  mlflow_save_model = list(
    valid = list(model = function(x) x, path = file.path(tempdir(), "never-written")),
    kinds = c(model = "model", path = "string", model_spec = "list")
  ),
  mlflow_log_model = list(
    valid = list(model = function(x) x, artifact_path = "model"),
    kinds = c(model = "model", artifact_path = "artifact_path", registered_model_name = "optional_string",
      await_registration_for = "wait", client = "client")
  ),
  mlflow_load_model = list(
    valid = list(model_uri = "models:/m/1"),
    kinds = c(model_uri = "string", flavor = "flavor", client = "client")
  ),
  mlflow_predict = list(
    valid = list(model = function(x) x, data = 1),
    kinds = c(model = "function_model"),
    unchecked = c(data = "any value the model function accepts")
  ),
  mlflow_id = list(valid = list(), kinds = c(object = "object")),
  mlflow_create_registered_model = list(
    valid = list(name = "m"),
    kinds = c(name = "string", tags = "tags", description = "optional_string", client = "client")
  ),
  mlflow_get_registered_model = list(valid = list(name = "m"), kinds = c(name = "string", client = "client")),
  mlflow_rename_registered_model = list(
    valid = list(name = "m", new_name = "n"),
    kinds = c(name = "string", new_name = "string", client = "client")
  ),
  mlflow_update_registered_model = list(
    valid = list(name = "m", description = "d"),
    kinds = c(name = "string", description = "text", client = "client")
  ),
  mlflow_delete_registered_model = list(valid = list(name = "m"), kinds = c(name = "string", client = "client")),
  mlflow_set_registered_model_tag = list(
    valid = list(name = "m", key = "k", value = "v"),
    kinds = c(name = "string", key = "string", value = "value", client = "client")
  ),
  mlflow_delete_registered_model_tag = list(
    valid = list(name = "m", key = "k"),
    kinds = c(name = "string", key = "string", client = "client")
  ),
  mlflow_search_registered_models = list(
    valid = list(),
    kinds = c(filter = "optional_string", max_results = "count", order_by = "strings",
      page_token = "optional_string", client = "client")
  ),
  mlflow_search_model_versions = list(
    valid = list(),
    kinds = c(filter = "optional_string", max_results = "count", order_by = "strings",
      page_token = "optional_string", client = "client")
  ),
  mlflow_get_latest_versions = list(
    valid = list(name = "m"),
    kinds = c(name = "string", stages = "stages", client = "client")
  ),
  mlflow_create_model_version = list(
    valid = list(name = "m", source = "runs:/r1/model"),
    kinds = c(name = "string", source = "string", run_id = "optional_string", tags = "tags",
      run_link = "optional_string", description = "optional_string", await_registration_for = "wait",
      profile = "profile", client = "client")
  ),
  mlflow_get_model_version = list(
    valid = list(name = "m", version = 1),
    kinds = c(name = "string", version = "version", client = "client")
  ),
  mlflow_update_model_version = list(
    valid = list(name = "m", version = 1, description = "d"),
    kinds = c(name = "string", version = "version", description = "text", client = "client")
  ),
  mlflow_delete_model_version = list(
    valid = list(name = "m", version = 1),
    kinds = c(name = "string", version = "version", client = "client")
  ),
  mlflow_transition_model_version_stage = list(
    valid = list(name = "m", version = 1, stage = "Staging"),
    kinds = c(name = "string", version = "version", stage = "stage", archive_existing_versions = "flag",
      client = "client")
  ),
  mlflow_set_model_version_tag = list(
    valid = list(name = "m", version = 1, key = "k", value = "v"),
    kinds = c(name = "string", version = "version", key = "string", value = "value", client = "client")
  ),
  mlflow_delete_model_version_tag = list(
    valid = list(name = "m", version = 1, key = "k"),
    kinds = c(name = "string", version = "version", key = "string", client = "client")
  ),
  mlflow_get_model_version_download_uri = list(
    valid = list(name = "m", version = 1),
    kinds = c(name = "string", version = "version", client = "client")
  ),
  mlflow_set_registered_model_alias = list(
    valid = list(name = "m", alias = "a", version = 1),
    kinds = c(name = "string", alias = "string", version = "version", client = "client")
  ),
  mlflow_delete_registered_model_alias = list(
    valid = list(name = "m", alias = "a"),
    kinds = c(name = "string", alias = "string", client = "client")
  ),
  mlflow_get_model_version_by_alias = list(
    valid = list(name = "m", alias = "a"),
    kinds = c(name = "string", alias = "string", client = "client")
  ),
  mlflow_register_model = list(
    valid = list(model_uri = "runs:/r1/model", name = "m"),
    kinds = c(model_uri = "string", name = "string", tags = "tags", await_registration_for = "wait",
      profile = "profile", client = "client")
  ),
  mlflowreg_validate_model = list(
    valid = list(model = "runs:/r1/model"),
    kinds = c(model = "string", profile = "profile", client = "client")
  ),
  mlflowreg_repair_model = list(
    valid = list(model_uri = "runs:/r1/model"),
    kinds = c(model_uri = "string", client = "client")
  )
)

test_that("input-check table covers every exported function and argument", {
  exports <- getNamespaceExports("mlflowreg")
  functions <- exports[vapply(exports, function(f) is.function(getExportedValue("mlflowreg", f)), logical(1))]
  with_arguments <- functions[vapply(functions, function(f) {
    length(setdiff(names(formals(getExportedValue("mlflowreg", f))), "...")) > 0
  }, logical(1))]
  missing <- setdiff(with_arguments, names(specs))
  expect(length(missing) == 0, sprintf(
    "exported functions without an entry in `specs` of test-input-checks.R: %s",
    paste(missing, collapse = ", ")
  ))
  for (name in names(specs)) {
    formal_names <- setdiff(names(formals(getExportedValue("mlflowreg", name))), "...")
    covered <- c(names(specs[[name]]$kinds), names(specs[[name]]$unchecked))
    expect(setequal(formal_names, covered), sprintf(
      "%s: arguments %s have no kind in `specs`, and %s are not arguments",
      name, paste(setdiff(formal_names, covered), collapse = ", "),
      paste(setdiff(covered, formal_names), collapse = ", ")
    ))
    for (kind in specs[[name]]$kinds) {
      expect(!is.null(bad_values[[kind]]), sprintf("%s: no bad values for kind %s", name, kind))
    }
  }
})

test_that("every bad argument value raises a classed error naming it", {
  local_tracking(tracking_server())
  withr::local_envvar(MLFLOW_HTTP_REQUEST_MAX_RETRIES = "0")
  checked <- 0
  for (name in names(specs)) {
    spec <- specs[[name]]
    fun <- getExportedValue("mlflowreg", name)
    for (arg in names(spec$kinds)) {
      kind <- spec$kinds[[arg]]
      for (bad in bad_values[[kind]]) {
        args <- spec$valid
        args[arg] <- list(bad)
        label <- sprintf("%s(%s = %s)", name, arg, mlflowreg:::describe_value(bad))
        err <- tryCatch(do.call(fun, args), error = identity)
        expect_s3_class(err, "mlflowreg_error_invalid_argument")
        if (!inherits(err, "mlflowreg_error_invalid_argument")) {
          fail(sprintf("%s raised %s instead: %s", label, paste(class(err), collapse = "/"),
            if (inherits(err, "condition")) conditionMessage(err) else "no error"))
          next
        }
        message <- conditionMessage(err)
        expect(grepl(paste0("`", arg), message, fixed = TRUE),
          sprintf("%s: the message does not name `%s`: %s", label, arg, message))
        fragment <- expected_fragment(kind, bad)
        expect(grepl(fragment, message, fixed = TRUE),
          sprintf("%s: the message does not show %s: %s", label, fragment, message))
        checked <- checked + 1
      }
    }
  }
  # Guards against a table that silently shrinks.
  expect_gt(checked, 500)
})

test_that("artifact uploads reject links that leave the directory", {
  local_tracking(tracking_server())
  mlflow_set_experiment(unique_name("links"))
  dir <- withr::local_tempdir()
  writeLines("inside", file.path(dir, "a.txt"))
  outside <- withr::local_tempfile(lines = "outside")
  file.symlink(outside, file.path(dir, "escape.txt"))
  with(mlflow_start_run(), {
    err <- tryCatch(mlflow_log_artifact(dir, "files"), error = identity)
    expect_s3_class(err, "mlflowreg_error_invalid_argument")
    expect_match(conditionMessage(err), "escape.txt", fixed = TRUE)
    expect_match(conditionMessage(err), "outside the directory being uploaded", fixed = TRUE)
    expect_equal(nrow(mlflow_list_artifacts()), 0)

    unlink(file.path(dir, "escape.txt"))
    file.symlink(file.path(dir, "a.txt"), file.path(dir, "b.txt"))
    uploaded <- mlflow_log_artifact(dir, "files")
    expect_setequal(uploaded, c("files/a.txt", "files/b.txt"))
  })
})

test_that("a model whose crate path leaves its directory is rejected", {
  dir <- withr::local_tempdir()
  model_dir <- file.path(dir, "model")
  mlflow_save_model(function(x) x, model_dir)
  mlmodel <- readLines(file.path(model_dir, "MLmodel"))
  writeLines(sub("model: crate.bin", "model: ../../secret.bin", mlmodel, fixed = TRUE),
    file.path(model_dir, "MLmodel"))
  err <- tryCatch(mlflow_load_model(model_dir), error = identity)
  expect_s3_class(err, "mlflowreg_error_parse")
  expect_match(conditionMessage(err), "../../secret.bin", fixed = TRUE)
})
