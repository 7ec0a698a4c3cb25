#!/usr/bin/env bash
# One idempotent step before `npm start` and `npm test`: installs the Debian packages adserve needs
# (as root, non-interactively), runs `npm ci` when node_modules is missing or stale, and rebuilds
# the generated protocol code, the native addon and the TypeScript only when their sources changed.
#   --build-only   skip the apt and npm steps (for `npm run build`)
#   --model NAME   also train models/NAME with `npm run train -- --preset NAME` when train/ changed
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'bootstrap: %s\n' "$*"; }

# Debian 12 packages: compilers and CMake for the addon, the OpenSSL headers its event-token sealer
# compiles against (the symbols are the node binary's own), libtorch + FAISS + BLAS it links, flatc and
# the FlatBuffers headers for the protocol, PyTorch for train/, clang with libFuzzer and sanitizers,
# redis-server for the shared-state (REDIS_URL) mode and its tests, clang-format for `npm run lint`,
# the FlatBuffers runtime of the Python client (clients/python), postgresql (15) for the catalog
# store's shared mode and its tests (they start their own cluster; the service is not used), and
# prometheus (with promtool) for the tests of the alerting rules in ops/prometheus, and chromium,
# the headless browser the admin console's test drives through playwright-core.
packages=(cmake g++ make libssl-dev libtorch-dev libfaiss-dev libopenblas-dev flatbuffers-compiler libflatbuffers-dev python3-torch clang-14 libclang-rt-14-dev redis-server clang-format python3-flatbuffers postgresql prometheus chromium)

install_packages() {
  local missing=()
  for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]}; install them as root (apt-get install ${missing[*]})" >&2
    exit 1
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# A digest of every file under the given paths, so a step reruns exactly when its inputs change.
digest() {
  find "$@" -type f -print0 2>/dev/null | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}

# Runs "$@" unless the stamp file already holds the digest; records it on success. Stamps live
# inside the outputs they vouch for, so deleting an output also forces its rebuild.
when_changed() {
  local stamp=$1 want=$2 what=$3
  shift 3
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  log "$what"
  "$@"
  mkdir -p "$(dirname "$stamp")"
  echo "$want" >"$stamp"
}

install_node_modules() {
  local want
  want=$(digest package.json package-lock.json)
  if [ -f node_modules/.adserve-lock ] && [ "$(cat node_modules/.adserve-lock)" = "$want" ]; then
    return
  fi
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >node_modules/.adserve-lock
}

generate_ts() {
  rm -rf build/gen/ts
  mkdir -p build/gen/ts
  flatc --ts -o build/gen/ts schemas/*.fbs
}

generate_python() {
  rm -rf build/gen/python
  mkdir -p build/gen/python
  flatc --python -o build/gen/python schemas/*.fbs
}

build_addon() {
  npx --no-install cmake-js build --out build/native --log-level warn
}

# libFuzzer + ASan + UBSan build of the request parsing path (no libtorch or FAISS needed).
build_fuzzer() {
  mkdir -p build/fuzz
  clang++-14 -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -Inative -Ibuild/native/gen native/fuzz/request_fuzzer.cpp native/engine/request_verifier.cpp native/engine/featurizer.cpp \
    native/engine/text.cpp native/engine/targeting.cpp native/engine/errors.cpp -o build/fuzz/request_fuzzer
}

build_ts() {
  rm -rf dist
  npx --no-install tsc -p tsconfig.json
}

build_only=false
model=
while [ $# -gt 0 ]; do
  case "$1" in
    --build-only) build_only=true ;;
    --model) model=$2; shift ;;
    *) log "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

train_model() {
  rm -rf "models/$model"
  /usr/bin/python3 -m train --preset "$model" --out "models/$model"
}

if [ "$build_only" = false ]; then
  install_packages
  install_node_modules
fi
when_changed build/gen/ts/.stamp "$(digest schemas)" "flatc: TypeScript protocol code" generate_ts
when_changed build/gen/python/.stamp "$(digest schemas)" "flatc: Python protocol code" generate_python
when_changed build/native/.stamp "$(digest CMakeLists.txt native schemas package-lock.json)" "building the native addon" build_addon
when_changed build/fuzz/.stamp "$(digest native schemas)" "building the request fuzzer" build_fuzzer
when_changed dist/.stamp "$(digest tsconfig.json src bench build/gen/ts package-lock.json)" "compiling TypeScript" build_ts
if [ -n "$model" ]; then
  when_changed "models/$model/.stamp" "$(digest train/*.py)" "training the $model model (a few minutes, once)" train_model
fi
