#!/usr/bin/env bash
# Runs the Node client's tests: codec, vectors, fake-sidecar and live tests, then the
# Socket.IO version matrix (test/matrix/run.mjs: every install under test/versions/, with
# podrelay and with @socket.io/redis-adapter as the control).
# The live tests need build/bin/podrelay (or $PODRELAY_BIN) and redis-server; without
# them they are skipped unless PODRELAY_REQUIRE_LIVE=1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
node --test test/*.test.js
exec node test/matrix/run.mjs
