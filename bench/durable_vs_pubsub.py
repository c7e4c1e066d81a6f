#!/usr/bin/env python3
"""Durable channel vs plain pub/sub through the same sidecars, in the same run.

Starts one redis-server (no persistence, so the figures compare the data paths, not the
disk) and two sidecars (pod A publishes, pod B subscribes, protocol version 2). For each
channel kind it publishes N fire-and-forget messages of SIZE bytes on pod A in large
batches and measures the time until the subscriber on pod B has all of them, then the
recovery time of an RSUB that replays M missed messages. Bounded: every wait has a
timeout. Prints one line per figure.

  python3 bench/durable_vs_pubsub.py [--n 20000] [--size 64] [--missed 10000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "clients", "python"))
from podrelay.sync_client import Client  # noqa: E402

BIN = os.environ.get("PODRELAY_BIN", os.path.join(REPO, "build", "bin", "podrelay"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} did not open")


def v2(port: int) -> Client:
    c = Client(f"127.0.0.1:{port}", hello=False, timeout=30)
    c.hello("bench", version=2)
    return c


def receive(c: Client, n: int, durable: bool, timeout: float = 120) -> int:
    got = 0
    deadline = time.monotonic() + timeout
    while got < n and time.monotonic() < deadline:
        m = c.recv_smsg(timeout=1) if durable else c.recv_msg(timeout=1)
        if m is not None:
            got += 1
    return got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--missed", type=int, default=10000)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="podrelay-durable-bench-")
    procs = []
    try:
        rport = free_port()
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL))
        wait_port(rport)
        pods = []
        for _ in range(2):
            port, admin = free_port(), free_port()
            procs.append(subprocess.Popen(
                [BIN, "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}",
                 "--redis", f"redis://127.0.0.1:{rport}", "--durable", "d:*",
                 "--durable-max-len", str(max(a.missed, a.n) * 2)],
                stderr=subprocess.DEVNULL))
            wait_port(port)
            pods.append(port)
        time.sleep(0.5)
        payload = b"x" * a.size
        for kind, channel, durable in (("pubsub", "p:bench", False),
                                       ("durable", "d:bench", True)):
            sub = v2(pods[1])
            if durable:
                sub.resume(channel)
            else:
                sub.subscribe(channel)
            pub = v2(pods[0])
            pub.ping()
            t0 = time.monotonic()
            pub.publish_many(channel, (payload for _ in range(a.n)))
            got = receive(sub, a.n, durable)
            dt = time.monotonic() - t0
            print(f"{kind}: {a.n} x {a.size} B published on pod A, {got} received on pod B "
                  f"in {dt:.2f} s = {got / dt:,.0f} msgs/s")
            sub.close()
            pub.close()
        # Recovery: an app that missed M messages comes back with its last id.
        pub = v2(pods[0])
        last = pub.publish_durable("d:recover", b"before")
        pub.publish_many("d:recover", (payload for _ in range(a.missed)))
        pub.publish_durable("d:recover", b"after")  # acked: all before it are in
        c = v2(pods[1])
        t0 = time.monotonic()
        ok = c.resume("d:recover", last)
        dt = time.monotonic() - t0
        replayed = sum(1 for f in c.pending() if f.type == "SMSG")
        print(f"recovery: RSUB replayed {replayed} missed messages (recovered={ok.recovered}) "
              f"in {dt:.2f} s")
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
