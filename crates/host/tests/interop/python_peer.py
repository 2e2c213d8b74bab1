"""A WebSocket server built on Python's `websockets`: a real peer, written by
no one in this project, for the interop tests (tests/interop.rs).

    python_peer.py [--cert PEM --key PEM]

Listens on 127.0.0.1 on a free port (wss:// with --cert/--key), prints
`LISTENING <port>` on stdout, and serves the paths below. Exits when stdin
closes or on SIGTERM, within a few seconds. The Node peer (node_peer.mjs)
serves the same paths the same way, so one Rust test table runs on both.

  /echo            echo every message (text as text, binary as binary)
  /broadcast       send each message to every /broadcast client, sender too
  /close/<code>    send "closing with <code>", then close with <code> and
                   the reason "bye from python"
  /subprotocol     choose the first of wsio.v2, wsio.v1 the client offers,
                   then send "subprotocol: <choice>"
  /ping            ping the client every 50 ms until 3 pongs came back,
                   then send "pongs: 3"; then echo
  /large/<bytes>   send one text message of <bytes> bytes (byte i is
                   PATTERN[i % 36]), then echo
  /headers         send a JSON object of the request's path and headers
                   (lower-case names), then echo
"""

import argparse
import asyncio
import json
import signal
import ssl
import sys
import threading

from websockets.asyncio.server import broadcast, serve

PEER = "python"
PATTERN = b"0123456789abcdefghijklmnopqrstuvwxyz"
SUBPROTOCOLS = ["wsio.v2", "wsio.v1"]
# Bigger than the 10 MiB messages the tests send, below the module's 16 MiB.
MAX_SIZE = 64 * 1024 * 1024

broadcast_clients = set()


def pattern_text(size):
    whole, rest = divmod(size, len(PATTERN))
    return (PATTERN * whole + PATTERN[:rest]).decode("ascii")


def select_subprotocol(connection, offered):
    if connection.request.path != "/subprotocol":
        return None
    for protocol in SUBPROTOCOLS:
        if protocol in offered:
            return protocol
    return None


async def echo(connection):
    async for message in connection:
        await connection.send(message)


async def handler(connection):
    path = connection.request.path
    if path == "/echo":
        await echo(connection)
    elif path == "/broadcast":
        broadcast_clients.add(connection)
        try:
            async for message in connection:
                broadcast(broadcast_clients, message)
        finally:
            broadcast_clients.discard(connection)
    elif path.startswith("/close/"):
        code = int(path[len("/close/"):])
        await connection.send(f"closing with {code}")
        await connection.close(code, f"bye from {PEER}")
    elif path == "/subprotocol":
        await connection.send(f"subprotocol: {connection.subprotocol or 'none'}")
        await echo(connection)
    elif path == "/ping":
        pongs = 0
        n = 0
        while pongs < 3:
            n += 1
            waiter = await connection.ping(f"peer-ping-{n}".encode())
            try:
                await asyncio.wait_for(waiter, 0.05)
                pongs += 1
            except asyncio.TimeoutError:
                pass
        await connection.send(f"pongs: {pongs}")
        await echo(connection)
    elif path.startswith("/large/"):
        await connection.send(pattern_text(int(path[len("/large/"):])))
        await echo(connection)
    elif path == "/headers":
        headers = {name.lower(): value for name, value in connection.request.headers.raw_items()}
        await connection.send(json.dumps({"path": path, "headers": headers}))
        await echo(connection)
    else:
        await connection.close(4004, f"unknown path {path}")


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    tls = None
    if args.cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.cert, args.key)

    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def request_stop():
        if not stop.done():
            stop.set_result(None)

    loop.add_signal_handler(signal.SIGTERM, request_stop)
    loop.add_signal_handler(signal.SIGINT, request_stop)

    def watch_stdin():
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(request_stop)

    threading.Thread(target=watch_stdin, daemon=True).start()

    server = await serve(
        handler,
        "127.0.0.1",
        0,
        ssl=tls,
        select_subprotocol=select_subprotocol,
        ping_interval=None,
        max_size=MAX_SIZE,
        compression=None,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"LISTENING {port}", flush=True)
    await stop
    # Bounded: clients get a close frame (1001), stragglers are cut.
    server.close(close_connections=True)
    try:
        await asyncio.wait_for(server.wait_closed(), 3)
    except asyncio.TimeoutError:
        pass

if __name__ == "__main__":
    asyncio.run(main())
