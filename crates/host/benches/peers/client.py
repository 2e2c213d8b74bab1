"""Peer client for benches/throughput: Python `websockets` (asyncio) on the
bench's loopback server. Same workloads as the Rust clients:

    client.py recv|send|echo URL N SIZE CA_PEM

recv: sends "go" to /blast, counts N messages; send: N messages of SIZE
bytes to /sink until it answers "done"; echo: answers every "ping" from
/ping until its "stats" line. Prints one JSON line: {"secs": ...} or
{"stats": "stats P50 P99 MAX MEAN"}. Installed by benches/peers/setup.sh.
"""
import asyncio
import json
import ssl
import sys
import time

from websockets.asyncio.client import connect


def payload(prefix, size):
    text = f"{prefix} 0000000000 ".encode()
    return (text + b"x" * size)[:max(size, len(prefix))].decode()


async def main(mode, url, n, size, ca):
    ctx = None
    if url.startswith("wss:"):
        ctx = ssl.create_default_context(cafile=ca)
    path = {"recv": f"/blast?n={n}&size={size}", "send": f"/sink?n={n}",
            "echo": f"/ping?n={n}&size={size}"}[mode]
    async with connect(url + path, ssl=ctx, max_size=None, compression=None,
                       ping_interval=None) as ws:
        if mode == "recv":
            await ws.send("go")
            start = time.perf_counter()
            count = 0
            async for _ in ws:
                count += 1
                if count == n:
                    break
            print(json.dumps({"secs": time.perf_counter() - start}))
        elif mode == "send":
            message = payload("msg", size)
            start = time.perf_counter()
            for _ in range(n):
                await ws.send(message)
            while (await ws.recv()) != "done":
                pass
            print(json.dumps({"secs": time.perf_counter() - start}))
        else:
            await ws.send("go")
            async for message in ws:
                if message.startswith("stats "):
                    print(json.dumps({"stats": message}))
                    break
                await ws.send(message)


if __name__ == "__main__":
    mode, url, n, size, ca = sys.argv[1:6]
    asyncio.run(asyncio.wait_for(main(mode, url, int(n), int(size), ca), 280))
