#!/usr/bin/env bash
# Smoke test of podrelay-bench: a --quick run (a few seconds) must exit 0 and write JSON
# holding every section with rows. No timing assertions: the figures of a quick run mean
# nothing. A section that says "unsupported": "<reason>" (the daemon lacks what it measures,
# e.g. resp before --resp-listen exists) passes with podrelay = null in every row and a note;
# any other null podrelay figure fails. Usage: bench/smoke.sh [BUILD_DIR]   (default build/)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
json=/tmp/x.json
rm -f "$json"
timeout 120 "$build_dir/bin/podrelay-bench" --quick --json "$json" >/dev/null
python3 - "$json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
want = ["throughput", "latency", "fanout", "cpu", "memory", "cluster", "instructions", "resp"]
sections = doc.get("sections", {})
missing = [s for s in want if s not in sections]
if missing:
    sys.exit(f"smoke: sections missing from JSON: {missing}")
for name in want:
    s = sections[name]
    if not s.get("rows"):
        sys.exit(f"smoke: section {name} has no rows")
    if s.get("errors"):
        sys.exit(f"smoke: section {name} reported errors: {s['errors']}")
    unsupported = s.get("unsupported")
    if unsupported is not None:
        if not isinstance(unsupported, str) or not unsupported.strip():
            sys.exit(f"smoke: section {name} is unsupported without a reason: {unsupported!r}")
        if not s.get("notes"):
            sys.exit(f"smoke: unsupported section {name} has no note")
    for row in s["rows"]:
        for key in ("metric", "unit", "direct", "podrelay", "ratio"):
            if key not in row:
                sys.exit(f"smoke: {name} row lacks {key}: {row}")
        if unsupported is None and row["podrelay"] is None:
            sys.exit(f"smoke: {name} row without a podrelay figure: {row}")
        if unsupported is not None and row["podrelay"] is not None:
            sys.exit(f"smoke: {name} is unsupported but has a podrelay figure: {row}")
if not doc.get("ok"):
    sys.exit("smoke: bench reported ok=false")
def summary(n):
    s = sections[n]
    return f"{n}: {len(s['rows'])} rows" + (" (unsupported)" if "unsupported" in s else "")
print("smoke: ok (" + ", ".join(summary(n) for n in want) + ")")
PY

# The durable-channel bench (Python): --quick must exit 0 with every row measured for the
# direct and durable paths, and for plain pub/sub wherever it has the figure (not memory
# retained or recovery: plain pub/sub keeps nothing). About 10 s.
djson=/tmp/durable-bench-smoke.json
rm -f "$djson"
# The same binary as its own baseline: only checks that the fourth column is filled.
timeout 90 python3 bench/durable_vs_pubsub.py --quick --podrelay "$build_dir/bin/podrelay" \
  --baseline-podrelay "$build_dir/bin/podrelay" --json "$djson" >/dev/null
python3 - "$djson" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
rows = doc.get("rows") or []
want = ["used_memory", "MEMORY USAGE", "msgs/s, 64 B", "msgs/s, 1 KiB", "latency p50",
        "latency p99,", "achieved publish rate", "recovery of", "bytes sent to Redis"]
for w in want:
    if not any(w in r["metric"] for r in rows):
        sys.exit(f"smoke: durable bench has no row for {w!r}")
for r in rows:
    kept = "memory" in r["metric"].lower() or r["metric"].startswith("recovery")
    for path in ("direct", "durable") + (() if kept else ("pubsub",)):
        if not isinstance(r.get(path), (int, float)):
            sys.exit(f"smoke: durable bench row without a {path} figure: {r}")
    if not kept and not isinstance(r.get("durable-baseline"), (int, float)):
        sys.exit(f"smoke: durable bench row without a baseline figure: {r}")
if not doc.get("ok"):
    sys.exit(f"smoke: durable bench reported ok=false: {doc.get('notes')}")
print(f"smoke: durable bench ok ({len(rows)} rows)")
PY

# Redis's own cost with one or two client processes (bench/redis_wakeups.py): runs and
# prints both layouts.
wout=$(timeout 60 python3 bench/redis_wakeups.py --rate 500 --seconds 0.5 --reps 1)
for layout in "one process" "two processes"; do
  grep -q "in $layout *: [0-9.]* us/msg" <<<"$wout" || { echo "smoke: redis_wakeups.py printed no '$layout' figure: $wout" >&2; exit 1; }
done
echo "smoke: redis_wakeups ok"
