# HTTPS through nginx with a throwaway CA and basic authentication
# (tests/fixtures/https_gateway.py) in front of the real test server, and
# credentials kept out of every message, print() and format().

# Starts the gateway and stops it when the calling test ends; returns what
# the fixture printed (ports, CA and client certificate paths, user).
local_gateway <- function(env = parent.frame()) {
  dir <- withr::local_tempdir(.local_envir = env)
  process <- processx::process$new(
    test_python(),
    c(test_fixture("https_gateway.py"), "--upstream", tracking_server(), "--dir", dir,
      "--max-lifetime", "600"),
    stdout = "|", stderr = file.path(dir, "gateway.stderr"),
    env = c(python_env(), MLFLOWREG_GATEWAY_PASSWORD = server_uri("MLFLOWREG_TEST_PASSWORD"))
  )
  # SIGTERM lets the fixture stop nginx before it exits.
  withr::defer({
    process$signal(tools::SIGTERM)
    process$wait(10000)
    process$kill()
  }, envir = env)
  line <- character()
  deadline <- Sys.time() + 30
  while (length(line) == 0 && Sys.time() < deadline && process$is_alive()) {
    process$poll_io(500)
    line <- process$read_output_lines()
  }
  if (length(line) == 0) {
    stop("the HTTPS gateway did not start: ",
      paste(readLines(file.path(dir, "gateway.stderr"), warn = FALSE), collapse = "\n"), call. = FALSE)
  }
  info <- jsonlite::fromJSON(line[[1]])
  info$uri <- sprintf("https://127.0.0.1:%d", info$https_port)
  info
}

secrets <- function() {
  c(server_uri("MLFLOWREG_TEST_PASSWORD"), server_uri("MLFLOWREG_TEST_TOKEN"),
    server_uri("MLFLOWREG_TEST_SAS_SIGNATURE"))
}

expect_no_secret <- function(text, what) {
  for (secret in secrets()) {
    expect(!any(grepl(secret, text, fixed = TRUE)), sprintf("%s shows a credential", what))
  }
}

test_that("log, register and load over HTTPS with a private CA and basic auth", {
  gateway <- local_gateway()
  withr::local_envvar(
    MLFLOW_TRACKING_SERVER_CERT_PATH = gateway$ca,
    MLFLOW_TRACKING_USERNAME = gateway$user,
    MLFLOW_TRACKING_PASSWORD = server_uri("MLFLOWREG_TEST_PASSWORD"),
    MLFLOW_TRACKING_TOKEN = server_uri("MLFLOWREG_TEST_TOKEN")
  )
  local_tracking(gateway$uri)
  mlflow_set_experiment(unique_name("https"))
  fit <- lm(mpg ~ wt, data = mtcars)
  name <- unique_name("https-lm")
  logged <- with(mlflow_start_run(), mlflow_log_model(fit, "model", registered_model_name = name))
  expect_equal(logged$model_version$status, "READY")
  model <- mlflow_load_model(sprintf("models:/%s/1", name))
  expect_equal(mlflow_predict(model, mtcars), predict(fit, mtcars), tolerance = 0)

  client <- mlflow_client()
  expect_no_secret(format(client), "format(client)")
  expect_no_secret(capture.output(print(client)), "print(client)")
})

test_that("an unknown CA fails clearly and the insecure flag warns", {
  gateway <- local_gateway()
  withr::local_envvar(
    MLFLOW_TRACKING_USERNAME = gateway$user,
    MLFLOW_TRACKING_PASSWORD = server_uri("MLFLOWREG_TEST_PASSWORD"),
    MLFLOW_HTTP_REQUEST_MAX_RETRIES = "0"
  )
  withr::local_envvar(MLFLOW_TRACKING_SERVER_CERT_PATH = NA)
  err <- tryCatch(mlflow_search_experiments(client = mlflow_client(gateway$uri)), error = identity)
  expect_s3_class(err, "mlflowreg_error_unreachable")
  expect_match(conditionMessage(err), "invalid peer certificate", fixed = TRUE)
  expect_match(conditionMessage(err), "MLFLOW_TRACKING_SERVER_CERT_PATH", fixed = TRUE)
  expect_no_secret(c(conditionMessage(err), format(err)), "the certificate error")

  withr::local_envvar(MLFLOW_TRACKING_INSECURE_TLS = "true")
  expect_warning(
    result <- mlflow_search_experiments(client = mlflow_client(gateway$uri)),
    "MLFLOW_TRACKING_INSECURE_TLS",
    class = "mlflowreg_warning_log"
  )
  expect_s3_class(result$experiments, "mlflow_experiment")
})

test_that("credentials appear in no error, print or format", {
  gateway <- local_gateway()
  password <- server_uri("MLFLOWREG_TEST_PASSWORD")
  withr::local_envvar(
    MLFLOW_TRACKING_SERVER_CERT_PATH = gateway$ca,
    MLFLOW_TRACKING_USERNAME = gateway$user,
    MLFLOW_TRACKING_PASSWORD = paste0(password, "-wrong"),
    MLFLOW_HTTP_REQUEST_MAX_RETRIES = "0"
  )
  err <- tryCatch(mlflow_search_experiments(client = mlflow_client(gateway$uri)), error = identity)
  expect_s3_class(err, "mlflowreg_error_api")
  expect_equal(err$status, 401L)
  expect_no_secret(c(conditionMessage(err), format(err), capture.output(print(err))), "the 401 error")

  # A password in the URI itself is dropped from what the client shows.
  with_userinfo <- sub("https://", sprintf("https://%s:%s@", gateway$user, password), gateway$uri, fixed = TRUE)
  client <- mlflow_client(with_userinfo)
  expect_no_secret(c(format(client), capture.output(print(client))), "a client made from a URI with a password")

  # SAS-signed URLs: the signature stays out of the errors.
  sas <- server_uri("MLFLOWREG_TEST_SAS_SIGNATURE")
  for (uri in c(
    sprintf("%s/container/model?sv=2024-05-04&sig=%s", gateway$uri, sas),
    sprintf("%s/api/2.0/mlflow-artifacts/artifacts/0/none/model?sig=%s", tracking_server(), sas)
  )) {
    err <- tryCatch(mlflow_load_model(uri, client = mlflow_client(tracking_server())), error = identity)
    expect_s3_class(err, "mlflowreg_error")
    expect_no_secret(c(conditionMessage(err), format(err)), sprintf("the error for %s", sub("\\?.*", "", uri)))
  }
})
