#!/usr/bin/env bash
# The quick start: installs what is needed, builds, starts a local Redis and two sidecars
# as two "pods", and shows a message published on pod A reaching a subscriber on pod B,
# with podrelay-cli. Then it keeps everything running until Ctrl-C so you can try more.
#
#   scripts/demo.sh          install, build, demo, keep running
#   scripts/demo.sh --once   same, but stop after the demo (exit 0 when the message crossed)
#
# Everything binds to 127.0.0.1 on free ports chosen at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
once=false
[[ ${1:-} == --once ]] && once=true

scripts/install-deps.sh
scripts/build.sh >/dev/null
echo "demo: built build/bin/podrelay and build/bin/podrelay-cli"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d /tmp/podrelay-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

# Starts one sidecar; sets pod_app and pod_admin. Runs in this shell (not a subshell) so the
# cleanup trap knows the pid.
start_pod() {
  pod_app=$(free_port)
  pod_admin=$(free_port)
  build/bin/podrelay --listen "127.0.0.1:$pod_app" --admin-listen "127.0.0.1:$pod_admin" \
    --redis "redis://127.0.0.1:$redis_port" --node-id "$1" 2>"$work/$1.log" &
  pids+=($!)
  for _ in $(seq 100); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "127.0.0.1:$pod_admin/readyz") == 200 ]] && return
    sleep 0.1
  done
  echo "demo: $1 did not become ready; its log: $work/$1.log" >&2
  exit 1
}
start_pod pod-a
a_port=$pod_app a_admin=$pod_admin
start_pod pod-b
b_port=$pod_app b_admin=$pod_admin
cat <<TEXT
demo: redis-server on 127.0.0.1:$redis_port
demo: pod-a sidecar: app port 127.0.0.1:$a_port, admin http://127.0.0.1:$a_admin/metrics
demo: pod-b sidecar: app port 127.0.0.1:$b_port, admin http://127.0.0.1:$b_admin/metrics
TEXT

echo "demo: on pod-b:  podrelay-cli -c 127.0.0.1:$b_port sub chat -n 1 --timeout 10"
build/bin/podrelay-cli -c "127.0.0.1:$b_port" sub chat -n 1 --timeout 10 >"$work/received" &
sub=$!
# Wait until pod-b's subscription is on Redis (one subscriber of podrelay:chat).
for _ in $(seq 100); do
  [[ $(redis-cli -p "$redis_port" PUBSUB NUMSUB podrelay:chat | tail -n 1) == 1 ]] && break
  sleep 0.1
done
echo "demo: on pod-a:  podrelay-cli -c 127.0.0.1:$a_port pub chat 'hello from pod-a'"
build/bin/podrelay-cli -c "127.0.0.1:$a_port" pub chat "hello from pod-a"
if wait "$sub"; then
  echo "demo: pod-b received: $(cat "$work/received")"
else
  echo "demo: FAILED: pod-b did not receive the message; the sidecars' logs:" >&2
  tail -n 20 "$work"/pod-*.log >&2
  exit 1
fi
echo "demo: pod-b metrics: $(curl -s "127.0.0.1:$b_admin/metrics" | grep '^podrelay_messages_delivered_total')"

$once && exit 0
cat <<TEXT

Everything keeps running until Ctrl-C. Try, in another shell:
  $root/build/bin/podrelay-cli -c 127.0.0.1:$b_port sub 'chat'
  $root/build/bin/podrelay-cli -c 127.0.0.1:$a_port pub chat 'another message'
  redis-cli -p $redis_port PUBLISH podrelay:chat 'from plain redis'
  curl -s 127.0.0.1:$a_admin/readyz
TEXT
wait
