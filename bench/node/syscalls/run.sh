#!/usr/bin/env bash
# Syscalls per message of each sidecar when every message is its own wake-up (the
# Socket.IO case at 1,000-2,000 broadcasts/s): a local redis-server, two sidecars, a Node
# publisher on sidecar a (pub.mjs) and a subscriber on sidecar b; `strace -c -f` on both
# sidecars for SECONDS in the middle of the run, counts divided by the messages published
# meanwhile (RATE x SECONDS). strace slows the traced process; compare binaries measured
# the same way, one after the other.
# MEASURE=cpu: no strace; instead the CPU time (utime + stime, all threads) and context
# switches of each sidecar and of redis-server over the same window, per message (what
# bench/node/syscalls/ab.sh compares across binaries, interleaved).
# Usage: bench/node/syscalls/run.sh [PODRELAY_BIN] [RATE=1000] [SECONDS=2] [noecho|echo]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(readlink -f "${1:-$here/../../../build/bin/podrelay}")
rate=${2:-1000}
seconds=${3:-2}
mode=${4:-noecho}
out=$(mktemp -d /tmp/podrelay-syscalls-node.XXXXXX)
read -r rport a_port b_port a_admin b_admin < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no >"$out/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
"$bin" --listen "127.0.0.1:$a_port" --admin-listen "127.0.0.1:$a_admin" --redis "redis://127.0.0.1:$rport" --log-level warn 2>"$out/a.log" &
a_pid=$!
pids+=($a_pid)
"$bin" --listen "127.0.0.1:$b_port" --admin-listen "127.0.0.1:$b_admin" --redis "redis://127.0.0.1:$rport" --log-level warn 2>"$out/b.log" &
b_pid=$!
pids+=($b_pid)
for port in "$a_admin" "$b_admin"; do
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done
node "$here/sub.mjs" "127.0.0.1:$b_port" $((seconds + 4)) >"$out/sub.out" &
sub=$!
sleep 0.5
node "$here/pub.mjs" "127.0.0.1:$a_port" "$rate" $((seconds + 2)) "$mode" &
pub=$!
sleep 1
msgs=$((rate * seconds))
if [[ ${MEASURE:-strace} == cpu ]]; then
  redis_pid=${pids[0]}
  # utime + stime in clock ticks, and voluntary + involuntary switches over every thread.
  sample() {
    local pid=$1 ticks cs
    ticks=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    cs=$(cat /proc/"$pid"/task/*/status | awk '/ctxt_switches/ { n += $2 } END { print n }')
    echo "$ticks $cs"
  }
  declare -A before
  for p in "$a_pid" "$b_pid" "$redis_pid"; do before[$p]=$(sample "$p"); done
  sleep "$seconds"
  hz=$(getconf CLK_TCK)
  line="$(basename "$bin") $rate/s"
  for p in "$a_pid" "$b_pid" "$redis_pid"; do
    read -r t0 c0 <<<"${before[$p]}"
    read -r t1 c1 < <(sample "$p")
    line+=$(awk -v t="$((t1 - t0))" -v c="$((c1 - c0))" -v m="$msgs" -v hz="$hz" \
      'BEGIN { printf " %.1f %.2f", t / hz * 1e6 / m, c / m }')
  done
  wait "$pub" "$sub"
  echo "$line  (us/msg switches/msg: sidecar a, sidecar b, redis; $(cat "$out/sub.out"))"
  exit 0
fi
timeout -s INT "$seconds" strace -q -c -f -p "$a_pid" -o "$out/strace-a.txt" &
ta=$!
timeout -s INT "$seconds" strace -q -c -f -p "$b_pid" -o "$out/strace-b.txt" &
tb=$!
wait "$ta" "$tb" || true
wait "$pub" "$sub"
echo "$(basename "$bin") ($bin), $rate msgs/s, $mode, $(cat "$out/sub.out")"
for side in a b; do
  awk -v m="$msgs" -v side="$side" '
    $NF == "total" { total = $4 }
    $NF != "total" && $1 ~ /^[0-9.]+$/ && $4 / m >= 0.01 { rows = rows sprintf("  %-12s %.2f\n", $NF, $4 / m) }
    END { printf "sidecar %s: %.2f syscalls per message\n%s", side, total / m, rows }
  ' "$out/strace-$side.txt"
done
echo "logs and strace summaries: $out"
