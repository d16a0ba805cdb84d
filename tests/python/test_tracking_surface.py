"""A tracking script written for R mlflow runs with mlflowreg, and Python's
MlflowClient reads back exactly what it logged."""

import os
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient

from conftest import find_rscript
from test_end_to_end import R_LIBRARY, server_uri

# An R mlflow script; the only change is library(mlflowreg) for library(mlflow).
R_MLFLOW_SCRIPT = r"""
library(mlflowreg)
args <- commandArgs(trailingOnly = TRUE)
mlflow_set_tracking_uri(args[[1]])
mlflow_set_experiment(args[[2]])
out_dir <- args[[3]]

with(mlflow_start_run(), {
  mlflow_log_param("alpha", 0.5)
  mlflow_log_param("formula", "mpg ~ wt + hp")
  for (step in 1:3) {
    mlflow_log_metric("rmse", 3 / step, step = step)
  }
  mlflow_set_tag("team", "pricing")

  plot_file <- file.path(out_dir, "residuals.pdf")
  pdf(plot_file)
  plot(lm(mpg ~ wt + hp, data = mtcars), which = 1)
  dev.off()
  mlflow_log_artifact(plot_file)

  report_dir <- file.path(out_dir, "report")
  dir.create(file.path(report_dir, "tables"), recursive = TRUE)
  writeLines("model,rmse", file.path(report_dir, "summary.csv"))
  writeLines("a,b", file.path(report_dir, "tables", "coef.csv"))
  mlflow_log_artifact(report_dir, artifact_path = "report")

  writeLines(mlflow_get_run()$run_id, file.path(out_dir, "run_id.txt"))
})
"""


def test_r_mlflow_script_reads_back_in_python(tmp_path):
    tracking_uri = server_uri("MLFLOWREG_TEST_TRACKING_URI")
    script = tmp_path / "job.R"
    script.write_text(R_MLFLOW_SCRIPT)
    experiment = f"r-mlflow-script-{tmp_path.name}"
    result = subprocess.run(
        [find_rscript(), "--vanilla", str(script), tracking_uri, experiment, str(tmp_path)],
        env=dict(os.environ, R_LIBS=str(R_LIBRARY)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"R failed:\n{result.stdout}\n{result.stderr}"
    run_id = (tmp_path / "run_id.txt").read_text().strip()

    client = MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == experiment
    assert run.data.params == {"alpha": "0.5", "formula": "mpg ~ wt + hp"}
    assert run.data.tags["team"] == "pricing"
    assert run.data.tags["mlflow.source.type"] == "LOCAL"

    history = sorted(client.get_metric_history(run_id, "rmse"), key=lambda m: m.step)
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == [3.0, 1.5, 1.0]

    root = {f.path: f for f in client.list_artifacts(run_id)}
    assert set(root) == {"residuals.pdf", "report"}
    assert root["residuals.pdf"].file_size == (tmp_path / "residuals.pdf").stat().st_size
    report = {f.path for f in client.list_artifacts(run_id, "report")}
    assert report == {"report/summary.csv", "report/tables"}

    downloaded = Path(client.download_artifacts(run_id, "report", str(tmp_path / "back")))
    assert (downloaded / "tables" / "coef.csv").read_text() == "a,b\n"
    assert (tmp_path / "back" / "residuals.pdf").exists() is False
    pdf = Path(client.download_artifacts(run_id, "residuals.pdf", str(tmp_path / "back")))
    assert pdf.read_bytes() == (tmp_path / "residuals.pdf").read_bytes()
