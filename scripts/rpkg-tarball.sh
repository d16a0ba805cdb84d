#!/usr/bin/env bash
# Build, install and check the R package's source tarball, as an R user on a
# machine without crates.io would get it. scripts/test.sh runs the three
# steps in order; each can be run alone after the one before it:
#
#   scripts/rpkg-tarball.sh build     stage the Rust sources (rpkg/tools/stage-rust.sh)
#                                     and run R CMD build rpkg
#   scripts/rpkg-tarball.sh install   check that configure rejects a missing or old Rust,
#                                     install the tarball with no network (in a network
#                                     namespace of its own when `unshare --net` works),
#                                     CARGO_NET_OFFLINE=true and an empty CARGO_HOME,
#                                     then check that the build left no Rust files behind
#   scripts/rpkg-tarball.sh check     R CMD check --as-cran on the tarball, using that
#                                     installation; fails on any ERROR or WARNING and on
#                                     a NOTE that rpkg/cran-comments.md does not explain
#
# Everything goes to target/rpkg-tarball/ (the tarball, install.log, lib/ and
# mlflowreg.Rcheck/). R CMD build installs a copy of rpkg/ to build the
# vignette, and MLFLOWREG_RUST_WORKSPACE makes that copy build in-tree, in the
# workspace's target directory, which takes seconds. The install step always
# compiles every crate from the vendored sources, which took 3 to 4 minutes on
# the 2-core development machine.
#
# The check runs the testthat suite, which needs the MLflow test servers:
# export MLFLOWREG_TEST_TRACKING_URI and MLFLOWREG_TEST_STRICT_URI (and the
# Azure ML test variables) as scripts/test.sh does. The examples and the
# vignette use a local store in a temporary directory. No step contacts any
# host but those servers.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/target/rpkg-tarball"

if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi

log() {
  printf 'rpkg-tarball: %s\n' "$*"
}

fail() {
  printf 'rpkg-tarball: error: %s\n' "$*" >&2
  exit 1
}

# Print the path of the one tarball in $OUT.
tarball_path() {
  local tarballs=("$OUT"/mlflowreg_*.tar.gz)
  [ -f "${tarballs[0]}" ] || fail "no tarball in $OUT; run '$0 build' first"
  [ "${#tarballs[@]}" -eq 1 ] || fail "more than one tarball in $OUT: ${tarballs[*]}"
  printf '%s\n' "${tarballs[0]}"
}

build() {
  bash "$ROOT/rpkg/tools/stage-rust.sh"
  rm -rf "$OUT"
  mkdir -p "$OUT"
  log "R CMD build rpkg"
  (cd "$OUT" && MLFLOWREG_RUST_WORKSPACE="$ROOT" R CMD build "$ROOT/rpkg")
  local tarball
  tarball="$(tarball_path)"
  log "built $tarball ($(du -h "$tarball" | cut -f1))"
  # The tarball must carry what the offline build needs, and no build output.
  local listing
  listing="$(tar -tzf "$tarball")"
  local required
  for required in mlflowreg/configure mlflowreg/src/Makevars.in \
    mlflowreg/src/rust/standalone/Cargo.toml mlflowreg/src/rust/standalone/Cargo.lock \
    mlflowreg/src/rust/standalone/vendor.tar.xz mlflowreg/src/rust/standalone/core/src/lib.rs \
    mlflowreg/inst/AUTHORS mlflowreg/inst/doc/azureml-registration.html; do
    grep -qxF "$required" <<<"$listing" || fail "$required is missing from the tarball"
  done
  if grep -E '^mlflowreg/src/(Makevars|.*\.(o|so))$|/target/|^mlflowreg/src/rust/standalone/vendor/' <<<"$listing"; then
    fail "the tarball contains the build output listed above"
  fi
}

# Run the unpacked tarball's configure in a toolchain that must be rejected,
# and check that it fails with the message MESSAGE and the install hint.
expect_configure_failure() {
  local unpacked=$1 message=$2 status=0 output
  shift 2
  output="$(cd "$unpacked" && env "$@" sh ./configure 2>&1)" || status=$?
  if [ "$status" -eq 0 ] || ! grep -qF "$message" <<<"$output" || ! grep -qF "rustup" <<<"$output"; then
    printf '%s\n' "$output" >&2
    fail "configure with $* should fail with '$message' and an install hint"
  fi
}

# configure must stop with an install hint when cargo or rustc is missing or
# rustc is too old.
check_configure_errors() {
  local unpacked=$1 tools
  tools="$(mktemp -d "${TMPDIR:-/tmp}/mlflowreg-configure-check.XXXXXX")"
  # A PATH with the tools configure uses but no cargo or rustc, and a HOME
  # without ~/.cargo/bin.
  local tool
  for tool in sh sed grep awk head dirname cat; do
    ln -s "$(command -v "$tool")" "$tools/$tool"
  done
  mkdir "$tools/home"
  printf '#!/bin/sh\necho "rustc 1.70.0 (90c541806 2023-05-31)"\n' >"$tools/old-rustc"
  chmod +x "$tools/old-rustc"
  expect_configure_failure "$unpacked" "cargo and rustc were not found" \
    PATH="$tools" HOME="$tools/home" CARGO= RUSTC=
  expect_configure_failure "$unpacked" "rustc 1.70.0 is too old" RUSTC="$tools/old-rustc"
  rm -rf "$tools"
  log "configure rejects a missing cargo and rustc 1.70.0, with an install hint"
}

install_offline() {
  local tarball cargo_home unpacked
  tarball="$(tarball_path)"
  rm -rf "$OUT/lib" "$OUT/unpacked" "$OUT/install.log"
  mkdir -p "$OUT/lib" "$OUT/unpacked"
  cargo_home="$(mktemp -d "${TMPDIR:-/tmp}/mlflowreg-empty-cargo-home.XXXXXX")"
  # R CMD INSTALL of a tarball unpacks it into a temporary directory and
  # installs from there. Unpacking it here does the same but keeps the
  # directory, so the cleanup of the Rust build can be checked afterwards.
  tar -xzf "$tarball" -C "$OUT/unpacked"
  unpacked="$OUT/unpacked/mlflowreg"
  check_configure_errors "$unpacked"

  local no_network=()
  if unshare --net true 2>/dev/null; then
    no_network=(unshare --net)
    log "installing with no network (unshare --net), CARGO_NET_OFFLINE=true and an empty CARGO_HOME"
  else
    log "NOTE: 'unshare --net' is not available, so the network stays reachable; cargo runs with --offline, CARGO_NET_OFFLINE=true and an empty CARGO_HOME"
  fi
  local status=0
  env -u CARGO_TARGET_DIR -u MLFLOWREG_RUST_WORKSPACE CARGO_HOME="$cargo_home" CARGO_NET_OFFLINE=true \
    "${no_network[@]}" R CMD INSTALL --library="$OUT/lib" "$unpacked" >"$OUT/install.log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$OUT/install.log" >&2
    rm -rf "$cargo_home"
    fail "R CMD INSTALL of the tarball failed (exit status $status); the full log is $OUT/install.log"
  fi
  grep -F 'configure: tarball build' "$OUT/install.log" \
    || fail "configure did not choose the tarball build; see $OUT/install.log"
  grep -E '^configure: using (cargo|rustc) ' "$OUT/install.log"
  grep -E 'Finished `release` profile' "$OUT/install.log"

  local leftovers
  leftovers="$(find "$cargo_home" -mindepth 1 | head -n 5)"
  rm -rf "$cargo_home"
  [ -z "$leftovers" ] || fail "the build wrote into the empty CARGO_HOME: $leftovers"
  local dir
  for dir in target vendor cargo-home; do
    [ ! -e "$unpacked/src/rust/standalone/$dir" ] \
      || fail "the build left src/rust/standalone/$dir behind"
  done
  log "installed into $OUT/lib; the Rust target directory, vendored sources and CARGO_HOME were removed"
}

check() {
  local tarball
  tarball="$(tarball_path)"
  [ -f "$OUT/install.log" ] || fail "no $OUT/install.log; run '$0 install' first"
  : "${MLFLOWREG_TEST_TRACKING_URI:?must name the plain MLflow test server (scripts/test-servers.sh)}"
  : "${MLFLOWREG_TEST_STRICT_URI:?must name the strict MLflow test server (scripts/test-servers.sh)}"
  rm -rf "$OUT/mlflowreg.Rcheck"
  log "R CMD check --as-cran $(basename "$tarball")"
  # _R_CHECK_CRAN_INCOMING_REMOTE_ and _R_CHECK_SYSTEM_CLOCK_: the parts of the
  # check that ask CRAN and a time server are left out, because this machine
  # reaches no host but the package registries. R_RD4PDF: the PDF manual is
  # set in Times without the inconsolata font, which only Debian's 1.4 GB
  # texlive-fonts-extra has.
  local status=0
  (
    cd "$OUT"
    _R_CHECK_CRAN_INCOMING_REMOTE_=FALSE \
    _R_CHECK_SYSTEM_CLOCK_=FALSE \
    _R_CHECK_TESTS_NLINES_=0 \
    R_RD4PDF=times,hyper \
    R CMD check --as-cran --install="check:$OUT/install.log" --library="$OUT/lib" "$tarball"
  ) || status=$?
  local check_log="$OUT/mlflowreg.Rcheck/00check.log"
  [ -f "$check_log" ] || fail "R CMD check wrote no $check_log (exit status $status)"
  local summary
  summary="$(grep -E '^Status: ' "$check_log" || true)"
  [ "$status" -eq 0 ] || fail "R CMD check failed with exit status $status ($summary)"
  if grep -qE 'ERROR|WARNING' <<<"$summary"; then
    fail "R CMD check: $summary; see $check_log"
  fi

  # Each NOTE must be explained in cran-comments.md, which quotes the
  # "checking ..." line of every NOTE it explains.
  local unexplained=0 line
  while IFS= read -r line; do
    if ! grep -qF "${line%% ... *}" "$ROOT/rpkg/cran-comments.md"; then
      printf 'rpkg-tarball: NOTE not explained in rpkg/cran-comments.md: %s\n' "$line" >&2
      unexplained=$((unexplained + 1))
    fi
  done < <(grep -E '^\* checking .* \.\.\. .*NOTE' "$check_log" | sed 's/^\* //')
  [ "$unexplained" -eq 0 ] || fail "$unexplained NOTE(s) of R CMD check are not explained in rpkg/cran-comments.md"
  log "R CMD check --as-cran: $summary"
}

case "${1:-}" in
  build) build ;;
  install) install_offline ;;
  check) check ;;
  *)
    printf 'usage: %s build|install|check\n' "$0" >&2
    exit 2
    ;;
esac
