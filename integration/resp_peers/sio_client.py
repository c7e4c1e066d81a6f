"""python-socketio's own AsyncClient: ``sio_client.py URL EVENT SECONDS``. Prints
``CONNECTED`` once connected, then one JSON line per EVENT received; exits after SECONDS."""
import asyncio
import json
import sys

import socketio

url, event, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])


async def main():
    sio = socketio.AsyncClient(reconnection=False)

    @sio.on(event)
    async def on_event(data):
        print("EVENT " + json.dumps(data, sort_keys=True), flush=True)

    await asyncio.wait_for(sio.connect(url, transports=["websocket"]), 10)
    print("CONNECTED", flush=True)
    await asyncio.sleep(seconds)
    await sio.disconnect()


asyncio.run(main())
