"""Frameworks' own Redis adapters, unmodified, three pods on one Redis (issue 11).

- python-socketio ``AsyncRedisManager`` (Debian python3-socketio, python3-redis,
  python3-aiohttp): an emit on server 1 reaches a client of server 3, a room emit only the
  room, each exactly once; python-socketio's own AsyncClient as the browser.
- Django Channels ``channels_redis.pubsub.RedisPubSubChannelLayer`` (python3-channels-redis):
  group_send from one process reaches an AsyncConsumer in another.
- Rails ActionCable's redis subscription adapter (ruby-actioncable, ruby-redis): broadcast
  from one process reaches a subscriber in another.

Each mixin runs as ``...DirectTest`` (apps on redis-server: the control) and
``...SidecarTest`` (each app on its own pod's RESP port; see resp_harness).
"""

from __future__ import annotations

import json
import unittest

from harness import free_port, http_get, wait_for
from resp_harness import RespPeerCase


class SocketioMixin:

    def _server(self, i: int, port: int):
        http_port = free_port()
        proc = self.py_peer(f"sio-server{i}", "sio_server.py", self.url(port), str(http_port),
                            f"s{i}")
        wait_for(lambda: http_get(http_port, "/ready")[0] == 200, 15,
                 what=f"socketio server {i} on {http_port}")
        return http_port

    def _client(self, name: str, http_port: int, query: str = ""):
        proc = self.py_peer(name, "sio_client.py", f"http://127.0.0.1:{http_port}{query}",
                            "news", "30")
        self.wait_output(proc, "CONNECTED")
        return proc

    def _events(self, proc):
        return [json.loads(l[6:]) for l in proc.stdout_text().splitlines()
                if l.startswith("EVENT ")]

    def test_emit_on_server1_reaches_client_of_server3(self):
        ports = self.start_pods(3)
        http = [self._server(i + 1, p) for i, p in enumerate(ports)]
        # AsyncRedisManager subscribes when its server's first client connects
        c1 = self._client("client-s1", http[0])
        c2 = self._client("client-s2", http[1], "?room=blue")
        c3 = self._client("client-s3", http[2], "?room=blue")
        self.wait_redis_numsub("socketio", 3)

        self.assertEqual(http_get(http[0], "/emit?event=news&data=all")[0], 200)
        want = {"from": "s1", "data": "all"}
        for c in (c1, c2, c3):
            wait_for(lambda: self._events(c), 10, what=f"{c.name} to get the emit")
        self.assertEqual(http_get(http[1], "/emit?event=news&data=room&room=blue")[0], 200)
        want_room = {"from": "s2", "data": "room"}
        wait_for(lambda: len(self._events(c3)) == 2, 10, what="client-s3 to get the room emit")
        wait_for(lambda: len(self._events(c2)) == 2, 10, what="client-s2 to get the room emit")
        # a third emit as a barrier: after it arrives, nothing else is still in flight
        self.assertEqual(http_get(http[2], "/emit?event=news&data=last")[0], 200)
        want_last = {"from": "s3", "data": "last"}
        for c in (c1, c2, c3):
            wait_for(lambda: want_last in self._events(c), 10, what=f"{c.name} last emit")
        self.assertEqual(self._events(c1), [want, want_last])
        self.assertEqual(self._events(c2), [want, want_room, want_last])
        self.assertEqual(self._events(c3), [want, want_room, want_last])


class SocketioDirectTest(SocketioMixin, RespPeerCase):
    target = "direct"


class SocketioSidecarTest(SocketioMixin, RespPeerCase):
    target = "sidecar"


class ChannelsMixin:

    def test_group_send_reaches_consumer_in_another_process(self):
        ports = self.start_pods(3)
        consumers = [self.py_peer(f"consumer{i}", "channels_peer.py", "consume",
                                  self.url(ports[i]), "room1", "3") for i in (1, 2)]
        for c in consumers:
            self.wait_output(c, "JOINED")
        self.wait_redis_numsub("asgi__group__room1", 2)
        sender = self.py_peer("sender", "channels_peer.py", "send", self.url(ports[0]),
                              "room1", "one", "two", "thrée")
        self.assertIn("SENT 3", self.wait_exit_ok(sender))
        for c in consumers:
            out = self.wait_exit_ok(c)
            got = [json.loads(l[4:]) for l in out.splitlines() if l.startswith("GOT ")]
            self.assertEqual([g["text"] for g in got], ["one", "two", "thrée"], c.name)
            self.assertIn("EXTRA none", out, f"{c.name}: a message arrived twice")


class ChannelsDirectTest(ChannelsMixin, RespPeerCase):
    target = "direct"


class ChannelsSidecarTest(ChannelsMixin, RespPeerCase):
    target = "sidecar"


class ActionCableMixin:

    def test_broadcast_reaches_subscriber_in_another_process(self):
        ports = self.start_pods(3)
        subs = [self.rb_peer(f"cable-sub{i}", "actioncable_peer.rb", "subscribe",
                             self.url(ports[i]), "chat_room", "2") for i in (1, 2)]
        for s in subs:
            self.wait_output(s, "SUBSCRIBED")
        self.wait_redis_numsub("chat_room", 2)
        pub = self.rb_peer("cable-pub", "actioncable_peer.rb", "broadcast", self.url(ports[0]),
                           "chat_room", '{"text":"hi"}', '{"text":"bye"}')
        self.assertIn("SENT 2", self.wait_exit_ok(pub))
        for s in subs:
            out = self.wait_exit_ok(s)
            # ActionCable hands each message to its worker pool: order is not promised
            self.assertEqual(sorted(l for l in out.splitlines() if l.startswith("GOT ")),
                             ['GOT {"text":"bye"}', 'GOT {"text":"hi"}'], s.name)
            self.assertIn("EXTRA none", out, f"{s.name}: a broadcast arrived twice")


class ActionCableDirectTest(ActionCableMixin, RespPeerCase):
    target = "direct"


class ActionCableSidecarTest(ActionCableMixin, RespPeerCase):
    target = "sidecar"


if __name__ == "__main__":
    unittest.main()
