# Each network fault against log (with registration), register and load,
# through the fault-injecting proxy in front of the real server. A fault
# either is survived (the call succeeds and registers exactly one version)
# or ends in a clear classed error with nothing registered.

fit <- lm(mpg ~ wt + hp, data = mtcars)

# The request each operation's fault is aimed at.
targets <- list(
  log = list(path = "/model/crate.bin", method = "PUT"),
  register = list(path = "model-versions/create", method = "POST"),
  load = list(path = "/model/crate.bin", method = "GET")
)

# `outcome` is "ok" or the error class, per operation. `creates` is how many
# model-versions/create requests a surviving registration sends: 1 when the
# server applied the first attempt (so no duplicate may follow), more when
# the fault stopped the request before the server saw it.
fault_cases <- list(
  list(
    fault = "503 twice",
    rule = list(action = "status", status = 503, times = 2),
    outcome = c(log = "ok", register = "ok", load = "ok"), creates = 3
  ),
  list(
    fault = "429 with Retry-After",
    rule = list(action = "status", status = 429, headers = list(`Retry-After` = "1"), times = 1),
    outcome = c(log = "ok", register = "ok", load = "ok"), creates = 2
  ),
  list(
    fault = "connection closed while the request arrives",
    rule = list(action = "close_after_bytes", bytes = 10, times = 1),
    outcome = c(log = "ok", register = "ok", load = "ok"), creates = 2
  ),
  list(
    fault = "connection closed after the server applied the request",
    rule = list(action = "reset_after_forward", times = 1),
    outcome = c(log = "ok", register = "ok", load = "ok"), creates = 1
  ),
  list(
    fault = "response slower than the timeout",
    rule = list(action = "delay", seconds = 4, times = 1),
    outcome = c(log = "ok", register = "ok", load = "ok"), creates = 1
  ),
  list(
    fault = "response cut off",
    rule = list(action = "cut_response", bytes = 5, times = 1),
    outcome = c(log = "ok", register = "ok", load = "ok"), creates = 1
  ),
  list(
    fault = "500 beyond the retry limit",
    rule = list(action = "status", status = 500, times = 50),
    outcome = c(log = "mlflowreg_error_api", register = "mlflowreg_error_api", load = "mlflowreg_error_api")
  ),
  list(
    fault = "success reported for a request never forwarded",
    rule = list(action = "fake_success", times = 50),
    outcome = c(
      log = "mlflowreg_error_incomplete_model", register = "mlflowreg_error_parse",
      load = "mlflowreg_error_incomplete_model"
    )
  ),
  list(
    fault = "request body truncated by a gateway",
    rule = list(action = "truncate_body", bytes = 100, times = 50),
    outcome = c(log = "mlflowreg_error_incomplete_model", register = "mlflowreg_error_api", load = "ok"),
    creates = 1
  )
)

# Logs `fit` straight to the server (no proxy) and registers it when `name`
# is given; returns the logged model.
log_direct <- function(name = NULL) {
  client <- mlflow_client(tracking_server())
  run <- mlflow_start_run(client = client)
  on.exit(mlflow_end_run(client = client))
  mlflow_log_model(fit, "model", registered_model_name = name, client = client)
}

run_operation <- function(operation, proxy, name) {
  client <- mlflow_client(proxy$uri)
  switch(operation,
    log = {
      run <- mlflow_start_run(client = client)
      on.exit(mlflow_end_run(client = client))
      mlflow_log_model(fit, "model", registered_model_name = name, client = client)
    },
    register = {
      logged <- log_direct()
      mlflow_register_model(logged$model_uri, name, client = client)
    },
    load = {
      log_direct(name)
      mlflow_load_model(sprintf("models:/%s/1", name), client = client)
    }
  )
}

test_that("each fault against log, register and load is survived or fails cleanly", {
  local_tracking(tracking_server())
  mlflow_set_experiment(unique_name("faults"))
  withr::local_envvar(
    # Sent as a bearer token on every request; the server ignores it.
    MLFLOW_TRACKING_TOKEN = server_uri("MLFLOWREG_TEST_TOKEN"),
    MLFLOW_HTTP_REQUEST_MAX_RETRIES = "2",
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR = "0.05",
    MLFLOW_HTTP_REQUEST_BACKOFF_JITTER = "0",
    MLFLOW_HTTP_REQUEST_TIMEOUT = "2"
  )
  withr::local_options(mlflowreg.quiet = TRUE)

  for (case in fault_cases) {
    for (operation in names(targets)) {
      label <- sprintf("%s during %s", case$fault, operation)
      expected <- case$outcome[[operation]]
      name <- unique_name(paste0("fault-", operation))
      rule <- c(case$rule, targets[[operation]])
      proxy <- local_fault_proxy(list(rule))

      result <- tryCatch(run_operation(operation, proxy, name), error = identity)
      at_least <- if (operation == "register" && !is.null(case$creates)) case$creates else 1
      log <- proxy_log(proxy, targets[[operation]]$path, at_least = at_least, action = rule$action)
      faulted <- sum(vapply(log, function(entry) identical(entry$action, rule$action), logical(1)))
      expect(faulted >= 1, sprintf("%s: the proxy never applied the fault", label))
      schemes <- unique(vapply(log, function(entry) entry$auth %||% "none", character(1)))
      expect(identical(schemes, "Bearer"), sprintf("%s: requests carried %s, not the token", label,
        paste(schemes, collapse = ", ")))
      versions <- model_versions(name)

      if (expected == "ok") {
        expect(!inherits(result, "error"), sprintf("%s failed: %s", label,
          if (inherits(result, "error")) conditionMessage(result) else ""))
        expect_length(versions, 1)
        expect_equal(versions[[1]]$status, "READY", info = label)
        if (operation == "load" && is.function(result)) {
          expect_equal(mlflow_predict(result, mtcars), predict(fit, mtcars), tolerance = 0, info = label)
        }
        if (operation == "register") {
          expect_equal(count_requests(log, "model-versions/create", "POST"), case$creates, info = label)
        }
      } else {
        expect_s3_class(result, expected)
        expect(inherits(result, "error") && nzchar(conditionMessage(result)), sprintf("%s: no message", label))
        if (operation == "load") {
          expect_length(versions, 1)
        } else {
          expect(length(versions) == 0, sprintf("%s left %d versions registered", label, length(versions)))
          registered <- tryCatch(mlflow_get_registered_model(name), error = identity)
          expect_s3_class(registered, "mlflowreg_error_not_found")
        }
      }
      # Stop this case's proxy before the next one starts.
      proxy$process$kill()
    }
  }
})

test_that("retries are shown as R messages with route, status and attempt", {
  local_tracking(tracking_server())
  withr::local_envvar(MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR = "0.05", MLFLOW_HTTP_REQUEST_BACKOFF_JITTER = "0")
  withr::local_options(mlflowreg.quiet = FALSE)
  proxy <- local_fault_proxy(list(list(path = "experiments/search", action = "status", status = 503, times = 2)))
  messages <- list()
  result <- withCallingHandlers(
    mlflow_search_experiments(client = mlflow_client(proxy$uri)),
    mlflowreg_message_log = function(cnd) {
      messages[[length(messages) + 1]] <<- conditionMessage(cnd)
      invokeRestart("muffleMessage")
    }
  )
  expect_s3_class(result$experiments, "mlflow_experiment")
  expect_length(messages, 2)
  expect_match(messages[[1]], "retrying MLflow request", fixed = TRUE)
  expect_match(messages[[1]], "route: /api/2.0/mlflow/experiments/search", fixed = TRUE)
  expect_match(messages[[1]], "status: 503", fixed = TRUE)
  expect_match(messages[[1]], "attempt: 1", fixed = TRUE)
  expect_match(messages[[2]], "attempt: 2", fixed = TRUE)

  withr::local_options(mlflowreg.quiet = TRUE)
  proxy_quiet <- local_fault_proxy(list(list(path = "experiments/search", action = "status", status = 503)))
  expect_no_message(mlflow_search_experiments(client = mlflow_client(proxy_quiet$uri)))
})
