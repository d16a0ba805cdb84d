#!/usr/bin/env bash
# Install what mlflowreg's tests need, skipping whatever is already present:
# Debian packages for building and testing the R package, nginx and openssl
# for the HTTPS gateway fixture, the Python test venv at <repo>/.venv
# (MLflow, pytest and the strict registry fixture), and Azurite (Microsoft's
# Azure Storage emulator, from npm) at <repo>/.azurite.
# It also checks that cargo is available, but cannot install Rust.
#
# Safe to run repeatedly. With everything present it only checks, which takes
# a few seconds. Installing needs root (or sudo) for apt-get and access to the
# Debian, PyPI and npm package registries.
#
# Environment: PYTHON selects the interpreter for a new venv (default python3,
# which must be Python 3.10 or newer for mlflow 3.17).
#
# Usage: scripts/setup.sh [--package-only]
#   --package-only  install only what building and using the R package
#                   needs, without the test tools (Python venv, Azurite), as
#                   scripts/quickstart.sh does.
set -euo pipefail

WITH_TEST_TOOLS=1
case "${1:-}" in
  "") ;;
  --package-only) WITH_TEST_TOOLS=0 ;;
  *)
    printf 'usage: %s [--package-only]\n' "$0" >&2
    exit 2
    ;;
esac

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
  nginx
  openssl
  curl
  # Documentation, the vignette and R CMD check --as-cran of the source
  # tarball (scripts/rpkg-tarball.sh): roxygen2 writes NAMESPACE and man/,
  # knitr, rmarkdown and pandoc build the vignette, texlive the PDF manual,
  # qpdf, tidy and devscripts (checkbashisms) serve checks that --as-cran
  # turns on.
  r-cran-roxygen2
  r-cran-knitr
  r-cran-rmarkdown
  pandoc
  texlive-latex-base
  texlive-latex-recommended
  texlive-fonts-recommended
  qpdf
  tidy
  devscripts
  # rpkg/tools/stage-rust.sh compresses the vendored crates with xz.
  xz-utils
)

# Azurite 3.36 and later need Node.js 21 or newer; 3.35.0 runs on the
# Node.js 18 of Debian 12 as well as on newer ones.
AZURITE_VERSION=3.35.0
AZURITE_DIR="$ROOT/.azurite"

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
  # The nginx package starts a system nginx on port 80 unless policy-rc.d
  # forbids it; the tests only run their own nginx on loopback ports.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod +x "$policy"
    made_policy=1
  fi
  run_logged "${sudo[@]}" apt-get update
  run_logged "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
  if [ "$made_policy" = 1 ]; then
    "${sudo[@]}" rm -f "$policy"
  fi
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

# Node.js and npm come from Debian when no `npm` is on PATH; a Node.js
# installed another way (with its own npm) is used as it is.
install_azurite() {
  if ! command -v npm >/dev/null; then
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
      command -v sudo >/dev/null || fail "npm is missing and this is not root; install the Debian packages nodejs and npm"
      sudo=(sudo)
    fi
    step "Node.js: installing the Debian packages nodejs and npm"
    export DEBIAN_FRONTEND=noninteractive
    run_logged "${sudo[@]}" apt-get update
    run_logged "${sudo[@]}" apt-get install -y --no-install-recommends nodejs npm
  fi
  local installed
  installed="$(node -p "require('$AZURITE_DIR/node_modules/azurite/package.json').version" 2>/dev/null || true)"
  if [ "$installed" = "$AZURITE_VERSION" ] && [ -x "$AZURITE_DIR/node_modules/.bin/azurite-blob" ]; then
    step "Azurite: $AZURITE_VERSION present ($AZURITE_DIR)"
    return
  fi
  step "Azurite: installing azurite@$AZURITE_VERSION from npm into $AZURITE_DIR"
  mkdir -p "$AZURITE_DIR"
  run_logged npm install --prefix "$AZURITE_DIR" --no-audit --no-fund --no-save "azurite@$AZURITE_VERSION"
}

install_debian_packages
if [ "$WITH_TEST_TOOLS" -eq 1 ]; then
  install_python_venv
  install_azurite
else
  step "Python venv and Azurite: skipped (--package-only)"
fi
check_cargo
step "done"
