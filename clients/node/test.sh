#!/usr/bin/env bash
# Runs the Node client's tests: codec, vectors, fake-sidecar and live tests.
# The live tests need build/bin/podrelay (or $PODRELAY_BIN) and redis-server; without
# them they are skipped unless PODRELAY_REQUIRE_LIVE=1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
exec node --test test/
