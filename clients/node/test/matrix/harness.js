// Processes and waits for the version matrix: one redis-server, one podrelay sidecar per
// Socket.IO server, all on loopback ports picked at run time. Every wait has a deadline;
// every spawned process is killed when the test process ends.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every `every` ms until it returns a truthy value; throws after `within` ms. */
export async function waitFor(probe, { within = 5000, every = 10, what = 'a condition' } = {}) {
  const giveUpAt = Date.now() + within;
  for (let round = 0; ; round++) {
    const value = await probe();
    if (value) return value;
    if (Date.now() >= giveUpAt) throw new Error(`gave up after ${within} ms (${round + 1} checks) waiting for ${what}`);
    await sleep(every);
  }
}

/** Rejects with `what` if `promise` has not settled within `ms`. */
export function deadline(promise, ms, what) {
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no result within ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

export function loopbackPort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

const running = new Set();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

/** Spawns `cmd`; keeps the last lines of its output for failure reports. */
export function launch(label, cmd, args) {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.label = label;
  proc.tail = [];
  const keep = (chunk) => {
    proc.tail.push(chunk.toString());
    if (proc.tail.length > 200) proc.tail.shift();
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  proc.on('error', (err) => proc.tail.push(`spawn failed: ${err.message}\n`));
  proc.gone = new Promise((resolve) =>
    proc.on('exit', (code, signal) => {
      running.delete(proc);
      proc.exitStatus = { code, signal };
      resolve(proc.exitStatus);
    }),
  );
  running.add(proc);
  return proc;
}

export async function kill(proc) {
  if (!proc || proc.exitStatus) return;
  proc.kill('SIGKILL');
  await deadline(proc.gone, 5000, `${proc.label} to exit`);
}

/** GET on loopback: the status code, or 0 when nothing answers. */
export function httpStatus(port, path) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

export function redisCommand(cli, port, args) {
  return new Promise((resolve, reject) => {
    execFile(cli, ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 3000 }, (err, out) => (err ? reject(err) : resolve(out)));
  });
}

/**
 * Starts redis-server on a free loopback port; returns { port, proc, stop() }.
 * `tools` = { redisServer, redisCli }.
 */
export async function startRedis(tools, extraArgs = []) {
  const dir = mkdtempSync(join(tmpdir(), 'podrelay-matrix-'));
  const port = await loopbackPort();
  const proc = launch('redis-server', tools.redisServer, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs]);
  await waitFor(async () => (await redisCommand(tools.redisCli, port, ['PING']).catch(() => '')).startsWith('PONG'), {
    within: 10000,
    every: 50,
    what: 'redis-server to answer PING',
  });
  return {
    port,
    proc,
    async stop() {
      await kill(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts a podrelay sidecar on free loopback ports (or `port`, to restart one in place)
 * with further flags `args`; resolves once /readyz answers 200.
 */
export async function startSidecar(bin, label, redisPort, { args = [], port: fixedPort } = {}) {
  const [port, admin] = [fixedPort ?? (await loopbackPort()), await loopbackPort()];
  const proc = launch(label, bin, ['--listen', `127.0.0.1:${port}`, '--redis', `redis://127.0.0.1:${redisPort}`, '--admin-listen', `127.0.0.1:${admin}`, ...args]);
  await waitFor(
    async () => {
      if (proc.exitStatus) throw new Error(`${label} exited: ${JSON.stringify(proc.exitStatus)}\n${proc.tail.join('')}`);
      return (await httpStatus(admin, '/readyz')) === 200;
    },
    { within: 20000, every: 50, what: `${label} /readyz` },
  );
  return { port, admin, proc, address: `127.0.0.1:${port}` };
}

export function tails(procs) {
  return procs
    .filter(Boolean)
    .map((p) => `--- ${p.label} (${p.exitStatus ? JSON.stringify(p.exitStatus) : 'running'})\n${p.tail.join('').split('\n').slice(-15).join('\n')}`)
    .join('\n');
}
