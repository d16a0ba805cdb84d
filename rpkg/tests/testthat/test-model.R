fit <- lm(mpg ~ wt + hp, data = mtcars)

test_that("saved lm has crate and python_function flavors", {
  path <- file.path(withr::local_tempdir(), "model")
  mlflow_save_model(fit, path)

  mlmodel <- yaml_lines <- readLines(file.path(path, "MLmodel"))
  expect_true(any(grepl("^  crate:$", mlmodel)))
  expect_true(any(grepl("^    model: crate.bin$", mlmodel)))
  expect_true(any(grepl("^    version: 0.1.0$", mlmodel)))
  expect_true(any(grepl("^    loader_module: mlflowreg_pyfunc$", mlmodel)))
  expect_true(any(grepl("^model_uuid: [0-9a-f]{32}$", mlmodel)))
  expect_true(file.exists(file.path(path, "code", "mlflowreg_pyfunc.py")))
  expect_true(file.exists(file.path(path, "code", "mlflowreg_predict.R")))
})

test_that("saved lm predicts the same in a fresh session", {
  path <- file.path(withr::local_tempdir(), "model")
  mlflow_save_model(fit, path)
  expect_equal(fresh_predictions(path), unname(predict(fit, mtcars)), tolerance = 0)
})

test_that("crate.bin has the bytes R mlflow writes", {
  fn <- function(x) x * 2
  bytes <- serialize(fn, NULL)
  dir <- file.path(withr::local_tempdir(), "model")
  mlflowreg:::rust_json(mlflowreg:::save_model_(dir, bytes))

  ours <- file.path(dir, "crate.bin")
  theirs <- withr::local_tempfile(fileext = ".bin")
  saveRDS(bytes, theirs)
  unzip_bytes <- function(f) memDecompress(readBin(f, "raw", file.size(f)), "gzip")
  expect_identical(unzip_bytes(ours), unzip_bytes(theirs))
  expect_identical(readRDS(ours), bytes)
  expect_identical(unserialize(readRDS(ours))(21), 42)
})

test_that("function using globals is captured for a fresh session", {
  path <- file.path(withr::local_tempdir(), "model")
  # Build the function and its free variable in the global environment,
  # as a top-level script would.
  local(
    {
      scale_factor <- 3
      model_fn <- function(data) data$wt * scale_factor
    },
    envir = globalenv()
  )
  withr::defer(rm(list = c("scale_factor", "model_fn"), envir = globalenv()))

  mlflow_save_model(get("model_fn", envir = globalenv()), path)
  expect_equal(fresh_predictions(path), mtcars$wt * 3, tolerance = 0)
})

test_that("closure over global variable is rejected", {
  make <- function() function(data) data$wt * offset_in_global
  assign("offset_in_global", 1, envir = globalenv())
  withr::defer(rm("offset_in_global", envir = globalenv()))
  path <- file.path(withr::local_tempdir(), "model")

  expect_error(
    mlflow_save_model(make(), path),
    class = "mlflowreg_error_unsafe_model",
    regexp = "offset_in_global"
  )
  expect_false(file.exists(path))
})

test_that("function from unattached package is rejected", {
  env <- new.env(parent = globalenv())
  fake_package <- new.env()
  fake_package$helper_fn <- function(x) x
  attach(fake_package, name = "package:fakepkg")
  withr::defer(detach("package:fakepkg", character.only = TRUE))
  fn <- function(data) helper_fn(data)
  environment(fn) <- globalenv()

  expect_error(
    mlflow_save_model(fn, file.path(withr::local_tempdir(), "m")),
    class = "mlflowreg_error_unsafe_model",
    regexp = "fakepkg::helper_fn"
  )
})

test_that("bad models are rejected with classed errors", {
  dir <- withr::local_tempdir()
  expect_error(mlflow_save_model(NULL, file.path(dir, "a")),
    class = "mlflowreg_error_invalid_argument", regexp = "`model` must be")
  expect_error(mlflow_save_model(structure(list(), class = "no_predict_here"), file.path(dir, "b")),
    class = "mlflowreg_error_invalid_argument", regexp = "no_predict_here")
  expect_error(mlflow_save_model(fit, NA_character_),
    class = "mlflowreg_error_invalid_argument", regexp = "`path` must be a non-empty string, not NA")
  expect_equal(list.files(dir, all.files = TRUE, no.. = TRUE), character())
})

test_that("save refuses a directory that is not a model", {
  dir <- withr::local_tempdir()
  writeLines("keep me", file.path(dir, "notes.txt"))

  expect_error(mlflow_save_model(fit, dir),
    class = "mlflowreg_error_not_a_model_directory", regexp = "no MLmodel file")
  expect_equal(list.files(dir, all.files = TRUE, no.. = TRUE), "notes.txt")
  expect_equal(readLines(file.path(dir, "notes.txt")), "keep me")
})

test_that("save replaces an earlier model", {
  path <- file.path(withr::local_tempdir(), "model")
  mlflow_save_model(function(data) 1, path)
  writeLines("old", file.path(path, "extra.txt"))
  mlflow_save_model(function(data) 2, path)

  expect_false(file.exists(file.path(path, "extra.txt")))
  expect_equal(mlflow_predict(mlflow_load_model(path), mtcars), 2)
})

test_that("load of a local model round-trips a crate-like function", {
  path <- file.path(withr::local_tempdir(), "model")
  mlflow_save_model(fit, path)
  model <- mlflow_load_model(path)
  expect_equal(mlflow_predict(model, head(mtcars)), predict(fit, head(mtcars)))
})

test_that("load of a directory without MLmodel fails clearly", {
  dir <- withr::local_tempdir()
  expect_error(mlflow_load_model(dir),
    class = "mlflowreg_error_invalid_argument", regexp = "no MLmodel file")
})

test_that("lm formula using globals and attached functions loads fresh", {
  path <- file.path(withr::local_tempdir(), "model")
  local(
    {
      scale_k <- 100
      formula_fit <- lm(mpg ~ I(hp / scale_k) + splines::ns(wt, 3), data = mtcars)
    },
    envir = globalenv()
  )
  withr::defer(rm(list = c("scale_k", "formula_fit"), envir = globalenv()))
  fit_global <- get("formula_fit", envir = globalenv())

  mlflow_save_model(fit_global, path)
  expect_equal(fresh_predictions(path), unname(predict(fit_global, mtcars)), tolerance = 1e-12)
})

test_that("formula calling an attached package function loads fresh", {
  path <- file.path(withr::local_tempdir(), "model")
  library(splines)
  withr::defer(detach("package:splines"))
  local(spline_fit <- lm(mpg ~ ns(wt, 3), data = mtcars), envir = globalenv())
  withr::defer(rm("spline_fit", envir = globalenv()))
  fit_global <- get("spline_fit", envir = globalenv())

  mlflow_save_model(fit_global, path)
  expect_equal(fresh_predictions(path), unname(predict(fit_global, mtcars)), tolerance = 1e-12)
})

test_that("functions inside captured lists are captured too", {
  path <- file.path(withr::local_tempdir(), "model")
  local(
    {
      k_factor <- 2
      helpers <- list(fun = function(x) x * k_factor)
      list_fn <- function(d) helpers$fun(d$wt)
    },
    envir = globalenv()
  )
  withr::defer(rm(list = c("k_factor", "helpers", "list_fn"), envir = globalenv()))

  mlflow_save_model(get("list_fn", envir = globalenv()), path)
  expect_equal(fresh_predictions(path), mtcars$wt * 2, tolerance = 0)
})

test_that("closure holding a global-environment helper is rejected", {
  local(
    {
      k_global <- 2
      helper_global <- function(x) x * k_global
    },
    envir = globalenv()
  )
  withr::defer(rm(list = c("k_global", "helper_global"), envir = globalenv()))
  make <- function() {
    h <- get("helper_global", envir = globalenv())
    function(d) h(d$wt)
  }
  expect_error(mlflow_save_model(make(), file.path(withr::local_tempdir(), "m")),
    class = "mlflowreg_error_unsafe_model", regexp = "k_global")
})

test_that("unused arguments to save warn", {
  path <- file.path(withr::local_tempdir(), "model")
  expect_warning(mlflow_save_model(fit, path, modelspec = list()), class = "mlflowreg_warning",
    regexp = "`modelspec`")
})

test_that("load rejects a crate file outside the model or not a function", {
  dir <- withr::local_tempdir()
  outside <- file.path(dir, "m1")
  dir.create(outside)
  writeLines(c("flavors:", "  crate:", "    version: 0.1.0", "    model: ../secret.bin"),
    file.path(outside, "MLmodel"))
  expect_error(mlflow_load_model(outside), class = "mlflowreg_error_parse", regexp = "not a file inside")

  data_model <- file.path(dir, "m2")
  dir.create(data_model)
  saveRDS(serialize(mtcars, NULL), file.path(data_model, "crate.bin"))
  writeLines(c("flavors:", "  crate:", "    version: 0.1.0", "    model: crate.bin"),
    file.path(data_model, "MLmodel"))
  expect_error(mlflow_load_model(data_model), class = "mlflowreg_error_parse", regexp = "not a function")
})
