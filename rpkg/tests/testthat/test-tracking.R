# Experiments, runs, logging and artifacts against the real server and a
# local file store.

test_each_backend("experiment create, get, search, rename, tag, delete, restore", {
  name <- unique_name("exp")
  id <- mlflow_create_experiment(name, tags = list(team = "risk"))
  experiment <- mlflow_get_experiment(id)
  expect_s3_class(experiment, "mlflow_experiment")
  expect_equal(experiment$name, name)
  expect_equal(mlflow_id(experiment), id)
  expect_equal(mlflow_get_experiment(name = name)$experiment_id, id)
  expect_equal(experiment$tags[[1]]$value[experiment$tags[[1]]$key == "team"], "risk")

  found <- mlflow_search_experiments(filter = sprintf("name = '%s'", name))
  expect_equal(found$experiments$experiment_id, id)

  mlflow_rename_experiment(paste0(name, "-renamed"), experiment_id = id)
  expect_equal(mlflow_get_experiment(id)$name, paste0(name, "-renamed"))
  mlflow_set_experiment_tag("stage", "dev", experiment_id = id)
  tags <- mlflow_get_experiment(id)$tags[[1]]
  expect_equal(tags$value[tags$key == "stage"], "dev")

  mlflow_delete_experiment(id)
  expect_equal(mlflow_get_experiment(id)$lifecycle_stage, "deleted")
  deleted <- mlflow_search_experiments(filter = sprintf("name = '%s-renamed'", name),
    experiment_view_type = "DELETED_ONLY")
  expect_equal(deleted$experiments$experiment_id, id)
  mlflow_restore_experiment(id)
  expect_equal(mlflow_get_experiment(id)$lifecycle_stage, "active")

  expect_error(mlflow_get_experiment(name = unique_name("none")), class = "mlflowreg_error_not_found")
})

test_each_backend("set_experiment creates once and reuses", {
  name <- unique_name("set")
  first <- mlflow_set_experiment(name)
  second <- mlflow_set_experiment(name)
  expect_equal(first, second)
  expect_equal(mlflow_set_experiment(experiment_id = first), first)
})

test_each_backend("params, metrics, tags and history are logged", {
  mlflow_set_experiment(unique_name("log"))
  run <- mlflow_start_run()
  expect_equal(mlflow_log_param("alpha", 0.5), 0.5)
  mlflow_log_metric("rmse", 1.25, step = 1)
  mlflow_log_metric("rmse", 1.5, step = 2, timestamp = 1700000000000)
  mlflow_log_metric("bad", NaN)
  mlflow_log_metric("huge", Inf)
  mlflow_set_tag("owner", "ana")
  mlflow_set_tag("temp", "x")
  mlflow_delete_tag("temp")
  mlflow_end_run()

  fetched <- mlflow_get_run(run$run_id)
  params <- fetched$params[[1]]
  expect_equal(params$value[params$key == "alpha"], "0.5")
  tags <- fetched$tags[[1]]
  expect_equal(tags$value[tags$key == "owner"], "ana")
  expect_false("temp" %in% tags$key)
  expect_equal(tags$value[tags$key == "mlflow.user"], Sys.info()[["user"]])
  expect_equal(tags$value[tags$key == "mlflow.source.type"], "LOCAL")

  history <- mlflow_get_metric_history("rmse", run_id = run$run_id)
  history <- history[order(history$step), ]
  expect_equal(history$value, c(1.25, 1.5))
  expect_equal(history$step, c(1, 2))
  expect_equal(as.numeric(history$timestamp[2]) * 1000, 1700000000000)
  metrics <- fetched$metrics[[1]]
  expect_true(is.nan(metrics$value[metrics$key == "bad"]))
  # The server's SQL store clamps infinity to the largest double; the file
  # store keeps it, as Python mlflow's file store does.
  huge <- if (backend == "local") Inf else .Machine$double.xmax
  expect_equal(metrics$value[metrics$key == "huge"], huge)
})

test_each_backend("log_batch splits over the server's limits", {
  mlflow_set_experiment(unique_name("batch"))
  run <- mlflow_start_run()
  metrics <- data.frame(key = "loss", value = seq(0, 1, length.out = 1500), step = 1:1500)
  params <- data.frame(key = sprintf("p%03d", 1:150), value = as.character(1:150))
  tags <- data.frame(key = sprintf("t%03d", 1:120), value = "v")
  mlflow_log_batch(metrics = metrics, params = params, tags = tags)
  mlflow_end_run()

  history <- mlflow_get_metric_history("loss", run_id = run$run_id)
  expect_equal(nrow(history), 1500)
  expect_equal(sort(history$step), 1:1500)
  fetched <- mlflow_get_run(run$run_id)
  expect_equal(nrow(fetched$params[[1]]), 150)
  expect_true(all(sprintf("t%03d", 1:120) %in% fetched$tags[[1]]$key))
})

test_each_backend("search_runs, set_terminated, delete and restore", {
  experiment <- mlflow_set_experiment(unique_name("search"))
  a <- mlflow_start_run()
  mlflow_log_metric("score", 0.9)
  mlflow_end_run()
  b <- mlflow_start_run()
  mlflow_log_metric("score", 0.4)
  mlflow_set_terminated("KILLED")
  expect_equal(mlflow_get_run(b$run_id)$status, "KILLED")
  expect_null(mlflowreg:::active_run_id())

  good <- mlflow_search_runs(filter = "metrics.score > 0.5", experiment_ids = experiment)
  expect_equal(good$run_id, a$run_id)
  all <- mlflow_search_runs(order_by = "metrics.score DESC")
  expect_equal(all$run_id, c(a$run_id, b$run_id))

  mlflow_delete_run(b$run_id)
  expect_equal(mlflow_search_runs()$run_id, a$run_id)
  expect_equal(nrow(mlflow_search_runs(run_view_type = "DELETED_ONLY")), 1)
  mlflow_restore_run(b$run_id)
  expect_equal(nrow(mlflow_search_runs()), 2)
  expect_equal(mlflow_id(mlflow_get_run(a$run_id)), a$run_id)
})

test_each_backend("artifacts: file, directory, list and download", {
  mlflow_set_experiment(unique_name("artifacts"))
  dir <- withr::local_tempdir()
  writeLines("hello", file.path(dir, "note.txt"))
  plots <- file.path(dir, "plots")
  dir.create(file.path(plots, "deep"), recursive = TRUE)
  grDevices::pdf(file.path(plots, "fit.pdf"))
  plot(mtcars$wt, mtcars$mpg)
  grDevices::dev.off()
  writeLines("x", file.path(plots, "deep", "data.csv"))

  run <- mlflow_start_run()
  expect_equal(mlflow_log_artifact(file.path(dir, "note.txt")), "note.txt")
  uploaded <- mlflow_log_artifact(plots, artifact_path = "figures")
  expect_setequal(uploaded, c("figures/fit.pdf", "figures/deep/data.csv"))

  root <- mlflow_list_artifacts()
  expect_setequal(root$path, c("note.txt", "figures"))
  expect_equal(root$is_dir[root$path == "figures"], TRUE)
  expect_equal(root$file_size[root$path == "note.txt"], 6)
  figures <- mlflow_list_artifacts("figures")
  expect_equal(figures$file_size[figures$path == "figures/fit.pdf"], file.size(file.path(plots, "fit.pdf")))

  local <- mlflow_download_artifacts("figures")
  expect_equal(
    unname(tools::md5sum(file.path(local, "fit.pdf"))),
    unname(tools::md5sum(file.path(plots, "fit.pdf")))
  )
  expect_equal(readLines(file.path(local, "deep", "data.csv")), "x")
  expect_equal(readLines(mlflow_download_artifacts("note.txt")), "hello")
  mlflow_end_run()
  expect_error(mlflow_download_artifacts("missing.txt", run_id = run$run_id), class = "mlflowreg_error_not_found")
})

test_each_backend("explicit client keeps the active run", {
  mlflow_set_experiment(unique_name("client"))
  client <- mlflow_client()
  run <- mlflow_start_run(client = client)
  mlflow_log_param("k", "v", client = client)
  mlflow_end_run(client = client)
  params <- mlflow_get_run(run$run_id, client = client)$params[[1]]
  expect_equal(params$value[params$key == "k"], "v")
})

test_each_backend("an R mlflow client object is accepted", {
  fake <- structure(
    list(get_host_creds = function() list(host = mlflow_get_tracking_uri(), token = "t0ken-not-needed")),
    class = "mlflow_client"
  )
  id <- mlflow_create_experiment(unique_name("rmlflow"), client = fake)
  expect_equal(mlflow_get_experiment(id, client = fake)$experiment_id, id)
  expect_equal(Sys.getenv("MLFLOW_TRACKING_TOKEN"), "")
})

test_that("bad logging input fails before anything is sent", {
  local_tracking("http://127.0.0.1:9")
  expect_error(mlflow_log_metric("m", "high"), class = "mlflowreg_error_invalid_argument",
    regexp = "single number")
  expect_error(mlflow_log_metric("m", NA_real_), class = "mlflowreg_error_invalid_argument")
  expect_error(mlflow_log_param("", 1), class = "mlflowreg_error_invalid_argument")
  expect_error(mlflow_log_param(strrep("k", 251), 1), class = "mlflowreg_error_invalid_argument",
    regexp = "251 characters")
  expect_error(mlflow_log_param("k", strrep("v", 6001)), class = "mlflowreg_error_invalid_argument",
    regexp = "at most 6000")
  expect_error(mlflow_set_tag("k", strrep("v", 8001)), class = "mlflowreg_error_invalid_argument",
    regexp = "at most 8000")
  expect_error(mlflow_log_param("k", NA), class = "mlflowreg_error_invalid_argument")
  expect_error(mlflow_log_artifact("/no/such/file"), class = "mlflowreg_error_invalid_argument",
    regexp = "does not exist")
  expect_error(mlflow_set_terminated(), class = "mlflowreg_error_invalid_argument",
    regexp = "no active run")
  expect_error(mlflow_log_batch(metrics = list(1)), class = "mlflowreg_error_invalid_argument",
    regexp = "data frame")
  expect_null(mlflowreg:::active_run_id())
})
