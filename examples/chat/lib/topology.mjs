// Starts the demo topology on loopback: one redis-server, one podrelay sidecar per pod,
// two Node chat pods and one Python chat pod. Used by run.mjs (run.sh) and by the browser
// test. Every wait is bounded; stop() ends every child it started.
//
//   redis-server ◄── sidecar-a ◄── pod-a (Node, WebSocket)
//                ◄── sidecar-b ◄── pod-b (Node, WebSocket)
//                ◄── sidecar-py ◄─ pod-py (Python, SSE + POST)

import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, openSync, closeSync, readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const CHAT_DIR = path.resolve(HERE, '..');
export const REPO_ROOT = path.resolve(CHAT_DIR, '..', '..');
const PODRELAY_BIN = process.env.PODRELAY_BIN || path.join(REPO_ROOT, 'build', 'bin', 'podrelay');
const REDIS_SERVER = process.env.REDIS_SERVER_BIN || 'redis-server';
const PYTHON = process.env.PYTHON || 'python3';
const READY_TIMEOUT = 30_000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const handedOut = new Set();
/** A free loopback TCP port (never the same one twice in this process). */
export async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const { port: p } = s.address();
        s.close(() => resolve(p));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

export function httpGet(url, timeout = 2000) {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, body: '' }));
  });
}

function tcpOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.setTimeout(500, () => { s.destroy(); resolve(false); });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

async function waitFor(what, pred, child, timeout = READY_TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (child && child.exitCode !== null) throw new Error(`${what}: process exited with ${child.exitCode}`);
    if (await pred()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(100);
  }
}

async function waitForBinary(file, timeout = 10_000) {
  // the sidecar may be being rebuilt: give it a moment to reappear
  const deadline = Date.now() + timeout;
  for (;;) {
    try { accessSync(file, constants.X_OK); return; } catch { /* retry */ }
    if (Date.now() > deadline) throw new Error(`${file} not found or not executable (set PODRELAY_BIN)`);
    await sleep(250);
  }
}

/**
 * Starts everything. Returns { pods: {a, b, py} (each {name, url, port}), redisPort,
 * sidecars, logDir, stop() }. On failure everything started so far is stopped and the
 * error carries the tail of every log.
 */
export async function startTopology({ quiet = true } = {}) {
  const logDir = mkdtempSync(path.join(os.tmpdir(), 'podrelay-chat-'));
  const children = [];

  const start = (name, cmd, args, opts = {}) => {
    const out = openSync(path.join(logDir, `${name}.log`), 'a');
    const child = spawn(cmd, args, {
      cwd: opts.cwd || CHAT_DIR,
      env: { ...process.env, ...(opts.env || {}) },
      stdio: ['ignore', quiet ? out : 'inherit', quiet ? out : 'inherit'],
    });
    closeSync(out);
    child.name = name;
    child.on('error', (e) => { child.spawnError = e; });
    children.push(child);
    return child;
  };

  const stop = async () => {
    for (const c of [...children].reverse()) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    }
    const deadline = Date.now() + 5000;
    for (const c of children) {
      while (c.exitCode === null && c.signalCode === null && Date.now() < deadline) await sleep(50);
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
    children.length = 0;
  };

  const logs = () => readdirSync(logDir).map((f) => {
    const text = readFileSync(path.join(logDir, f), 'utf8');
    return `--- ${f}\n${text.slice(-3000)}`;
  }).join('\n');

  try {
    await waitForBinary(PODRELAY_BIN);
    const redisPort = await freePort();
    const redis = start('redis', REDIS_SERVER, ['--port', String(redisPort), '--bind', '127.0.0.1',
      '--save', '', '--appendonly', 'no', '--dir', logDir]);
    await waitFor('redis-server', () => tcpOpen(redisPort), redis);

    const sidecars = {};
    const pods = {};
    for (const [key, name] of [['a', 'pod-a'], ['b', 'pod-b'], ['py', 'pod-py']]) {
      const port = await freePort();
      const adminPort = await freePort();
      const sc = start(`sidecar-${key}`, PODRELAY_BIN, ['--listen', `127.0.0.1:${port}`,
        '--redis', `redis://127.0.0.1:${redisPort}`, '--admin-listen', `127.0.0.1:${adminPort}`,
        '--node-id', `sidecar-${key}`, '--drain-timeout', '2']);
      sidecars[key] = { name: `sidecar-${key}`, address: `127.0.0.1:${port}`, adminPort, child: sc };
      pods[key] = { name, port: await freePort() };
    }
    await Promise.all(Object.values(sidecars).map((s) => waitFor(`${s.name} /readyz`,
      async () => (await httpGet(`http://127.0.0.1:${s.adminPort}/readyz`)).status === 200, s.child)));

    for (const [key, pod] of Object.entries(pods)) {
      const env = { PORT: String(pod.port), PODRELAY_ADDRESS: sidecars[key].address, POD_NAME: pod.name };
      pod.child = key === 'py'
        ? start(pod.name, PYTHON, [path.join(CHAT_DIR, 'python-pod', 'server.py')], { env })
        : start(pod.name, process.execPath, [path.join(CHAT_DIR, 'node-pod', 'server.mjs')], { env });
      pod.url = `http://127.0.0.1:${pod.port}/`;
    }
    await Promise.all(Object.values(pods).map((p) => waitFor(`${p.name} /healthz`,
      async () => (await httpGet(`${p.url}healthz`)).status === 200, p.child)));

    return { pods, sidecars, redisPort, logDir, stop, logs };
  } catch (e) {
    const text = logs();
    await stop();
    e.message += `\nlogs (${logDir}):\n${text}`;
    throw e;
  }
}
