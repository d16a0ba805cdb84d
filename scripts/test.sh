#!/usr/bin/env bash
# Run all of mlflowreg's tests against three local MLflow servers:
#   1. scripts/setup.sh (Debian packages for R, the Python venv .venv)
#   2. start the MLflow test servers (scripts/test-servers.sh) and the Azure ML
#      stand-ins (scripts/azure-test-servers.sh), stopped again on exit
#   3. cargo test --release --workspace
#   4. roxygen2: regenerate rpkg/NAMESPACE and rpkg/man, failing when the
#      committed ones were out of date
#   5. R CMD INSTALL of rpkg/ into target/R-library (the in-tree build)
#   6. the R package's testthat suite (rpkg/tests/testthat)
#   7. the source tarball (scripts/rpkg-tarball.sh): R CMD build, an offline
#      install with an empty CARGO_HOME, and R CMD check --as-cran, which runs
#      the testthat suite and the examples again on the installed tarball
#   8. pytest on tests/python
#
# A failing test step does not stop the later ones. The script exits non-zero
# when any step failed. A failure of setup or of the server start ends the run
# at once, because no test can pass without them. pytest runs last and prints
# the run's last line ("N passed ..."), which CI reads, so the summary of the
# earlier steps comes before it.
#
# Tests find the servers through MLFLOWREG_TEST_TRACKING_URI (plain MLflow
# registry), MLFLOWREG_TEST_STRICT_URI (strict registry fixture),
# MLFLOWREG_TEST_S3_URI (artifacts in moto's S3, with multipart uploads) and
# the MLFLOWREG_TEST_AZUREML_* variables (Azure ML gateway double and
# Azurite).
#
# The fixtures are found through MLFLOWREG_TEST_FIXTURES and
# MLFLOWREG_TEST_PYTHON, and the fake credentials of
# tests/fixtures/test-secrets.env are exported for the tests to send.
#
# The script runs itself a second time with all output copied to a log. When
# that run ends, the log and the servers' logs are searched for every token
# and SAS signature the Azure ML double handed out, and scripts/check-secrets.sh
# searches the log, the servers' logs and the fixtures' logs
# (target/test-logs) for the fake credentials. Any match fails the run.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

# Both can be moved, so that two test runs on one machine do not share
# servers or an R library.
R_LIBRARY="${MLFLOWREG_R_LIBRARY:-$ROOT/target/R-library}"
export MLFLOWREG_R_LIBRARY="$R_LIBRARY"
SERVER_STATE_DIR="${MLFLOWREG_SERVER_STATE_DIR:-$ROOT/.test-servers}"
export MLFLOWREG_SERVER_STATE_DIR="$SERVER_STATE_DIR"
FAILED_STEPS=()

export MLFLOWREG_TEST_FIXTURES="$ROOT/tests/fixtures"
export MLFLOWREG_TEST_PYTHON="$ROOT/.venv/bin/python"
export MLFLOWREG_TEST_LOG_DIR="$ROOT/target/test-logs"
set -a
# shellcheck source=/dev/null
source "$ROOT/tests/fixtures/test-secrets.env"
set +a

if [ -z "${MLFLOWREG_TEST_OUTPUT_LOG:-}" ]; then
  rm -rf "$MLFLOWREG_TEST_LOG_DIR"
  mkdir -p "$MLFLOWREG_TEST_LOG_DIR"
  export MLFLOWREG_TEST_OUTPUT_LOG="${TMPDIR:-/tmp}/mlflowreg-test-output.$$.log"
  bash "${BASH_SOURCE[0]}" "$@" 2>&1 | tee "$MLFLOWREG_TEST_OUTPUT_LOG"
  status=${PIPESTATUS[0]}
  secrets_file="$SERVER_STATE_DIR/azureml/issued-secrets"
  if [ ! -s "$secrets_file" ]; then
    printf 'test.sh: error: %s is missing or empty, so the secrets check could not run\n' "$secrets_file" >&2
    status=1
  else
    logs=("$MLFLOWREG_TEST_OUTPUT_LOG" "$SERVER_STATE_DIR"/*/server.log "$SERVER_STATE_DIR"/azureml/*.log)
    # -l prints file names only, so a leaked secret is not printed once more.
    if leaked="$(grep -l -F -f "$secrets_file" "${logs[@]}" 2>/dev/null)"; then
      printf 'test.sh: error: a token or SAS signature appears in: %s\n' "$leaked" >&2
      status=1
    fi
  fi
  # Prints only file names, and nothing when no credential is found.
  if ! bash "$ROOT/scripts/check-secrets.sh" "$MLFLOWREG_TEST_OUTPUT_LOG" "$MLFLOWREG_TEST_LOG_DIR" \
    "$SERVER_STATE_DIR"; then
    printf 'test.sh: error: a fake test credential appears in the files above\n' >&2
    status=1
  fi
  rm -f "$MLFLOWREG_TEST_OUTPUT_LOG"
  exit "$status"
fi

# What this run printed so far, for tests/python/test_secrets.py.
export MLFLOWREG_TEST_RUN_LOG="$MLFLOWREG_TEST_OUTPUT_LOG"
export MLFLOW_DISABLE_TELEMETRY=true
export DO_NOT_TRACK=true

# rustup puts cargo in ~/.cargo/bin, which a non-login shell may lack on PATH.
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi

announce() {
  printf '\n==> %s\n' "$*"
}

# Print a hash of the files roxygen2 writes, names included, so that added
# and removed help pages count as changes.
roxygen_output_hash() {
  (cd "$ROOT/rpkg" && ls man && cat NAMESPACE DESCRIPTION man/*.Rd) | sha256sum
}

# Regenerate rpkg/NAMESPACE and rpkg/man from the roxygen comments in rpkg/R.
# Fail when that changed them: the committed files were out of date. The
# regenerated files stay, for the next steps and to be committed.
document_rpkg() {
  local before
  before="$(roxygen_output_hash)"
  Rscript -e 'suppressPackageStartupMessages(roxygen2::roxygenise("rpkg", load_code = "source"))' || return 1
  if [ "$(roxygen_output_hash)" != "$before" ]; then
    printf 'test.sh: rpkg/NAMESPACE, rpkg/DESCRIPTION or rpkg/man were out of date with the roxygen comments in rpkg/R.\n' >&2
    printf 'test.sh: they are regenerated now; review them with git diff and commit them.\n' >&2
    return 1
  fi
}

# Run a test step: announce it, run it, and record it in FAILED_STEPS when it
# exits non-zero. Return the step's exit status.
run_step() {
  local name=$1 started=$SECONDS status=0
  shift
  announce "$name"
  "$@" || status=$?
  if [ "$status" -eq 0 ]; then
    printf '==> %s: passed (%d s)\n' "$name" "$((SECONDS - started))"
  else
    printf '==> %s: FAILED with exit status %d (%d s)\n' "$name" "$status" "$((SECONDS - started))"
    FAILED_STEPS+=("$name (exit status $status)")
  fi
  return "$status"
}

# Quiet on success, so that pytest's summary stays the last line of the run.
# shellcheck disable=SC2317  # called from the EXIT trap
stop_servers() {
  local output
  if ! output="$(bash "$ROOT/scripts/azure-test-servers.sh" stop 2>&1)"; then
    printf '%s\n' "$output" >&2
    printf 'test.sh: error: stopping Azurite and the Azure ML gateway double failed\n' >&2
  fi
  if ! output="$(bash "$ROOT/scripts/test-servers.sh" stop 2>&1)"; then
    printf '%s\n' "$output" >&2
    printf 'test.sh: error: stopping the MLflow test servers failed\n' >&2
  fi
}

announce "setup (scripts/setup.sh)"
bash "$ROOT/scripts/setup.sh" || {
  printf 'test.sh: error: scripts/setup.sh failed, no tests were run\n' >&2
  exit 1
}

# Stop the servers on every exit. The INT and TERM traps turn Ctrl-C and kill
# into a normal exit so that the EXIT trap runs. The servers run in their own
# sessions, so Ctrl-C in this terminal does not reach them.
trap stop_servers EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

announce "start MLflow test servers (scripts/test-servers.sh start)"
bash "$ROOT/scripts/test-servers.sh" start || {
  printf 'test.sh: error: the MLflow test servers did not start, no tests were run\n' >&2
  exit 1
}
set -a
# shellcheck source=/dev/null
source "$SERVER_STATE_DIR/env"
set +a
cat "$SERVER_STATE_DIR/env"

announce "start Azurite and the Azure ML gateway double (scripts/azure-test-servers.sh start)"
bash "$ROOT/scripts/azure-test-servers.sh" start || {
  printf 'test.sh: error: Azurite or the Azure ML gateway double did not start, no tests were run\n' >&2
  exit 1
}
set -a
# shellcheck source=/dev/null
source "$SERVER_STATE_DIR/azureml/env"
set +a
printf 'MLFLOWREG_TEST_AZUREML_URI=%s\n' "$MLFLOWREG_TEST_AZUREML_URI"

run_step "cargo test --release --workspace" cargo test --release --workspace

# The R steps start R from this shell, not from Python, and R code should not
# start Python: R puts /usr/lib/x86_64-linux-gnu on LD_LIBRARY_PATH, and a
# pyenv Python started with that setting fails to import modules such as ssl.
# Tests that need both languages start R from Python (tests/python/conftest.py).
run_step "roxygen2 (rpkg/NAMESPACE, rpkg/man)" document_rpkg

mkdir -p "$R_LIBRARY"
if run_step "R CMD INSTALL rpkg" R CMD INSTALL --library="$R_LIBRARY" rpkg; then
  # testthat 3 (Debian 12 ships 3.1.6): with stop_on_failure = TRUE, test_dir()
  # raises an error after a failing test, so Rscript exits non-zero.
  run_step "R testthat (rpkg/tests/testthat)" env R_LIBS="$R_LIBRARY" Rscript -e \
    'testthat::test_dir("rpkg/tests/testthat", package = "mlflowreg", load_package = "installed", stop_on_failure = TRUE)'
else
  announce "R testthat (rpkg/tests/testthat)"
  printf '==> R testthat: not run, because R CMD INSTALL failed\n'
  FAILED_STEPS+=("R testthat (not run: R CMD INSTALL failed)")
fi

# The tarball steps build on each other, so a failure skips the later ones.
tarball_steps=(
  "R source tarball: stage and R CMD build:build"
  "R source tarball: offline install, empty CARGO_HOME:install"
  "R CMD check --as-cran on the tarball:check"
)
tarball_failed=""
for entry in "${tarball_steps[@]}"; do
  name="${entry%:*}"
  if [ -n "$tarball_failed" ]; then
    announce "$name"
    printf '==> %s: not run, because %s failed\n' "$name" "$tarball_failed"
    FAILED_STEPS+=("$name (not run: $tarball_failed failed)")
  elif ! run_step "$name" bash "$ROOT/scripts/rpkg-tarball.sh" "${entry##*:}"; then
    tarball_failed="$name"
  fi
done

announce "summary of the steps before pytest"
if [ "${#FAILED_STEPS[@]}" -eq 0 ]; then
  printf 'All steps before pytest passed.\n'
else
  printf 'Failed steps (this script exits non-zero after pytest):\n'
  printf '  - %s\n' "${FAILED_STEPS[@]}"
fi

# Not through run_step, which would print a line after pytest's summary.
announce "pytest tests/python"
pytest_status=0
"$ROOT/.venv/bin/pytest" -q tests/python || pytest_status=$?

if [ "${#FAILED_STEPS[@]}" -ne 0 ]; then
  exit 1
fi
exit "$pytest_status"
