#!/usr/bin/env bash
# Configures and builds podrelay into build/ (binaries in build/bin/). Extra arguments go
# to cmake's configure step, e.g. scripts/build.sh -DPODRELAY_SANITIZE=ON.
# BUILD_DIR overrides the build directory.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f $build_dir/CMakeCache.txt ]]; then
  cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
elif (($#)); then
  cmake -S . -B "$build_dir" "$@"
fi
cmake --build "$build_dir" --parallel "$(nproc)"
