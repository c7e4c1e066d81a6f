#!/usr/bin/env bash
# Cross-pod chat demo on loopback: redis-server, three podrelay sidecars, two Node pods and
# one Python pod. Prints the URLs and runs until Ctrl-C.
#   ./run.sh           run the demo
#   ./run.sh --check   send a message on pod A (WebSocket), verify it arrives on pod B
#                      (WebSocket) and on the Python pod (SSE), exit 0/1
# Env: PODRELAY_BIN (default <repo>/build/bin/podrelay), REDIS_SERVER_BIN, PYTHON.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
if [ ! -d node_modules/ws ]; then
  echo "installing the demo's npm dependencies (npm ci)..." >&2
  npm ci --no-audit --no-fund >&2
fi
# exec: Ctrl-C and SIGTERM reach the Node process, which stops every child it started
exec node lib/run.mjs "$@"
