#!/usr/bin/env bash
# Offline validation of podrelay's deployment material: Dockerfile, k8s/ manifests, alerts.
#
#   k8s/test.sh            run everything (from any directory)
#
# Needs: yamllint, python3, node + npm (apt: yamllint python3 nodejs npm). Optional, and
# reported as skipped when absent: kubectl (renders the kustomizations; any kubectl >= 1.27
# has kustomize built in) and promtool (apt: prometheus; unit-tests the alerts).
# The first run installs tools/manifest-check/node_modules with `npm ci` from the committed
# lockfile; later runs need no network.
#
# Each checker also runs its own self-tests, which break a copy of the real files one way at a
# time and expect the matching failure, so a check that silently stops checking is caught.
# Ends with "k8s: N passed, N failed, N skipped"; exit status 1 if anything failed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PYTHONDONTWRITEBYTECODE=1
MC=tools/manifest-check
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

passed=0 failed=0 skipped=0
failures=()

# run NAME CMD...: run a check, show its output only when it fails.
run() {
  local name=$1
  shift
  if "$@" >"$TMP/out" 2>&1; then
    passed=$((passed + 1))
    echo "ok    $name"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAIL  $name"
    sed 's/^/      /' "$TMP/out" | tail -n 60
  fi
}

# expect_fail NAME PATTERN CMD...: the command must fail and print PATTERN.
expect_fail() {
  local name=$1 pattern=$2
  shift 2
  if "$@" >"$TMP/out" 2>&1; then
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAIL  $name (the check passed on broken input)"
  elif ! grep -qE -- "$pattern" "$TMP/out"; then
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAIL  $name (failed, but without /$pattern/)"
    sed 's/^/      /' "$TMP/out" | tail -n 20
  else
    passed=$((passed + 1))
    echo "ok    $name"
  fi
}

skip() {
  skipped=$((skipped + 1))
  echo "skip  $1"
}

need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  failed=$((failed + 1))
  failures+=("tool $1")
  echo "FAIL  $1 is not installed ($2)"
  return 1
}

# --- tools ------------------------------------------------------------------------------------
have_yamllint=1 have_node=1 have_python=1
need yamllint "apt-get install yamllint" || have_yamllint=0
need node "apt-get install nodejs npm" || have_node=0
need python3 "apt-get install python3" || have_python=0

if ((have_node)); then
  # Install from the lockfile only when needed, so later runs work offline.
  if [[ ! -d $MC/node_modules || $MC/package-lock.json -nt $MC/node_modules/.package-lock.json ]]; then
    run "npm ci (tools/manifest-check)" npm ci --prefix "$MC" --no-audit --no-fund --loglevel=error
  fi
  [[ -d $MC/node_modules/kubernetes-models ]] || have_node=0
fi

# --- (a) yamllint -------------------------------------------------------------------------------
if ((have_yamllint)); then
  run "yamllint k8s/ (strict)" yamllint --strict -c k8s/.yamllint k8s/
  mkdir -p "$TMP/lint"
  printf 'a: 1\nb: yes\nc:   [1,2]\n' >"$TMP/lint/bad.yaml"
  expect_fail "yamllint rejects bad YAML" "truthy" yamllint --strict -c k8s/.yamllint "$TMP/lint"
fi

# --- (b) + (d) schemas and podrelay policy ---------------------------------------------------------
if ((have_node)); then
  run "manifest-check self-tests (each rule can fail)" node --test "$MC/check.test.mjs"
  run "manifest-check k8s/ (every file as written)" node "$MC/check.mjs" k8s
  run "every alert has a promtool test and a README entry" \
    node "$MC/check.mjs" --extract-rules "$TMP/podrelay-rules.yaml" \
    --alert-tests k8s/monitoring/alerts_test.yaml --readme k8s/README.md k8s/monitoring/prometheusrule.yaml

  if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
    while IFS= read -r kfile; do
      dir=$(dirname "$kfile")
      grep -q '^kind: Component' "$kfile" && continue # rendered through the examples that use it
      flags=()
      [[ $dir == k8s/examples/patch-* ]] && flags=(--expect-podrelay)
      if kubectl kustomize "$dir" >"$TMP/rendered.yaml" 2>"$TMP/render.err"; then
        run "manifest-check rendered $dir" node "$MC/check.mjs" "${flags[@]}" --stdin "rendered $dir" <"$TMP/rendered.yaml"
      else
        failed=$((failed + 1))
        failures+=("render $dir")
        echo "FAIL  kubectl kustomize $dir"
        sed 's/^/      /' "$TMP/render.err"
      fi
    done < <(find k8s -name kustomization.yaml | sort)
  else
    skip "rendering kustomizations (kubectl not found; each file was still checked as written)"
  fi
fi

# --- alerts -------------------------------------------------------------------------------------------
if ((have_node)) && [[ -s $TMP/podrelay-rules.yaml ]]; then
  if command -v promtool >/dev/null 2>&1; then
    cp k8s/monitoring/alerts_test.yaml "$TMP/"
    run "promtool check rules" promtool check rules "$TMP/podrelay-rules.yaml"
    run "promtool test rules (alert unit tests)" bash -c "cd '$TMP' && promtool test rules alerts_test.yaml"
    # The unit tests must notice a broken alert: misspell a metric name.
    sed -i 's/podrelay_redis_connected/podrelay_redis_connectd/' "$TMP/podrelay-rules.yaml"
    expect_fail "promtool tests catch a broken alert" "FAILED" bash -c "cd '$TMP' && promtool test rules alerts_test.yaml"
  else
    skip "promtool tests of the alerts (apt-get install prometheus for promtool)"
  fi
fi

# --- (c) Dockerfile --------------------------------------------------------------------------------
if ((have_python)); then
  run "Dockerfile structure" python3 k8s/check_dockerfile.py
  run "Dockerfile check self-tests (each rule can fail)" python3 -m unittest discover -s k8s -p 'test_*.py'
fi

echo
if ((failed)); then
  echo "failed: ${failures[*]}"
fi
echo "k8s: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
