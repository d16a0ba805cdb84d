#!/usr/bin/env bash
# Install what is missing, build the R package, and run examples/quickstart.R:
# fit a model, log it, register it, load it back by models:/ and predict.
#
# With MLFLOW_TRACKING_URI set, the example talks to that server. Without it,
# this script starts a loopback MLflow server (from the venv scripts/setup.sh
# makes) with its state in .quickstart/, and stops it at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
R_LIBRARY="$ROOT/target/R-library"

if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
export MLFLOW_DISABLE_TELEMETRY=true
export DO_NOT_TRACK=true

bash scripts/setup.sh

printf 'quickstart: building and installing the R package into %s\n' "$R_LIBRARY"
mkdir -p "$R_LIBRARY"
R CMD INSTALL --no-test-load --library="$R_LIBRARY" rpkg >"$ROOT/target/quickstart-install.log" 2>&1 || {
  tail -n 40 "$ROOT/target/quickstart-install.log" >&2
  printf 'quickstart: error: R CMD INSTALL failed; the full log is target/quickstart-install.log\n' >&2
  exit 1
}

if [ -z "${MLFLOW_TRACKING_URI:-}" ]; then
  export MLFLOWREG_SERVER_STATE_DIR="$ROOT/.quickstart" MLFLOWREG_SERVERS=plain
  trap 'bash "$ROOT/scripts/test-servers.sh" stop >/dev/null' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  bash scripts/test-servers.sh start
  # shellcheck source=/dev/null
  source "$MLFLOWREG_SERVER_STATE_DIR/env"
  export MLFLOW_TRACKING_URI="$MLFLOWREG_TEST_TRACKING_URI"
fi

printf 'quickstart: running examples/quickstart.R against %s\n' "$MLFLOW_TRACKING_URI"
R_LIBS="$R_LIBRARY" Rscript examples/quickstart.R
