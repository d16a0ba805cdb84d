# Fit a model, log it to a run, register it, load it back from the
# registry and predict: the whole path an R job takes. The tracking server
# comes from MLFLOW_TRACKING_URI, as in any MLflow job; without it, the
# local store ./mlruns is used, with no server.
library(mlflowreg)

fit <- lm(mpg ~ wt + hp, data = mtcars)

mlflow_set_experiment("mlflowreg-quickstart")
run <- mlflow_start_run()
logged <- mlflow_log_model(fit, "model", registered_model_name = "mtcars-lm")
mlflow_end_run()

version <- logged$model_version
cat(sprintf("run %s logged %s\n", run$run_id, logged$model_uri))
cat(sprintf("registered %s version %s (%s)\n", version$name, version$version, version$status))
cat(sprintf("flavors: %s\n", paste(names(logged$flavors), collapse = ", ")))

model <- mlflow_load_model(sprintf("models:/%s/%s", version$name, version$version))
predictions <- mlflow_predict(model, head(mtcars))
print(round(predictions, 3))
stopifnot(isTRUE(all.equal(predictions, predict(fit, head(mtcars)), tolerance = 0)))
cat("predictions from the registry match the fitted model\n")
