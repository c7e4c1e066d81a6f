#!/usr/bin/env bash
# Copies the two shipped binaries (build/bin/podrelay, build/bin/podrelay-cli) to DEST
# without their debug information, and checks that the copies load and run. The Dockerfile's
# build stage runs this, and the test command runs it too, so CI proves the image's step.
#
#   scripts/package.sh DEST        (BUILD_DIR overrides build/)
#
# Only the debug sections go (strip --strip-debug): the symbol table stays, so a crash
# backtrace from the image still names the functions.
set -euo pipefail
cd "$(dirname "$0")/.."
if (($# != 1)); then
  echo "usage: scripts/package.sh DEST" >&2
  exit 2
fi
dest=$1
bin=${BUILD_DIR:-build}/bin
mkdir -p "$dest"
for b in podrelay podrelay-cli; do
  if [[ ! -x $bin/$b ]]; then
    echo "package: $bin/$b not found; run scripts/build.sh first" >&2
    exit 1
  fi
  strip --strip-debug -o "$dest/$b" "$bin/$b"
done
"$dest/podrelay" --version
"$dest/podrelay-cli" --help >/dev/null
for b in podrelay podrelay-cli; do
  printf 'package: %s %s bytes (build/bin: %s bytes)\n' "$dest/$b" \
    "$(stat -c %s "$dest/$b")" "$(stat -c %s "$bin/$b")"
done
