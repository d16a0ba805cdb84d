# Fit a model, log it to this Azure ML job's MLflow run, register it and
# check that the registered version loads back and predicts as the fit.
#
# Azure ML sets MLFLOW_TRACKING_URI (azureml://...), MLFLOW_TRACKING_TOKEN,
# MLFLOW_RUN_ID and MLFLOW_EXPERIMENT_ID in the job. mlflowreg reads them,
# renews the token before it expires, uploads the model straight to the
# workspace's blob storage and registers it; no helper script and no Python.
library(mlflowreg)

args <- commandArgs(trailingOnly = TRUE)
model_name <- "mtcars-lm"
if (length(args) == 2 && args[[1]] == "--model-name") {
  model_name <- args[[2]]
}

fit <- lm(mpg ~ wt + hp, data = mtcars)

run <- mlflow_start_run()  # the job's own run, from MLFLOW_RUN_ID
mlflow_log_param("formula", "mpg ~ wt + hp")
mlflow_log_metric("rmse", sqrt(mean(residuals(fit)^2)))

residuals_file <- file.path(tempdir(), "residuals.csv")
write.csv(data.frame(car = rownames(mtcars), residual = residuals(fit)), residuals_file, row.names = FALSE)
mlflow_log_artifact(residuals_file)

logged <- mlflow_log_model(fit, "model", registered_model_name = model_name)
mlflow_end_run()

version <- logged$model_version
cat(sprintf(
  "run %s: registered %s version %s (%s)\n",
  run$run_id, version$name, version$version, version$status
))

model <- mlflow_load_model(sprintf("models:/%s/%s", version$name, version$version))
stopifnot(identical(mlflow_predict(model, mtcars), predict(fit, mtcars)))
cat("the registered version predicts as the fitted model\n")
