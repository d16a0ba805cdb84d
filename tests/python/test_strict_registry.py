"""Tests of the strict registry fixture, run against the servers of scripts/test-servers.sh.

The strict server must reject a model whose MLmodel has only a `crate` flavor
with Azure ML's message, and the plain server must accept the same model, so
that a rejection seen in mlflowreg's tests comes from the fixture's rule.

The server URIs come from MLFLOWREG_TEST_STRICT_URI and
MLFLOWREG_TEST_TRACKING_URI, which scripts/test.sh exports. conftest.py turns
off MLflow telemetry for this process.
"""

import os
import time
import uuid

import pytest
import requests
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

HOLD_TAG = "mlflowreg.test.hold"
# Azure ML's wording, which the fixture must return verbatim.
INVALID_FLAVORS_MESSAGE = (
    "The provided Model Flavors dictionary is invalid. When provided, Flavors must "
    "contain a top level python_function key with a loader_module sub-key under it."
)
FAILED_STATUS_MESSAGE = "held as failed by the strict registry fixture"

CRATE_FLAVOR = {"crate": {"version": "0.1.0", "model": "crate.bin"}}
PYFUNC_FLAVOR = {"python_function": {"loader_module": "x"}}
# Seconds that a held version is watched to confirm that it stays pending.
PENDING_WATCH_SECONDS = 2.0


def server_uri(variable):
    uri = os.environ.get(variable)
    if not uri:
        pytest.fail(
            f"{variable} is not set. Run the tests with scripts/test.sh, which starts the "
            "MLflow test servers, or run `scripts/test-servers.sh start` and then "
            "`set -a; source .test-servers/env; set +a` before pytest.",
            pytrace=False,
        )
    return uri


@pytest.fixture(scope="module")
def strict_uri():
    return server_uri("MLFLOWREG_TEST_STRICT_URI")


@pytest.fixture(scope="module")
def strict_client(strict_uri):
    return MlflowClient(tracking_uri=strict_uri, registry_uri=strict_uri)


@pytest.fixture(scope="module")
def plain_client():
    uri = server_uri("MLFLOWREG_TEST_TRACKING_URI")
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def unique_name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def write_model_dir(directory, mlmodel):
    """Write a model directory with crate.bin and, unless `mlmodel` is None, an MLmodel."""
    directory.mkdir(parents=True)
    if mlmodel is not None:
        (directory / "MLmodel").write_text(yaml.safe_dump(mlmodel), encoding="utf-8")
    (directory / "crate.bin").write_bytes(b"\x00mlflowreg test crate\xff")
    return directory


def log_model(client, tmp_path, mlmodel, artifact_location=None):
    """Log a model directory as artifact path `model` of a new run.

    Returns the run id and the run's artifact URI for the model.
    """
    model_dir = write_model_dir(tmp_path / "model-src", mlmodel)
    experiment_id = client.create_experiment(
        unique_name("strict-registry"), artifact_location=artifact_location
    )
    run = client.create_run(experiment_id)
    client.log_artifacts(run.info.run_id, str(model_dir), "model")
    client.set_terminated(run.info.run_id)
    return run.info.run_id, f"{run.info.artifact_uri}/model"


def model_source(kind, run_id, artifact_uri):
    if kind == "artifact_uri":
        return artifact_uri
    if kind == "runs_uri":
        return f"runs:/{run_id}/model"
    raise ValueError(f"unknown source kind {kind!r}")


def new_registered_model(client):
    name = unique_name("mlflowreg-test")
    client.create_registered_model(name)
    return name


@pytest.mark.parametrize("source_kind", ["artifact_uri", "runs_uri"])
def test_strict_rejects_crate_only(strict_client, tmp_path, source_kind):
    run_id, artifact_uri = log_model(strict_client, tmp_path, {"flavors": CRATE_FLAVOR})
    name = new_registered_model(strict_client)

    with pytest.raises(MlflowException) as excinfo:
        strict_client.create_model_version(
            name, model_source(source_kind, run_id, artifact_uri), run_id=run_id
        )

    error = excinfo.value
    assert error.get_http_status_code() == 400
    assert error.json["error_code"] == "INVALID_PARAMETER_VALUE"
    assert error.json["message"] == INVALID_FLAVORS_MESSAGE
    assert strict_client.search_model_versions(f"name = '{name}'") == []


def test_strict_rejection_http_response(strict_client, strict_uri, tmp_path):
    run_id, source = log_model(strict_client, tmp_path, {"flavors": CRATE_FLAVOR})
    name = new_registered_model(strict_client)

    response = requests.post(
        f"{strict_uri}/api/2.0/mlflow/model-versions/create",
        json={"name": name, "source": source, "run_id": run_id},
        timeout=30,
    )

    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert body["message"] == INVALID_FLAVORS_MESSAGE


@pytest.mark.parametrize("source_kind", ["artifact_uri", "runs_uri"])
def test_strict_accepts_pyfunc_loader(strict_client, tmp_path, source_kind):
    flavors = {**CRATE_FLAVOR, **PYFUNC_FLAVOR}
    run_id, artifact_uri = log_model(strict_client, tmp_path, {"flavors": flavors})
    name = new_registered_model(strict_client)

    version = strict_client.create_model_version(
        name, model_source(source_kind, run_id, artifact_uri), run_id=run_id
    )

    assert version.status == "READY"
    assert strict_client.get_model_version(name, version.version).status == "READY"


def test_strict_rejects_pyfunc_without_loader(strict_client, tmp_path):
    flavors = {**CRATE_FLAVOR, "python_function": {"env": "conda.yaml"}}
    run_id, source = log_model(strict_client, tmp_path, {"flavors": flavors})
    name = new_registered_model(strict_client)

    with pytest.raises(MlflowException) as excinfo:
        strict_client.create_model_version(name, source, run_id=run_id)

    assert excinfo.value.get_http_status_code() == 400
    assert excinfo.value.json["message"] == INVALID_FLAVORS_MESSAGE


def test_strict_accepts_no_flavors(strict_client, tmp_path):
    run_id, source = log_model(strict_client, tmp_path, {"mlflow_version": "3.17.2"})
    name = new_registered_model(strict_client)

    version = strict_client.create_model_version(name, source, run_id=run_id)

    assert version.status == "READY"


def test_strict_rejects_missing_mlmodel(strict_client, tmp_path):
    run_id, source = log_model(strict_client, tmp_path, mlmodel=None)
    name = new_registered_model(strict_client)

    with pytest.raises(MlflowException) as excinfo:
        strict_client.create_model_version(name, source, run_id=run_id)

    error = excinfo.value
    assert error.get_http_status_code() == 400
    assert error.json["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "MLmodel" in error.json["message"]
    assert source in error.json["message"]
    assert strict_client.search_model_versions(f"name = '{name}'") == []


@pytest.mark.parametrize("source_kind", ["path", "file_uri"])
def test_strict_reads_local_source(strict_client, tmp_path, source_kind):
    # An experiment with a local artifact location makes the client write the
    # artifacts straight to disk, where the server (same machine) reads them.
    artifact_root = (tmp_path / "artifact-root").as_uri()
    crate_run_id, crate_uri = log_model(
        strict_client, tmp_path / "crate", {"flavors": CRATE_FLAVOR}, artifact_root
    )
    pyfunc_run_id, pyfunc_uri = log_model(
        strict_client,
        tmp_path / "pyfunc",
        {"flavors": {**CRATE_FLAVOR, **PYFUNC_FLAVOR}},
        artifact_root,
    )
    if source_kind == "path":
        crate_uri = crate_uri.removeprefix("file://")
        pyfunc_uri = pyfunc_uri.removeprefix("file://")
    name = new_registered_model(strict_client)

    with pytest.raises(MlflowException) as excinfo:
        strict_client.create_model_version(name, crate_uri, run_id=crate_run_id)
    version = strict_client.create_model_version(name, pyfunc_uri, run_id=pyfunc_run_id)

    assert excinfo.value.get_http_status_code() == 400
    assert excinfo.value.json["message"] == INVALID_FLAVORS_MESSAGE
    assert version.status == "READY"


def test_strict_reads_models_uri_source(strict_client, tmp_path):
    flavors = {**CRATE_FLAVOR, **PYFUNC_FLAVOR}
    run_id, source = log_model(strict_client, tmp_path, {"flavors": flavors})
    first_name = new_registered_model(strict_client)
    first = strict_client.create_model_version(first_name, source, run_id=run_id)
    second_name = new_registered_model(strict_client)

    copy = strict_client.create_model_version(
        second_name, f"models:/{first_name}/{first.version}", run_id=run_id
    )

    assert copy.status == "READY"
    assert copy.source == f"models:/{first_name}/{first.version}"


def test_strict_hold_pending(strict_client, tmp_path):
    flavors = {**CRATE_FLAVOR, **PYFUNC_FLAVOR}
    run_id, source = log_model(strict_client, tmp_path, {"flavors": flavors})
    name = new_registered_model(strict_client)

    version = strict_client.create_model_version(
        name, source, run_id=run_id, tags={HOLD_TAG: "PENDING"}, await_creation_for=0
    )
    time.sleep(PENDING_WATCH_SECONDS)
    fetched = strict_client.get_model_version(name, version.version)

    assert version.status == "PENDING_REGISTRATION"
    assert fetched.status == "PENDING_REGISTRATION"
    assert fetched.tags[HOLD_TAG] == "PENDING"


def test_strict_hold_failed(strict_client, tmp_path):
    flavors = {**CRATE_FLAVOR, **PYFUNC_FLAVOR}
    run_id, source = log_model(strict_client, tmp_path, {"flavors": flavors})
    name = new_registered_model(strict_client)

    version = strict_client.create_model_version(
        name, source, run_id=run_id, tags={HOLD_TAG: "FAILED"}, await_creation_for=0
    )
    fetched = strict_client.get_model_version(name, version.version)

    assert version.status == "FAILED_REGISTRATION"
    assert fetched.status == "FAILED_REGISTRATION"
    assert fetched.status_message == FAILED_STATUS_MESSAGE


def test_strict_hold_checks_flavors_first(strict_client, tmp_path):
    run_id, source = log_model(strict_client, tmp_path, {"flavors": CRATE_FLAVOR})
    name = new_registered_model(strict_client)

    with pytest.raises(MlflowException) as excinfo:
        strict_client.create_model_version(
            name, source, run_id=run_id, tags={HOLD_TAG: "PENDING"}, await_creation_for=0
        )

    assert excinfo.value.json["message"] == INVALID_FLAVORS_MESSAGE
    assert strict_client.search_model_versions(f"name = '{name}'") == []


def test_strict_rejects_unknown_hold(strict_client, tmp_path):
    flavors = {**CRATE_FLAVOR, **PYFUNC_FLAVOR}
    run_id, source = log_model(strict_client, tmp_path, {"flavors": flavors})
    name = new_registered_model(strict_client)

    with pytest.raises(MlflowException) as excinfo:
        strict_client.create_model_version(
            name, source, run_id=run_id, tags={HOLD_TAG: "LATER"}, await_creation_for=0
        )

    assert excinfo.value.get_http_status_code() == 400
    assert HOLD_TAG in excinfo.value.json["message"]
    assert "LATER" in excinfo.value.json["message"]


def test_plain_accepts_crate_only(plain_client, tmp_path):
    run_id, source = log_model(plain_client, tmp_path, {"flavors": CRATE_FLAVOR})
    name = new_registered_model(plain_client)

    version = plain_client.create_model_version(name, source, run_id=run_id)

    assert version.status == "READY"
    assert plain_client.get_model_version(name, version.version).status == "READY"
