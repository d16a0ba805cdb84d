# Artifact uploads and downloads against the real MLflow servers:
# directories in parallel, a file larger than any buffer, multipart
# uploads to the server whose artifacts live in S3, the workers option and
# the progress callback.

s3_server <- function() server_uri("MLFLOWREG_TEST_S3_URI")

# Writes `size` bytes of varied content to a new temporary file.
patterned_file <- function(size) {
  path <- tempfile("mlflowreg-test-")
  con <- file(path, "wb")
  on.exit(close(con))
  block <- as.raw((seq_len(1048576) * 7919) %% 256)
  remaining <- size
  round <- 0L
  while (remaining > 0) {
    n <- min(remaining, length(block))
    chunk <- block[seq_len(n)]
    chunk[[1]] <- as.raw(round %% 256L)
    writeBin(chunk, con)
    remaining <- remaining - n
    round <- round + 1L
  }
  path
}

# A progress function that records its calls in `log$calls`.
recording_progress <- function(log) {
  log$calls <- list()
  function(done_bytes, total_bytes, done_files, total_files, finished) {
    log$calls[[length(log$calls) + 1]] <- list(
      done_bytes = done_bytes, total_bytes = total_bytes, done_files = done_files,
      total_files = total_files, finished = finished,
      workers = Sys.getenv("MLFLOWREG_ARTIFACT_WORKERS")
    )
  }
}

test_that("a directory round-trips file by file", {
  local_tracking(tracking_server())
  mlflow_set_experiment(unique_name("r-artifacts"))
  source <- tempfile("many-")
  dir.create(file.path(source, "sub"), recursive = TRUE)
  for (i in 1:40) {
    writeLines(strrep(sprintf("line %d", i), i), file.path(source, if (i %% 2 == 0) "sub" else "", sprintf("f%02d.txt", i)))
  }
  run <- mlflow_start_run()

  uploaded <- mlflow_log_artifact(source, "many")
  expect_length(uploaded, 40)
  expect_true("many/sub/f02.txt" %in% uploaded)

  back <- mlflow_download_artifacts("many")
  expect_equal(basename(back), "many")
  originals <- sort(list.files(source, recursive = TRUE))
  expect_equal(sort(list.files(back, recursive = TRUE)), originals)
  expect_equal(unname(tools::md5sum(file.path(back, originals))), unname(tools::md5sum(file.path(source, originals))))
})

test_that("a large file arrives byte-identical", {
  local_tracking(tracking_server())
  mlflow_set_experiment(unique_name("r-artifacts"))
  big <- patterned_file(20 * 1024 * 1024 + 5)
  run <- mlflow_start_run()

  uploaded <- mlflow_log_artifact(big, "data")
  expect_equal(uploaded, paste0("data/", basename(big)))

  back <- mlflow_download_artifacts(uploaded)
  expect_equal(file.size(back), file.size(big))
  expect_equal(unname(tools::md5sum(back)), unname(tools::md5sum(big)))
})

test_that("multipart upload to S3 arrives byte-identical", {
  local_tracking(s3_server())
  withr::local_envvar(
    MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE = "1048576",
    MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE = "5242880"
  )
  mlflow_set_experiment(unique_name("r-multipart"))
  big <- patterned_file(11 * 1024 * 1024 + 3)
  run <- mlflow_start_run()
  log <- new.env()
  withr::local_options(mlflowreg.progress = recording_progress(log))

  uploaded <- mlflow_log_artifact(big)
  last <- log$calls[[length(log$calls)]]
  expect_true(last$finished)
  expect_equal(last$done_bytes, file.size(big))
  expect_equal(last$total_bytes, file.size(big))

  back <- mlflow_download_artifacts(uploaded)
  expect_equal(unname(tools::md5sum(back)), unname(tools::md5sum(big)))
})

test_that("progress function sees totals and the workers option", {
  local_tracking(tracking_server())
  mlflow_set_experiment(unique_name("r-progress"))
  source <- tempfile("progress-")
  dir.create(source)
  for (i in 1:10) writeBin(as.raw(rep(i, 1000 * i)), file.path(source, sprintf("f%02d.bin", i)))
  run <- mlflow_start_run()
  log <- new.env()
  withr::local_envvar(MLFLOWREG_ARTIFACT_WORKERS = "2")
  withr::local_options(mlflowreg.progress = recording_progress(log), mlflowreg.artifact_workers = 3)

  mlflow_log_artifact(source)

  calls <- log$calls
  expect_gte(length(calls), 2)
  expect_false(calls[[1]]$finished)
  last <- calls[[length(calls)]]
  expect_true(last$finished)
  expect_equal(last$total_files, 10)
  expect_equal(last$done_files, 10)
  expect_equal(last$done_bytes, sum(1000 * 1:10))
  expect_equal(unique(vapply(calls, `[[`, "", "workers")), "3")
  expect_equal(Sys.getenv("MLFLOWREG_ARTIFACT_WORKERS"), "2")
})

test_that("load_model reports download progress", {
  local_tracking(tracking_server())
  mlflow_set_experiment(unique_name("r-progress"))
  fit <- lm(mpg ~ wt, data = mtcars)
  logged <- with(mlflow_start_run(), mlflow_log_model(fit, "model"))
  log <- new.env()
  withr::local_options(mlflowreg.progress = recording_progress(log))

  model <- mlflow_load_model(logged$model_uri)

  expect_equal(unname(mlflow_predict(model, mtcars[1:3, ])), unname(predict(fit, mtcars[1:3, ])))
  last <- log$calls[[length(log$calls)]]
  expect_true(last$finished)
  expect_gte(last$total_files, 5)
  expect_equal(last$done_files, last$total_files)
})

test_that("failing progress function cancels the transfer", {
  local_tracking(tracking_server())
  mlflow_set_experiment(unique_name("r-progress"))
  run <- mlflow_start_run()
  file <- patterned_file(1024)
  withr::local_options(mlflowreg.progress = function(...) stop("stop here"))

  expect_error(mlflow_log_artifact(file), class = "mlflowreg_error_cancelled")
  withr::local_options(mlflowreg.progress = FALSE)
  expect_equal(nrow(mlflow_list_artifacts(run_id = run$run_id)), 0)
})

test_that("invalid workers option is rejected", {
  local_tracking(tracking_server())
  file <- patterned_file(10)
  withr::local_options(mlflowreg.artifact_workers = 0)
  expect_error(mlflow_log_artifact(file, run_id = "unused"), class = "mlflowreg_error_invalid_argument")
})

test_that("progress bar is off in non-interactive sessions by default", {
  withr::local_options(mlflowreg.progress = NULL, rlang_interactive = FALSE)
  expect_false(interactive())
  expect_null(mlflowreg:::transfer_progress("Uploading", envir = environment()))
  withr::local_options(mlflowreg.progress = TRUE)
  expect_true(is.function(mlflowreg:::transfer_progress("Uploading", envir = environment())))
})

test_that("missing local path is rejected", {
  expect_error(mlflow_log_artifact(tempfile("absent-")), class = "mlflowreg_error_invalid_argument")
})
