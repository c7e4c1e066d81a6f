#!/usr/bin/env bash
# socket.io + @socket.io/redis-adapter (ioredis and node-redis), unmodified, across three
# servers: directly on one redis-server (the control), then each server on its own
# podrelay pod's RESP port. The sidecar variants are skipped only when `podrelay --help`
# does not list --resp-listen; the reason is printed. Needs `npm ci` here
# (scripts/install-deps.sh runs it), redis-server, and $PODRELAY_BIN or
# $PODRELAY_BUILD_DIR/bin/podrelay (default <repo>/build/bin/podrelay).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [[ ! -d node_modules/@socket.io/redis-adapter ]]; then
  echo "integration/resp_node: node_modules missing (run scripts/install-deps.sh or npm ci)" >&2
  exit 1
fi
bin=${PODRELAY_BIN:-${PODRELAY_BUILD_DIR:-../../build}/bin/podrelay}
if ! "$bin" --help 2>&1 | grep -q -- '--resp-listen'; then
  echo "integration/resp_node: sidecar variants will be skipped: $bin --help does not list --resp-listen"
fi
exec timeout 600 node --test --test-concurrency=1 adapter.test.mjs
