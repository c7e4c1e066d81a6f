"""A python-socketio server (aiohttp) whose client manager is AsyncRedisManager, unmodified:
``sio_server.py REDIS_URL HTTP_PORT NAME``. Run with Debian's python3 (python3-socketio,
python3-redis, python3-aiohttp). GET /emit?event=E&data=D[&room=R] emits from this server
through the manager, so every server's clients (in that room) get {"from": NAME, "data": D}.
A client connecting with ?room=R joins room R."""
import sys
import urllib.parse

import socketio
from aiohttp import web

url, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=socketio.AsyncRedisManager(url))
app = web.Application()
sio.attach(app)


@sio.event
async def connect(sid, environ, auth=None):
    q = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    for room in q.get("room", []):
        sio.enter_room(sid, room)


async def emit(request):
    q = request.query
    await sio.emit(q["event"], {"from": name, "data": q["data"]}, room=q.get("room"))
    return web.Response(text="emitted\n")


async def ready(request):
    return web.Response(text="ready\n")


app.router.add_get("/emit", emit)
app.router.add_get("/ready", ready)
web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)
