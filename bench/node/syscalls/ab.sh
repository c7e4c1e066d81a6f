#!/usr/bin/env bash
# CPU and context switches per message of each sidecar and of Redis in the Socket.IO case
# (run.sh with MEASURE=cpu), for two sidecar binaries run alternately REPS times each, then
# the medians side by side: interleaving spreads the machine's drift over both.
# Usage: bench/node/syscalls/ab.sh OLD_BIN NEW_BIN [RATE=1000] [SECONDS=4] [REPS=5]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
old=$1 new=$2 rate=${3:-1000} seconds=${4:-4} reps=${5:-5}
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for i in $(seq "$reps"); do
  for side in old new; do
    bin=$old
    [[ $side == new ]] && bin=$new
    line=$(MEASURE=cpu "$here/run.sh" "$bin" "$rate" "$seconds")
    echo "rep $i $side: $line"
    # fields 3..8: a us, a cs, b us, b cs, redis us, redis cs
    echo "$side $(awk '{ print $3, $4, $5, $6, $7, $8 }' <<<"$line")" >>"$results"
  done
done
python3 - "$results" "$rate" <<'PY'
import statistics, sys
rows = {"old": [], "new": []}
for line in open(sys.argv[1]):
    side, *vals = line.split()
    rows[side].append([float(v) for v in vals])
names = ["sidecar a CPU us/msg", "sidecar a switches/msg", "sidecar b CPU us/msg",
         "sidecar b switches/msg", "redis CPU us/msg", "redis switches/msg"]
print(f"medians of {len(rows['old'])} at {sys.argv[2]} msgs/s | old | new | new/old")
for i, n in enumerate(names):
    o = statistics.median(r[i] for r in rows["old"])
    w = statistics.median(r[i] for r in rows["new"])
    print(f"{n:24} | {o:7.2f} | {w:7.2f} | {w / o if o else float('nan'):.2f}x")
a = [statistics.median(r[0] + r[2] for r in rows[s]) for s in ("old", "new")]
print(f"{'sidecars a+b CPU us/msg':24} | {a[0]:7.2f} | {a[1]:7.2f} | {a[1] / a[0]:.2f}x")
PY
