#!/usr/bin/env bash
# Runs the Python codec tests and the integration suite against the real binaries
# (build/bin/podrelay, build/bin/podrelay-cli; override with PODRELAY_BIN,
# PODRELAY_CLI_BIN or PODRELAY_BUILD_DIR). Needs redis-server and redis-cli on PATH.
# Exits non-zero if anything fails.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export PYTHONDONTWRITEBYTECODE=1

for tool in redis-server redis-cli; do
  if ! command -v "$tool" >/dev/null; then
    echo "integration/run.sh: $tool not found (apt-get install redis-server redis-tools)" >&2
    exit 1
  fi
done

status=0
echo "== client codec tests (clients/python/tests)"
python3 -m unittest discover -s clients/python/tests -p 'test_*.py' -v || status=1
echo "== integration tests (integration/)"
python3 -m unittest discover -s integration -p 'test_*.py' -v || status=1
echo "== Node peers on the RESP port (integration/resp_node)"
integration/resp_node/test.sh || status=1
exit $status
