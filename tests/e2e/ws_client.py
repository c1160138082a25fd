"""A real WebSocket client for the end-to-end tests (the `websockets` library, from .ci/venv).

    ws_client.py URL read N SECONDS   prints "open", then each text frame on its own line,
                                      until N frames arrived or SECONDS passed without one
    ws_client.py URL stall SECONDS    prints "open", reads nothing for SECONDS (its buffer of
                                      4 frames fills and the connection backs up), then prints
                                      "closed CODE" with the close code the server sent
"""

import asyncio
import sys

from websockets.asyncio.client import connect


async def main():
    url, mode = sys.argv[1], sys.argv[2]
    async with connect(url, max_size=None, max_queue=4, ping_interval=None) as ws:
        print("open", flush=True)
        if mode == "stall":
            await asyncio.sleep(float(sys.argv[3]))
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            except Exception:
                pass
            print(f"closed {ws.close_code}", flush=True)
            return
        count, wait = int(sys.argv[3]), float(sys.argv[4])
        for _ in range(count):
            try:
                frame = await asyncio.wait_for(ws.recv(), wait)
            except Exception:
                break
            print(frame, flush=True)


asyncio.run(main())
