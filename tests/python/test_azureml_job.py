"""The example Azure ML job (examples/azureml-job) runs unchanged against the
gateway double and Azurite that scripts/test.sh starts.

The test plays Azure ML's part around the job. It creates the job's run and
gives the job a short-lived token and the variables Azure ML sets. It runs
the command of job.yml in the code folder and makes the double reject the
job's token once during registration. Then it checks what the job left
behind: the model's blobs in Azurite, a READY version in the strict registry
and a model that loads back by its models:/ URI in a fresh R process.
"""

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT, find_rscript

EXAMPLE_DIR = REPO_ROOT / "examples" / "azureml-job"
R_LIBRARY = Path(os.environ.get("MLFLOWREG_R_LIBRARY", REPO_ROOT / "target" / "R-library"))
# Lifetime of every token the job gets, in seconds. mlflowreg renews a token
# when less than half of this remains.
TOKEN_LIFETIME = 4
# Delay of each gateway response, in milliseconds. On loopback the job takes
# about 1.5 s. With the delay of a distant service it outlives its first
# token, which must then be renewed mid-run.
GATEWAY_DELAY_MS = 250


def env(variable):
    value = os.environ.get(variable)
    if not value:
        pytest.fail(f"{variable} is not set; run the tests with scripts/test.sh, which starts the Azure ML stand-ins")
    return value


def control(path_and_query):
    with urllib.request.urlopen(env("MLFLOWREG_TEST_AZUREML_CONTROL") + path_and_query, timeout=30) as response:
        return json.load(response)


def strict_registry(endpoint, **query):
    url = f"{env('MLFLOWREG_TEST_STRICT_URI')}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def job_environment(job, token, in_job=True):
    """The variables Azure ML sets in a job, plus the double's CA and the test R library."""
    variables = dict(os.environ)
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        variables.pop(name, None)
    variables.update(
        {
            # Azure ML sometimes appends a query string; it must be ignored.
            "MLFLOW_TRACKING_URI": env("MLFLOWREG_TEST_AZUREML_URI") + "?origin=job",
            "MLFLOW_TRACKING_TOKEN": token,
            "MLFLOW_TRACKING_SERVER_CERT_PATH": env("MLFLOWREG_TEST_AZUREML_CA"),
            "R_LIBS": str(R_LIBRARY),
        }
    )
    if in_job:
        variables.update(
            {
                "MLFLOW_RUN_ID": job["run_id"],
                "MLFLOW_EXPERIMENT_ID": job["experiment_id"],
                "MLFLOW_EXPERIMENT_NAME": job["experiment_name"],
            }
        )
    return variables


def test_example_job_runs_unchanged_on_azure_ml():
    spec = yaml.safe_load((EXAMPLE_DIR / "job.yml").read_text(encoding="utf-8"))
    command = spec["command"].strip()
    code_dir = EXAMPLE_DIR / spec["code"]
    model_name = command.split("--model-name", 1)[1].split()[0]

    job = control(f"/job?experiment=azureml-job-{uuid.uuid4().hex[:8]}&lifetime={TOKEN_LIFETIME}")
    run_id = job["run_id"]
    control(
        f"/configure?run={run_id}&lifetime={TOKEN_LIFETIME}&delay_ms={GATEWAY_DELAY_MS}"
        "&revoke_on=model-versions/create"
    )

    started = time.monotonic()
    completed = subprocess.run(
        command,
        shell=True,
        cwd=code_dir,
        env=job_environment(job, job["token"]),
        capture_output=True,
        text=True,
        timeout=300,
    )
    duration = time.monotonic() - started
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"the job failed:\n{output}"
    assert "the registered version predicts as the fitted model" in completed.stdout, output
    print(f"example job took {duration:.1f} s")

    # The first token expired mid-run and was renewed before that. The 401 at
    # registration led to exactly one renewal, and no expired token was sent.
    stats = control(f"/stats?run={run_id}")
    assert duration > TOKEN_LIFETIME, f"the job took {duration:.1f} s, too short to outlive its token"
    assert stats.get("refreshes_with_valid_token", 0) >= 1, stats
    assert stats.get("refreshes_with_rejected_token", 0) == 1, stats
    assert stats.get("unauthorized", 0) == 1, stats
    assert stats.get("expired_token_requests", 0) == 0, stats
    assert stats.get("logged_model_or_proxy_requests", 0) == 0, stats

    blobs = control(f"/blobs?run={run_id}")["blobs"]
    for name in ("residuals.csv", "model/MLmodel", "model/crate.bin", "model/code/mlflowreg_pyfunc.py"):
        assert name in blobs, blobs

    run = strict_registry("runs/get", run_id=run_id)["run"]
    params = {p["key"]: p["value"] for p in run["data"].get("params", [])}
    metrics = {m["key"]: m["value"] for m in run["data"].get("metrics", [])}
    assert params.get("formula") == "mpg ~ wt + hp", params
    assert metrics.get("rmse") == pytest.approx(2.468854458, abs=1e-9), metrics
    assert run["info"]["status"] == "FINISHED", run["info"]

    versions = strict_registry("model-versions/search", filter=f"name='{model_name}'")["model_versions"]
    ours = [v for v in versions if v.get("run_id") == run_id]
    assert len(ours) == 1, versions
    version = ours[0]
    assert version["status"] == "READY", version
    assert version["source"].startswith("azureml://127.0.0.1:"), version
    assert version["source"].endswith(f"/runs/{run_id}/artifacts/model"), version

    # A fresh R process outside the job (a user token, no run) loads the
    # registered version by its models:/ URI and gets lm's predictions.
    user_token = control(f"/token?run={run_id}&lifetime=600")["token"]
    check = (
        "library(mlflowreg)\n"
        f'model <- mlflow_load_model("models:/{model_name}/{version["version"]}")\n'
        "fit <- lm(mpg ~ wt + hp, data = mtcars)\n"
        "stopifnot(identical(mlflow_predict(model, mtcars), predict(fit, mtcars)))\n"
        'cat("loaded\\n")\n'
    )
    loaded = subprocess.run(
        [find_rscript(), "--vanilla", "-e", check],
        env=job_environment(job, user_token, in_job=False),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert loaded.stdout.strip() == "loaded"


def test_example_environment_has_no_python():
    lines = (EXAMPLE_DIR / "environment" / "Dockerfile").read_text(encoding="utf-8").lower().splitlines()
    instructions = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    for word in ("python", "pip ", "conda", "azureml-mlflow", "reticulate"):
        assert word not in instructions, word
    assert "r cmd install" in instructions
