#!/usr/bin/env bash
# Install what mlflowreg's tests need, skipping whatever is already present:
# Debian packages for building and testing the R package, and the Python test
# venv at <repo>/.venv (MLflow, pytest and the strict registry fixture).
# It also checks that cargo is available, but cannot install Rust.
#
# Safe to run repeatedly. With everything present it only checks, which takes
# a few seconds. Installing needs root (or sudo) for apt-get and access to the
# Debian and PyPI package registries.
#
# Environment: PYTHON selects the interpreter for a new venv (default python3,
# which must be Python 3.10 or newer for mlflow 3.17).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQUIREMENTS="$ROOT/tests/python/requirements.txt"
FIXTURE_DIR="$ROOT/tests/fixtures/strict_registry"
# Hash of the requirements and fixture sources that the venv was last built from.
STAMP="$VENV/.mlflowreg-setup.sha256"
PYTHON="${PYTHON:-python3}"

DEBIAN_PACKAGES=(
  r-base-dev
  r-cran-testthat
  r-cran-jsonlite
  r-cran-rlang
  r-cran-cli
  r-cran-tibble
  r-cran-withr
  r-cran-processx
  r-cran-codetools
)

step() {
  printf 'setup: %s\n' "$*"
}

fail() {
  printf 'setup: error: %s\n' "$*" >&2
  exit 1
}

# Run a command with its output going to LOG, and print the tail of LOG
# before failing when the command fails.
LOG="$(mktemp "${TMPDIR:-/tmp}/mlflowreg-setup.XXXXXX")"
trap 'rm -f "$LOG"' EXIT

run_logged() {
  if ! "$@" >>"$LOG" 2>&1; then
    tail -n 40 "$LOG" >&2
    fail "command failed: $*"
  fi
}

install_debian_packages() {
  local missing=() package status
  for package in "${DEBIAN_PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)"
    if [ "$status" != "install ok installed" ]; then
      missing+=("$package")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    step "Debian packages: all ${#DEBIAN_PACKAGES[@]} present"
    return
  fi

  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || fail "Debian packages missing (${missing[*]}) and not root; install them as root"
    sudo=(sudo)
  fi
  step "Debian packages: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  run_logged "${sudo[@]}" apt-get update
  run_logged "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
}

# Print the hash that decides whether the venv must be reinstalled.
setup_inputs_hash() {
  (
    cd "$ROOT"
    sha256sum tests/python/requirements.txt \
      tests/fixtures/strict_registry/pyproject.toml \
      tests/fixtures/strict_registry/*.py
  ) | sha256sum | cut -d' ' -f1
}

install_python_venv() {
  if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    step "Python venv: $VENV is broken (its interpreter does not start), recreating it"
    rm -rf "$VENV"
  fi

  if [ ! -x "$VENV/bin/python" ]; then
    command -v "$PYTHON" >/dev/null || fail "$PYTHON not found; install Python 3.10 or newer or set PYTHON"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
      || fail "$PYTHON is $("$PYTHON" --version 2>&1); mlflow 3.17 needs Python 3.10 or newer (set PYTHON)"
    step "Python venv: creating $VENV with $("$PYTHON" --version 2>&1)"
    run_logged "$PYTHON" -m venv "$VENV"
  fi

  local wanted
  wanted="$(setup_inputs_hash)"
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$wanted" ]; then
    step "Python venv: up to date ($VENV)"
    return
  fi

  step "Python venv: installing tests/python/requirements.txt and the strict registry fixture"
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  rm -f "$STAMP"
  run_logged "$VENV/bin/python" -m pip install -r "$REQUIREMENTS"
  # --no-deps: the fixture's dependencies (mlflow, PyYAML) come pinned from
  # the requirements above. --force-reinstall picks up fixture edits that
  # keep the version number.
  run_logged "$VENV/bin/python" -m pip install --no-deps --force-reinstall "$FIXTURE_DIR"
  printf '%s\n' "$wanted" >"$STAMP"
}

check_cargo() {
  if command -v cargo >/dev/null; then
    step "cargo: $(cargo --version)"
  elif [ -x "$HOME/.cargo/bin/cargo" ]; then
    step "cargo: $("$HOME/.cargo/bin/cargo" --version) at $HOME/.cargo/bin (not on PATH; scripts/test.sh adds it)"
  else
    fail "cargo not found on PATH or in $HOME/.cargo/bin; install a Rust toolchain with rustup"
  fi
}

install_debian_packages
install_python_venv
check_cargo
step "done"
