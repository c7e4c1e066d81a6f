#!/usr/bin/env bash
# Installs every Debian package podrelay needs to build, test and run its demo.
# Idempotent; run as root on Debian 12 (bookworm). The Dockerfile's build stage runs
# this same script, so CI proves the container build's dependency step too.
#
#   scripts/install-deps.sh            build + test dependencies (default)
#   scripts/install-deps.sh --runtime  only the shared libraries the daemon links against
set -euo pipefail

runtime_pkgs=(
  libhiredis0.14 libssl3 libprometheus-cpp-core1.0 ca-certificates
)
build_pkgs=(
  build-essential cmake ninja-build pkg-config git
  libboost1.81-dev libssl-dev libhiredis-dev prometheus-cpp-dev libcli11-dev doctest-dev
  clang clang-format libclang-rt-14-dev
  redis-server redis-sentinel redis-tools
  python3 iproute2 procps curl valgrind strace linux-perf
  yamllint prometheus chromium
  python3-socketio python3-redis python3-channels-redis python3-aiohttp
  ruby-actioncable ruby-redis
)

mode=${1:-build}
if [[ $mode == --runtime ]]; then
  pkgs=("${runtime_pkgs[@]}")
else
  pkgs=("${runtime_pkgs[@]}" "${build_pkgs[@]}")
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: run as root (apt-get needs it)" >&2
  exit 1
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js: the machine image may carry Node 20 already; otherwise Debian's.
if [[ $mode != --runtime ]] && ! command -v node >/dev/null; then
  missing+=(nodejs npm)
fi
if ((${#missing[@]} > 0)); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install-deps: all ${#pkgs[@]} Debian packages present"
fi
# podrelay's scripts always start their own redis-server on free loopback ports; they never
# use a system instance the package may have started on 6379.
[[ $mode == --runtime ]] && exit 0

# npm packages, exactly as pinned by each committed lockfile.
root=$(cd "$(dirname "$0")/.." && pwd)
while IFS= read -r lock; do
  dir=$(dirname "$lock")
  if [[ ! -d $dir/node_modules || $lock -nt $dir/node_modules ]]; then
    echo "install-deps: npm ci in ${dir#"$root"/}"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
done < <(find "$root" -name package-lock.json -not -path '*/node_modules/*' | sort)
echo "install-deps: done"
