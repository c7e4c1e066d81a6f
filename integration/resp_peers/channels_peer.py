"""Django Channels with channels_redis.pubsub.RedisPubSubChannelLayer, unmodified, in a
minimal settings.configure() (no Django project). Run with Debian's python3
(python3-channels-redis).

  channels_peer.py consume REDIS_URL GROUP COUNT     a real AsyncConsumer, run by asgiref's
        ApplicationCommunicator: joins GROUP, prints JOINED, then one JSON line per
        chat.message it handles (COUNT of them, 20 s at most each), then EXTRA with what
        else arrived within 0.5 s (nothing: EXTRA none)
  channels_peer.py send REDIS_URL GROUP TEXT...      group_send one chat.message per TEXT
"""
import asyncio
import json
import os
import sys

import django
from django.conf import settings

mode, url, group = sys.argv[1], sys.argv[2], sys.argv[3]
settings.configure(CHANNEL_LAYERS={"default": {
    "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "CONFIG": {"hosts": [url]},
}})
django.setup()

from asgiref.testing import ApplicationCommunicator  # noqa: E402
from channels.consumer import AsyncConsumer  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402


class ChatConsumer(AsyncConsumer):
    async def chat_join(self, message):
        await self.channel_layer.group_add(message["group"], self.channel_name)
        await self.send({"type": "joined"})

    async def chat_message(self, message):
        await self.send({"type": "got", "text": message["text"]})


async def consume(count: int):
    comm = ApplicationCommunicator(ChatConsumer.as_asgi(), {"type": "channel"})
    await comm.send_input({"type": "chat.join", "group": group})
    out = await comm.receive_output(10)
    assert out["type"] == "joined", out
    print("JOINED", flush=True)
    for _ in range(count):
        out = await comm.receive_output(20)
        print("GOT " + json.dumps(out, sort_keys=True), flush=True)
    try:  # a timeout here cancels the consumer, which is the end anyway
        out = await comm.receive_output(0.5)
        print("EXTRA " + json.dumps(out, sort_keys=True), flush=True)
    except asyncio.TimeoutError:
        print("EXTRA none", flush=True)
    # Everything this peer reports is printed. channels_redis' pubsub layer sometimes keeps
    # the process alive in asyncio.run's shutdown (its reader tasks; 1 in 4 runs here, with
    # Redis direct and through the sidecar alike), which is not what the test is about.
    os._exit(0)


async def send(texts):
    layer = get_channel_layer()
    for t in texts:
        await layer.group_send(group, {"type": "chat.message", "text": t})
    print("SENT %d" % len(texts), flush=True)
    await layer.flush()


if mode == "consume":
    asyncio.run(consume(int(sys.argv[4])))
else:
    asyncio.run(send(sys.argv[4:]))
