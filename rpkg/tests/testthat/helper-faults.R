# The fault-injecting proxy (tests/fixtures/fault_proxy.py) between the
# client and a test server. scripts/test.sh exports where the fixture and
# the Python that runs it are; without them the tests fail rather than skip.

test_fixture <- function(name) {
  dir <- server_uri("MLFLOWREG_TEST_FIXTURES")
  file.path(dir, name)
}

test_python <- function() server_uri("MLFLOWREG_TEST_PYTHON")

# Environment for Python started from R: R puts its own library directory
# on LD_LIBRARY_PATH, which makes a pyenv Python load the wrong libpython.
python_env <- function() c("current", LD_LIBRARY_PATH = "")

# Starts a proxy in front of `upstream` with `rules` (a list of rules as
# the fixture documents them) and stops it when the calling test ends.
# Returns a list with `uri`, `port` and the processx process.
local_fault_proxy <- function(rules = list(), upstream = tracking_server(), env = parent.frame()) {
  # scripts/test.sh searches MLFLOWREG_TEST_LOG_DIR for leaked credentials.
  log_dir <- Sys.getenv("MLFLOWREG_TEST_LOG_DIR", tempdir())
  log_file <- tempfile("fault-proxy-", tmpdir = log_dir, fileext = ".log")
  rules_json <- as.character(jsonlite::toJSON(rules, auto_unbox = TRUE))
  process <- processx::process$new(
    test_python(),
    c(test_fixture("fault_proxy.py"), "--upstream", upstream, "--rules", rules_json,
      "--max-lifetime", "900"),
    stdout = "|", stderr = log_file, env = python_env()
  )
  withr::defer(process$kill(), envir = env)
  port <- NULL
  deadline <- Sys.time() + 20
  while (is.null(port) && Sys.time() < deadline && process$is_alive()) {
    process$poll_io(500)
    for (line in process$read_output_lines()) {
      if (startsWith(line, "PORT ")) port <- as.integer(sub("PORT ", "", line, fixed = TRUE))
    }
  }
  if (is.null(port)) {
    stop("the fault proxy did not start: ", paste(readLines(log_file, warn = FALSE), collapse = "\n"),
      call. = FALSE)
  }
  list(uri = sprintf("http://127.0.0.1:%d", port), port = port, process = process)
}

proxy_control <- function(proxy, what) {
  connection <- url(sprintf("%s/__fault_proxy__/%s", proxy$uri, what))
  on.exit(close(connection))
  jsonlite::fromJSON(paste(readLines(connection, warn = FALSE), collapse = ""), simplifyVector = FALSE)
}

# The requests the proxy finished: method, path, action and status. With
# `path`, waits up to 10 s until `at_least` requests to that path, and one
# with `action` when given, are logged, because a delayed request is
# logged only once the proxy has answered it.
proxy_log <- function(proxy, path = NULL, at_least = 0, action = NULL) {
  deadline <- Sys.time() + 10
  repeat {
    log <- proxy_control(proxy, "log")
    enough <- is.null(path) || count_requests(log, path) >= at_least
    applied <- is.null(action) || any(vapply(log, function(entry) identical(entry$action, action), logical(1)))
    if ((enough && applied) || Sys.time() > deadline) {
      return(log)
    }
    Sys.sleep(0.1)
  }
}

# The requests in progress, with the body bytes moved so far.
proxy_active <- function(proxy) proxy_control(proxy, "active")

# Number of logged requests whose path contains `path` (and method, if given).
count_requests <- function(log, path, method = NULL) {
  sum(vapply(log, function(entry) {
    grepl(path, entry$path, fixed = TRUE) && (is.null(method) || identical(entry$method, method))
  }, logical(1)))
}

# The versions of a registered model, read directly from the server.
model_versions <- function(name, client = mlflow_client(tracking_server())) {
  mlflow_search_model_versions(filter = sprintf("name = '%s'", name), client = client)$model_versions
}
