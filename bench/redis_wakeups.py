#!/usr/bin/env python3
"""What Redis spends per message at a paced rate when the publisher and the subscriber are
one process (as podrelay-bench's direct path: one bench process holds both connections)
and when they are two (as two pods, or as the two sidecars on the podrelay path).

Starts its own redis-server on a free loopback port, publishes 64-byte messages at RATE
msgs/s for SECONDS with plain RESP (pipelined as due, like podrelay-bench's paced
publisher), and reads redis-server's CPU time from /proc before and after. The two
layouts alternate, REPS times each. Standard library only.

    python3 bench/redis_wakeups.py [--rate 2000] [--seconds 8] [--reps 2]
"""
import argparse
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

PAYLOAD = b"x" * 64
PUBLISH = b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$64\r\n" + PAYLOAD + b"\r\n"
SUBSCRIBE = b"*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n"


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def subscriber(port, seconds):
    """Child process: subscribes and reads until the parent closes its pipe."""
    s = connect(port)
    s.sendall(SUBSCRIBE)
    s.recv(4096)  # the subscribe confirmation
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    end = time.time() + seconds
    while time.time() < end:
        r, _, _ = select.select([s, sys.stdin], [], [], 0.5)
        if sys.stdin in r:
            return
        if r:
            s.recv(65536)


def run(port, redis_pid, layout, rate, seconds):
    child = sub = None
    if layout == "two processes":
        child = subprocess.Popen([sys.executable, __file__, "--subscriber", str(port),
                                  str(seconds + 10)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        if child.stdout.readline().strip() != "ready":
            raise SystemExit("subscriber process did not start")
    else:
        sub = connect(port)
        sub.sendall(SUBSCRIBE)
        sub.recv(4096)
    pub = connect(port)
    socks = [pub] + ([sub] if sub else [])
    total = int(rate * seconds)
    before = cpu_seconds(redis_pid)
    start = time.time()
    sent = 0
    while sent < total:
        due = min(total, int((time.time() - start) * rate) + 1)
        if sent < due:
            pub.sendall(PUBLISH * (due - sent))
            sent = due
        ready, _, _ = select.select(socks, [], [], max(0.0, start + sent / rate - time.time()))
        for s in ready:
            s.recv(65536)
    time.sleep(0.3)
    used = cpu_seconds(redis_pid) - before
    pub.close()
    if sub:
        sub.close()
    if child:
        child.stdin.close()
        child.wait(timeout=10)
    return used * 1e6 / total


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--subscriber":
        subscriber(int(sys.argv[2]), float(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=2000)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--redis-server", default=shutil.which("redis-server") or "redis-server")
    args = ap.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tmp = tempfile.mkdtemp(prefix="podrelay-redis-wakeups-")
    redis = subprocess.Popen([args.redis_server, "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", tmp],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                connect(port).close()
                break
            except OSError:
                time.sleep(0.05)
        results = {"one process": [], "two processes": []}
        for _ in range(args.reps):
            for layout in results:
                results[layout].append(run(port, redis.pid, layout, args.rate, args.seconds))
        print(f"redis-server CPU per message, 64 B @ {args.rate:g} msgs/s, "
              f"{args.seconds:g} s per run ({os.getloadavg()[0]:.2f} load average)")
        for layout, xs in results.items():
            print(f"  publisher and subscriber in {layout:<13}: "
                  + ", ".join(f"{x:.1f}" for x in xs) + " us/msg")
    finally:
        redis.kill()
        redis.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
