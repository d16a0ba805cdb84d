"""Helpers that build mlflowreg model directories with real R crates for the tests."""

import os
import shutil
import subprocess
from pathlib import Path

# Set before any test module imports mlflow, so no test process sends telemetry.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PYFUNC_SOURCE_DIR = REPO_ROOT / "src" / "model" / "pyfunc"
PYFUNC_FILES = ("mlflowreg_pyfunc.py", "mlflowreg_predict.R")

# The MLmodel file that the Rust side writes for a crate model.
MLMODEL_TEXT = """\
flavors:
  crate:
    version: 0.1.0
    model: crate.bin
  python_function:
    loader_module: mlflowreg_pyfunc
    code: code
    data: crate.bin
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
"""

CONDA_YAML_TEXT = """\
name: mlflow-env
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - pip:
      - mlflow
      - pandas
"""

PYTHON_ENV_TEXT = """\
python: "3.11"
build_dependencies:
  - pip
dependencies:
  - -r requirements.txt
"""


def find_rscript():
    """Return the Rscript that the tests use to build crates, as the loader would find it."""
    rscript = os.environ.get("MLFLOWREG_RSCRIPT") or shutil.which("Rscript")
    if rscript is None:
        pytest.fail("Rscript not found on PATH and MLFLOWREG_RSCRIPT is not set. Install R.")
    return rscript


def run_r(script, work_dir):
    """Run R code with ``Rscript --vanilla`` in ``work_dir`` and fail the test if R fails."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    script_path = work_dir / "script.R"
    script_path.write_text(script, encoding="utf-8")
    completed = subprocess.run(
        [find_rscript(), "--vanilla", str(script_path)],
        cwd=work_dir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if completed.returncode != 0:
        pytest.fail(f"R script failed with status {completed.returncode}:\n{completed.stderr}")
    return completed


def build_crate_model(model_dir, r_function, r_setup=""):
    """Save a crate model directory whose crate is the R expression ``r_function``.

    ``r_setup`` runs first in the same R session, so it can define objects that
    the function captures or write reference files to absolute paths.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True)
    # R runs in a sibling directory, so the model directory holds only the
    # files that the Rust side writes.
    r_work_dir = model_dir.with_name(f"{model_dir.name}-r")
    run_r(
        f"{r_setup}\n"
        f"model <- {r_function}\n"
        'saveRDS(serialize(model, NULL), "crate.bin")\n',
        work_dir=r_work_dir,
    )
    shutil.move(str(r_work_dir / "crate.bin"), str(model_dir / "crate.bin"))

    code_dir = model_dir / "code"
    code_dir.mkdir()
    for name in PYFUNC_FILES:
        shutil.copy(PYFUNC_SOURCE_DIR / name, code_dir / name)

    (model_dir / "MLmodel").write_text(MLMODEL_TEXT, encoding="utf-8")
    (model_dir / "conda.yaml").write_text(CONDA_YAML_TEXT, encoding="utf-8")
    (model_dir / "python_env.yaml").write_text(PYTHON_ENV_TEXT, encoding="utf-8")
    (model_dir / "requirements.txt").write_text("mlflow\npandas\n", encoding="utf-8")
    return model_dir


def load_crate_model(model_dir):
    """Load a model directory through MLflow, as a user would."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(model_dir))


@pytest.fixture
def crate_model(tmp_path):
    """Build and load a crate model from R source: ``crate_model(r_function, r_setup="")``."""
    counter = iter(range(1000))

    def build_and_load(r_function, r_setup=""):
        model_dir = build_crate_model(tmp_path / f"model{next(counter)}", r_function, r_setup)
        return load_crate_model(model_dir)

    return build_and_load
