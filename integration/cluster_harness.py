"""Redis Cluster helpers for the integration suite (used by test_cluster.py).

A ``Cluster`` is N real ``redis-server --cluster-enabled yes`` processes on free loopback
ports, each in its own directory under the test's temp dir, joined with
``redis-cli --cluster create`` and awaited until every node says ``cluster_state:ok`` and
agrees on who owns every slot. Every wait is bounded; every process is tracked by the
test case (``IntegrationCase.track``) so it is killed in the test's cleanup.

Slot arithmetic is done by Redis itself (``CLUSTER KEYSLOT``), never re-implemented here.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from typing import Dict, List, Optional, Sequence, Tuple

import harness
from harness import (REDIS_CLI, REDIS_SERVER, IntegrationCase, ProcessExited, Proc, Redis,
                     wait_for)

PREFIX = "podrelay:"  # the sidecar's default --channel-prefix


def cluster_port() -> int:
    """A free loopback port P whose cluster bus port P + 10000 is free too, both below the
    kernel's ephemeral range: a bus port inside it can be taken by any outgoing connection
    between this check and redis-server's bind (a CI run lost a node that way)."""
    hi = min(29999, harness.ephemeral_low() - 10001)
    lo = min(20000, hi - 500)
    for _ in range(500):
        p = random.randint(lo, hi)
        if p in harness._HANDED_OUT or p + 10000 in harness._HANDED_OUT:
            continue
        if harness.bindable(p) and harness.bindable(p + 10000):
            harness._HANDED_OUT.update((p, p + 10000))
            return p
    raise RuntimeError("no free port pair (P, P+10000) found")


class ClusterNode(Redis):
    """One cluster-enabled redis-server; with `tls` (make_test_pki's files) TLS only: to
    clients, between nodes (the bus) and to replicas."""

    def __init__(self, case: IntegrationCase, name: str, node_timeout_ms: int,
                 tls: Optional[dict] = None):
        super().__init__(case, name, port=cluster_port())
        self.node_timeout_ms = node_timeout_ms
        self.node_id = ""
        self.tls = tls

    def listen_args(self) -> List[str]:
        if not self.tls:
            return ["--port", str(self.port)]
        return ["--port", "0", "--tls-port", str(self.port), "--tls-cluster", "yes",
                "--tls-replication", "yes", "--tls-cert-file", self.tls["server_cert"],
                "--tls-key-file", self.tls["server_key"], "--tls-ca-cert-file", self.tls["ca"],
                # the bus checks both ends: a node connects with a client certificate
                "--tls-client-cert-file", self.tls["client_cert"],
                "--tls-client-key-file", self.tls["client_key"], "--tls-auth-clients", "no"]

    def cli_tls_args(self) -> List[str]:
        return ["--tls", "--cacert", self.tls["ca"]] if self.tls else []

    def cli(self, *args: str, timeout: float = 10.0) -> str:
        return super().cli(*self.cli_tls_args(), *args, timeout=timeout)

    def _pong(self) -> bool:
        if not self.tls:
            return super()._pong()
        if self.proc is None or not self.proc.alive():
            raise ProcessExited(f"{self.name} exited: {self.proc and self.proc.stderr_text()}")
        try:
            return self.cli("PING", timeout=2).strip() == "PONG"
        except AssertionError:
            return False

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> "ClusterNode":
        # A first start may lose its port pair to another process between cluster_port()'s
        # check and the bind: then, and only then, take a fresh pair (bounded). A restart
        # (node_id known) must keep its address, so it never moves.
        for attempt in range(3):
            argv = [REDIS_SERVER, *self.listen_args(), "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(self.node_timeout_ms),
                    "--save", "", "--appendonly", "no", "--dir", self.dir]
            self.proc = self.case.track(Proc(self.name, argv, self.case.tmpdir, cwd=self.dir))
            try:
                wait_for(self._pong, timeout,
                         what=f"{self.name} on port {self.port} to answer PING")
                break
            except ProcessExited as e:
                if self.node_id or attempt == 2 or "Address already in use" not in str(e):
                    raise
                self.port = cluster_port()
                conf = os.path.join(self.dir, "nodes.conf")  # written before the bind failed
                if os.path.exists(conf):
                    os.remove(conf)
        self.node_id = self.cli("CLUSTER", "MYID").strip()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def sigkill(self) -> None:
        if self.proc and self.proc.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def info_field(self, field: str) -> str:
        for line in self.cli("CLUSTER", "INFO", timeout=3).splitlines():
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
        return ""

    def shardchannels(self) -> List[str]:
        return [c for c in self.cli("PUBSUB", "SHARDCHANNELS", timeout=3).split("\n") if c]

    def shardnumsub(self, channel: str) -> int:
        out = self.cli("PUBSUB", "SHARDNUMSUB", channel, timeout=3).split("\n")
        return int(out[1].strip())


class NodeInfo:
    """One line of CLUSTER NODES."""

    def __init__(self, line: str):
        parts = line.split()
        self.node_id = parts[0]
        self.port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
        self.flags = set(parts[2].split(","))
        self.master_id = parts[3]
        self.link = parts[7]
        self.slots: List[Tuple[int, int]] = []
        for s in parts[8:]:
            if s.startswith("["):
                continue  # migrating / importing marker
            a, _, b = s.partition("-")
            self.slots.append((int(a), int(b or a)))

    @property
    def master(self) -> bool:
        return "master" in self.flags and "fail" not in self.flags

    def owns(self, slot: int) -> bool:
        return any(a <= slot <= b for a, b in self.slots)


class Cluster:
    def __init__(self, case: IntegrationCase, masters: int = 3, replicas: int = 1,
                 node_timeout_ms: int = 2000, tls: Optional[dict] = None):
        self.case = case
        self.tls = tls
        self.nodes = [ClusterNode(case, f"cnode{i}", node_timeout_ms, tls)
                      for i in range(masters * (1 + replicas))]
        self.masters_wanted = masters
        self.replicas = replicas

    # --- lifecycle -----------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> "Cluster":
        for n in self.nodes:
            n.start()
        argv = [REDIS_CLI, *self.nodes[0].cli_tls_args(), "--cluster", "create",
                *[n.addr for n in self.nodes],
                "--cluster-replicas", str(self.replicas), "--cluster-yes"]
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        self.case._log_run(argv, r.returncode, r.stdout, r.stderr)
        if r.returncode != 0:
            raise AssertionError(f"redis-cli --cluster create failed rc={r.returncode}: "
                                 f"{r.stdout.decode(errors='replace')[-2000:]}"
                                 f"{r.stderr.decode(errors='replace')[-2000:]}")
        self.wait_ok(timeout)
        wait_for(self._replicas_synced, timeout, interval=0.1,
                 what="every replica known everywhere and its link to its master up")
        return self

    def _replicas_synced(self) -> bool:
        want = self.masters_wanted * self.replicas
        for n in self.live_nodes():
            slaves = [i for i in self.nodes_view(n) if "slave" in i.flags]
            if len(slaves) != want:
                return False
        for n in self.live_nodes():
            info = n.cli("INFO", "replication", timeout=3)
            if "role:slave" in info and "master_link_status:up" not in info:
                return False
        return True

    def live_nodes(self) -> List[ClusterNode]:
        return [n for n in self.nodes if n.alive()]

    def node_by_id(self, node_id: str) -> ClusterNode:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise KeyError(node_id)

    def node_by_port(self, port: int) -> ClusterNode:
        for n in self.nodes:
            if n.port == port:
                return n
        raise KeyError(port)

    def _agreed(self) -> bool:
        """Every live node: cluster_state ok, and every live node sees the same live masters
        owning all 16384 slots (no node in fail state among them)."""
        views = []
        for n in self.live_nodes():
            if n.info_field("cluster_state") != "ok":
                return False
            infos = self.nodes_view(n)
            masters = sorted((i.node_id, tuple(i.slots)) for i in infos
                             if i.master and i.slots)
            covered = sum(b - a + 1 for _, ranges in masters for a, b in ranges)
            if covered != 16384:
                return False
            for node_id, _ in masters:
                if not self.node_by_id(node_id).alive():
                    return False
            views.append(masters)
        return bool(views) and all(v == views[0] for v in views)

    def wait_ok(self, timeout: float = 30.0) -> float:
        """Waits until the cluster is healthy and consistent; returns the seconds waited."""
        t0 = time.monotonic()
        wait_for(self._agreed, timeout, interval=0.1,
                 what="cluster_state:ok and one slot map on every live node")
        return time.monotonic() - t0

    # --- topology queries ----------------------------------------------------------
    def nodes_view(self, via: Optional[ClusterNode] = None) -> List[NodeInfo]:
        via = via or self.live_nodes()[0]
        return [NodeInfo(l) for l in via.cli("CLUSTER", "NODES", timeout=3).splitlines()
                if l.strip()]

    def masters(self) -> List[ClusterNode]:
        """Live masters that own slots, as seen by a live node."""
        out = []
        for i in self.nodes_view():
            if i.master and i.slots:
                n = self.node_by_id(i.node_id)
                if n.alive():
                    out.append(n)
        return sorted(out, key=lambda n: n.port)

    def replica_of(self, master: ClusterNode) -> ClusterNode:
        for i in self.nodes_view():
            if "slave" in i.flags and i.master_id == master.node_id:
                return self.node_by_id(i.node_id)
        raise AssertionError(f"no replica of {master.name}")

    def keyslot(self, key: str) -> int:
        return int(self.live_nodes()[0].cli("CLUSTER", "KEYSLOT", key).strip())

    def owner(self, slot: int) -> ClusterNode:
        for i in self.nodes_view():
            if i.master and i.owns(slot):
                return self.node_by_id(i.node_id)
        raise AssertionError(f"no owner of slot {slot}")

    def url(self, seeds: Sequence[ClusterNode]) -> str:
        scheme = "rediss-cluster" if self.tls else "redis-cluster"
        return f"{scheme}://" + ",".join(n.addr for n in seeds)

    # --- slot migration ------------------------------------------------------------
    def migrate_slot(self, slot: int, src: ClusterNode, dst: ClusterNode,
                     timeout: float = 20.0) -> None:
        """Moves exactly one slot from ``src`` to ``dst`` the way ``redis-cli --cluster
        reshard`` does it: IMPORTING on dst, MIGRATING on src, MIGRATE the keys (pub/sub
        tests hold none, but the loop is bounded anyway), then SETSLOT NODE everywhere."""
        dst.cli("CLUSTER", "SETSLOT", str(slot), "IMPORTING", src.node_id)
        src.cli("CLUSTER", "SETSLOT", str(slot), "MIGRATING", dst.node_id)
        for _ in range(1000):
            keys = [k for k in src.cli("CLUSTER", "GETKEYSINSLOT", str(slot), "100").split("\n")
                    if k]
            if not keys:
                break
            src.cli("MIGRATE", "127.0.0.1", str(dst.port), "", "0", "5000", "KEYS", *keys)
        # The destination first (so it claims the slot), then the source, then the rest.
        dst.cli("CLUSTER", "SETSLOT", str(slot), "NODE", dst.node_id)
        src.cli("CLUSTER", "SETSLOT", str(slot), "NODE", dst.node_id)
        for m in self.masters():
            if m not in (src, dst):
                m.cli("CLUSTER", "SETSLOT", str(slot), "NODE", dst.node_id)
        wait_for(lambda: all(self.owner_seen_by(n, slot) == dst.node_id
                             for n in self.live_nodes()),
                 timeout, interval=0.1, what=f"every node to see slot {slot} on {dst.name}")

    def owner_seen_by(self, node: ClusterNode, slot: int) -> str:
        for i in self.nodes_view(node):
            if "master" in i.flags and i.owns(slot):
                return i.node_id
        return ""


def spread_channels(cluster: Cluster, count: int, stem: str = "ch") -> Dict[str, int]:
    """``count`` channel names (app side) with their slot, as computed by Redis for the
    prefixed name the sidecar uses. Names are sequential; with 3 shards their slots spread
    over every shard (checked by the caller)."""
    node = cluster.live_nodes()[0]
    out = {}
    for i in range(count):
        name = f"{stem}{i}"
        out[name] = int(node.cli("CLUSTER", "KEYSLOT", PREFIX + name).strip())
    return out


def check_alive(*procs) -> None:
    for p in procs:
        if p.proc is not None and not p.proc.alive():
            raise ProcessExited(f"{p.name} exited: {p.proc.stderr_text()[-3000:]}")


# --- traffic --------------------------------------------------------------------------
import threading  # noqa: E402

from harness import Client, ConnectionClosed, ServerError, proto  # noqa: E402


class Collector:
    """Reads MSGs of one subscriber connection on a thread: (channel, payload, time)."""

    def __init__(self, client: Client, name: str):
        self.client = client
        self.name = name
        self.msgs: List[Tuple[str, str, float]] = []
        self.error: Optional[str] = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"collector-{name}", daemon=True)

    def start(self) -> "Collector":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                m = self.client.recv_msg(timeout=0.1)
            except (ConnectionClosed, ServerError, OSError) as e:
                self.error = repr(e)
                return
            if m is not None:
                with self._lock:
                    self.msgs.append((m.channel.decode(), m.payload.decode(), time.monotonic()))

    def snapshot(self) -> List[Tuple[str, str, float]]:
        with self._lock:
            return list(self.msgs)

    def count(self) -> int:
        with self._lock:
            return len(self.msgs)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class AckedPublisher:
    """Publishes acked PUBs (unique payloads) round-robin over channels, at most ``window``
    unanswered, at most ``rate`` per second, and records every reply. Single-threaded: call
    ``run_for`` / ``drain`` from one thread. Every loop is bounded in time and count."""

    def __init__(self, client: Client, channels: Sequence[str], rate: float = 400.0,
                 window: int = 64, max_messages: int = 200_000):
        self.client = client
        self.channels = list(channels)
        self.rate = rate
        self.window = window
        self.max_messages = max_messages
        self.sent: Dict[int, Tuple[str, str, float]] = {}  # rid -> (channel, payload, t)
        self.replies: Dict[int, Tuple[int, float]] = {}  # rid -> (0 for OK or ERR code, t)
        self.extra_replies: List[Tuple[int, int]] = []  # replies to unknown/answered ids
        self.seq = 0
        self._t0 = None

    def outstanding(self) -> int:
        return len(self.sent) - len(self.replies)

    def _read(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            f = self.client.recv_frame(timeout=max(0.0, deadline - time.monotonic()))
            if f is None:
                return
            now = time.monotonic()
            if isinstance(f, (proto.Ok, proto.Err)):
                code = 0 if isinstance(f, proto.Ok) else f.code
                rid = f.request_id
                if rid not in self.sent or rid in self.replies:
                    self.extra_replies.append((rid, code))
                else:
                    self.replies[rid] = (code, now)
            elif isinstance(f, proto.Goaway):
                raise AssertionError(f"publisher got GOAWAY {f.code} {f.message!r}")
            if time.monotonic() >= deadline:
                return

    def run_for(self, seconds: float, channels: Optional[Sequence[str]] = None) -> None:
        chans = list(channels) if channels is not None else self.channels
        end = time.monotonic() + seconds
        start = time.monotonic()
        sent_here = 0
        while time.monotonic() < end:
            budget = int((time.monotonic() - start) * self.rate) + 1 - sent_here
            batch = bytearray()
            while (budget > 0 and self.outstanding() < self.window
                   and self.seq < self.max_messages):
                ch = chans[self.seq % len(chans)]
                rid = self.seq + 1
                payload = f"m{self.seq}"
                self.sent[rid] = (ch, payload, time.monotonic())
                batch += proto.encode_pub(rid, ch, payload)
                self.seq += 1
                sent_here += 1
                budget -= 1
            if batch:
                self.client.send_raw(bytes(batch))
            self._read(0.005)

    def drain(self, timeout: float) -> bool:
        """Reads replies until every publish is answered or ``timeout``; True if all were."""
        end = time.monotonic() + timeout
        while self.outstanding() > 0 and time.monotonic() < end:
            self._read(0.05)
        return self.outstanding() == 0

    def acked(self) -> Dict[int, float]:
        return {rid: t for rid, (code, t) in self.replies.items() if code == 0}

    def nacks_by_code(self) -> Dict[int, int]:
        out: Dict[int, int] = {}
        for code, _ in self.replies.values():
            if code:
                out[code] = out.get(code, 0) + 1
        return out
