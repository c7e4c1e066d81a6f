#!/usr/bin/env bash
# Tests of the chat demo: the browser test (Chromium via playwright-core, screenshot in
# <repo>/artifacts/chat-cross-pod.png) and ./run.sh --check. Exits non-zero on failure.
# Needs: node >= 18, redis-server, python3, /usr/bin/chromium (or CHROMIUM_PATH), and the
# sidecar at <repo>/build/bin/podrelay (or PODRELAY_BIN).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
if [ ! -d node_modules/ws ] || [ ! -d node_modules/playwright-core ]; then
  npm ci --no-audit --no-fund || exit 1
fi
status=0
echo "== browser test (node --test test/)"
timeout 300 node --test test/ || status=1
echo "== run.sh --check"
timeout 120 ./run.sh --check || status=1
if [ "$status" -eq 0 ]; then echo "chat demo: all tests passed"; else echo "chat demo: FAILED" >&2; fi
exit "$status"
