// Live tests: a real redis-server and two real podrelay sidecars (A and B) on loopback.
// The sidecar binary is build/bin/podrelay at the repository root, or $PODRELAY_BIN.
// Without the binary or redis-server the suite is skipped (set PODRELAY_REQUIRE_LIVE=1
// to make that a failure instead).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { connect } from '../src/index.js';
import { httpStatus, loopbackPort } from './matrix/harness.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = process.env.PODRELAY_BIN || join(repoRoot, 'build', 'bin', 'podrelay');
const REDIS = process.env.REDIS_SERVER_BIN || 'redis-server';

function skipReason() {
  if (!existsSync(BIN)) return `podrelay binary not found at ${BIN} (build it or set PODRELAY_BIN)`;
  if (spawnSync(REDIS, ['--version']).status !== 0) return `${REDIS} not runnable`;
  return false;
}
const skip = skipReason();
if (skip && process.env.PODRELAY_REQUIRE_LIVE === '1') {
  throw new Error(`live tests required but cannot run: ${skip}`);
}

// ---------------------------------------------------------------------------
// helpers; every wait is bounded

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(fn, { timeout = 5000, every = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(every);
  }
}

const withTimeout = (p, ms, what) => {
  let timer;
  return Promise.race([
    p,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
};

// One RESP command over a fresh connection (used to check Redis and for interop).
function redisCommand(port, args) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const parts = [`*${args.length}\r\n`];
    for (const a of args) parts.push(`$${Buffer.byteLength(a)}\r\n${a}\r\n`);
    let reply = '';
    const timer = setTimeout(() => sock.destroy(), 1000);
    sock.on('connect', () => sock.write(parts.join('')));
    sock.on('data', (d) => {
      reply += d.toString();
      if (reply.endsWith('\r\n')) sock.end();
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(reply);
    });
  });
}

// Spawned processes, killed in after() whatever happened.
const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

function start(name, cmd, args) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.logName = name;
  child.log = [];
  const keep = (d) => {
    child.log.push(d.toString());
    if (child.log.length > 400) child.log.splice(0, child.log.length - 400);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      child.exitInfo = { code, signal };
      resolve(child.exitInfo);
    });
  });
  child.on('error', (err) => child.log.push(`spawn error: ${err.message}\n`));
  children.add(child);
  return child;
}

async function stop(child, signal = 'SIGKILL', timeout = 5000) {
  if (!child || child.exitInfo) return child?.exitInfo;
  child.kill(signal);
  try {
    return await withTimeout(child.exited, timeout, `${child.logName} to exit on ${signal}`);
  } catch (err) {
    child.kill('SIGKILL');
    await withTimeout(child.exited, 2000, `${child.logName} to exit on SIGKILL`).catch(() => {});
    throw err;
  }
}

const allLogs = [];
function logsTail() {
  return allLogs
    .map((c) => `--- ${c.logName} (${c.exitInfo ? `exited ${JSON.stringify(c.exitInfo)}` : 'running'}) ---\n${c.log.join('').split('\n').slice(-25).join('\n')}`)
    .join('\n');
}

// A test whose failure message carries the tail of every process log.
function live(name, fn, opts = {}) {
  test(name, { timeout: 60000, ...opts }, async (t) => {
    try {
      await fn(t);
    } catch (err) {
      err.message += `\n\nprocess logs:\n${logsTail()}`;
      throw err;
    }
  });
}

// ---------------------------------------------------------------------------

describe('live: redis + two sidecars', { skip }, () => {
  const env = {};
  const clients = [];
  let workDir;

  function sidecar(name, listenPort, adminPort) {
    const child = start(name, BIN, [
      '--listen', `127.0.0.1:${listenPort}`,
      '--redis', `redis://127.0.0.1:${env.redisPort}`,
      '--admin-listen', `127.0.0.1:${adminPort}`,
    ]);
    allLogs.push(child);
    return child;
  }

  async function waitReady(child, adminPort) {
    await until(
      async () => {
        if (child.exitInfo) throw new Error(`${child.logName} exited early: ${JSON.stringify(child.exitInfo)}`);
        return (await httpStatus(adminPort, '/readyz')) === 200;
      },
      { timeout: 20000, every: 100, what: `${child.logName} /readyz to answer 200` },
    );
  }

  function client(which, opts = {}) {
    const c = connect({
      address: `127.0.0.1:${which === 'A' ? env.portA : env.portB}`,
      clientName: `node-test-${which}`,
      reconnectMinDelay: 50,
      reconnectMaxDelay: 500,
      ...opts,
    });
    c.on('error', () => {}); // errors surface through promises; keep them from throwing
    clients.push(c);
    return c;
  }

  // Collects every message a handler gets.
  function collector() {
    const got = [];
    const handler = (payload, channel, pattern) => got.push({ payload, channel, pattern });
    handler.got = got;
    handler.wait = (n, what = `${n} message(s)`, timeout = 5000) =>
      until(() => got.length >= n, { timeout, what }).then(() => got);
    return handler;
  }

  before(async () => {
    workDir = mkdtempSync(join(tmpdir(), 'podrelay-node-live-'));
    [env.redisPort, env.portA, env.adminA, env.portB, env.adminB] = await Promise.all(
      [0, 1, 2, 3, 4].map(() => loopbackPort()),
    );
    env.redis = start('redis', REDIS, [
      '--port', String(env.redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', workDir,
    ]);
    allLogs.push(env.redis);
    await until(async () => (await redisCommand(env.redisPort, ['PING'])).startsWith('+PONG'), {
      timeout: 10000, every: 50, what: 'redis-server to answer PING',
    });
    env.a = sidecar('sidecar-A', env.portA, env.adminA);
    env.b = sidecar('sidecar-B', env.portB, env.adminB);
    await Promise.all([waitReady(env.a, env.adminA), waitReady(env.b, env.adminB)]);
  });

  after(async () => {
    for (const c of clients) c.destroy();
    await Promise.allSettled([...children].map((c) => stop(c, 'SIGKILL', 3000)));
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  live('connects and answers ping', async () => {
    const a = client('A');
    const info = await withTimeout(a.ready(), 5000, 'ready');
    assert.equal(info.version, 1);
    assert.ok(info.nodeId.length > 0);
    assert.ok(info.maxFrameBytes > 0);
    const ms = await withTimeout(a.ping(), 5000, 'ping');
    assert.ok(ms >= 0);
  });

  live('a publish on sidecar A reaches a subscriber on sidecar B', async () => {
    const a = client('A');
    const b = client('B');
    const h = collector();
    await withTimeout(b.subscribe('news', h), 5000, 'subscribe');
    await withTimeout(a.publish('news', 'hello from A'), 5000, 'acked publish');
    const [m] = await h.wait(1);
    assert.equal(m.payload.toString(), 'hello from A');
    assert.equal(m.channel, 'news');
    assert.equal(m.pattern, null);
  });

  live('fire-and-forget publish is delivered too', async () => {
    const a = client('A');
    const b = client('B');
    const h = collector();
    await b.subscribe('ff', h);
    await a.publish('ff', 'no ack', { ack: false });
    const [m] = await h.wait(1);
    assert.equal(m.payload.toString(), 'no ack');
  });

  live('protocol version 3: publish with echo: false reaches every other subscriber but not the sender', async () => {
    const a = client('A', { protocolVersion: 3 });
    const a2 = client('A', { protocolVersion: 3 });
    const b = client('B', { protocolVersion: 3 });
    assert.equal((await withTimeout(a.ready(), 5000, 'ready')).version, 3);
    const [self, sameSidecar, otherSidecar] = [collector(), collector(), collector()];
    await Promise.all([a.subscribe('noecho', self), a2.subscribe('noecho', sameSidecar), b.subscribe('noecho', otherSidecar)]);
    for (let i = 0; i < 20; i++) await a.publish('noecho', `quiet ${i}`, { echo: false, ack: i % 2 === 0 });
    await a.publish('noecho', 'loud'); // echo on: comes back, and marks the end
    await Promise.all([self.wait(1), sameSidecar.wait(21), otherSidecar.wait(21)]);
    await sleep(100);
    assert.deepEqual(self.got.map((m) => m.payload.toString()), ['loud']);
    assert.equal(sameSidecar.got.length, 21);
    assert.deepEqual(otherSidecar.got.map((m) => m.payload.toString()).slice(0, 2), ['quiet 0', 'quiet 1']);
  });

  live('psubscribe delivers matching channels with the pattern', async () => {
    const a = client('A');
    const b = client('B');
    const h = collector();
    await withTimeout(b.psubscribe('orders.*', h), 5000, 'psubscribe');
    await a.publish('orders.eu', 'o1');
    await a.publish('other.eu', 'not me');
    await a.publish('orders.us', 'o2');
    await h.wait(2);
    await sleep(100);
    assert.deepEqual(
      h.got.map((m) => [m.payload.toString(), m.channel, m.pattern]),
      [['o1', 'orders.eu', 'orders.*'], ['o2', 'orders.us', 'orders.*']],
    );
    // An empty pattern is refused (INVALID_ARGUMENT) without costing the connection.
    await assert.rejects(b.psubscribe('', () => {}), (e) => e.code === 200 && e.name === 'INVALID_ARGUMENT' && !e.local);
    await a.publish('orders.eu', 'o3');
    await h.wait(3);
  });

  live('unsubscribe stops delivery', async () => {
    const a = client('A');
    const b = client('B');
    const h = collector();
    const control = collector();
    await b.subscribe('u', h);
    await b.subscribe('u-control', control);
    await a.publish('u', 'before');
    await h.wait(1);
    await withTimeout(b.unsubscribe('u'), 5000, 'unsubscribe');
    await a.publish('u', 'after');
    // Same publisher connection, so Redis delivers in publish order: once the control
    // message is in, an 'after' message would have been too.
    await a.publish('u-control', 'marker');
    await control.wait(1);
    await sleep(100);
    assert.deepEqual(h.got.map((m) => m.payload.toString()), ['before']);
    // punsubscribe as well
    const p = collector();
    await b.psubscribe('pu.*', p);
    await a.publish('pu.x', '1');
    await p.wait(1);
    await b.punsubscribe('pu.*');
    await a.publish('pu.x', '2');
    await a.publish('u-control', 'marker2');
    await control.wait(2);
    await sleep(100);
    assert.equal(p.got.length, 1);
  });

  live('binary payloads and binary channel names round-trip byte for byte', async () => {
    const a = client('A');
    const b = client('B');
    const h = collector();
    const channel = Buffer.from([0x00, 0xff, 0x0a, 0x20, 0xc3]);
    await b.subscribe(channel, h);
    const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const big = Buffer.alloc(200 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
    await a.publish(channel, every);
    await a.publish(channel, Buffer.alloc(0));
    await a.publish(channel, big);
    await a.publish(channel, 'ünïcødé ✓');
    await h.wait(4);
    assert.ok(Buffer.isBuffer(h.got[0].channel));
    assert.deepEqual(h.got[0].channel, channel);
    assert.deepEqual(h.got[0].payload, every);
    assert.equal(h.got[1].payload.length, 0);
    assert.ok(h.got[2].payload.equals(big));
    assert.equal(h.got[3].payload.toString('utf8'), 'ünïcødé ✓');
  });

  live('a publisher subscribed to its own channel gets its own message; order is kept', async () => {
    const a = client('A');
    const h = collector();
    await a.subscribe('self', h);
    const n = 200;
    await Promise.all(Array.from({ length: n }, (_, i) => a.publish('self', String(i))));
    await h.wait(n);
    assert.deepEqual(h.got.map((m) => Number(m.payload.toString())), Array.from({ length: n }, (_, i) => i));
  });

  live('a plain Redis PUBLISH on the prefixed channel reaches subscribers', async () => {
    const b = client('B');
    const h = collector();
    await b.subscribe('interop', h);
    const reply = await redisCommand(env.redisPort, ['PUBLISH', 'podrelay:interop', 'from redis']);
    assert.match(reply, /^:1\r\n/, `PUBLISH reply ${JSON.stringify(reply)}`);
    const [m] = await h.wait(1);
    assert.equal(m.payload.toString(), 'from redis');
  });

  live('the client reconnects and resubscribes after its sidecar is killed and restarted', async () => {
    const a = client('A');
    const b = client('B');
    const fromA = collector();
    const fromB = collector();
    const pfromA = collector();
    await b.subscribe('rc', fromA);
    await b.psubscribe('rcp.*', pfromA);
    await a.subscribe('rc-back', fromB);
    await a.publish('rc', 'before kill');
    await fromA.wait(1);
    const firstNode = b.serverInfo.nodeId;

    const disconnected = new Promise((r) => b.once('disconnect', r));
    await stop(env.b, 'SIGKILL');
    await withTimeout(disconnected, 5000, 'client B to notice the kill');
    assert.equal(b.connected, false);

    // While B is down, a publish through it waits in the client's queue.
    const queued = b.publish('rc-back', 'sent while down');
    await sleep(300);
    assert.ok(b.pendingBytes > 0, 'publish should be queued while the sidecar is down');

    const reconnected = new Promise((r) => b.once('connect', r));
    env.b = sidecar('sidecar-B(restarted)', env.portB, env.adminB);
    await waitReady(env.b, env.adminB);
    const info = await withTimeout(reconnected, 10000, 'client B to reconnect');
    assert.notEqual(info.nodeId, firstNode, 'a restarted sidecar has a new node_id');
    await withTimeout(queued, 5000, 'queued publish to complete after the reconnect');
    const [back] = await fromB.wait(1);
    assert.equal(back.payload.toString(), 'sent while down');

    // The resubscribe was sent before this SUB, and replies to SUBs come in order, so
    // once this resolves every old subscription is active again.
    await withTimeout(b.subscribe('rc-probe', () => {}), 5000, 'probe subscribe');
    await a.publish('rc', 'after restart');
    await a.publish('rcp.1', 'pattern after restart');
    await fromA.wait(2);
    await pfromA.wait(1);
    assert.equal(fromA.got[1].payload.toString(), 'after restart');
    assert.equal(pfromA.got[0].channel, 'rcp.1');
  });

  live('unix socket listener, auth token and frame limit of a third sidecar', async () => {
    const sock = join(workDir, 'c.sock');
    const tokenFile = join(workDir, 'token');
    writeFileSync(tokenFile, 's3cret-token\n');
    const [portC, adminC] = [await loopbackPort(), await loopbackPort()];
    const c = start('sidecar-C', BIN, [
      '--listen', `127.0.0.1:${portC}`,
      '--listen', `unix:${sock}`,
      '--redis', `redis://127.0.0.1:${env.redisPort}`,
      '--admin-listen', `127.0.0.1:${adminC}`,
      '--auth-token-file', tokenFile,
      '--max-frame-bytes', '4096',
    ]);
    allLogs.push(c);
    try {
      await waitReady(c, adminC);
      // Wrong token: the handshake is refused and the client gives up.
      const bad = connect({ address: `unix:${sock}`, authToken: 'wrong', reconnectMinDelay: 50 });
      bad.on('error', () => {});
      clients.push(bad);
      await assert.rejects(withTimeout(bad.ready(), 5000, 'refused handshake'), (e) => e.code === 105 && e.name === 'AUTH_FAILED');
      assert.equal(bad.state, 'closed');

      const good = connect({ address: `unix:${sock}`, authToken: 's3cret-token', reconnectMinDelay: 50 });
      good.on('error', () => {});
      clients.push(good);
      const info = await withTimeout(good.ready(), 5000, 'handshake over unix socket');
      assert.equal(info.maxFrameBytes, 4096);
      await assert.rejects(good.publish('big', Buffer.alloc(5000)), (e) => e.code === 101 && e.local);
      const b = client('B');
      const h = collector();
      await b.subscribe('via-unix', h);
      await good.publish('via-unix', Buffer.alloc(4000, 9));
      const [m] = await h.wait(1);
      assert.equal(m.payload.length, 4000);
      await good.close();
    } finally {
      await stop(c, 'SIGKILL');
    }
  });

  live('SIGTERM: the sidecar sends GOAWAY SHUTTING_DOWN and exits 0; the client comes back', async () => {
    const b = client('B');
    const h = collector();
    await b.subscribe('gw', h);
    const goaway = new Promise((r) => b.once('goaway', r));
    const exit = await stop(env.b, 'SIGTERM', 15000);
    const g = await withTimeout(goaway, 5000, 'GOAWAY');
    assert.equal(g.code, 401);
    assert.equal(g.name, 'SHUTTING_DOWN');
    assert.deepEqual(exit, { code: 0, signal: null });

    const reconnected = new Promise((r) => b.once('connect', r));
    env.b = sidecar('sidecar-B(after SIGTERM)', env.portB, env.adminB);
    await waitReady(env.b, env.adminB);
    await withTimeout(reconnected, 10000, 'client B to reconnect');
    await withTimeout(b.subscribe('gw-probe', () => {}), 5000, 'probe subscribe');
    const a = client('A');
    await a.publish('gw', 'after goaway');
    const [m] = await h.wait(1);
    assert.equal(m.payload.toString(), 'after goaway');
  });

  live('after GOAWAY the client waits for the answers the sidecar owes and sends nothing more', async () => {
    // Its own Redis and sidecar: Redis goes down and comes back here.
    const [redisPort, portC, adminC] = [await loopbackPort(), await loopbackPort(), await loopbackPort()];
    const redisArgs = ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', workDir];
    const startRedis = async (name) => {
      const r = start(name, REDIS, redisArgs);
      allLogs.push(r);
      await until(async () => (await redisCommand(redisPort, ['PING'])).startsWith('+PONG'), {
        timeout: 10000, every: 50, what: `${name} to answer PING`,
      });
      return r;
    };
    const startC = (name) => {
      const child = start(name, BIN, [
        '--listen', `127.0.0.1:${portC}`,
        '--redis', `redis://127.0.0.1:${redisPort}`,
        '--admin-listen', `127.0.0.1:${adminC}`,
        '--drain-timeout', '6',
      ]);
      allLogs.push(child);
      return child;
    };
    let redis = await startRedis('redis-C');
    let c = startC('sidecar-C');
    try {
      await waitReady(c, adminC);
      const cc = connect({ address: `127.0.0.1:${portC}`, reconnectMinDelay: 50, reconnectMaxDelay: 300 });
      cc.on('error', () => {});
      clients.push(cc);
      await withTimeout(cc.ready(), 5000, 'client C ready');
      await stop(redis, 'SIGKILL');
      await until(async () => (await httpStatus(adminC, '/readyz')) !== 200, { timeout: 10000, what: 'C not ready' });
      const settled = [];
      const held = cc.publish('drain', 'held').then(
        () => settled.push('held ok'),
        (e) => settled.push(`held ${e.name}`),
      );
      await sleep(300); // the sidecar has read it and holds it for Redis
      const states = [];
      cc.once('goaway', () => states.push(cc.state));
      c.kill('SIGTERM');
      await until(() => states.length > 0, { timeout: 5000, what: 'GOAWAY' });
      assert.deepEqual(states, ['draining']);
      assert.equal(cc.connected, false);
      // Written now, it would be lost on a sidecar that reads nothing more: it must wait.
      const later = cc.publish('drain', 'after goaway').then(
        () => settled.push('later ok'),
        (e) => settled.push(`later ${e.name}`),
      );
      await sleep(300);
      assert.deepEqual(settled, [], 'nothing settles before the sidecar answers');
      redis = await startRedis('redis-C(back)');
      await withTimeout(held, 10000, 'the held publish to be answered');
      assert.deepEqual(settled, ['held ok']);
      assert.deepEqual(await withTimeout(c.exited, 15000, 'C to exit'), { code: 0, signal: null });
      c = startC('sidecar-C(next)');
      await withTimeout(later, 15000, 'the queued publish on the next connection');
      assert.deepEqual(settled, ['held ok', 'later ok']);
      const stats = await redisCommand(redisPort, ['INFO', 'commandstats']);
      assert.match(stats, /cmdstat_publish:calls=2,/);
      await cc.close();
    } finally {
      await stop(c, 'SIGKILL');
      await stop(redis, 'SIGKILL');
    }
  });
});
