// A WebSocket server built on Node's `ws`: a real peer, written by no one in
// this project, for the interop tests (tests/interop.rs).
//
//     node node_peer.mjs [--cert PEM --key PEM]
//
// Listens on 127.0.0.1 on a free port (wss:// with --cert/--key), prints
// `LISTENING <port>` on stdout, and serves the same paths as python_peer.py
// (see there), the close reason being "bye from node". Exits when stdin
// closes or on SIGTERM, within a few seconds.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { WebSocketServer, WebSocket } from 'ws';

const PEER = 'node';
const PATTERN = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz');
const SUBPROTOCOLS = ['wsio.v2', 'wsio.v1'];
// Bigger than the 10 MiB messages the tests send, below the module's 16 MiB.
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
