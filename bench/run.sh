#!/usr/bin/env bash
# Run the benchmark: mlflowreg (R), the Python mlflow client and curl side by
# side against one loopback MLflow server, and write the figures into
# BENCHMARKS.md (see bench/bench.py for what is measured).
#
#   bash bench/run.sh [bench.py options, such as --scenarios model,dir]
#
# Installs what is missing (scripts/setup.sh), builds and installs the R
# package in release mode, starts an MLflow server on 127.0.0.1 with its
# state in .bench-server/ (4 workers, MLflow's default), and stops it at the
# end, also on failure or Ctrl-C. Needs about 4 GiB of free disk (a 1 GiB
# test file and the server's copies of it, deleted between runs) and takes
# several minutes. It is not part of scripts/test.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
R_LIBRARY="$ROOT/target/R-library"
STATE_DIR="$ROOT/.bench-server"
SERVER_WORKERS=4

if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
export MLFLOW_DISABLE_TELEMETRY=true
export DO_NOT_TRACK=true

bash scripts/setup.sh
command -v curl >/dev/null || {
  printf 'bench: error: curl not found; install the Debian package curl\n' >&2
  exit 1
}

printf 'bench: building and installing the R package into %s\n' "$R_LIBRARY"
mkdir -p "$R_LIBRARY" target
R CMD INSTALL --library="$R_LIBRARY" rpkg >"$ROOT/target/bench-install.log" 2>&1 || {
  tail -n 40 "$ROOT/target/bench-install.log" >&2
  printf 'bench: error: R CMD INSTALL failed; the full log is target/bench-install.log\n' >&2
  exit 1
}

export MLFLOWREG_SERVER_STATE_DIR="$STATE_DIR" MLFLOWREG_SERVERS=plain MLFLOWREG_SERVER_WORKERS="$SERVER_WORKERS"
trap 'bash "$ROOT/scripts/test-servers.sh" stop >/dev/null' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
bash scripts/test-servers.sh start
# shellcheck source=/dev/null
source "$STATE_DIR/env"

"$ROOT/.venv/bin/python" bench/bench.py \
  --tracking-uri "$MLFLOWREG_TEST_TRACKING_URI" \
  --server-artifacts "$STATE_DIR/plain/artifacts" \
  --server-workers "$SERVER_WORKERS" \
  --r-library "$R_LIBRARY" \
  --command "bash bench/run.sh${*:+ $*}" \
  "$@"
