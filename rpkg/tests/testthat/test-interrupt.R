# Ctrl-C (SIGINT) sent to an R process in the middle of a slow upload or
# download stops the call quickly, registers nothing and leaves R usable.

# Runs `code` in a new Rscript process with this library path; returns the
# processx process, whose output lines the test reads.
start_r <- function(code, env = parent.frame()) {
  script <- tempfile(fileext = ".R")
  writeLines(code, script)
  process <- processx::process$new(
    file.path(R.home("bin"), "Rscript"), c("--vanilla", script),
    stdout = "|", stderr = "2>&1",
    env = c("current", R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep))
  )
  withr::defer(if (process$is_alive()) process$kill(), envir = env)
  process
}

# Reads output lines of `process` until one starts with `prefix`; returns
# all lines read, or stops after `timeout` seconds.
read_until <- function(process, prefix, timeout, lines = character()) {
  deadline <- Sys.time() + timeout
  while (Sys.time() < deadline) {
    process$poll_io(200)
    lines <- c(lines, process$read_output_lines())
    if (any(startsWith(lines, prefix))) {
      return(lines)
    }
    if (!process$is_alive()) break
  }
  stop(sprintf("no line starting with %s within %s s; output:\n%s", prefix, timeout,
    paste(c(lines, process$read_all_output_lines()), collapse = "\n")), call. = FALSE)
}

# Waits until the proxy moves more than `bytes` of a request to `path`.
wait_for_transfer <- function(proxy, path, bytes, timeout = 60) {
  deadline <- Sys.time() + timeout
  while (Sys.time() < deadline) {
    for (entry in proxy_active(proxy)) {
      if (grepl(path, entry$path, fixed = TRUE) && entry$bytes > bytes) {
        return(invisible(entry))
      }
    }
    Sys.sleep(0.1)
  }
  stop("the transfer through the proxy did not start", call. = FALSE)
}

# R code that defines `fn`, a model of about 20 MB that takes a minute to
# move through the throttled proxy.
big_model_code <- '
big <- runif(2.5e6)
fn <- function(data) rep(big[1], nrow(data))
environment(fn) <- list2env(list(big = big), parent = baseenv())
'

test_that("Ctrl-C during an upload stops it, registers nothing, and R goes on", {
  local_tracking(tracking_server())
  experiment <- unique_name("interrupt")
  mlflow_set_experiment(experiment)
  name <- unique_name("interrupted")
  proxy <- local_fault_proxy(list(list(
    path = "/model/crate.bin", method = "PUT", action = "throttle", bytes_per_second = 300000, times = 1
  )))
  process <- start_r(c(
    "library(mlflowreg)",
    sprintf("mlflow_set_tracking_uri(%s)", deparse(proxy$uri)),
    sprintf("mlflow_set_experiment(%s)", deparse(experiment)),
    big_model_code,
    "run <- mlflow_start_run()",
    "cat('RUN', run$run_id, '\\n')",
    "result <- tryCatch(",
    sprintf("  with(run, mlflow_log_model(fn, 'model', registered_model_name = %s)),", deparse(name)),
    "  interrupt = function(cnd) 'interrupted')",
    "cat('RESULT', if (identical(result, 'interrupted')) 'interrupted' else 'completed', '\\n')",
    "cat('SUM', 1 + 1, '\\n')",
    "cat('STATUS', mlflow_get_run(run$run_id)$status, '\\n')",
    # The throttle rule is used up, so a second log goes through quickly.
    "again <- with(mlflow_start_run(), mlflow_log_model(function(d) 1, 'model',",
    sprintf("  registered_model_name = %s))", deparse(name)),
    "cat('AGAIN', again$model_version$version, '\\n')"
  ))
  lines <- read_until(process, "RUN", timeout = 60)
  run_id <- sub("^RUN ([^ ]+).*$", "\\1", grep("^RUN", lines, value = TRUE))
  wait_for_transfer(proxy, "/model/crate.bin", bytes = 500000)

  process$interrupt()
  interrupted_at <- Sys.time()
  lines <- read_until(process, "RESULT", timeout = 30, lines = lines)
  # About a second is the aim; the bound leaves room for a loaded machine
  # and is far below the minute the upload would take.
  expect_lt(as.numeric(difftime(Sys.time(), interrupted_at, units = "secs")), 10)
  lines <- read_until(process, "AGAIN", timeout = 60, lines = lines)
  process$wait(10000)

  expect_true("RESULT interrupted " %in% lines)
  expect_true("SUM 2 " %in% lines)
  expect_true("STATUS KILLED " %in% lines)
  # The interrupted call registered nothing, so the next one made version 1.
  expect_true("AGAIN 1 " %in% lines)
  expect_equal(process$get_exit_status(), 0)

  versions <- model_versions(name)
  expect_length(versions, 1)
  expect_false(identical(versions[[1]]$run_id, run_id))
  files <- mlflow_list_artifacts("model", run_id = run_id)$path
  expect_false("model/MLmodel" %in% files)
})

test_that("Ctrl-C during a download stops it and leaves nothing behind", {
  local_tracking(tracking_server())
  mlflow_set_experiment(unique_name("interrupt-load"))
  name <- unique_name("big")
  fn <- local({
    big <- runif(2.5e6)
    f <- function(data) rep(big[1], nrow(data))
    environment(f) <- list2env(list(big = big), parent = baseenv())
    f
  })
  with(mlflow_start_run(), mlflow_log_model(fn, "model", registered_model_name = name))
  proxy <- local_fault_proxy(list(list(
    path = "/model/crate.bin", method = "GET", action = "throttle", bytes_per_second = 300000, times = 1
  )))
  scratch <- withr::local_tempdir()
  process <- start_r(c(
    "library(mlflowreg)",
    sprintf("Sys.setenv(TMPDIR = %s)", deparse(scratch)),
    sprintf("mlflow_set_tracking_uri(%s)", deparse(proxy$uri)),
    "cat('START\\n')",
    "result <- tryCatch(",
    sprintf("  mlflow_load_model('models:/%s/1'),", name),
    "  interrupt = function(cnd) 'interrupted')",
    "cat('RESULT', if (identical(result, 'interrupted')) 'interrupted' else 'completed', '\\n')",
    sprintf("model <- mlflow_load_model('models:/%s/1')", name),
    "cat('PREDICT', length(mlflow_predict(model, mtcars)), '\\n')"
  ))
  lines <- read_until(process, "START", timeout = 60)
  wait_for_transfer(proxy, "/model/crate.bin", bytes = 500000)

  process$interrupt()
  interrupted_at <- Sys.time()
  lines <- read_until(process, "RESULT", timeout = 30, lines = lines)
  expect_lt(as.numeric(difftime(Sys.time(), interrupted_at, units = "secs")), 10)
  lines <- read_until(process, "PREDICT", timeout = 120, lines = lines)
  process$wait(10000)

  expect_true("RESULT interrupted " %in% lines)
  expect_true("PREDICT 32 " %in% lines)
  expect_equal(process$get_exit_status(), 0)
})
