#!/usr/bin/env bash
# Runs clang-tidy-14 with the root .clang-tidy over the sidecar/ sources listed in
# $BUILD_DIR/compile_commands.json (default build/, made by scripts/build.sh) and fails
# when any warning points into sidecar/. Headers are checked through the sources that
# include them; a warning repeated by several sources is counted once.
# Arguments: the sources to check instead of all, e.g. scripts/tidy.sh sidecar/redis/*.cpp
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build_dir=${BUILD_DIR:-build}
tidy=${CLANG_TIDY:-clang-tidy-14}
db=$build_dir/compile_commands.json
if [[ ! -f $db ]]; then
  echo "tidy.sh: $db not found (run scripts/build.sh first)" >&2
  exit 1
fi
if (($#)); then
  files=("$@")
else
  mapfile -t files < <(python3 -c '
import json, sys
for e in json.load(open(sys.argv[1])):
    f = e["file"]
    if "/sidecar/" in f: print(f)' "$db" | sort -u)
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# GCC builds the project; clang only reads the flags, so unknown GCC options are no error.
printf '%s\n' "${files[@]}" |
  xargs -P "$(nproc)" -n 1 "$tidy" -p "$build_dir" --quiet \
    --extra-arg=-Wno-unknown-warning-option >>"$out" 2>/dev/null || true
warnings=$(grep -E "^$root/sidecar/[^:]+:[0-9]+:[0-9]+: (warning|error):" "$out" | sort -u || true)
if [[ -n $warnings ]]; then
  printf '%s\n' "$warnings"
  echo "tidy.sh: $(printf '%s\n' "$warnings" | wc -l) warning(s) in sidecar/" >&2
  exit 1
fi
echo "tidy.sh: clean (${#files[@]} sources)"
