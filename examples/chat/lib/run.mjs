// Entry point of run.sh. Without arguments: start the topology, print the URLs, run until
// Ctrl-C. With --check: send one message through pod A over WebSocket and verify it
// arrives on pod B (WebSocket) and on the Python pod (Server-Sent Events); exit 0 or 1.

import http from 'node:http';
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { startTopology } from './topology.mjs';

const CHECK_TIMEOUT = 15_000;
const args = process.argv.slice(2);
const check = args.includes('--check');
if (args.some((a) => a !== '--check')) {
  console.error('usage: run.sh [--check]');
  process.exit(2);
}

function openWs(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const t = setTimeout(() => { ws.terminate(); reject(new Error(`WebSocket ${url}: no open within 5 s`)); }, 5000);
    ws.once('open', () => { clearTimeout(t); resolve(ws); });
    ws.once('error', (e) => { clearTimeout(t); reject(e); });
  });
}

/** Minimal SSE reader: calls onData(data) per event; resolves once the stream is open. */
function openSse(url, onData) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) { reject(new Error(`SSE ${url}: HTTP ${res.statusCode}`)); return; }
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (chunk) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const event = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = event.split('\n').filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).replace(/^ /, '')).join('\n');
          if (data) onData(data);
        }
      });
      resolve(req);
    });
    req.setTimeout(5000, () => req.destroy(new Error(`SSE ${url}: no response within 5 s`)));
    req.once('error', reject);
  });
}

function waitUntil(pred, what, timeout = CHECK_TIMEOUT) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeout;
    const tick = () => {
      if (pred()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out after ${timeout} ms: ${what}`));
      setTimeout(tick, 50);
    };
    tick();
  });
}

async function runCheck(topo) {
  const { a, b, py } = topo.pods;
  const text = `cross-pod check ${randomUUID()}`;
  const onB = [];
  const onPy = [];
  const wsB = await openWs(`ws://127.0.0.1:${b.port}/ws`);
  wsB.on('message', (d) => onB.push(JSON.parse(d.toString())));
  const sse = await openSse(`http://127.0.0.1:${py.port}/events`, (d) => onPy.push(JSON.parse(d)));
  const wsA = await openWs(`ws://127.0.0.1:${a.port}/ws`);
  try {
    wsA.send(JSON.stringify({ nick: 'check', text }));
    const arrived = (list) => list.some((m) => m.text === text && m.pod === a.name);
    await waitUntil(() => arrived(onB), `message from ${a.name} on ${b.name} (WebSocket)`);
    console.log(`ok: message sent on ${a.name} arrived on ${b.name} (WebSocket)`);
    await waitUntil(() => arrived(onPy), `message from ${a.name} on ${py.name} (SSE)`);
    console.log(`ok: message sent on ${a.name} arrived on ${py.name} (SSE)`);
  } finally {
    wsA.terminate();
    wsB.terminate();
    sse.destroy();
  }
}

let topo;
let stopping = false;
async function shutdown(code) {
  if (stopping) return;
  stopping = true;
  if (topo) await topo.stop();
  process.exit(code);
}
process.on('SIGINT', () => shutdown(130));
process.on('SIGTERM', () => shutdown(143));
process.on('SIGHUP', () => shutdown(129));

try {
  topo = await startTopology({ quiet: true });
} catch (e) {
  console.error(`run.sh: could not start the topology: ${e.message}`);
  process.exit(1);
}

if (stopping) {
  // a signal arrived while starting
} else if (check) {
  try {
    await runCheck(topo);
    console.log('check passed');
    await shutdown(0);
  } catch (e) {
    console.error(`check FAILED: ${e.message}\nlogs (${topo.logDir}):\n${topo.logs()}`);
    await shutdown(1);
  }
} else {
  const { a, b, py } = topo.pods;
  console.log(`redis-server      127.0.0.1:${topo.redisPort}`);
  for (const s of Object.values(topo.sidecars)) {
    console.log(`${s.name.padEnd(17)} ${s.address} (admin http://127.0.0.1:${s.adminPort}/metrics)`);
  }
  console.log('');
  console.log(`${a.name} (Node, WebSocket)  ${a.url}`);
  console.log(`${b.name} (Node, WebSocket)  ${b.url}`);
  console.log(`${py.name} (Python, SSE)    ${py.url}`);
  console.log(`\nlogs in ${topo.logDir}\nopen two of the URLs and chat; Ctrl-C stops everything.`);
  // exit if a child dies, so a broken demo does not look alive
  const all = [...Object.values(topo.pods), ...Object.values(topo.sidecars)];
  for (const p of all) {
    p.child.once('exit', (code, sig) => {
      if (stopping) return;
      console.error(`${p.name} exited (${code ?? sig}); stopping. logs:\n${topo.logs()}`);
      shutdown(1);
    });
  }
}
