# One benchmark scenario run by mlflowreg in this R session.
#
# Usage: Rscript bench/client_mlflowreg.R <scenario> <tracking uri> <data path> <repeats> <output.json>
#
# Scenarios:
#   model  log and register a model of about 1 MiB (a function that captures
#          1 MiB of random bytes); <data path> is unused
#   file   log the file at <data path> as an artifact
#   dir    log the files below the directory <data path> as artifacts
#   save   only write models below the directory <data path>, no timing:
#          model/ the 1 MiB model (for the curl replay of the model scenario)
#          and lm/ an lm fit of mpg ~ wt + hp on mtcars (for the predict timing)
#
# Each repeat runs in a run of its own, started and ended inside the timed
# span. The model scenario runs once untimed first, so loading the package's
# code, building the client and the first connection are not measured.
# Writes a JSON array with one object per repeat: seconds (wall time) and
# rss_growth_bytes (peak resident set size during the repeat minus the
# resident set size before it, from /proc/self/status after resetting the
# peak through /proc/self/clear_refs).

args <- commandArgs(trailingOnly = TRUE)
stopifnot(length(args) == 5L)
scenario <- args[[1L]]
tracking_uri <- args[[2L]]
data_path <- args[[3L]]
repeats <- as.integer(args[[4L]])
output <- args[[5L]]

library(mlflowreg)

status_bytes <- function(field) {
  line <- grep(paste0("^", field, ":"), readLines("/proc/self/status"), value = TRUE)
  as.numeric(sub("^[^0-9]*([0-9]+) kB.*$", "\\1", line)) * 1024
}

reset_peak_rss <- function() {
  # Writing 5 resets VmHWM to the current RSS (Linux 4.0 and later).
  writeLines("5", "/proc/self/clear_refs")
}

measure <- function(code) {
  code <- substitute(code)
  env <- parent.frame()
  invisible(gc())
  reset_peak_rss()
  before <- status_bytes("VmRSS")
  started <- proc.time()[["elapsed"]]
  eval(code, env)
  seconds <- proc.time()[["elapsed"]] - started
  list(seconds = seconds, rss_growth_bytes = status_bytes("VmHWM") - before)
}

one_mib_model <- function() {
  set.seed(1)
  blob <- as.raw(sample.int(256L, 1048576L, replace = TRUE) - 1L)
  local({
    payload <- blob
    function(data) rep(length(payload), nrow(data))
  })
}

mlflow_set_tracking_uri(tracking_uri)
options(mlflowreg.progress = FALSE)

results <- list()
if (scenario == "save") {
  mlflow_save_model(one_mib_model(), file.path(data_path, "model"))
  mlflow_save_model(lm(mpg ~ wt + hp, data = mtcars), file.path(data_path, "lm"))
} else if (scenario == "model") {
  mlflow_set_experiment("bench-model-mlflowreg")
  model <- one_mib_model()
  log_and_register <- function() {
    mlflow_start_run()
    mlflow_log_model(model, "model", registered_model_name = "bench-mlflowreg")
    mlflow_end_run()
  }
  log_and_register()
  for (i in seq_len(repeats)) {
    results[[i]] <- measure(log_and_register())
  }
} else if (scenario %in% c("file", "dir")) {
  mlflow_set_experiment(paste0("bench-", scenario, "-mlflowreg"))
  warm_up <- tempfile()
  writeLines("warm-up", warm_up)
  mlflow_start_run()
  mlflow_log_artifact(warm_up)
  mlflow_end_run()
  for (i in seq_len(repeats)) {
    results[[i]] <- measure({
      mlflow_start_run()
      mlflow_log_artifact(data_path, "data")
      mlflow_end_run()
    })
  }
} else {
  stop("unknown scenario ", scenario)
}

jsonlite::write_json(results, output, auto_unbox = TRUE, digits = NA)
