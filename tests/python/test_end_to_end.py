"""End to end: R logs and registers with mlflowreg, Python loads through pyfunc.

The R side runs in its own Rscript process with the mlflowreg package that
scripts/test.sh installs into target/R-library; the Python side is the real
MLflow client. Both talk to the servers scripts/test-servers.sh starts.
"""

import os
import subprocess
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from conftest import REPO_ROOT, find_rscript

R_LIBRARY = Path(os.environ.get("MLFLOWREG_R_LIBRARY", REPO_ROOT / "target" / "R-library"))

# Logs and registers an lm on mtcars, then writes mtcars and R's own
# predictions (full precision) next to the output file.
R_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
library(mlflowreg)
mlflow_set_tracking_uri(args[[1]])
mlflow_set_experiment(args[[2]])
fit <- lm(mpg ~ wt + hp, data = mtcars)
logged <- with(mlflow_start_run(), {
  mlflow_log_model(fit, "model", registered_model_name = args[[3]])
})
write.csv(mtcars, file.path(args[[4]], "mtcars.csv"), row.names = FALSE)
writeLines(sprintf("%.17g", predict(fit, mtcars)), file.path(args[[4]], "predictions.txt"))
writeLines(c(logged$model_version$version, logged$run_id), file.path(args[[4]], "version.txt"))
"""


def server_uri(variable):
    uri = os.environ.get(variable)
    if not uri:
        pytest.fail(f"{variable} is not set; run the tests with scripts/test.sh, which starts the MLflow servers.")
    return uri


def log_with_r(tracking_uri, tmp_path, r_script=R_SCRIPT):
    """Run an R script; return (model name, version, run id, mtcars frame, R predictions)."""
    if not (R_LIBRARY / "mlflowreg").is_dir():
        pytest.fail(f"the mlflowreg R package is not installed in {R_LIBRARY}; run scripts/test.sh")
    script = tmp_path / "log.R"
    script.write_text(r_script)
    name = f"pyfunc-e2e-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, R_LIBS=str(R_LIBRARY))
    result = subprocess.run(
        [find_rscript(), "--vanilla", str(script), tracking_uri, name, name, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"R failed:\n{result.stdout}\n{result.stderr}"
    version, run_id = (tmp_path / "version.txt").read_text().split()
    mtcars = pd.read_csv(tmp_path / "mtcars.csv")
    expected = np.array([float(line) for line in (tmp_path / "predictions.txt").read_text().split()])
    return name, version, run_id, mtcars, expected


@pytest.mark.parametrize("variable", ["MLFLOWREG_TEST_TRACKING_URI", "MLFLOWREG_TEST_STRICT_URI"])
def test_registered_r_model_predicts_through_pyfunc(variable, tmp_path):
    tracking_uri = server_uri(variable)
    name, version, run_id, mtcars, expected = log_with_r(tracking_uri, tmp_path)
    mlflow.set_tracking_uri(tracking_uri)

    registered = MlflowClient().get_model_version(name, version)
    assert registered.status == "READY"
    assert registered.run_id == run_id

    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    predictions = model.predict(mtcars)

    assert len(predictions) == len(mtcars)
    np.testing.assert_allclose(np.asarray(predictions, dtype=float), expected, rtol=0, atol=1e-9)


def test_logged_model_metadata_reads_in_python(tmp_path):
    tracking_uri = server_uri("MLFLOWREG_TEST_TRACKING_URI")
    name, version, run_id, _, _ = log_with_r(tracking_uri, tmp_path)
    mlflow.set_tracking_uri(tracking_uri)

    info = mlflow.models.get_model_info(f"runs:/{run_id}/model")
    assert set(info.flavors) == {"crate", "python_function"}
    assert info.flavors["python_function"]["loader_module"] == "mlflowreg_pyfunc"
    assert info.run_id == run_id
    assert info.artifact_path == "model"
    assert len(info.model_uuid) == 32


# Logs an lm the way R mlflow does (crate flavor only), repairs it with
# mlflowreg_repair_model() and registers it on the strict registry.
R_REPAIR_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
library(mlflowreg)
mlflow_set_tracking_uri(args[[1]])
mlflow_set_experiment(args[[2]])
fit <- lm(mpg ~ wt + hp, data = mtcars)
dir <- file.path(tempdir(), "crate-only")
dir.create(dir)
# local() gives the function its own environment holding `fit`, as
# carrier::crate() does; a top-level function would lose `fit`.
crate <- local({
  fit <- fit
  function(d) stats::predict(fit, d)
})
saveRDS(serialize(crate, NULL), file.path(dir, "crate.bin"))
writeLines(c("flavors:", "  crate:", "    version: 0.1.0", "    model: crate.bin"), file.path(dir, "MLmodel"))
run <- mlflow_start_run()
client <- mlflow_client()
logged <- mlflowreg:::rust_json(mlflowreg:::log_model_dir_(client$tracking_uri, client$origin, run$run_id, dir, "model"))
mlflow_end_run()
stopifnot(nrow(mlflowreg_validate_model(logged$model_uri, profile = "azureml")) == 1)
mlflowreg_repair_model(logged$model_uri)
version <- mlflow_register_model(logged$model_uri, args[[3]], profile = "azureml")
write.csv(mtcars, file.path(args[[4]], "mtcars.csv"), row.names = FALSE)
writeLines(sprintf("%.17g", predict(fit, mtcars)), file.path(args[[4]], "predictions.txt"))
writeLines(c(version$version, run$run_id), file.path(args[[4]], "version.txt"))
"""


def test_repaired_r_mlflow_model_predicts_through_pyfunc(tmp_path):
    tracking_uri = server_uri("MLFLOWREG_TEST_STRICT_URI")
    name, version, _, mtcars, expected = log_with_r(tracking_uri, tmp_path, R_REPAIR_SCRIPT)
    mlflow.set_tracking_uri(tracking_uri)

    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    predictions = model.predict(mtcars)

    np.testing.assert_allclose(np.asarray(predictions, dtype=float), expected, rtol=0, atol=1e-9)
