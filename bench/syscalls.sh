#!/usr/bin/env bash
# Syscalls per message of each sidecar at a paced rate: runs `podrelay-bench --only cpu`
# (20k msgs/s, then 2k msgs/s; 64 B first at each) with the given sidecar binary, attaches
# `strace -c -f` to sidecar a and b for SECONDS during the 64 B podrelay run at RATE, and divides each process' syscall counts
# by the messages it handled meanwhile (podrelay_messages_published_total on a,
# podrelay_messages_received_total on b, read from /metrics right before and after).
# strace slows the traced processes, so more messages share a wake-up than without it:
# the figures are lower bounds, comparable between binaries measured the same way.
# Usage: bench/syscalls.sh PODRELAY_BIN [SECONDS] [RATE: 20k|2k] [BENCH_BIN]
set -euo pipefail
bin=$(readlink -f "$1")
seconds=${2:-3}
rate=${3:-20k}
bench=${4:-$(dirname "$0")/../build/bin/podrelay-bench}
case $rate in 20k) nth=1 ;; 2k) nth=4 ;; *) echo "RATE is 20k or 2k" >&2; exit 2 ;; esac
out=$(mktemp -d /tmp/podrelay-syscalls.XXXXXX)
"$bench" --only cpu --podrelay "$bin" >"$out/bench.out" 2>&1 &
bench_pid=$!
trap 'kill "$bench_pid" 2>/dev/null || true' EXIT

sidecar_pids() {  # this bench's sidecars, oldest (a) first
  for p in $(pgrep -P "$bench_pid" || true); do
    [[ $(readlink -f "/proc/$p/exe" 2>/dev/null) == "$bin" ]] && echo "$p"
  done | sort -n
}
admin_port() { tr '\0' '\n' <"/proc/$1/cmdline" | grep -A1 -- '^--admin-listen$' | tail -1 | cut -d: -f2; }
counter() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m { print $2 }'; }

# The first podrelay 64 B run at a rate starts right after that rate's first direct 64 B run
# is reported (3 repetitions per rate: the 2k runs follow three at 20k).
for _ in $(seq 1200); do
  (($(grep -c 'cpu direct: direct 64B' "$out/bench.out") >= nth)) && break
  sleep 0.1
done
sleep 1  # let the paced run settle
mapfile -t pids < <(sidecar_pids)
((${#pids[@]} == 2)) || { echo "expected 2 sidecars, found ${#pids[@]}" >&2; exit 1; }
names=(a b)
metrics=(podrelay_messages_published_total podrelay_messages_received_total)
declare -a before after
for i in 0 1; do before[i]=$(counter "$(admin_port "${pids[i]}")" "${metrics[i]}"); done
tracers=()
for i in 0 1; do
  timeout -s INT "$seconds" strace -c -f -p "${pids[i]}" -o "$out/strace-${names[i]}.txt" &
  tracers+=($!)
done
wait "${tracers[@]}" || true
for i in 0 1; do after[i]=$(counter "$(admin_port "${pids[i]}")" "${metrics[i]}"); done
for i in 0 1; do
  msgs=$(awk -v a="${after[i]}" -v b="${before[i]}" 'BEGIN { printf "%d", a - b }')
  echo "sidecar ${names[i]} @$rate msgs/s, 64 B: ${metrics[i]} +$msgs during ${seconds} s of strace"
  awk -v m="$msgs" '
    $NF == "total" { printf "  total %d syscalls, %.3f per message\n", $4, $4 / m }
    $NF != "total" && $1 ~ /^[0-9.]+$/ && $4 / m >= 0.005 {
      printf "  %-14s %8d  %.3f/msg\n", $NF, $4, $4 / m
    }' "$out/strace-${names[i]}.txt"
done
wait "$bench_pid" || true
echo "bench output and strace summaries: $out"
