// Peer client for benches/throughput: Node `ws` on the bench's loopback
// server. Same workloads as the Rust clients:
//
//     node client.cjs recv|send|echo URL N SIZE CA_PEM
//
// recv: sends "go" to /blast, counts N messages; send: N messages of SIZE
// bytes to /sink until it answers "done" (in chunks of 1,000, waiting for
// the socket to drain, as a client that must not buffer without bound
// would); echo: answers every "ping" from /ping until its "stats" line.
// Prints one JSON line. NODE_PATH points at target/bench-peers/node_modules
// (benches/peers/setup.sh).
'use strict';
const fs = require('fs');
const WebSocket = require('ws');

const [mode, url, nText, sizeText, ca] = process.argv.slice(2);
const n = Number(nText);
const size = Number(sizeText);
const path = { recv: `/blast?n=${n}&size=${size}`, send: `/sink?n=${n}`, echo: `/ping?n=${n}&size=${size}` }[mode];
const options = { perMessageDeflate: false, maxPayload: 1 << 30 };
if (url.startsWith('wss:')) options.ca = fs.readFileSync(ca);
const ws = new WebSocket(url + path, options);
setTimeout(() => { console.error('peer timeout'); process.exit(1); }, 280000).unref();

function payload(prefix, len) {
  const text = Buffer.from(`${prefix} 0000000000 `);
  const out = Buffer.alloc(Math.max(len, prefix.length), 'x');
  text.copy(out, 0, 0, Math.min(text.length, out.length));
  return out.toString();
}

function finish(result) {
  console.log(JSON.stringify(result));
  ws.terminate();
  process.exit(0);
}

ws.on('error', (e) => { console.error(String(e)); process.exit(1); });
ws.on('open', () => {
  let start = 0;
  let count = 0;
  if (mode === 'recv') {
    ws.on('message', () => {
      count += 1;
      if (count === n) finish({ secs: (performance.now() - start) / 1000 });
    });
    ws.send('go');
    start = performance.now();
  } else if (mode === 'send') {
    const message = payload('msg', size);
    ws.on('message', (data) => {
      if (data.toString() === 'done') finish({ secs: (performance.now() - start) / 1000 });
    });
    start = performance.now();
    let sent = 0;
    const pump = () => {
      const stop = Math.min(n, sent + 1000);
      for (; sent < stop; sent++) ws.send(message);
      if (sent < n) {
        if (ws.bufferedAmount > 4 << 20) setTimeout(pump, 0); else setImmediate(pump);
      }
    };
    pump();
  } else {
    ws.on('message', (data, isBinary) => {
      const text = data.toString();
      if (text.startsWith('stats ')) finish({ stats: text });
      else ws.send(text);
    });
    ws.send('go');
  }
});
