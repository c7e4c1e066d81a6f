// Chat server for one pod: browsers connect over WebSocket; every chat message goes
// through the local podrelay sidecar (channel "chat"), so all pods see it, and each pod
// broadcasts what the sidecar delivers to its own WebSocket clients.
//
// Env: PORT (default 8080), PODRELAY_ADDRESS (default 127.0.0.1:7400), POD_NAME,
// HOST (default 127.0.0.1).

import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import { WebSocketServer, WebSocket } from 'ws';
import { connect } from '../../../clients/node/src/index.js';

const PORT = Number(process.env.PORT || 8080);
const HOST = process.env.HOST || '127.0.0.1';
const PODRELAY_ADDRESS = process.env.PODRELAY_ADDRESS || '127.0.0.1:7400';
const POD_NAME = process.env.POD_NAME || os.hostname();
const CHANNEL = 'chat';
const MAX_TEXT = 2000;
const MAX_NICK = 32;
const HISTORY = 50;                      // last messages replayed to a new browser
const MAX_BUFFERED = 1024 * 1024;        // a browser this far behind is dropped

const page = await readFile(new URL('../public/index.html', import.meta.url));
const history = [];

const log = (...a) => console.log(new Date().toISOString(), `[${POD_NAME}]`, ...a);

// Messages may also come from other publishers (redis-cli PUBLISH podrelay:chat ...):
// normalise everything to one JSON shape before it reaches a browser.
function normalise(payload) {
  const text = payload.toString('utf8');
  let m;
  try { m = JSON.parse(text); } catch { m = null; }
  if (!m || typeof m !== 'object') m = { text };
  return JSON.stringify({
    id: typeof m.id === 'string' ? m.id.slice(0, 64) : randomUUID(),
    nick: String(m.nick ?? '').slice(0, MAX_NICK),
    text: String(m.text ?? '').slice(0, MAX_TEXT),
    pod: String(m.pod ?? '?').slice(0, 64),
    ts: Number(m.ts) || Date.now(),
  });
}

const relay = connect({ address: PODRELAY_ADDRESS, clientName: `chat-${POD_NAME}` });
relay.on('error', (e) => log('podrelay error:', e.message));
relay.on('disconnect', (e) => log('podrelay disconnected:', e?.message ?? ''));
relay.on('connect', (info) => log('podrelay connected, sidecar', info.nodeId));

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (req.method === 'GET' && (url.pathname === '/' || url.pathname === '/index.html')) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(page);
  } else if (req.method === 'GET' && url.pathname === '/info') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ pod: POD_NAME, transport: 'websocket' }));
  } else if (req.method === 'GET' && url.pathname === '/healthz') {
    const ok = relay.connected && subscribed;
    res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
    res.end(ok ? 'ok\n' : 'not connected to podrelay\n');
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  }
});

const wss = new WebSocketServer({ server, path: '/ws', maxPayload: 16 * 1024 });

wss.on('connection', (ws) => {
  for (const m of history) ws.send(m);
  ws.on('error', () => ws.terminate());
  ws.on('message', (data, isBinary) => {
    let m;
    try { m = isBinary ? null : JSON.parse(data.toString('utf8')); } catch { m = null; }
    if (!m || typeof m.text !== 'string' || !m.text.trim()) return;
    const msg = {
      id: randomUUID(),
      nick: String(m.nick ?? '').slice(0, MAX_NICK),
      text: m.text.slice(0, MAX_TEXT),
      pod: POD_NAME,
      ts: Date.now(),
    };
    // Not broadcast locally: the message comes back from the sidecar like any other,
    // so every pod shows the same order.
    relay.publish(CHANNEL, JSON.stringify(msg)).catch((e) => {
      log('publish failed:', e.name, e.message);
      if (ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ id: randomUUID(), nick: 'system', pod: POD_NAME,
                                 text: `message not sent: ${e.name}` }));
      }
    });
  });
});

let subscribed = false;
await relay.subscribe(CHANNEL, (payload) => {
  const m = normalise(payload);
  history.push(m);
  if (history.length > HISTORY) history.shift();
  for (const ws of wss.clients) {
    if (ws.readyState !== WebSocket.OPEN) continue;
    if (ws.bufferedAmount > MAX_BUFFERED) { ws.terminate(); continue; }
    ws.send(m);
  }
});
subscribed = true;

server.listen(PORT, HOST, () => log(`listening on http://${HOST}:${PORT} (podrelay ${PODRELAY_ADDRESS})`));

let stopping = false;
async function shutdown(sig) {
  if (stopping) return;
  stopping = true;
  log(`${sig}: shutting down`);
  for (const ws of wss.clients) ws.close(1001, 'server shutting down');
  wss.close();
  server.close();
  await relay.close({ timeout: 2000 }).catch(() => {});
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
