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
  /forward/<bytes> for a client that sends every message back as it came:
                   send the FORWARD messages below (text, binary, empty,
                   fragmented, and one binary message of <bytes> bytes),
                   each after the previous came back, check each reply
                   byte for byte and by type, then send the report
                   "forward: 6 messages came back as sent" or
                   "forward failed: message <n> ...: <what differed>";
                   read and drop whatever comes after
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
# Bigger than the largest message the tests send (16 MiB, the module's
# default Max Message Size).
MAX_SIZE = 64 * 1024 * 1024

# How long /forward waits for each message to come back (a large one in a
# debug build takes seconds).
FORWARD_TIMEOUT = 120

broadcast_clients = set()


def forward_messages(large):
    """What /forward sends: (description, message, fragments). A message is
    str (text) or bytes (binary); fragments > 1 sends it in that many
    frames. Node's peer sends the same bytes."""
    every_byte = bytes(range(256))
    fragmented = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(70000))
    # Byte i is (31 i + i / 256) mod 256, which repeats every 65536 bytes.
    block = bytes((i * 31 + (i >> 8)) & 0xFF for i in range(65536))
    big = (block * (large // len(block) + 1))[:large]
    return [
        ("text", "héllo ✓ forwarded", 1),
        ("binary 00 ff 7e 80", bytes([0x00, 0xFF, 0x7E, 0x80]), 1),
        ("binary of every byte value", every_byte, 1),
        ("empty binary", b"", 1),
        ("fragmented binary", fragmented, 3),
        (f"binary of {large} bytes", big, 1),
    ]


def difference(sent, got):
    """Why `got` is not `sent` (type, length, first differing byte)."""
    kind = lambda m: "text" if isinstance(m, str) else "binary"
    if kind(sent) != kind(got):
        return f"came back as {kind(got)} of {len(got)}, not {kind(sent)}"
    a = sent.encode() if isinstance(sent, str) else sent
    b = got.encode() if isinstance(got, str) else got
    if len(a) != len(b):
        return f"came back with {len(b)} bytes, not {len(a)}"
    first = next(i for i in range(len(a)) if a[i] != b[i])
    return f"byte {first} came back as {b[first]:#04x}, not {a[first]:#04x}"


async def forward(connection, large):
    messages = forward_messages(large)
    for n, (what, message, fragments) in enumerate(messages, 1):
        if fragments > 1:
            size = -(-len(message) // fragments)
            await connection.send([message[i : i + size] for i in range(0, len(message), size)])
        else:
            await connection.send(message)
        try:
            got = await asyncio.wait_for(connection.recv(), FORWARD_TIMEOUT)
        except asyncio.TimeoutError:
            await connection.send(f"forward failed: message {n} ({what}): nothing came back within {FORWARD_TIMEOUT} s")
            break
        if got != message:
            await connection.send(f"forward failed: message {n} ({what}): {difference(message, got)}")
            break
    else:
        await connection.send(f"forward: {len(messages)} messages came back as sent")
    async for _ in connection:
        pass


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
    elif path.startswith("/forward/"):
        await forward(connection, int(path[len("/forward/"):]))
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
