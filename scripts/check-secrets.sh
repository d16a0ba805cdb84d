#!/usr/bin/env bash
# Search test output and logs for the fake credentials the tests send.
#
#   scripts/check-secrets.sh FILE_OR_DIR...
#
# The credentials are the values in tests/fixtures/test-secrets.env (a
# token, a password and a SAS signature). Prints each file that contains
# one, with the variable name and the number of matching lines, never the
# matching text, and exits 1 when any was found; prints nothing and exits 0
# otherwise. Directories are searched recursively; missing paths are
# skipped.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECRETS_FILE="$ROOT/tests/fixtures/test-secrets.env"

found=0
while IFS='=' read -r name value; do
  case "$name" in '' | '#'*) continue ;; esac
  for path in "$@"; do
    [ -e "$path" ] || continue
    # -c counts matching lines per file; -F takes the value as plain text.
    while IFS= read -r match; do
      file="${match%:*}"
      count="${match##*:}"
      [ "$count" = 0 ] && continue
      printf 'check-secrets: %s contains %s (%s lines)\n' "$file" "$name" "$count"
      found=1
    done < <(grep -rcF -- "$value" "$path" 2>/dev/null || true)
  done
done <"$SECRETS_FILE"
exit "$found"
