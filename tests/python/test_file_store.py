"""The local file store against Python mlflow, which reads it with
MLFLOW_ALLOW_FILE_STORE=true (MLflow 3 keeps its file store behind that flag).

- Python reads a store that mlflowreg wrote from R, and loads its model.
- mlflowreg (from R) reads a store that Python mlflow wrote, and loads its model.
- `mlflow migrate-filestore` moves a store mlflowreg wrote into SQLite.

No server is involved: both sides work on a directory under pytest's tmp_path.
"""

import json
import math
import os
import subprocess
import sys
import uuid

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from conftest import build_crate_model, find_rscript
from test_end_to_end import R_LIBRARY

# Logs params, metrics, tags and an lm model to a new store, registers the
# model with an alias, and writes mtcars and R's own predictions next to it.
R_WRITER = r"""
args <- commandArgs(trailingOnly = TRUE)
library(mlflowreg)
mlflow_set_tracking_uri(args[[1]])
out_dir <- args[[2]]
mlflow_set_experiment("r-written")
mlflow_set_experiment_tag("team", "risk")
fit <- lm(mpg ~ wt + hp, data = mtcars)
run <- mlflow_start_run()
mlflow_log_param("alpha", 0.5)
mlflow_log_metric("rmse", 1.25, step = 1)
mlflow_log_metric("rmse", 1.5, step = 2)
mlflow_log_metric("diverged", NaN)
mlflow_set_tag("owner", "ana")
logged <- mlflow_log_model(fit, "model", registered_model_name = "r-lm")
mlflow_end_run()
mlflow_set_registered_model_alias("r-lm", "champion", 1)
write.csv(mtcars, file.path(out_dir, "mtcars.csv"), row.names = FALSE)
writeLines(sprintf("%.17g", predict(fit, mtcars)), file.path(out_dir, "predictions.txt"))
writeLines(run$run_id, file.path(out_dir, "run_id.txt"))
"""

# Reads a store Python wrote; the names come from the test below.
R_READER = r"""
args <- commandArgs(trailingOnly = TRUE)
library(mlflowreg)
mlflow_set_tracking_uri(args[[1]])
out_dir <- args[[2]]
experiment <- mlflow_get_experiment(name = "py-written")
runs <- mlflow_search_runs(experiment_ids = experiment$experiment_id)
run <- mlflow_get_run(runs$run_id[[1]])
history <- mlflow_get_metric_history("loss", run_id = run$run_id)
version <- mlflow_get_model_version_by_alias("py-model", "champion")
latest <- mlflow_get_latest_versions("py-model", stages = "Staging")
model <- mlflow_load_model("models:/py-model@champion")
result <- list(
  experiment_id = experiment$experiment_id,
  experiment_tags = as.list(setNames(experiment$tags[[1]]$value, experiment$tags[[1]]$key)),
  run_id = run$run_id,
  status = run$status,
  params = as.list(setNames(run$params[[1]]$value, run$params[[1]]$key)),
  metrics = as.list(setNames(as.character(run$metrics[[1]]$value), run$metrics[[1]]$key)),
  tags = as.list(setNames(run$tags[[1]]$value, run$tags[[1]]$key)),
  loss_history = history$value[order(history$step)],
  alias_version = version$version,
  staging_versions = vapply(latest, function(v) v$version, ""),
  predictions = mlflow_predict(model, data.frame(x = c(1, 2.5, 4)))
)
writeLines(jsonlite::toJSON(result, auto_unbox = TRUE, digits = NA), file.path(out_dir, "read.json"))
"""


@pytest.fixture
def file_store_allowed(monkeypatch):
    """Let Python mlflow open file stores, and restore its tracking URI afterwards."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    previous = mlflow.get_tracking_uri()
    yield
    mlflow.set_tracking_uri(previous)


def run_r(script_text, work_dir, *args):
    if not (R_LIBRARY / "mlflowreg").is_dir():
        pytest.fail(f"the mlflowreg R package is not installed in {R_LIBRARY}; run scripts/test.sh")
    script = work_dir / "script.R"
    script.write_text(script_text)
    env = dict(os.environ, R_LIBS=str(R_LIBRARY))
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(
        [find_rscript(), "--vanilla", str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"R failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def r_written_store(tmp_path_factory):
    """A store mlflowreg wrote from R: (root folder holding mlruns/, store URI, run id, mtcars, R predictions)."""
    root = tmp_path_factory.mktemp("r-store")
    store = root / "mlruns"
    run_r(R_WRITER, root, str(store), str(root))
    run_id = (root / "run_id.txt").read_text().strip()
    mtcars = pd.read_csv(root / "mtcars.csv")
    expected = np.array([float(line) for line in (root / "predictions.txt").read_text().split()])
    return root, store.as_uri(), run_id, mtcars, expected


def test_python_reads_store_written_by_r(r_written_store, file_store_allowed):
    _, uri, run_id, mtcars, expected = r_written_store
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    experiment = client.get_experiment_by_name("r-written")
    assert experiment is not None
    assert experiment.tags["team"] == "risk"
    assert {e.name for e in client.search_experiments()} == {"Default", "r-written"}

    runs = client.search_runs([experiment.experiment_id])
    assert [run.info.run_id for run in runs] == [run_id]
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params == {"alpha": "0.5"}
    assert run.data.metrics["rmse"] == 1.5
    assert math.isnan(run.data.metrics["diverged"])
    assert run.data.tags["owner"] == "ana"
    assert run.data.tags["mlflow.source.type"] == "LOCAL"
    history = client.get_metric_history(run_id, "rmse")
    assert [(m.step, m.value) for m in history] == [(1, 1.25), (2, 1.5)]
    logged = json.loads(run.data.tags["mlflow.log-model.history"])
    assert logged[0]["artifact_path"] == "model"
    assert set(logged[0]["flavors"]) == {"crate", "python_function"}

    versions = client.search_model_versions("name = 'r-lm'")
    # The file store gives version numbers as int, the REST client as str.
    assert [str(v.version) for v in versions] == ["1"]
    assert versions[0].run_id == run_id
    assert versions[0].status == "READY"
    assert str(client.get_model_version_by_alias("r-lm", "champion").version) == "1"
    assert client.get_registered_model("r-lm").aliases == {"champion": "1"}

    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/r-lm/1")
    predictions = model.predict(mtcars)
    np.testing.assert_allclose(np.asarray(predictions, dtype=float), expected, rtol=0, atol=1e-9)


def test_r_reads_store_written_by_python(tmp_path, file_store_allowed):
    store = tmp_path / "mlruns"
    uri = store.as_uri()
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    experiment_id = client.create_experiment("py-written", tags={"team": "pricing"})
    model_dir = build_crate_model(tmp_path / "crate-model", "function(df) df$x * 2")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_param("depth", 3)
        for step, loss in enumerate([0.9, 0.5, 0.25]):
            mlflow.log_metric("loss", loss, step=step)
        mlflow.log_metric("unbounded", float("inf"))
        mlflow.set_tag("owner", "bo")
        mlflow.log_artifacts(str(model_dir), "model")
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", "py-model")
    client.set_registered_model_alias("py-model", "champion", version.version)
    client.transition_model_version_stage("py-model", version.version, "Staging")

    run_r(R_READER, tmp_path, str(store), str(tmp_path))
    result = json.loads((tmp_path / "read.json").read_text())

    assert result["experiment_id"] == experiment_id
    assert result["experiment_tags"] == {"team": "pricing"}
    assert result["run_id"] == run.info.run_id
    assert result["status"] == "FINISHED"
    assert result["params"] == {"depth": "3"}
    assert float(result["metrics"]["loss"]) == 0.25
    assert result["metrics"]["unbounded"] == "Inf"
    assert result["tags"]["owner"] == "bo"
    assert result["loss_history"] == [0.9, 0.5, 0.25]
    assert result["alias_version"] == "1"
    assert result["staging_versions"] == "1"
    assert result["predictions"] == [2, 5, 8]


def test_migrate_filestore_moves_our_store_to_sqlite(r_written_store, tmp_path):
    root, _, run_id, _, _ = r_written_store
    database = tmp_path / "migrated.db"
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    result = subprocess.run(
        [sys.executable, "-m", "mlflow", "migrate-filestore", "--source", str(root),
         "--target", f"sqlite:///{database}", "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"migrate-filestore failed:\n{result.stdout}\n{result.stderr}"
    # safe_read_yaml() in mlflow.store.fs2db logs "Failed to read" and skips
    # any meta.yaml it cannot parse, so a clean run has no such line.
    assert "Failed to read" not in result.stderr
    counts = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            counts[parts[0]] = (int(parts[1]), int(parts[2]))
    assert counts["experiments"] == (2, 2)
    assert counts["runs"] == (1, 1)
    assert counts["registered_models"] == (1, 1)
    assert counts["model_versions"] == (1, 1)

    client = MlflowClient(tracking_uri=f"sqlite:///{database}", registry_uri=f"sqlite:///{database}")
    experiment = client.get_experiment_by_name("r-written")
    assert experiment.tags["team"] == "risk"
    run = client.get_run(run_id)
    assert run.data.params == {"alpha": "0.5"}
    assert run.data.metrics["rmse"] == 1.5
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "rmse")] == [(1, 1.25), (2, 1.5)]
    version = client.get_model_version_by_alias("r-lm", "champion")
    assert str(version.version) == "1"
    assert version.run_id == run_id


def test_two_stores_do_not_share_names(tmp_path, file_store_allowed):
    """A name made in one store does not exist in another: stores are separate folders."""
    first, second = (tmp_path / name / "mlruns" for name in ("a", "b"))
    name = f"only-in-first-{uuid.uuid4().hex[:8]}"
    script = (
        "args <- commandArgs(trailingOnly = TRUE)\n"
        "library(mlflowreg)\n"
        "mlflow_set_tracking_uri(args[[1]])\n"
        f'mlflow_create_registered_model("{name}")\n'
        "mlflow_set_tracking_uri(args[[2]])\n"
        'count <- length(mlflow_search_registered_models()$registered_models)\n'
        "writeLines(as.character(count), args[[3]])\n"
    )
    run_r(script, tmp_path, str(first), str(second), str(tmp_path / "count.txt"))
    assert (tmp_path / "count.txt").read_text().strip() == "0"
    assert MlflowClient(tracking_uri=first.as_uri(), registry_uri=first.as_uri()).get_registered_model(name).name == name
