#!/usr/bin/env bash
# Prettier for the TypeScript and JavaScript (and the console's HTML and CSS), clang-format
# (.clang-format) for the C++.
#   --check   fail, listing the files, when any file is not formatted (what `npm run lint` runs)
#   --write   format them in place (`npm run format`)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
mapfile -t scripts < <(find src test bench scripts clients \( -name '*.ts' -o -name '*.mts' \) | LC_ALL=C sort)
scripts+=(eslint.config.mjs vitest.config.mts .dependency-cruiser.cjs)
mapfile -t -O "${#scripts[@]}" scripts < <(find console \( -name '*.js' -o -name '*.html' -o -name '*.css' \) | LC_ALL=C sort)
mapfile -t cpp < <(find native bench \( -name '*.cpp' -o -name '*.h' \) | LC_ALL=C sort)
case "$mode" in
  --check)
    status=0
    npx --no-install prettier --check --log-level warn "${scripts[@]}" || status=1
    clang-format --dry-run -Werror "${cpp[@]}" || status=1
    exit $status
    ;;
  --write)
    npx --no-install prettier --write --log-level warn "${scripts[@]}"
    clang-format -i "${cpp[@]}"
    ;;
  *)
    echo "usage: $0 --check | --write" >&2
    exit 2
    ;;
esac
