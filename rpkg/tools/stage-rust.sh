#!/usr/bin/env bash
# Stage the Rust sources into rpkg/ so that `R CMD build rpkg` makes a source
# tarball that installs with no network access:
#
#   rpkg/tools/stage-rust.sh && R CMD build rpkg
#
# It writes, all ignored by git:
#   rpkg/src/rust/standalone/Cargo.toml     the R crate as a workspace of its own,
#                                           with src/rust/src/lib.rs as its library
#                                           and the core crate at core/
#   rpkg/src/rust/standalone/Cargo.lock     the repository's Cargo.lock, pruned to
#                                           that workspace (same versions)
#   rpkg/src/rust/standalone/core/          the core crate as `cargo package` ships it
#   rpkg/src/rust/standalone/vendor.tar.xz  every dependency, from `cargo vendor`
#   rpkg/inst/AUTHORS                       authors and licenses of the vendored crates
#
# rpkg/configure builds from these when it runs outside this repository (from
# the tarball); inside the repository it builds the workspace crate in place.
#
# Crates that no platform R runs on compiles (WebAssembly, UEFI, 32-bit and
# MSVC Windows) keep only their Cargo.toml, which cargo still reads to resolve
# the lock file. This cuts the vendored sources by about a third.
#
# vendor.tar.xz is rebuilt only when the pruned Cargo.lock or this script
# changes; compressing it takes about a minute on 2 cores.
#
# Needs cargo and either access to crates.io or a cargo registry cache that
# already holds every locked crate, plus Rscript with jsonlite for AUTHORS.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RPKG="$ROOT/rpkg"
OUT="$RPKG/src/rust/standalone"
VENDOR_TARBALL="$OUT/vendor.tar.xz"
VENDOR_STAMP="$OUT/vendor.sha256"
# Targets of R's binary builds and of the platforms R is commonly built on.
# A vendored crate that none of them needs is reduced to its manifest.
R_TARGETS=(
  x86_64-unknown-linux-gnu
  aarch64-unknown-linux-gnu
  powerpc64le-unknown-linux-gnu
  s390x-unknown-linux-gnu
  riscv64gc-unknown-linux-gnu
  x86_64-unknown-linux-musl
  aarch64-unknown-linux-musl
  x86_64-unknown-freebsd
  x86_64-apple-darwin
  aarch64-apple-darwin
  x86_64-pc-windows-gnu
  aarch64-pc-windows-gnullvm
)

if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi

step() {
  printf 'stage-rust: %s\n' "$*"
}

fail() {
  printf 'stage-rust: error: %s\n' "$*" >&2
  exit 1
}

command -v cargo >/dev/null || fail "cargo not found; install a Rust toolchain with rustup"
command -v Rscript >/dev/null || fail "Rscript not found; install R (Debian: r-base-dev)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/mlflowreg-stage.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Print the value of KEY (a string) from the [SECTION] table of a Cargo.toml.
toml_string() {
  local file=$1 section=$2 key=$3
  awk -v section="[$section]" -v key="$key" '
    /^\[/ { in_section = ($0 == section); next }
    in_section && $1 == key && $2 == "=" {
      value = $0
      sub(/^[^=]*= *"/, "", value)
      sub(/".*$/, "", value)
      print value
      exit
    }' "$file"
}

# Print a Rust version such as 1.89 with three parts: 1.89.0.
full_version() {
  case "$1" in
    *.*.*) printf '%s\n' "$1" ;;
    *.*) printf '%s.0\n' "$1" ;;
    *) printf '%s.0.0\n' "$1" ;;
  esac
}

# Print the larger of two versions such as 1.85 and 1.89.0, with three parts.
max_version() {
  printf '%s\n%s\n' "$(full_version "$1")" "$(full_version "$2")" | sort -V | tail -n 1
}

VERSION="$(toml_string "$ROOT/Cargo.toml" workspace.package version)"
EDITION="$(toml_string "$ROOT/Cargo.toml" workspace.package edition)"
RUST_VERSION="$(toml_string "$ROOT/Cargo.toml" workspace.package rust-version)"
LICENSE="$(toml_string "$ROOT/Cargo.toml" workspace.package license)"
[ -n "$VERSION" ] && [ -n "$EDITION" ] && [ -n "$RUST_VERSION" ] && [ -n "$LICENSE" ] \
  || fail "Cargo.toml's [workspace.package] must set version, edition, rust-version and license"
grep -q "rustc >= $RUST_VERSION\b" "$RPKG/DESCRIPTION" \
  || fail "rpkg/DESCRIPTION's SystemRequirements must say 'rustc >= $RUST_VERSION', the workspace's rust-version"

step "packaging the core crate (cargo package)"
rm -rf "$OUT/core" "$OUT/Cargo.toml" "$OUT/Cargo.lock"
mkdir -p "$OUT/core"
cargo package --manifest-path "$ROOT/Cargo.toml" -p mlflowreg --no-verify --allow-dirty \
  --target-dir "$WORK/target" --quiet
tar -xzf "$WORK/target/package/mlflowreg-$VERSION.crate" -C "$WORK"
(
  cd "$WORK/mlflowreg-$VERSION"
  # cargo's own bookkeeping, not part of the crate's sources.
  rm -f .cargo_vcs_info.json Cargo.toml.orig Cargo.lock
  cp -R . "$OUT/core/"
)
# Profiles apply only at a workspace root: standalone/Cargo.toml gets them.
awk '/^\[/ { drop = ($0 ~ /^\[profile\./) } !drop { print }' \
  "$WORK/mlflowreg-$VERSION/Cargo.toml" >"$OUT/core/Cargo.toml"

step "writing src/rust/standalone/Cargo.toml"
# The R crate's manifest gets the workspace's values filled in, a library
# path back to src/rust/src, the core crate at core/ and the workspace's
# profiles. Its empty [workspace] table stops cargo from looking for a
# workspace in the directories above the unpacked tarball.
{
  printf '# Written by rpkg/tools/stage-rust.sh from src/rust/Cargo.toml; do not edit.\n'
  awk -v version="$VERSION" -v edition="$EDITION" -v rust_version="$RUST_VERSION" \
    -v license="$LICENSE" '
    /^\[/ { section = $0 }
    section == "[package]" && $1 == "version.workspace" { print "version = \"" version "\""; next }
    section == "[package]" && $1 == "edition.workspace" { print "edition = \"" edition "\""; next }
    section == "[package]" && $1 == "license.workspace" {
      print "license = \"" license "\""
      print "rust-version = \"" rust_version "\""
      next
    }
    section == "[package]" && $1 ~ /\.workspace$/ { next }
    section == "[lib]" && /^\[lib\]/ { print; print "path = \"../src/lib.rs\""; next }
    section == "[dependencies]" && $1 == "mlflowreg" { print "mlflowreg = { path = \"core\" }"; next }
    { print }' "$RPKG/src/rust/Cargo.toml"
  printf '\n'
  awk '/^\[/ { keep = ($0 ~ /^\[profile\./) } keep { print }' "$ROOT/Cargo.toml"
  printf '\n[workspace]\n'
} >"$OUT/Cargo.toml"
grep -q '^path = "core"\|mlflowreg = { path = "core" }' "$OUT/Cargo.toml" \
  || fail "src/rust/Cargo.toml has no 'mlflowreg = { path = ... }' dependency to point at core/"

# Cargo prunes the copied lock file to the standalone workspace (dropping,
# for example, the core's dev-dependencies) and changes no locked version.
cp "$ROOT/Cargo.lock" "$OUT/Cargo.lock"
cargo metadata --manifest-path "$OUT/Cargo.toml" --format-version 1 >/dev/null

stamp="$(cat "$OUT/Cargo.lock" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"
if [ -f "$VENDOR_TARBALL" ] && [ -f "$VENDOR_STAMP" ] && [ "$(cat "$VENDOR_STAMP")" = "$stamp" ]; then
  step "vendor.tar.xz is up to date"
  tar -xJf "$VENDOR_TARBALL" -C "$WORK"
else
  rm -f "$VENDOR_TARBALL" "$VENDOR_STAMP"
  step "vendoring the dependencies (cargo vendor)"
  cargo vendor --manifest-path "$OUT/Cargo.toml" --locked --versioned-dirs --quiet \
    "$WORK/vendor" >/dev/null
fi

VENDOR_CONFIG=(
  --config "source.crates-io.replace-with='vendored-sources'"
  --config "source.vendored-sources.directory='$WORK/vendor'"
)

# Crates (as directory names, name-version) that some platform in R_TARGETS
# compiles, for the library or for a build script or procedural macro.
needed="$WORK/needed-crates"
for target in "${R_TARGETS[@]}"; do
  cargo tree --manifest-path "$OUT/Cargo.toml" "${VENDOR_CONFIG[@]}" --offline --locked \
    -e normal,build --target "$target" --prefix none --format '{p}' \
    | awk '{ sub(/^v/, "", $2); print $1 "-" $2 }'
done | sort -u >"$needed"

max_rust_version="$(full_version "$RUST_VERSION")"
kept=0
stubbed=0
for dir in "$WORK"/vendor/*/; do
  crate="$(basename "$dir")"
  if grep -qxF "$crate" "$needed"; then
    crate_rust_version="$(toml_string "$dir/Cargo.toml" package rust-version)"
    if [ -n "$crate_rust_version" ]; then
      max_rust_version="$(max_version "$max_rust_version" "$crate_rust_version")"
    fi
    kept=$((kept + 1))
    continue
  fi
  if [ "$(find "$dir" -mindepth 1 -maxdepth 1 | wc -l)" -le 2 ]; then
    stubbed=$((stubbed + 1))
    continue # stubbed already, in a vendor.tar.xz that was reused
  fi
  # Keep the manifest and the package checksum that Cargo.lock pins, and drop
  # the per-file checksums, which cargo would otherwise verify.
  package_checksum="$(sed -n 's/.*"package":\("[0-9a-f]*"\|null\).*/\1/p' "$dir/.cargo-checksum.json")"
  [ -n "$package_checksum" ] || fail "no package checksum in $crate/.cargo-checksum.json"
  find "$dir" -mindepth 1 -maxdepth 1 ! -name Cargo.toml -exec rm -rf {} +
  printf '{"files":{},"package":%s}\n' "$package_checksum" >"$dir/.cargo-checksum.json"
  stubbed=$((stubbed + 1))
done
step "vendored crates: $kept compiled on some R platform, $stubbed reduced to their manifest"

if [ "$max_rust_version" != "$(full_version "$RUST_VERSION")" ]; then
  fail "a locked dependency needs rustc $max_rust_version; raise rust-version in Cargo.toml's [workspace.package] and 'rustc >= ...' in rpkg/DESCRIPTION to $max_rust_version"
fi

# Resolves the whole graph from the vendored sources alone, so a missing or
# inconsistent crate fails here and not on a user's offline machine.
cargo metadata --manifest-path "$OUT/Cargo.toml" "${VENDOR_CONFIG[@]}" --offline --locked \
  --format-version 1 >"$WORK/metadata.json"

if [ ! -f "$VENDOR_TARBALL" ]; then
  step "compressing vendor.tar.xz"
  # Fixed owners, order and times, so that the same lock file gives the same bytes.
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='2020-01-01 00:00:00Z' \
    -C "$WORK" -cf - vendor | xz -T2 -6 >"$VENDOR_TARBALL.tmp"
  mv "$VENDOR_TARBALL.tmp" "$VENDOR_TARBALL"
  printf '%s\n' "$stamp" >"$VENDOR_STAMP"
fi
step "vendor.tar.xz: $(du -h "$VENDOR_TARBALL" | cut -f1)"

step "writing inst/AUTHORS"
mkdir -p "$RPKG/inst"
Rscript --vanilla - "$WORK/metadata.json" "$RPKG/inst/AUTHORS" <<'EOF'
args <- commandArgs(trailingOnly = TRUE)
metadata <- jsonlite::fromJSON(args[[1]], simplifyVector = FALSE)
crates <- Filter(function(p) !is.null(p$source), metadata$packages)
crates <- crates[order(vapply(crates, function(p) p$name, ""), vapply(crates, function(p) p$version, ""))]
entries <- vapply(crates, function(p) {
  authors <- unlist(p$authors)
  if (length(authors) == 0) {
    authors <- sprintf("the %s authors (the crate names none)", p$name)
  }
  license <- if (is.null(p$license)) "see the crate's license file" else p$license
  paste0(
    p$name, " ", p$version, "\n",
    "  License: ", license, "\n",
    paste0("  Author: ", authors, collapse = "\n"), "\n"
  )
}, "")
header <- c(
  "The mlflowreg source package includes the Rust crates below, vendored in",
  "src/rust/standalone/vendor.tar.xz. Those the build platform needs are",
  "compiled into the package's shared library. Their authors and licenses are",
  "as each crate's Cargo.toml states; the crate sources hold the license texts.",
  "tools/stage-rust.sh in the mlflowreg repository generates this file.",
  ""
)
writeLines(c(header, entries), args[[2]])
EOF
step "done: $(grep -c '^  License:' "$RPKG/inst/AUTHORS") vendored crates; now run: R CMD build rpkg"
