#!/usr/bin/env bash
# Install what is missing, build the R package, and run examples/quickstart.R:
# fit a model, log it, register it, load it back by models:/ and predict.
#
# With MLFLOW_TRACKING_URI set, the example talks to that server. Without it,
# the example uses the local store ./mlruns in the repository root (R mlflow's
# default), so no server runs. Neither case installs or runs Python; Python
# mlflow 3 can read the local store later with MLFLOW_ALLOW_FILE_STORE=true.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
R_LIBRARY="$ROOT/target/R-library"

if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
export MLFLOW_DISABLE_TELEMETRY=true
export DO_NOT_TRACK=true

bash scripts/setup.sh --package-only

printf 'quickstart: building and installing the R package into %s\n' "$R_LIBRARY"
mkdir -p "$R_LIBRARY"
R CMD INSTALL --no-test-load --library="$R_LIBRARY" rpkg >"$ROOT/target/quickstart-install.log" 2>&1 || {
  tail -n 40 "$ROOT/target/quickstart-install.log" >&2
  printf 'quickstart: error: R CMD INSTALL failed; the full log is target/quickstart-install.log\n' >&2
  exit 1
}

printf 'quickstart: running examples/quickstart.R against %s\n' "${MLFLOW_TRACKING_URI:-the local store $ROOT/mlruns}"
R_LIBS="$R_LIBRARY" Rscript examples/quickstart.R
