#!/usr/bin/env bash
# Installs what is needed, builds, and runs every test of podrelay. This is the README's
# test command and exactly what CI runs (.ci/run). Run as root on Debian 12.
#
# Steps: unit tests (doctest), clang-tidy, an ASan/UBSan build running the unit tests and the
# integration suite against real redis-server and podrelay processes, the client suites
# (Node, Python) against real sidecars, the quick start and the browser demo, deployment
# checks (Dockerfile, k8s), and bounded fuzzing runs. Every step prints its own result; the
# script stops at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start=$SECONDS
step() { printf '\n=== %s (t=%ss)\n' "$*" "$((SECONDS - start))"; }

step "install dependencies"
scripts/install-deps.sh

step "build (warnings are errors)"
scripts/build.sh

step "unit tests"
build/bin/podrelay-tests

step "clang-tidy (the root .clang-tidy; any warning in sidecar/ fails)"
scripts/tidy.sh

step "ASan/UBSan build"
BUILD_DIR=build-asan scripts/build.sh -DPODRELAY_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DPODRELAY_BENCH=OFF
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

step "unit tests under ASan/UBSan"
build-asan/bin/podrelay-tests

step "integration tests (real redis-server, sanitized podrelay processes)"
PODRELAY_SANITIZED=1 PODRELAY_BIN=$root/build-asan/bin/podrelay \
  PODRELAY_CLI_BIN=$root/build-asan/bin/podrelay-cli integration/run.sh

step "memory after a connection flood (release build: ASan's quarantine hides RSS)"
(cd integration && python3 -m unittest -v test_hostile.FloodTest)

step "Node client tests (real sidecars)"
PODRELAY_REQUIRE_LIVE=1 clients/node/test.sh

step "the README's quick start (scripts/demo.sh --once: Redis, two sidecars, a message crossing)"
scripts/demo.sh --once

step "cross-pod chat demo in a real browser (Chromium via playwright-core)"
examples/chat/test.sh

step "deployment checks (Dockerfile, k8s manifests, alerts, the image's binaries)"
k8s/test.sh
package_dir=$(mktemp -d)
scripts/package.sh "$package_dir"
rm -rf "$package_dir"

step "benchmark smoke runs (tiny counts; no timing assertions)"
bench/smoke.sh
bench/node/smoke.sh

step "fuzzing (libFuzzer + ASan/UBSan, bounded)"
scripts/fuzz.sh "${PODRELAY_FUZZ_SECONDS:-60}"

printf '\nall tests passed in %ss\n' "$((SECONDS - start))"
