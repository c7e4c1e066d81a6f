#!/usr/bin/env bash
# Runs the Python codec tests and the integration suite against the real binaries
# (build/bin/podrelay, build/bin/podrelay-cli; override with PODRELAY_BIN,
# PODRELAY_CLI_BIN or PODRELAY_BUILD_DIR). Needs redis-server and redis-cli on PATH.
# Exits non-zero if anything fails.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export PYTHONDONTWRITEBYTECODE=1

status=0
echo "== client codec tests (clients/python/tests)"
python3 -m unittest discover -s clients/python/tests -p 'test_*.py' -v || status=1
echo "== integration tests (integration/)"
python3 -m unittest discover -s integration -p 'test_*.py' -v || status=1
exit $status
