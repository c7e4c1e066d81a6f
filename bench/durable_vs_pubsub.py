#!/usr/bin/env python3
"""Durable channels vs plain pub/sub through two sidecars vs XADD/XREAD straight to Redis.

One run starts one redis-server (no persistence: the figures compare data paths, not the
disk) and two sidecars (pod A publishes, pod B subscribes, protocol version 2), then
measures, for the three paths of bench/durable/paths.py, side by side:

- memory: Redis `used_memory` delta and `MEMORY USAGE` of the stream per 1,000 retained
  64 B entries (durable channel's stream vs a stream filled by XADD directly);
- throughput: N messages delivered end to end as fast as an end-to-end window allows
  (at most WINDOW published but not yet delivered), median of REPS alternating runs;
- latency: a paced publisher at a fixed rate, send time (CLOCK_MONOTONIC, one machine) in
  the payload, percentiles of delivery time - send time after a warm-up;
- recovery: an RSUB that replays M missed messages vs an XRANGE of M entries.

The publisher of throughput and latency runs is a forked child process, the subscriber
the parent, so each gets its own interpreter. Every loop is bounded in count and time.
No figure is asserted; `--quick` runs small counts to keep the tool from rotting.

  python3 bench/durable_vs_pubsub.py [--quick] [--json FILE] [--podrelay PATH]
                                     [--baseline-podrelay PATH]

With --baseline-podrelay, two more sidecars of that binary join the same Redis and the
throughput and latency sections also run the durable path through them, interleaved with
the others: a fourth column, "durable (baseline)", and the ratio durable / baseline.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "clients", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from podrelay import protocol as p  # noqa: E402
from podrelay.sync_client import Client  # noqa: E402

from durable.paths import PATHS, Endpoints, Publisher, Subscriber  # noqa: E402
from durable.resp import RespError, RespReader, command  # noqa: E402

STAMP = struct.Struct("<QQ")  # send time (ns, CLOCK_MONOTONIC), sequence number
MAX_LEN = 1_000_000           # sidecars' --durable-max-len: no trimming inside a run
WINDOW = 4096
BASELINE = "durable-baseline"
RUN_LIMIT_S = 60.0
CTX = mp.get_context("fork")


# --- processes ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{what} not ready within {timeout} s")


def ready(admin_port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz", timeout=1) as r:
        return r.status == 200


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores, /proc/stat), to tell how much
    of a run's CPU went to processes that are not ours."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def self_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


class Redis:
    """A blocking RESP connection for set-up and measurement commands (one thread)."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), 10)
        self.reader = RespReader()
        self.pending: list = []

    def call(self, *args):
        self.sock.sendall(command(*args))
        while not self.pending:
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("Redis closed the connection")
            self.pending.extend(self.reader.feed(data))
        r = self.pending.pop(0)
        if isinstance(r, RespError):
            raise r
        return r

    def used_memory(self) -> int:
        info = self.call("INFO", "memory").decode()
        return int(next(line.split(":")[1] for line in info.splitlines()
                        if line.startswith("used_memory:")))

    def net_input_bytes(self) -> int:
        info = self.call("INFO", "stats").decode()
        return int(next(line.split(":")[1] for line in info.splitlines()
                        if line.startswith("total_net_input_bytes:")))

    def stream_key_of(self, channel: str) -> bytes:
        """The durable channel's stream key (`<prefix>{<channel>}`): the key of type stream
        whose name holds `{channel}`."""
        cursor, found = b"0", []
        while True:
            cursor, keys = self.call("SCAN", cursor, "MATCH", f"*{{{channel}}}*", "COUNT", 1000)
            found += [k for k in keys if self.call("TYPE", k) == b"stream"]
            if cursor == b"0":
                break
        if len(found) != 1:
            raise RuntimeError(f"expected one stream for {channel}, found {found}")
        return found[0]


class Stack:
    """redis-server and sidecars A and B on free loopback ports; stop() kills them all.
    Owned by the main thread of the parent process (forked publishers only read `ep`)."""

    def __init__(self, podrelay: str, tmp: str, baseline: str | None = None):
        self.procs: list = []
        self.tmp = tmp
        self.redis_port = free_port()
        self._start(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--dir", tmp], subprocess.DEVNULL)
        wait_until(lambda: Redis(self.redis_port).call("PING") == b"PONG", "redis-server")
        self.pods = [self._sidecar(podrelay) for _ in range(2)]
        self.ep = Endpoints(self.redis_port, self.pods[0], self.pods[1], MAX_LEN)
        self.names = ["redis", "sidecar_a", "sidecar_b"]
        self.base_ep = None
        if baseline:
            base = [self._sidecar(baseline) for _ in range(2)]
            self.base_ep = Endpoints(self.redis_port, base[0], base[1], MAX_LEN)
            self.names += ["baseline_a", "baseline_b"]

    def _sidecar(self, binary: str) -> int:
        port, admin = free_port(), free_port()
        self._start([binary, "--listen", f"127.0.0.1:{port}",
                     "--admin-listen", f"127.0.0.1:{admin}",
                     "--redis", f"redis://127.0.0.1:{self.redis_port}",
                     "--durable", "d:*", "--durable-max-len", str(MAX_LEN),
                     "--log-level", "warn"],
                    open(os.path.join(self.tmp, f"sidecar-{port}.log"), "w"))
        wait_until(lambda: ready(admin), f"sidecar on {port}")
        return port

    def _start(self, argv, log) -> None:
        self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))

    def cpu(self) -> dict:
        return {n: proc_cpu_s(pr.pid) for n, pr in zip(self.names, self.procs)}

    def stop(self) -> None:
        for pr in reversed(self.procs):
            pr.terminate()
        for pr in self.procs:
            try:
                pr.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pr.kill()


# --- one measured run ---------------------------------------------------------------------
def _lower_timer_slack() -> None:
    # Linux' default 50 us timer slack would move every paced send by up to 50 us.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK, 1 ns
    except (OSError, AttributeError):
        pass


def publisher_child(path, ep, name, size, n, rate, delivered, start_ns, out_q) -> None:
    """Child process: publish n messages, saturated (window-limited) or paced at rate/s."""
    _lower_timer_slack()
    pub = Publisher(path, ep, name)
    cpu0 = self_cpu_s()
    deadline = time.monotonic() + RUN_LIMIT_S
    sent, max_lag_ns = 0, 0
    if rate is None:
        frame = pub.encode(b"x" * size)
        start_ns.value = time.monotonic_ns()
        while sent < n and time.monotonic() < deadline:
            k = min(WINDOW - (sent - delivered.value), n - sent, 256)
            if k < min(256, n - sent):
                pub.drain()
                time.sleep(0.0001)
                continue
            pub.sock.sendall(frame * k)
            sent += k
            pub.drain()
    else:
        pad = b"x" * (size - STAMP.size)
        interval_ns = int(1e9 / rate)
        t0 = time.monotonic_ns() + 1_000_000
        start_ns.value = t0
        while sent < n:
            due = t0 + sent * interval_ns
            now = time.monotonic_ns()
            if due > now:
                time.sleep((due - now) / 1e9)
            now = time.monotonic_ns()
            max_lag_ns = max(max_lag_ns, now - due)
            pub.sock.sendall(pub.encode(STAMP.pack(now, sent) + pad))
            sent += 1
            if sent % 64 == 0:
                pub.drain()
                if time.monotonic() > deadline:
                    break
    end_ns = time.monotonic_ns()
    pub.finish(sent)
    out_q.put({"sent": sent, "publisher_cpu_s": self_cpu_s() - cpu0,
               "send_elapsed_s": (end_ns - start_ns.value) / 1e9,
               "max_send_lag_us": max_lag_ns / 1e3,
               "errors": getattr(pub, "errors", 0)})
    pub.close()


def measured_run(stack: Stack, path: str, name: str, size: int, n: int, rate=None,
                 warmup: int = 0) -> dict:
    # "durable-baseline": the durable path through the baseline binary's two sidecars.
    baseline = path == BASELINE
    ep = stack.base_ep if baseline else stack.ep
    real = "durable" if baseline else path
    sub = Subscriber(real, ep, name)
    delivered = CTX.Value("q", 0, lock=False)
    start_ns = CTX.Value("q", 0, lock=False)
    out_q = CTX.Queue()
    meter = Redis(stack.redis_port)
    net_in0 = meter.net_input_bytes()
    cpu_before = stack.cpu()
    busy0, wall0 = machine_busy_s(), time.monotonic()
    sub_cpu0 = self_cpu_s()
    child = CTX.Process(target=publisher_child,
                        args=(real, ep, name, size, n, rate, delivered, start_ns, out_q))
    child.start()
    got, last_ns, lat = len(sub.first), 0, []
    sub.sock.settimeout(0.5)
    deadline = time.monotonic() + RUN_LIMIT_S + 10
    while got < n and time.monotonic() < deadline:
        try:
            data = sub.sock.recv(1 << 20)
        except socket.timeout:
            if not child.is_alive() and out_q.empty():
                break
            continue
        now = time.monotonic_ns()
        if not data:
            raise RuntimeError(f"{path}: subscriber connection closed")
        payloads = sub.feed(data)
        if payloads:
            got += len(payloads)
            delivered.value = got
            last_ns = now
            if rate is not None:
                for pl in payloads:
                    sent_ns, seq = STAMP.unpack_from(pl)
                    if seq >= warmup:
                        lat.append(now - sent_ns)
    sub_cpu = self_cpu_s() - sub_cpu0
    child.join(RUN_LIMIT_S + 15)
    if child.exitcode != 0 or out_q.empty():
        raise RuntimeError(f"{path}: publisher process failed (exit code {child.exitcode})")
    pub_stats = out_q.get(timeout=5)
    cpu_after = stack.cpu()
    busy, wall = machine_busy_s() - busy0, time.monotonic() - wall0
    net_in = meter.net_input_bytes() - net_in0
    meter.sock.close()
    sub.close()
    elapsed = (last_ns - start_ns.value) / 1e9 if last_ns else float("nan")
    cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_after}
    idle_pods = cpu.pop("baseline_a", 0.0) + cpu.pop("baseline_b", 0.0)
    if baseline:  # the sidecars this run went through are the baseline's
        idle_pods = cpu["sidecar_a"] + cpu["sidecar_b"]
        cpu["sidecar_a"], cpu["sidecar_b"] = (cpu_after["baseline_a"] - cpu_before["baseline_a"],
                                              cpu_after["baseline_b"] - cpu_before["baseline_b"])
    run = {"path": path, "size": size, "n": n, "delivered": got, "elapsed_s": elapsed,
           "msgs_per_s": got / elapsed if last_ns else 0.0, "subscriber_cpu_s": sub_cpu,
           "cpu_s": cpu, "idle_pods_cpu_s": idle_pods, "redis_input_bytes": net_in,
           **pub_stats}
    ours = sum(run["cpu_s"].values()) + idle_pods + sub_cpu + pub_stats["publisher_cpu_s"]
    run["cpu_s"]["others"] = max(busy - ours, 0.0)  # busy time of the machine not ours
    run["cpu_window_s"] = wall
    if got < n:
        run["incomplete"] = f"{got} of {n} delivered within the time limit"
    if rate is not None:
        lat.sort()
        measured = n - warmup
        run["achieved_rate"] = pub_stats["sent"] / pub_stats["send_elapsed_s"]
        run["latency_us"] = {q: lat[min(len(lat) - 1, int(len(lat) * f))] / 1e3
                             for q, f in (("p50", 0.50), ("p90", 0.90), ("p99", 0.99),
                                          ("p99.9", 0.999))} if lat else {}
        if lat:
            run["latency_us"]["max"] = lat[-1] / 1e3
        run["latency_samples"] = len(lat)
        run["latency_expected"] = measured
    return run


# --- sections ------------------------------------------------------------------------------
def channel_name(path: str, *parts) -> str:
    """A fresh name per run: `d:` matches the sidecars' --durable, `p:` does not, `x:` is a
    key the direct path XADDs to."""
    return ":".join([{"durable": "d", BASELINE: "d", "pubsub": "p", "direct": "x"}[path],
                     *map(str, parts)])


def section_throughput(stack, sizes, n_of, reps, tag, paths=PATHS):
    runs = []
    for size in sizes:
        for rep in range(reps):
            order = paths if rep % 2 == 0 else tuple(reversed(paths))
            for path in order:
                name = channel_name(path, "tp", tag, size, rep)
                runs.append(measured_run(stack, path, name, size, n_of[size]))
    rows = []
    for size in sizes:
        med = {path: statistics.median(r["msgs_per_s"] for r in runs
                                       if r["path"] == path and r["size"] == size)
               for path in paths}
        rows.append(row(f"delivered msgs/s, {fmt_size(size)}, saturated", "msgs/s", med))
    # CPU per message moves less with other users' load than a rate does.
    for size in sizes:
        for label, keys in (("Redis", ("redis",)),
                            ("Redis + sidecars", ("redis", "sidecar_a", "sidecar_b"))):
            med = {path: statistics.median(
                sum(r["cpu_s"][k] for k in keys) * 1e6 / r["delivered"] for r in runs
                if r["path"] == path and r["size"] == size and r["delivered"]) for path in paths}
            rows.append(row(f"{label} CPU per message, {fmt_size(size)}, saturated", "us", med))
    for size in sizes:  # what every client sent Redis (commands, XREADs, replies' requests)
        med = {path: statistics.median(r["redis_input_bytes"] / r["delivered"] for r in runs
                                       if r["path"] == path and r["size"] == size
                                       and r["delivered"]) for path in paths}
        rows.append(row(f"bytes sent to Redis per message, {fmt_size(size)}", "bytes", med))
    return rows, runs


def section_latency(stack, rate, n, warmup, reps, tag, paths=PATHS):
    runs = []
    for rep in range(reps):
        order = paths if rep % 2 == 0 else tuple(reversed(paths))
        for path in order:
            name = channel_name(path, "lat", tag, rep)
            runs.append(measured_run(stack, path, name, 64, n, rate=rate, warmup=warmup))
    rows = []
    for q in ("p50", "p99", "p99.9"):
        med = {path: statistics.median(r["latency_us"][q] for r in runs if r["path"] == path
                                       and r["latency_us"]) for path in paths}
        rows.append(row(f"latency {q}, 64 B @ {rate:,} msgs/s", "us", med))
    med = {path: statistics.median(r["achieved_rate"] for r in runs if r["path"] == path)
           for path in paths}
    rows.append(row(f"achieved publish rate (target {rate:,})", "msgs/s", med))
    return rows, runs


def section_memory(stack, k, size):
    """Redis memory per 1,000 retained entries: one entry first (creates the stream, the
    epoch key and caches the publish script, none of which grows with the count), then k
    more, and the deltas of used_memory and MEMORY USAGE between the two."""
    r = Redis(stack.redis_port)
    payload = b"x" * size
    out = {}
    # durable: through sidecar A
    c = Client(f"127.0.0.1:{stack.pods[0]}", hello=False, timeout=30)
    c.hello("bench", version=2)
    c.publish_durable("d:mem", payload)
    key = r.stream_key_of("d:mem")
    out["durable"] = _memory_delta(r, key, lambda: (
        c.publish_many("d:mem", (payload for _ in range(k - 1))),
        c.publish_durable("d:mem", payload)))  # acked: every PUB before it is in
    c.close()
    # direct: XADD as the sidecar's script does it (MAXLEN ~, one field d)
    key_d = b"x:mem"
    xadd = command(b"XADD", key_d, b"MAXLEN", b"~", MAX_LEN, b"*", b"d", payload)
    r.call(b"XADD", key_d, b"MAXLEN", b"~", MAX_LEN, b"*", b"d", payload)

    def fill_direct():
        r.sock.sendall(xadd * k)
        replies = 0
        while replies < k:
            got = r.reader.feed(r.sock.recv(1 << 20))
            if any(isinstance(x, RespError) for x in got):
                raise RuntimeError(f"XADD failed: {got}")
            replies += len(got)
    out["direct"] = _memory_delta(r, key_d, fill_direct)
    # A copy key of the same length: MEMORY USAGE counts the key's name too.
    out["direct_same_ids"] = _copy_with_same_ids(r, key, (b"copy:" + key)[:len(key)])
    out["stream_node_max_entries"] = int(r.call("CONFIG", "GET", "stream-node-max-entries")[1])
    r.sock.close()
    rows = [row(f"Redis used_memory per 1,000 retained {fmt_size(size)} entries", "bytes",
                {p_: out[p_]["used_memory_per_1000"] if p_ in out else None for p_ in PATHS}),
            row(f"MEMORY USAGE of the stream per 1,000 {fmt_size(size)} entries", "bytes",
                {p_: out[p_]["memory_usage_per_1000"] if p_ in out else None for p_ in PATHS})]
    return rows, out


def _memory_delta(r: Redis, key: bytes, fill) -> dict:
    time.sleep(0.2)
    m0, u0, n0 = r.used_memory(), r.call("MEMORY", "USAGE", key, "SAMPLES", 0), r.call("XLEN", key)
    fill()
    time.sleep(0.2)
    m1, u1, n1 = r.used_memory(), r.call("MEMORY", "USAGE", key, "SAMPLES", 0), r.call("XLEN", key)
    added = n1 - n0
    return {"key": key.decode(), "entries_added": added, "used_memory_delta": m1 - m0,
            "memory_usage_delta": u1 - u0,
            "used_memory_per_1000": (m1 - m0) * 1000 / added,
            "memory_usage_per_1000": (u1 - u0) * 1000 / added}


def _copy_with_same_ids(r: Redis, src: bytes, dst: bytes) -> dict:
    """XADD every entry of the durable channel's stream into a new stream with the same
    explicit ids, and compare MEMORY USAGE: the two streams are then the same Redis data
    structure with the same content, so any difference would be the sidecar's. (The ids
    matter: a stream stores each id as a delta from its node's first id, so entries added
    over more milliseconds, as through a sidecar, take a few bytes more than a burst.)"""
    entries = r.call(b"XRANGE", src, b"-", b"+")
    r.sock.sendall(b"".join(command(b"XADD", dst, i, *fields) for i, fields in entries))
    replies = 0
    while replies < len(entries):
        got = r.reader.feed(r.sock.recv(1 << 20))
        if any(isinstance(x, RespError) for x in got):
            raise RuntimeError(f"XADD with explicit id failed: {got}")
        replies += len(got)
    src_b = r.call("MEMORY", "USAGE", src, "SAMPLES", 0)
    dst_b = r.call("MEMORY", "USAGE", dst, "SAMPLES", 0)
    return {"entries": len(entries), "durable_stream_bytes": src_b, "copy_bytes": dst_b}


def section_recovery(stack, m, reps, size, tag):
    runs = []
    for rep in range(reps):
        for path in (("durable", "direct") if rep % 2 == 0 else ("direct", "durable")):
            runs.append((recover_durable if path == "durable" else recover_direct)(
                stack, f"{tag}:{rep}", m, size))
    med = {path: statistics.median(r["seconds"] for r in runs if r["path"] == path) * 1e3
           if path != "pubsub" else None for path in PATHS}
    return [row(f"recovery of {m:,} missed {fmt_size(size)} messages (RSUB vs XRANGE)", "ms",
                med)], runs


def recover_durable(stack, tag, m, size):
    ch = f"d:rec:{tag}"
    payload = b"x" * size
    pub = Client(f"127.0.0.1:{stack.pods[0]}", hello=False, timeout=30)
    pub.hello("bench", version=2)
    since = pub.publish_durable(ch, b"before")
    pub.publish_many(ch, (payload for _ in range(m - 1)))
    pub.publish_durable(ch, payload)  # acked: the m missed ones are all in the stream
    pub.close()
    c = Client(f"127.0.0.1:{stack.pods[1]}", hello=False, timeout=30)
    c.hello("bench", version=2)
    dec, sock = c.decoder, c.sock
    count, ok = 0, None
    t0 = time.monotonic()
    sock.sendall(p.encode_rsub(1, ch, since, b""))
    deadline = t0 + RUN_LIMIT_S
    while ok is None and time.monotonic() < deadline:
        for f in dec.feed(sock.recv(1 << 20)):
            if isinstance(f, p.Smsg):
                count += 1
            elif isinstance(f, p.RsubOk):
                ok = f
            elif isinstance(f, (p.Err, p.Goaway)):
                raise RuntimeError(f"RSUB failed: {f}")
    dt = time.monotonic() - t0
    c.close()
    return {"path": "durable", "missed": m, "replayed": count, "seconds": dt,
            "recovered": ok.recovered if ok else None}


def recover_direct(stack, tag, m, size):
    key = f"x:rec:{tag}".encode()
    r = Redis(stack.redis_port)
    since = r.call(b"XADD", key, b"MAXLEN", b"~", MAX_LEN, b"*", b"d", b"before")
    r.sock.sendall(command(b"XADD", key, b"MAXLEN", b"~", MAX_LEN, b"*", b"d", b"x" * size) * m)
    replies = 0
    while replies < m:
        replies += len(r.reader.feed(r.sock.recv(1 << 20)))
    r.sock.close()
    reader = Redis(stack.redis_port)
    t0 = time.monotonic()
    entries = reader.call(b"XRANGE", key, b"(" + since, b"+", b"COUNT", m)
    dt = time.monotonic() - t0
    reader.sock.close()
    return {"path": "direct", "missed": m, "replayed": len(entries), "seconds": dt}


# --- report ------------------------------------------------------------------------------
def fmt_size(size: int) -> str:
    return "1 KiB" if size == 1024 else f"{size} B"


def row(metric: str, unit: str, values: dict) -> dict:
    d = values.get("direct")
    ratio = {path: (values[path] / d if d and values.get(path) is not None else None)
             for path in ("durable", "pubsub")}
    out = {"metric": metric, "unit": unit, **{path: values.get(path) for path in PATHS},
           "durable_vs_direct": ratio["durable"], "pubsub_vs_direct": ratio["pubsub"]}
    base = values.get(BASELINE)
    if base is not None:
        out[BASELINE] = base
        out["durable_vs_baseline"] = values["durable"] / base if base else None
    return out


def fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and v < 100:
        return f"{v:,.2f}"
    return f"{v:,.0f}"


def print_table(rows) -> None:
    head = ["metric", "direct XADD/XREAD", "durable (2 sidecars)", "pub/sub (2 sidecars)",
            "durable/direct", "pub/sub/direct"]
    with_base = any(BASELINE in r for r in rows)
    if with_base:
        head += ["durable (baseline)", "durable/baseline"]

    def ratio(v):
        return f"{v:.2f}x" if v else "—"

    lines = [head] + [[r["metric"] + f" ({r['unit']})", fmt(r["direct"]), fmt(r["durable"]),
                       fmt(r["pubsub"]), ratio(r["durable_vs_direct"]),
                       ratio(r["pubsub_vs_direct"])]
                      + ([fmt(r.get(BASELINE)), ratio(r.get("durable_vs_baseline"))]
                         if with_base else [])
                      for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for i, line in enumerate(lines):
        print("  ".join(c.ljust(widths[0]) if j == 0 else c.rjust(widths[j])
                        for j, c in enumerate(line)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--podrelay", default=os.environ.get(
        "PODRELAY_BIN", os.path.join(REPO, "build", "bin", "podrelay")))
    ap.add_argument("--baseline-podrelay", metavar="PATH",
                    help="also run the durable path through two sidecars of this binary")
    ap.add_argument("--quick", action="store_true", help="small counts: checks every path works")
    ap.add_argument("--json", help="write rows, notes and every run here")
    ap.add_argument("--reps", type=int, default=None)
    a = ap.parse_args()
    if not os.access(a.podrelay, os.X_OK):
        print(f"podrelay binary not found: {a.podrelay} (--podrelay or PODRELAY_BIN)",
              file=sys.stderr)
        return 2
    if a.baseline_podrelay and not os.access(a.baseline_podrelay, os.X_OK):
        print(f"baseline podrelay binary not found: {a.baseline_podrelay}", file=sys.stderr)
        return 2
    if a.reps is not None and a.reps < 1:
        print("--reps must be at least 1", file=sys.stderr)
        return 2
    q = a.quick
    reps = a.reps or (1 if q else 3)
    n_of = {64: 5_000, 1024: 2_000} if q else {64: 200_000, 1024: 100_000}
    lat_n, lat_warm = (3_000, 1_000) if q else (35_000, 5_000)
    missed = 1_000 if q else 10_000
    mem_k = 2_000 if q else 10_000
    tmp = tempfile.mkdtemp(prefix="podrelay-durable-bench-")
    stack = None
    doc = {"meta": {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                    "loadavg_start": os.getloadavg(), "quick": q, "reps": reps,
                    "podrelay": a.podrelay, "baseline_podrelay": a.baseline_podrelay,
                    "window": WINDOW, "durable_max_len": MAX_LEN}}
    paths = PATHS + ((BASELINE,) if a.baseline_podrelay else ())
    try:
        stack = Stack(a.podrelay, tmp, a.baseline_podrelay)
        rows, notes, runs = [], [], {}
        r_mem, mem = section_memory(stack, mem_k, 64)
        rows += r_mem
        runs["memory"] = mem
        r_tp, runs["throughput"] = section_throughput(stack, (64, 1024), n_of, reps, "t", paths)
        rows += r_tp
        r_lat, runs["latency"] = section_latency(stack, 10_000, lat_n, lat_warm, reps, "l",
                                                 paths)
        rows += r_lat
        r_rec, runs["recovery"] = section_recovery(stack, missed, reps, 64, "r")
        rows += r_rec
        same = mem["direct_same_ids"]
        notes.append(f"the durable channel's stream ({same['entries']:,} entries) takes "
                     f"{same['durable_stream_bytes']:,} bytes (MEMORY USAGE); the same entries "
                     f"XADDed with the same ids into a plain stream take {same['copy_bytes']:,}: "
                     + ("identical, the same data structure" if same['durable_stream_bytes'] ==
                        same['copy_bytes'] else
                        f"they differ by {same['durable_stream_bytes'] - same['copy_bytes']:+,} bytes"))
        per = mem["durable"]["memory_usage_per_1000"]
        notes.append(f"default --durable-max-len 10000 keeps about 10,000 entries (MAXLEN ~ trims "
                     f"whole nodes of {mem['stream_node_max_entries']}, so up to that many more): "
                     f"about {per * 10 / 1024:,.0f} KiB of Redis memory per durable channel at 64 B")
        for section in ("throughput", "latency"):
            for r in runs[section]:
                if "incomplete" in r:
                    notes.append(f"{section} {r['path']} {fmt_size(r['size'])} incomplete: "
                                 f"{r['incomplete']}")
        for r in runs["recovery"]:
            if r["replayed"] != missed or r.get("recovered", 1) != 1:
                notes.append(f"recovery {r['path']}: replayed {r['replayed']} of {missed}, "
                             f"recovered={r.get('recovered')}")
        others = [r["cpu_s"]["others"] / r["cpu_window_s"] for r in runs["throughput"]]
        notes.append(f"other processes on the machine used {min(others):.2f}-{max(others):.2f} "
                     f"of the {os.cpu_count()} cores during the throughput runs")
        busiest = max(runs["throughput"], key=lambda r: r["subscriber_cpu_s"] / r["elapsed_s"])
        notes.append(f"busiest bench subscriber in a throughput run: "
                     f"{busiest['subscriber_cpu_s'] / busiest['elapsed_s']:.2f} of a core "
                     f"({busiest['path']}, {fmt_size(busiest['size'])}); near 1.0 means the "
                     f"Python subscriber, not the path, set the rate")
        doc["meta"]["loadavg_end"] = os.getloadavg()
        ok = (not any("incomplete" in r for sec in ("throughput", "latency") for r in runs[sec])
              and all(r["replayed"] == missed and r.get("recovered", 1) == 1
                      for r in runs["recovery"]))
        doc.update(rows=rows, notes=notes, runs=runs, ok=ok)
        print_table(rows)
        for n_ in notes:
            print("note:", n_)
        print(f"load average at start {doc['meta']['loadavg_start'][0]:.2f}, "
              f"at end {doc['meta']['loadavg_end'][0]:.2f}")
    finally:
        if stack:
            stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)
    return 0 if doc.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
