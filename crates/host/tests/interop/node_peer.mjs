// A WebSocket server built on Node's `ws`: a real peer, written by no one in
// this project, for the interop tests (tests/interop.rs).
//
//     node node_peer.mjs [--cert PEM --key PEM]
//
// Listens on 127.0.0.1 on a free port (wss:// with --cert/--key), prints
// `LISTENING <port>` on stdout, and serves the same paths as python_peer.py
// (see there, /forward included), the close reason being "bye from node".
// Exits when stdin closes or on SIGTERM, within a few seconds.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { WebSocketServer, WebSocket } from 'ws';

const PEER = 'node';
const PATTERN = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz');
const SUBPROTOCOLS = ['wsio.v2', 'wsio.v1'];
// Bigger than the largest message the tests send (16 MiB, the module's
// default Max Message Size).
const MAX_PAYLOAD = 64 * 1024 * 1024;

function option(name) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

function patternText(size) {
  const buffer = Buffer.alloc(size);
  for (let i = 0; i < size; i += PATTERN.length) {
    PATTERN.copy(buffer, i, 0, Math.min(PATTERN.length, size - i));
  }
  return buffer.toString('ascii');
}

const cert = option('--cert');
const server = cert
  ? https.createServer({ cert: readFileSync(cert), key: readFileSync(option('--key')) })
  : http.createServer();

const wss = new WebSocketServer({
  server,
  maxPayload: MAX_PAYLOAD,
  perMessageDeflate: false,
  handleProtocols(offered, request) {
    if (request.url !== '/subprotocol') return false;
    return SUBPROTOCOLS.find((p) => offered.has(p)) ?? false;
  },
});

const broadcastClients = new Set();

// How long /forward waits for each message to come back (a large one in a
// debug build takes seconds).
const FORWARD_TIMEOUT_MS = 120_000;

// What /forward sends, the same bytes as python_peer.py's forward_messages:
// [description, data, binary, fragments].
function forwardMessages(large) {
  const bytes = (n, f) => Buffer.from(Array.from({ length: n }, (_, i) => f(i) & 0xff));
  // Byte i is (31 i + i / 256) mod 256, which repeats every 65536 bytes.
  const block = bytes(65536, (i) => i * 31 + (i >> 8));
  const big = Buffer.alloc(large);
  for (let i = 0; i < large; i += block.length) block.copy(big, i, 0, Math.min(block.length, large - i));
  return [
    ['text', Buffer.from('héllo ✓ forwarded'), false, 1],
    ['binary 00 ff 7e 80', Buffer.from([0x00, 0xff, 0x7e, 0x80]), true, 1],
    ['binary of every byte value', bytes(256, (i) => i), true, 1],
    ['empty binary', Buffer.alloc(0), true, 1],
    ['fragmented binary', bytes(70000, (i) => i * 7 + (i >> 8)), true, 3],
    [`binary of ${large} bytes`, big, true, 1],
  ];
}

// Why `got` is not `sent` (type, length, first differing byte), or null.
function difference(sent, sentBinary, got, gotBinary) {
  const kind = (binary) => (binary ? 'binary' : 'text');
  if (sentBinary !== gotBinary) return `came back as ${kind(gotBinary)} of ${got.length}, not ${kind(sentBinary)}`;
  if (sent.length !== got.length) return `came back with ${got.length} bytes, not ${sent.length}`;
  for (let i = 0; i < sent.length; i++) {
    if (sent[i] !== got[i]) return `byte ${i} came back as ${got[i]}, not ${sent[i]}`;
  }
  return null;
}

// The next message from `ws` as [data, isBinary], or null after the timeout.
function nextMessage(ws, inbox) {
  if (inbox.messages.length > 0) return Promise.resolve(inbox.messages.shift());
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      inbox.waiting = null;
      resolve(null);
    }, FORWARD_TIMEOUT_MS);
    inbox.waiting = (message) => {
      clearTimeout(timer);
      inbox.waiting = null;
      resolve(message);
    };
  });
}

async function forward(ws, large) {
  const inbox = { messages: [], waiting: null, done: false };
  ws.on('message', (data, isBinary) => {
    if (inbox.done) return;
    if (inbox.waiting) inbox.waiting([data, isBinary]);
    else inbox.messages.push([data, isBinary]);
  });
  const messages = forwardMessages(large);
  let report = `forward: ${messages.length} messages came back as sent`;
  for (const [index, [what, data, binary, fragments]] of messages.entries()) {
    const n = index + 1;
    if (fragments > 1) {
      const size = Math.ceil(data.length / fragments);
      for (let i = 0; i < data.length; i += size) {
        ws.send(data.subarray(i, i + size), { binary, fin: i + size >= data.length });
      }
    } else {
      ws.send(data, { binary });
    }
    const got = await nextMessage(ws, inbox);
    if (got === null) {
      report = `forward failed: message ${n} (${what}): nothing came back within ${FORWARD_TIMEOUT_MS / 1000} s`;
      break;
    }
    const why = difference(data, binary, got[0], got[1]);
    if (why !== null) {
      report = `forward failed: message ${n} (${what}): ${why}`;
      break;
    }
  }
  inbox.done = true;
  ws.send(report);
}

function echo(ws) {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
}

wss.on('connection', (ws, request) => {
  const path = request.url;
  if (path === '/echo') {
    echo(ws);
  } else if (path === '/broadcast') {
    broadcastClients.add(ws);
    ws.on('close', () => broadcastClients.delete(ws));
    ws.on('message', (data, isBinary) => {
      for (const client of broadcastClients) {
        if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
      }
    });
  } else if (path.startsWith('/close/')) {
    const code = Number(path.slice('/close/'.length));
    ws.send(`closing with ${code}`);
    ws.close(code, `bye from ${PEER}`);
  } else if (path === '/subprotocol') {
    ws.send(`subprotocol: ${ws.protocol || 'none'}`);
    echo(ws);
  } else if (path === '/ping') {
    let pongs = 0;
    let n = 0;
    const timer = setInterval(() => ws.ping(Buffer.from(`peer-ping-${++n}`)), 50);
    ws.on('pong', () => {
      pongs += 1;
      if (pongs === 3) {
        clearInterval(timer);
        ws.send(`pongs: ${pongs}`);
        echo(ws);
      }
    });
    ws.on('close', () => clearInterval(timer));
  } else if (path.startsWith('/large/')) {
    ws.send(patternText(Number(path.slice('/large/'.length))));
    echo(ws);
  } else if (path === '/headers') {
    const headers = {};
    for (let i = 0; i < request.rawHeaders.length; i += 2) {
      headers[request.rawHeaders[i].toLowerCase()] = request.rawHeaders[i + 1];
    }
    ws.send(JSON.stringify({ path, headers }));
    echo(ws);
  } else if (path.startsWith('/forward/')) {
    forward(ws, Number(path.slice('/forward/'.length)));
  } else {
    ws.close(4004, `unknown path ${path}`);
  }
});

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  for (const client of wss.clients) client.close(1001, 'peer stopping');
  server.close();
  // Bounded: whatever is still open after 2 s is cut.
  setTimeout(() => process.exit(0), 2000).unref();
  wss.close(() => process.exit(0));
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});
