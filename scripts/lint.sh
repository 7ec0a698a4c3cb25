#!/usr/bin/env bash
# Every static check `npm test` runs first: the layering of src/ (.dependency-cruiser.cjs), ESLint
# (eslint.config.mjs) and the formatters (scripts/format.sh). All three run even when one fails, so
# one run lists every problem; `npm run format` fixes the formatting ones.
set -uo pipefail
cd "$(dirname "$0")/.."

failed=()
check() {
  local name=$1
  shift
  "$@" || failed+=("$name")
}

check layering npx --no-install depcruise src bench --config .dependency-cruiser.cjs
check eslint npx --no-install eslint .
check format bash scripts/format.sh --check

if [ ${#failed[@]} -gt 0 ]; then
  echo "lint: failed: ${failed[*]}" >&2
  exit 1
fi
