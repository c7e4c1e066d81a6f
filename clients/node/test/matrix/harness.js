// Processes and waits for the version matrix: one redis-server, one podrelay sidecar per
// Socket.IO server, all on loopback ports picked at run time. Every wait has a deadline;
// every spawned process is killed when the test process ends.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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

// Ports for the servers a test starts are drawn below the kernel's ephemeral range: a port
// from bind(0) can be taken, between the probe and the server's own bind, by the source port
// of any outgoing connection on the machine (a test running beside this one makes hundreds),
// which once made a sidecar fail with "Address already in use". A port below the range is
// only ever taken by a process that asks for it; one never handed out twice in this process
// and checked free just before, with a retry on a collision (startSidecar, startRedis), is
// safe in practice.
const ephemeralLow = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
})();
const PORT_LOW = 10000;
const PORT_HIGH = ephemeralLow - 1;
const handedOut = new Set();

function bindable(port) {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

function ephemeralPort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** A free loopback TCP port, never the same one twice in this process. */
export async function loopbackPort() {
  for (let tries = 0; tries < 200; tries++) {
    const port =
      PORT_HIGH - PORT_LOW >= 1000 ? PORT_LOW + Math.floor(Math.random() * (PORT_HIGH - PORT_LOW + 1)) : await ephemeralPort();
    if (handedOut.has(port) || !(await bindable(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error('no free loopback port found in 200 tries');
}

/** Whether `proc` exited because a port it was told to listen on was taken. */
const lostPortRace = (proc) => Boolean(proc.exitStatus) && /address already in use/i.test(proc.tail.join(''));

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
  // 'close', not 'exit': by then the output is all in `tail` (a failed bind's reason too).
  proc.gone = new Promise((resolve) =>
    proc.on('close', (code, signal) => {
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

/** Kills every process this file launched that is still running (for after() hooks: a
 * before() that failed half-way leaves processes no other handle reaches). */
export async function stopAll() {
  await Promise.allSettled([...running].map((p) => kill(p)));
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
  for (let attempt = 1; ; attempt++) {
    const port = await loopbackPort();
    const proc = launch('redis-server', tools.redisServer, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs]);
    try {
      await waitFor(
        async () => {
          if (proc.exitStatus) throw new Error(`redis-server exited: ${JSON.stringify(proc.exitStatus)}\n${proc.tail.join('')}`);
          return (await redisCommand(tools.redisCli, port, ['PING']).catch(() => '')).startsWith('PONG');
        },
        { within: 10000, every: 50, what: 'redis-server to answer PING' },
      );
    } catch (err) {
      await kill(proc);
      if (attempt < 3 && lostPortRace(proc)) continue; // another process took the port: pick again
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    return {
      port,
      proc,
      async stop() {
        await kill(proc);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}

/**
 * Starts a podrelay sidecar on free loopback ports (or `port`, to restart one in place)
 * with further flags `args`; resolves once /readyz answers 200.
 */
export async function startSidecar(bin, label, redisPort, { args = [], port: fixedPort } = {}) {
  for (let attempt = 1; ; attempt++) {
    const [port, admin] = [fixedPort ?? (await loopbackPort()), await loopbackPort()];
    const proc = launch(label, bin, ['--listen', `127.0.0.1:${port}`, '--redis', `redis://127.0.0.1:${redisPort}`, '--admin-listen', `127.0.0.1:${admin}`, ...args]);
    try {
      await waitFor(
        async () => {
          if (proc.exitStatus) throw new Error(`${label} exited: ${JSON.stringify(proc.exitStatus)}\n${proc.tail.join('')}`);
          return (await httpStatus(admin, '/readyz')) === 200;
        },
        { within: 20000, every: 50, what: `${label} /readyz` },
      );
    } catch (err) {
      await kill(proc);
      if (attempt < 3 && lostPortRace(proc)) continue; // another process took a port: pick again
      throw err;
    }
    return { port, admin, proc, address: `127.0.0.1:${port}` };
  }
}

export function tails(procs) {
  return procs
    .filter(Boolean)
    .map((p) => `--- ${p.label} (${p.exitStatus ? JSON.stringify(p.exitStatus) : 'running'})\n${p.tail.join('').split('\n').slice(-15).join('\n')}`)
    .join('\n');
}
