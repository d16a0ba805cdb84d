"""One benchmark scenario run by the Python mlflow client in this Python session.

Usage: python bench/client_python.py <scenario> <tracking uri> <data path> <repeats> <output.json>

Scenarios, the same work as bench/client_mlflowreg.R does in R:
  model  log and register a pyfunc model of about 1 MiB (a PythonModel with
         a 1 MiB artifact of random bytes, pip requirements given so that
         mlflow does not infer them); <data path> is a scratch directory
  file   log the file at <data path> as an artifact
  dir    log the files below the directory <data path> as artifacts

Each repeat runs in a run of its own, started and ended inside the timed
span. The model scenario runs once untimed first, so imports, the first
connection and cloudpickle's first use are not measured. Writes a JSON list
with one object per repeat: seconds (wall time) and rss_growth_bytes (peak
resident set size during the repeat minus the resident set size before it,
from /proc/self/status after resetting the peak through /proc/self/clear_refs).
"""

import gc
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow  # noqa: E402
import mlflow.pyfunc  # noqa: E402


class BlobModel(mlflow.pyfunc.PythonModel):
    """Returns the blob's size for every input row."""

    def load_context(self, context):
        self.size = os.path.getsize(context.artifacts["blob"])

    def predict(self, context, model_input, params=None):
        return [self.size] * len(model_input)


def status_bytes(field):
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def measure(action):
    gc.collect()
    # Writing 5 resets VmHWM to the current RSS (Linux 4.0 and later).
    with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
        handle.write("5")
    before = status_bytes("VmRSS")
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rss_growth_bytes": status_bytes("VmHWM") - before}


def main():
    scenario, tracking_uri, data_path, repeats, output = sys.argv[1:6]
    repeats = int(repeats)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(f"bench-{scenario}-python")
    results = []

    if scenario == "model":
        blob = os.path.join(data_path, "blob.bin")
        with open(blob, "wb") as handle:
            handle.write(os.urandom(1 << 20))

        def log_and_register():
            with mlflow.start_run():
                mlflow.pyfunc.log_model(
                    name="model",
                    python_model=BlobModel(),
                    artifacts={"blob": blob},
                    pip_requirements=[f"mlflow=={mlflow.__version__}"],
                    registered_model_name="bench-python",
                )

        log_and_register()
        results = [measure(log_and_register) for _ in range(repeats)]
    elif scenario in ("file", "dir"):
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
            handle.write("warm-up\n")
        with mlflow.start_run():
            mlflow.log_artifact(handle.name)
        os.unlink(handle.name)

        def log():
            with mlflow.start_run():
                if scenario == "file":
                    mlflow.log_artifact(data_path, "data")
                else:
                    mlflow.log_artifacts(data_path, "data")

        results = [measure(log) for _ in range(repeats)]
    else:
        raise SystemExit(f"unknown scenario {scenario}")

    with open(output, "w", encoding="utf-8") as handle:
        json.dump(results, handle)


if __name__ == "__main__":
    main()
