"""Operations: /metrics (promtool-clean, counters that move), /healthz, /readyz, JSON logs,
PODRELAY_<FLAG> environment variables, configuration errors, graceful drain on SIGTERM and
the second SIGTERM that ends a long drain at once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest

from harness import (PODRELAY_BIN, IntegrationCase, Proc, Sidecar, free_port, http_get, proto,
                     wait_for)
from harness_ext import (AckedPublisher, Collector, daemon_output, figure, metric,
                         read_frames_until_close, sidecar_metrics)

PREFIX = "podrelay:"


class MetricsTest(IntegrationCase):

    def test_metrics_promtool_and_counters(self):
        redis = self.start_redis()
        a = self.start_sidecar("podA", redis)
        b = self.start_sidecar("podB", redis)
        sub_b = b.client()
        sub_b.subscribe("m")
        sub_a = a.client()
        sub_a.subscribe("m")
        sub_a.psubscribe("m*")
        before_a, before_b = sidecar_metrics(a), sidecar_metrics(b)
        pub = a.client()
        n = 50
        for i in range(n):
            pub.publish("m", b"%d" % i)
        pub.ping()
        self.expect_msgs(sub_b, n)
        self.expect_msgs(sub_a, 2 * n)
        pub.publish("m", b"ff", ack=False)
        self.expect_msgs(sub_b, 1)
        self.expect_msgs(sub_a, 2)

        def delta(after, before, name, **labels):
            return metric(after, name, **labels) - metric(before, name, **labels)
        # Nobody waits for the fire-and-forget publish's reply: the sidecar reads it lazily
        # (within 5 ms, README "Metrics"), so its count may trail its delivery a little.
        wait_for(lambda: delta(sidecar_metrics(a), before_a,
                               "podrelay_messages_published_total") == n + 1, 5,
                 what="the fire-and-forget publish counted")
        after_a, after_b = sidecar_metrics(a), sidecar_metrics(b)
        self.assertEqual(delta(after_a, before_a, "podrelay_messages_published_total"), n + 1)
        self.assertEqual(delta(after_a, before_a, "podrelay_publish_acks_total"), n)
        self.assertEqual(delta(after_a, before_a, "podrelay_frames_received_total",
                               type="PUB"), n + 1)
        self.assertEqual(delta(after_a, before_a, "podrelay_frames_received_total",
                               type="PING"), 1)
        self.assertEqual(delta(after_a, before_a, "podrelay_frames_received_total",
                               type="HELLO"), 1)
        self.assertGreaterEqual(metric(after_a, "podrelay_frames_received_total", type="SUB"), 1)
        self.assertGreaterEqual(metric(after_a, "podrelay_frames_received_total", type="PSUB"), 1)
        self.assertEqual(delta(after_b, before_b, "podrelay_messages_received_total"), n + 1)
        self.assertEqual(delta(after_b, before_b, "podrelay_messages_delivered_total"), n + 1)
        self.assertEqual(delta(after_a, before_a, "podrelay_messages_delivered_total"),
                         2 * (n + 1))
        # Round trips of the acked publishes; the lazily read reply is none.
        self.assertEqual(delta(after_a, before_a,
                               "podrelay_redis_publish_latency_seconds_count"), n)
        self.assertEqual(metric(after_a, "podrelay_redis_connected", role="publisher"), 1)
        self.assertEqual(metric(after_a, "podrelay_redis_connected", role="subscriber"), 1)
        self.assertEqual(metric(after_a, "podrelay_app_connections"), 2)
        self.assertEqual(metric(after_a, "podrelay_redis_subscriptions", kind="channel"), 1)
        self.assertEqual(metric(after_a, "podrelay_redis_subscriptions", kind="pattern"), 1)
        for name in ("process_resident_memory_bytes", "process_cpu_seconds_total",
                     "process_open_fds", "process_start_time_seconds"):
            self.assertIn(name, {k[0] for k in after_a}, f"{name} missing")
        status, body = a.get("/metrics")
        self.assertEqual(status, 200)
        promtool = shutil.which("promtool")
        if promtool is None:
            self.fail("promtool not installed (Debian package prometheus)")
        r = subprocess.run([promtool, "check", "metrics"], input=body.encode(),
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0,
                         f"promtool: {r.stdout.decode()} {r.stderr.decode()}")
        names = sorted({k[0] for k in after_a})
        figure("operations.metrics", series=len(after_a), names=len(names),
               promtool="ok" if r.returncode == 0 else r.stdout.decode().strip())


    def test_labelled_counters_exist_at_zero_before_any_event(self):
        # An alert on rate()/increase() misses the first event of a series born at 1, so
        # every label value the README lists must be scraped as 0 by an untouched sidecar.
        redis = self.start_redis()
        a = self.start_sidecar("fresh", redis)
        samples = sidecar_metrics(a)
        want = {
            "podrelay_publish_nacks_total": ("reason", [
                "buffer_full", "timeout", "outcome_unknown", "redis_error", "draining",
                "not_replicated"]),
            "podrelay_messages_dropped_total": ("reason", [
                "buffer_full", "timeout", "outcome_unknown", "redis_error", "draining",
                "frame_too_large"]),
            "podrelay_app_connections_refused_total": ("reason", [
                "too_many_connections", "draining"]),
            "podrelay_protocol_errors_total": ("code", [
                "MALFORMED_FRAME", "FRAME_TOO_LARGE", "UNKNOWN_TYPE", "HANDSHAKE_REQUIRED",
                "UNSUPPORTED_VERSION", "AUTH_FAILED", "UNEXPECTED_FRAME"]),
            "podrelay_frames_received_total": ("type", [
                "HELLO", "PUB", "PUBX", "SUB", "UNSUB", "PSUB", "PUNSUB", "RSUB", "PING"]),
            "podrelay_durable_recoveries_total": ("outcome", [
                "fresh", "recovered", "trimmed", "epoch_changed", "stream_gone", "unknown_id",
                "failed"]),
        }
        for name, (label, values) in want.items():
            for value in values:
                with self.subTest(metric=name, **{label: value}):
                    key = (name, ((label, value),))
                    self.assertIn(key, samples, f"{name}{{{label}=\"{value}\"}} not exported")
                    self.assertEqual(samples[key], 0)
        # The zeros are real counters: the first event moves one of them to 1.
        raw = socket.create_connection(("127.0.0.1", a.port), timeout=5)
        self.addCleanup(raw.close)
        raw.sendall(proto.encode_ping(1))  # before HELLO
        read_frames_until_close(raw, 5)
        wait_for(lambda: metric(sidecar_metrics(a), "podrelay_protocol_errors_total",
                                code="HANDSHAKE_REQUIRED") == 1, 5,
                 what="HANDSHAKE_REQUIRED counted once")


class HealthTest(IntegrationCase):

    def test_head_answers_like_get_without_a_body_and_other_methods_get_405(self):
        import http.client
        redis = self.start_redis()
        a = self.start_sidecar("podA", redis)
        conn = http.client.HTTPConnection("127.0.0.1", a.admin_port, timeout=5)
        self.addCleanup(conn.close)
        for path in ("/metrics", "/healthz", "/readyz"):
            with self.subTest(path=path):
                conn.request("HEAD", path)
                r = conn.getresponse()
                self.assertEqual(r.status, 200)
                self.assertEqual(r.read(), b"")
                self.assertGreater(int(r.getheader("Content-Length")), 0)
        conn.request("POST", "/metrics", body=b"")  # the same keep-alive connection
        r = conn.getresponse()
        self.assertEqual(r.status, 405)
        self.assertEqual(r.getheader("Allow"), "GET, HEAD")
        r.read()
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        self.assertEqual((r.status, r.read()), (200, b"ok\n"))

    def test_a_request_with_a_body_oversized_headers_or_garbage_gets_its_4xx_then_close(self):
        # Before: each of these closed the connection without a word (hostile check F7).
        redis = self.start_redis()
        a = self.start_sidecar("podA", redis)
        big = "X-Filler: " + "x" * 10000
        cases = [
            ("POST with a body", b"POST /metrics HTTP/1.1\r\nHost: t\r\n"
             b"Content-Length: 5\r\n\r\nhello", 405),
            ("chunked POST", b"POST /readyz HTTP/1.1\r\nHost: t\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 405),
            ("GET with a body", b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
             b"Content-Length: 3\r\n\r\nabc", 413),
            ("headers over 8 KiB", f"GET /healthz HTTP/1.1\r\nHost: t\r\n{big}\r\n\r\n".encode(),
             431),
            ("not HTTP", b"\x16\x03\x01 hello there\r\n\r\n", 400),
        ]
        for what, request, status in cases:
            with self.subTest(what):
                head, body, closed = raw_http(a.admin_port, request)
                self.assertTrue(head.startswith(f"HTTP/1.1 {status} "), (head, body))
                self.assertIn("connection: close", head.lower())
                if status == 405:
                    self.assertIn("allow: get, head", head.lower())
                self.assertTrue(body, head)  # a line that says why
                self.assertTrue(closed, "the connection stays open after the refusal")
        # Nothing else broke: the next request is answered as ever.
        self.assertEqual(a.get("/healthz"), (200, "ok\n"))
        self.assertEqual(a.readyz(), 200)

    def test_healthz_and_readyz(self):
        redis = self.start_redis()
        a = self.start_sidecar("podA", redis)
        self.assertEqual(a.get("/healthz")[0], 200)
        self.assertEqual(a.get("/readyz"), (200, "ready\n"))
        self.assertEqual(a.get("/nope")[0], 404)
        redis.kill()
        a.wait_readyz(503, timeout=10)
        status, body = a.get("/readyz")
        self.assertEqual(status, 503)
        self.assertEqual(len(body.strip().splitlines()), 1, body)
        self.assertIn("redis", body)
        self.assertEqual(a.get("/healthz")[0], 200, "healthz must not depend on Redis")
        redis.start()
        a.wait_ready(timeout=15)
        figure("operations.readyz", reason_when_redis_down=body.strip())


class JsonLogTest(IntegrationCase):

    def test_every_stderr_line_is_json(self):
        redis = self.start_redis()
        a = self.start_sidecar("podA", redis, ["--log-format", "json"])
        c = a.client(client_name='quote " backslash \\ newline \n tab \t end')
        c.subscribe("j")
        c.publish("j", b"x")
        self.expect_msgs(c, 1)
        raw_bad = socket.create_connection(("127.0.0.1", a.port), timeout=5)
        raw_bad.sendall(b"\x00\x00\x00\x00")
        read_frames_until_close(raw_bad, 5)
        raw_bad.close()
        redis.kill()
        a.wait_readyz(503)
        redis.start()
        a.wait_ready(timeout=15)
        self.assertEqual(a.stop(), 0)
        lines = daemon_output(a.proc).splitlines()
        self.assertGreater(len(lines), 8)
        levels = set()
        objs = []
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError:
                self.fail(f"not JSON: {line!r}")
            self.assertIsInstance(obj, dict, line)
            levels.add(obj.get("level"))
            self.assertIn("msg", obj, line)
            objs.append(obj)
        # Counts and ids are JSON numbers; names stay strings.
        connected = [o for o in objs if o["msg"] == "app connected"]
        self.assertTrue(connected, lines)
        self.assertIsInstance(connected[0]["conn"], int, connected[0])
        self.assertIsInstance(connected[0]["client"], str, connected[0])
        resub = [o for o in objs if o["msg"] == "redis connected" and "resubscribing" in o]
        self.assertTrue(resub and all(isinstance(o["resubscribing"], int) for o in resub), resub)
        retries = [o for o in objs if "suppressed" in o]
        self.assertTrue(all(isinstance(o["suppressed"], int) for o in retries), retries)
        figure("operations.json_logs", lines=len(lines), levels=sorted(map(str, levels)))


class EnvironmentTest(IntegrationCase):

    def test_flags_from_environment(self):
        redis = self.start_redis()
        token_file = os.path.join(self.tmpdir, "token")
        with open(token_file, "w") as f:
            f.write("env-token\n")
        pod = Sidecar(self, "envpod", "unused")
        env = dict(os.environ,
                   PODRELAY_REDIS=redis.url,
                   PODRELAY_LISTEN=f"127.0.0.1:{pod.port}",
                   PODRELAY_ADMIN_LISTEN=f"127.0.0.1:{pod.admin_port}",
                   PODRELAY_CHANNEL_PREFIX="envp:",
                   PODRELAY_NODE_ID="env-node-1",
                   PODRELAY_MAX_FRAME_BYTES="4096",
                   PODRELAY_MAX_QUEUE_BYTES="65536",
                   PODRELAY_SOFT_QUEUE_BYTES="32768",
                   PODRELAY_MAX_CONNECTIONS="3",
                   PODRELAY_MAX_SUBSCRIPTIONS="2",
                   PODRELAY_AUTH_TOKEN_FILE=token_file,
                   PODRELAY_LOG_FORMAT="json",
                   PODRELAY_LOG_LEVEL="debug",
                   PODRELAY_DRAIN_TIMEOUT="2")
        pod.proc = self.track(Proc("envpod", [PODRELAY_BIN], self.tmpdir, env=env))
        pod.wait_ready()
        c = pod.client(auth_token=b"env-token")
        w = c.welcome
        self.assertEqual((w.node_id, w.max_frame_bytes, w.max_queue_bytes),
                         (b"env-node-1", 4096, 65536))
        c.subscribe("E")
        self.assertEqual(redis.numsub("envp:E"), 1)
        c.send_raw(proto.encode_sub(77, ["F", "G"]))
        f = c.recv_frame(timeout=5)
        self.assertEqual((type(f), getattr(f, "code", None)),
                         (proto.Err, proto.TOO_MANY_SUBSCRIPTIONS))
        s = socket.create_connection(("127.0.0.1", pod.port), timeout=5)
        s.sendall(proto.encode_hello(b"x", b"wrong"))
        frames, end, _ = read_frames_until_close(s, 5)
        s.close()
        self.assertEqual([getattr(f, "code", None) for f in frames], [proto.AUTH_FAILED])
        c2, c3 = pod.client(auth_token=b"env-token"), pod.client(auth_token=b"env-token")
        s = socket.create_connection(("127.0.0.1", pod.port), timeout=5)
        frames, end, _ = read_frames_until_close(s, 5)
        s.close()
        self.assertEqual([getattr(f, "code", None) for f in frames],
                         [proto.TOO_MANY_CONNECTIONS])
        for line in daemon_output(pod.proc).splitlines():
            json.loads(line)
        # a flag on the command line wins over the environment
        pod2 = Sidecar(self, "envpod2", "unused")
        env2 = dict(env, PODRELAY_LISTEN=f"127.0.0.1:{pod2.port}",
                    PODRELAY_ADMIN_LISTEN=f"127.0.0.1:{pod2.admin_port}",
                    # a typo is started with and named; a Service's link variable is not
                    PODRELAY_REDIS_URL="redis://127.0.0.1:1", PODRELAY_SERVICE_HOST="10.0.0.1")
        pod2.proc = self.track(Proc("envpod2", [PODRELAY_BIN, "--node-id", "cli-node"],
                                    self.tmpdir, env=env2))
        pod2.wait_ready()
        self.assertEqual(pod2.client(auth_token=b"env-token").welcome.node_id, b"cli-node")
        ignored = [json.loads(line) for line in daemon_output(pod2.proc).splitlines()
                   if "environment variable ignored" in line]
        self.assertEqual([(e["level"], e["variable"], e["did_you_mean"]) for e in ignored],
                         [("warn", "PODRELAY_REDIS_URL", "PODRELAY_REDIS")], ignored)
        figure("operations.env", checked="REDIS LISTEN ADMIN_LISTEN CHANNEL_PREFIX NODE_ID "
               "MAX_FRAME_BYTES MAX_QUEUE_BYTES SOFT_QUEUE_BYTES MAX_CONNECTIONS "
               "MAX_SUBSCRIPTIONS AUTH_TOKEN_FILE LOG_FORMAT LOG_LEVEL")


class ConfigErrorTest(IntegrationCase):

    def test_an_address_in_use_exits_1_with_a_log_line_in_the_log_format(self):
        busy = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(busy.close)
        taken = f"127.0.0.1:{busy.getsockname()[1]}"
        for flag in ("--listen", "--admin-listen", "--resp-listen"):
            with self.subTest(flag):
                args = {"--listen": f"127.0.0.1:{free_port()}",
                        "--admin-listen": f"127.0.0.1:{free_port()}"}
                args[flag] = taken
                argv = [PODRELAY_BIN, "--redis", "redis://127.0.0.1:1", "--log-format", "json",
                        *[x for kv in args.items() for x in kv]]
                r = subprocess.run(argv, capture_output=True, timeout=10,
                                   stdin=subprocess.DEVNULL)
                self._log_run(argv, r.returncode, r.stdout, r.stderr)
                self.assertEqual(r.returncode, 1, r.stderr)
                # Every stderr line is a JSON log line (a pipeline parses them all), and
                # the last names the address and why.
                lines = [json.loads(l) for l in r.stderr.decode().splitlines() if l.strip()]
                last = lines[-1]
                self.assertEqual((last["level"], last["msg"]), ("error", "cannot start"), last)
                self.assertIn("cannot listen on", last["reason"])
                self.assertIn(taken, last["reason"])
                self.assertIn("in use", last["reason"])

    def test_invalid_configuration_exits_2_with_one_line(self):
        base = ["--listen", f"127.0.0.1:{free_port()}", "--admin-listen",
                f"127.0.0.1:{free_port()}", "--redis", "redis://127.0.0.1:1"]
        cases = {
            "max_frame_zero": (["--max-frame-bytes", "0"], {}),
            "max_frame_text": (["--max-frame-bytes", "lots"], {}),
            "max_frame_below_1024": (["--max-frame-bytes", "1023"], {}),
            "log_level": (["--log-level", "loud"], {}),
            "log_format": (["--log-format", "xml"], {}),
            "redis_scheme": (["--redis", "ftp://127.0.0.1:1"], {}),
            "redis_port": (["--redis", "redis://127.0.0.1:99999"], {}),
            "listen_garbage": (["--listen", "nonsense"], {}),
            "unknown_flag": (["--frobnicate"], {}),
            "soft_above_hard": (["--soft-queue-bytes", "9000000"], {}),
            "negative_timeout": (["--publish-buffer-timeout", "-1"], {}),
            "drain_nan": (["--drain-timeout", "nan"], {}),
            "token_file_missing": (["--auth-token-file", "/nonexistent/token"], {}),
            "tls_ca_missing": (["--redis", "rediss://127.0.0.1:1", "--tls-ca-file",
                                "/nonexistent/ca.crt"], {}),
            "env_max_connections": ([], {"PODRELAY_MAX_CONNECTIONS": "many"}),
            "env_log_format": ([], {"PODRELAY_LOG_FORMAT": "yaml"}),
        }
        results = {}
        for name, (args, envs) in cases.items():
            with self.subTest(name):
                argv = [PODRELAY_BIN, *base, *args]
                env = dict(os.environ, **envs)
                r = subprocess.run(argv, capture_output=True, timeout=10, env=env,
                                   stdin=subprocess.DEVNULL)
                self._log_run(argv, r.returncode, r.stdout, r.stderr)
                lines = r.stderr.decode(errors="replace").strip().splitlines()
                results[name] = (r.returncode, lines[:1])
                self.assertEqual(r.returncode, 2, f"{name}: rc={r.returncode} {lines}")
                self.assertEqual(len(lines), 1, f"{name}: {lines}")
                self.assertTrue(lines[0].startswith("podrelay: "), f"{name}: {lines}")
                self.assertEqual(r.stdout, b"")
        figure("operations.config_errors", cases=len(cases))


class DrainTest(IntegrationCase):

    def test_sigterm_drains_under_acked_load(self):
        redis = self.start_redis()
        a = self.start_sidecar("podA", redis, ["--drain-timeout", "5"])
        b = self.start_sidecar("podB", redis)
        c = self.start_sidecar("podC", redis)
        cols = {}
        for name, pod in (("B", b), ("C", c)):
            cols[name] = Collector.connect(pod.port, ["drain"], name=f"col-{name}")
            self.addCleanup(cols[name].close)
        redis.wait_numsub(PREFIX + "drain", 2)
        pubs = [AckedPublisher.connect(a.port, "drain", f"D{i}", 300, 20000, 60, name=f"D{i}")
                for i in (1, 2)]
        for p in pubs:
            self.addCleanup(p.close)
            p.start()
        time.sleep(1.5)
        polls = []
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                t = time.monotonic()
                try:
                    st = http_get(a.admin_port, "/readyz", timeout=1)[0]
                except OSError as e:
                    st = type(e).__name__
                polls.append((t, st))
                time.sleep(0.005)
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        self.addCleanup(stop.set)
        time.sleep(0.1)
        t_term = time.monotonic()
        a.proc.send_signal(signal.SIGTERM)
        time.sleep(0.05)
        try:
            s = socket.create_connection(("127.0.0.1", a.port), timeout=2)
            s.sendall(proto.encode_hello(b"late"))
            frames, end, _ = read_frames_until_close(s, 5)
            s.close()
            new_conn = f"accepted:{[type(f).__name__ for f in frames]}"
            self.assertFalse(any(isinstance(f, proto.Welcome) for f in frames),
                             f"a new connection was welcomed during the drain: {frames}")
        except ConnectionRefusedError:
            new_conn = "refused"
        rc = a.proc.wait(timeout=10)
        t_exit = time.monotonic() - t_term
        stop.set()
        poller.join(2)
        for p in pubs:
            p.stop_sending()
            p.wait_answered(2)
        self.assertEqual(rc, 0)
        self.assertLess(t_exit, 5.0 + 1.0, "exit not within --drain-timeout")
        late = [st for t, st in polls if t > t_term + 0.05]
        self.assertNotIn(200, late, "/readyz answered 200 after SIGTERM")
        for p in pubs:
            self.assertIsNotNone(p.goaway, f"{p.tag}: no GOAWAY")
            self.assertEqual(p.goaway[0], proto.SHUTTING_DOWN)
            self.assertIsNotNone(p.end, f"{p.tag}: connection not closed")
        # answered = a prefix of what each app sent; the rest was never read by the sidecar
        figs = {}
        for p in pubs:
            with p.lock:
                answered = sorted(p.replies)
                unanswered = sorted(s for s in p.sent if s not in p.replies)
                multi = [s for s, r in p.replies.items() if len(r) > 1]
                codes = {}
                for r in p.replies.values():
                    codes[r[0][1]] = codes.get(r[0][1], 0) + 1
                after_goaway = [s for s, r in p.replies.items() if r[0][2] > p.goaway[2]]
            self.assertEqual(multi, [], f"{p.tag}: answered twice")
            self.assertEqual(answered, list(range(1, len(answered) + 1)),
                             f"{p.tag}: answers are not a prefix of the requests")
            if unanswered:
                first = p.sent[unanswered[0]]
                self.assertGreater(first, t_term - 0.25,
                                   f"{p.tag}: PUB sent {t_term - first:.3f}s before SIGTERM "
                                   f"never answered")
            bad = {k: v for k, v in codes.items() if k not in (0, 300, 301, 302, 203)}
            self.assertEqual(bad, {}, f"{p.tag}: unexpected answer codes")
            figs[f"{p.tag.decode()}_answers"] = codes
            figs[f"{p.tag.decode()}_unanswered_sent_after_goaway"] = len(unanswered)
            figs[f"{p.tag.decode()}_answers_after_goaway"] = len(after_goaway)
        acked = {p.payload(s) for p in pubs for s in p.replies if p.outcome(s) == ("OK", 0)}
        for name, col in cols.items():
            col.wait_for(lambda c_: acked <= set(c_.payloads()), 10)
            got = col.payloads()
            self.assertEqual(len(got), len(set(got)), f"{name}: duplicates")
            missing = acked - set(got)
            self.assertEqual(len(missing), 0, f"{name}: {len(missing)} acked not delivered")
            figs[f"delivered_{name}"] = len(got)
        statuses = sorted({str(st) for st in late})
        figure("operations.drain", exit_rc=rc, exit_after_s=t_exit, new_connection=new_conn,
               readyz_after_sigterm=statuses, acked=len(acked), **figs)

    def test_second_sigterm_ends_a_long_drain_at_once(self):
        redis = self.start_redis()
        a = self.start_sidecar("podA", redis, ["--drain-timeout", "30",
                                               "--publish-buffer-timeout", "60"])
        c = a.client()
        redis.proc.send_signal(signal.SIGSTOP)
        self.addCleanup(lambda: redis.proc.send_signal(signal.SIGCONT))
        ids = [c.next_request_id() for _ in range(3)]
        c.send_raw(b"".join(proto.encode_pub(i, "long", b"x") for i in ids))
        time.sleep(0.3)
        t_term = time.monotonic()
        a.proc.send_signal(signal.SIGTERM)
        f = c.recv_frame(timeout=5)
        self.assertIsInstance(f, proto.Goaway, f)
        self.assertEqual(f.code, proto.SHUTTING_DOWN)
        status, body = a.get("/readyz")
        self.assertEqual(status, 503)
        self.assertIn("draining", body)
        self.assertEqual(len(body.strip().splitlines()), 1)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", a.port), timeout=2).close()
        time.sleep(1.0)
        self.assertTrue(a.proc.alive(), "the drain did not wait for the pending publishes")
        t2 = time.monotonic()
        a.proc.send_signal(signal.SIGTERM)
        rc = a.proc.wait(timeout=5)
        t_exit2 = time.monotonic() - t2
        self.assertNotEqual(rc, 0)
        self.assertLess(t_exit2, 1.0)
        out = daemon_output(a.proc)
        self.assertIn("second signal", out)
        figure("operations.second_sigterm", exit_rc=rc, exit_after_second_signal_s=t_exit2,
               drain_reason=body.strip(), first_to_second_s=t2 - t_term)



def raw_http(port: int, request: bytes, timeout: float = 5.0):
    """Sends `request` as is; returns (status line and headers, body, whether the server
    closed the connection after its answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data, closed = b"", False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                closed = True
                break
            except socket.timeout:
                break
            if not chunk:
                closed = True
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode(errors="replace"), body, closed


if __name__ == "__main__":
    unittest.main()
