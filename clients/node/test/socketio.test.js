// Live tests of podrelay/socket.io: one real redis-server, three real podrelay sidecars
// (A, B, C) and three Socket.IO servers in this process, each with the adapter on its own
// sidecar, reached by socket.io-client clients over loopback.
// The sidecar binary is build/bin/podrelay at the repository root, or $PODRELAY_BIN.
// Without the binary, redis-server or redis-cli the suite is skipped (set
// PODRELAY_REQUIRE_LIVE=1 to make that a failure instead).
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { Server } from 'socket.io';
import { io as ioc } from 'socket.io-client';

import { channelsOf, createAdapter } from '../src/socket.io.js';
import { httpStatus, loopbackPort } from './matrix/harness.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = process.env.PODRELAY_BIN || join(repoRoot, 'build', 'bin', 'podrelay');
const REDIS = process.env.REDIS_SERVER_BIN || 'redis-server';
const REDIS_CLI = process.env.REDIS_CLI_BIN || 'redis-cli';

function skipReason() {
  if (!existsSync(BIN)) return `podrelay binary not found at ${BIN} (build it or set PODRELAY_BIN)`;
  if (spawnSync(REDIS, ['--version']).status !== 0) return `${REDIS} not runnable`;
  if (spawnSync(REDIS_CLI, ['--version']).status !== 0) return `${REDIS_CLI} not runnable`;
  return false;
}
const skip = skipReason();
if (skip && process.env.PODRELAY_REQUIRE_LIVE === '1') {
  throw new Error(`live tests required but cannot run: ${skip}`);
}

// Short heartbeats so that a vanished server is noticed within seconds.
const HEARTBEAT_INTERVAL = 200;
const HEARTBEAT_TIMEOUT = 1500;
// How long serverSideEmit and fetchSockets wait for the other servers.
const REQUESTS_TIMEOUT = 1000;
// How long to keep watching for a message that must not arrive, once a later message
// from the same sender has arrived.
const QUIET_MS = 150;

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

function redisCli(port, args) {
  return new Promise((resolve, reject) => {
    execFile(REDIS_CLI, ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 3000 }, (err, stdout) => {
      if (err) reject(err);
      else resolve(stdout);
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

const sorted = (xs) => [...xs].sort();

// ---------------------------------------------------------------------------

describe('live: socket.io adapter over three sidecars', { skip }, () => {
  const env = { sidecars: {}, servers: {} };
  const sockets = []; // every client socket, closed in after()
  let workDir;

  function startSidecar(name) {
    const s = env.sidecars[name];
    s.proc = start(`sidecar-${name}`, BIN, [
      '--listen', `127.0.0.1:${s.port}`,
      '--redis', `redis://127.0.0.1:${env.redisPort}`,
      '--admin-listen', `127.0.0.1:${s.admin}`,
    ]);
    allLogs.push(s.proc);
    return s.proc;
  }

  async function waitReady(name) {
    const s = env.sidecars[name];
    await until(
      async () => {
        if (s.proc.exitInfo) throw new Error(`${s.proc.logName} exited early: ${JSON.stringify(s.proc.exitInfo)}`);
        return (await httpStatus(s.admin, '/readyz')) === 200;
      },
      { timeout: 20000, every: 100, what: `${s.proc.logName} /readyz to answer 200` },
    );
  }

  // A Socket.IO server whose adapter talks to sidecar `sidecarName`.
  async function startServer(name, sidecarName, serverOpts = {}, adapterOpts = {}) {
    const httpServer = http.createServer();
    const io = new Server(httpServer, serverOpts);
    const errors = [];
    io.adapter(
      createAdapter({
        address: `127.0.0.1:${env.sidecars[sidecarName].port}`,
        heartbeatInterval: HEARTBEAT_INTERVAL,
        heartbeatTimeout: HEARTBEAT_TIMEOUT,
        requestsTimeout: REQUESTS_TIMEOUT,
        connectOptions: { clientName: `socketio-test-${name}`, reconnectMinDelay: 50, reconnectMaxDelay: 300 },
        ...adapterOpts,
      }),
    );
    io.of('/').adapter.on('error', (err) => errors.push(err));
    io.on('connection', (socket) => {
      socket.data.name = socket.handshake.auth.name;
      socket.data.server = name;
      socket.on('join', async (rooms, cb) => {
        await socket.join(rooms);
        cb(true);
      });
      socket.on('leave', async (room, cb) => {
        await socket.leave(room);
        cb(true);
      });
    });
    await new Promise((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
    const server = { name, io, httpServer, port: httpServer.address().port, errors, adapter: () => io.of('/').adapter };
    env.servers[name] = server;
    return server;
  }

  async function closeServer(server) {
    await withTimeout(server.io.close(), 5000, `server ${server.name} to close`).catch(() => {});
  }

  const serverCount = (server) => server.adapter().serverCount();

  async function waitServerCount(servers, n, timeout = 10000) {
    await until(async () => (await Promise.all(servers.map(serverCount))).every((c) => c === n), {
      timeout,
      what: `serverCount() == ${n} on ${servers.map((s) => s.name).join(', ')}`,
    });
  }

  // A socket.io-client client connected to `server`; records every event it receives and
  // answers 'ask' acks with `<name>:<arg>`.
  async function client(server, name, nsp = '/') {
    const socket = ioc(`http://127.0.0.1:${server.port}${nsp}`, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      auth: { name },
    });
    sockets.push(socket);
    socket.clientName = name;
    socket.got = [];
    socket.onAny((ev, ...args) => socket.got.push({ ev, args }));
    socket.on('ask', (x, cb) => cb(`${name}:${x}`));
    await withTimeout(
      new Promise((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('connect_error', reject);
      }),
      5000,
      `client ${name} to connect`,
    );
    return socket;
  }

  const joinRoom = (socket, rooms) => withTimeout(socket.emitWithAck('join', rooms), 5000, `${socket.clientName} to join ${rooms}`);
  const leaveRoom = (socket, room) => withTimeout(socket.emitWithAck('leave', room), 5000, `${socket.clientName} to leave ${room}`);
  const events = (socket, ev) => socket.got.filter((g) => g.ev === ev);

  async function waitEvent(socket, ev, n = 1, timeout = 5000) {
    await until(() => events(socket, ev).length >= n, { timeout, what: `${socket.clientName} to receive ${n} × '${ev}'` });
    return events(socket, ev);
  }

  // After `server` broadcasts a marker to everyone and every socket in `socketsToCheck`
  // got it, plus QUIET_MS, a message `server` broadcast before it has arrived if it will.
  let markerSeq = 0;
  async function settle(server, socketsToCheck) {
    const ev = `marker-${++markerSeq}`;
    server.io.emit(ev);
    await Promise.all(socketsToCheck.map((s) => waitEvent(s, ev)));
    await sleep(QUIET_MS);
  }

  async function numsub(channel) {
    const out = await redisCli(env.redisPort, ['PUBSUB', 'NUMSUB', `podrelay:${channel}`]);
    const lines = out.trim().split('\n');
    return Number(lines[lines.length - 1]);
  }
  const roomChannel = (room) => channelsOf('socket.io', '/').room(room);

  // Counts the messages an adapter acts on, by type.
  function spyMessages(server) {
    const adapter = server.adapter();
    const seen = [];
    const original = adapter.onMessage;
    adapter.onMessage = function (message, offset) {
      seen.push(message);
      return original.call(this, message, offset);
    };
    seen.restore = () => {
      adapter.onMessage = original;
    };
    return seen;
  }
  const BROADCAST = 3;

  before(async () => {
    workDir = mkdtempSync(join(tmpdir(), 'podrelay-socketio-live-'));
    const ports = await Promise.all(Array.from({ length: 7 }, () => loopbackPort()));
    env.redisPort = ports[0];
    env.sidecars = {
      A: { port: ports[1], admin: ports[2] },
      B: { port: ports[3], admin: ports[4] },
      C: { port: ports[5], admin: ports[6] },
    };
    env.redis = start('redis', REDIS, [
      '--port', String(env.redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', workDir,
    ]);
    allLogs.push(env.redis);
    await until(async () => (await redisCli(env.redisPort, ['PING']).catch(() => '')).startsWith('PONG'), {
      timeout: 10000, every: 50, what: 'redis-server to answer PING',
    });
    for (const n of ['A', 'B', 'C']) startSidecar(n);
    await Promise.all(['A', 'B', 'C'].map(waitReady));
    await Promise.all(['A', 'B', 'C'].map((n) => startServer(n, n)));
    const { A, B, C } = env.servers;
    await waitServerCount([A, B, C], 3);
  });

  after(async () => {
    for (const s of sockets) s.disconnect();
    await Promise.allSettled(Object.values(env.servers).map(closeServer));
    await Promise.allSettled([...children].map((c) => stop(c, 'SIGKILL', 3000)));
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  live('the servers count each other and use one namespace channel and one response channel each', async () => {
    const { A, B, C } = env.servers;
    for (const s of [A, B, C]) assert.equal(await serverCount(s), 3);
    const ch = channelsOf('socket.io', '/');
    assert.equal(await numsub(ch.namespace), 3, 'every sidecar subscribes the namespace channel once');
    for (const s of [A, B, C]) {
      assert.equal(s.adapter().responseChannel, ch.server(s.adapter().uid));
      assert.equal(await numsub(s.adapter().responseChannel), 1, `only ${s.name} subscribes its response channel`);
    }
  });

  live('broadcast to all reaches every client on every server once, binary intact', async () => {
    const { A, B, C } = env.servers;
    const cs = [await client(A, 'all-a'), await client(B, 'all-b'), await client(C, 'all-c'), await client(C, 'all-c2')];
    const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff]);
    B.io.emit('hello', 'world', bytes, { n: 1, nested: [true, null] });
    for (const s of cs) {
      const [m] = await waitEvent(s, 'hello');
      assert.equal(m.args[0], 'world');
      assert.deepEqual(Buffer.from(m.args[1]), bytes);
      assert.deepEqual(m.args[2], { n: 1, nested: [true, null] });
    }
    await settle(B, cs);
    for (const s of cs) assert.equal(events(s, 'hello').length, 1, `${s.clientName} got 'hello' once`);
    // socket.broadcast: everyone but the sender
    const sender = cs[0];
    A.io.sockets.sockets.get(sender.id).broadcast.emit('not-you');
    for (const s of cs.slice(1)) await waitEvent(s, 'not-you');
    await settle(A, cs);
    assert.equal(events(sender, 'not-you').length, 0);
  });

  live('broadcast to a room reaches only the room, on every server', async () => {
    const { A, B, C } = env.servers;
    const a1 = await client(A, 'room-a1');
    const b1 = await client(B, 'room-b1');
    const b2 = await client(B, 'room-b2');
    const c1 = await client(C, 'room-c1');
    await joinRoom(a1, 'r1');
    await joinRoom(b1, 'r1');
    C.io.to('r1').emit('to-r1', 42);
    await waitEvent(a1, 'to-r1');
    await waitEvent(b1, 'to-r1');
    await settle(C, [a1, b1, b2, c1]);
    assert.deepEqual(events(a1, 'to-r1').map((m) => m.args), [[42]]);
    assert.deepEqual(events(b1, 'to-r1').map((m) => m.args), [[42]]);
    assert.equal(events(b2, 'to-r1').length, 0);
    assert.equal(events(c1, 'to-r1').length, 0);
    // to a single socket (its private room) on another server
    A.io.to(c1.id).emit('direct', 'c1 only');
    await waitEvent(c1, 'direct');
    await settle(A, [a1, b1, b2, c1]);
    for (const s of [a1, b1, b2]) assert.equal(events(s, 'direct').length, 0);
  });

  live('a broadcast to several rooms reaches a socket in more than one of them once', async () => {
    const { A, B, C } = env.servers;
    const a1 = await client(A, 'multi-a1');
    const b1 = await client(B, 'multi-b1');
    const c1 = await client(C, 'multi-c1');
    const c2 = await client(C, 'multi-c2');
    await joinRoom(a1, 'm1');
    await joinRoom(b1, ['m1', 'm2']);
    await joinRoom(c1, 'm2');
    assert.equal(await numsub(roomChannel('m1')), 2, 'm1: sidecars A and B');
    assert.equal(await numsub(roomChannel('m2')), 2, 'm2: sidecars B and C');
    const bSpy = spyMessages(B);
    try {
      for (let i = 0; i < 5; i++) A.io.to(['m1', 'm2']).emit('multi', i);
      for (const s of [a1, b1, c1]) await waitEvent(s, 'multi', 5);
      await settle(A, [a1, b1, c1, c2]);
      for (const s of [a1, b1, c1]) {
        assert.deepEqual(events(s, 'multi').map((m) => m.args[0]), [0, 1, 2, 3, 4], `${s.clientName} got each once, in order`);
      }
      assert.equal(events(c2, 'multi').length, 0);
      // B got two copies of each (it is in both rooms) and acted on one.
      assert.equal(bSpy.filter((m) => m.type === BROADCAST && m.data.packet.data[0] === 'multi').length, 5);
    } finally {
      bSpy.restore();
    }
  });

  live('except a room, and local only', async () => {
    const { A, B, C } = env.servers;
    const a1 = await client(A, 'ex-a1');
    const a2 = await client(A, 'ex-a2');
    const b1 = await client(B, 'ex-b1');
    const c1 = await client(C, 'ex-c1');
    const c2 = await client(C, 'ex-c2');
    const all = [a1, a2, b1, c1, c2];
    await joinRoom(a2, 'vip');
    await joinRoom(c1, 'vip');
    B.io.except('vip').emit('plain');
    for (const s of [a1, b1, c2]) await waitEvent(s, 'plain');
    // to a room except another room
    await joinRoom(b1, 'lobby');
    await joinRoom(c1, 'lobby');
    await joinRoom(c2, 'lobby');
    A.io.to('lobby').except('vip').emit('lobby-plain');
    for (const s of [b1, c2]) await waitEvent(s, 'lobby-plain');
    await settle(B, all);
    await settle(A, all);
    assert.equal(events(a2, 'plain').length, 0);
    assert.equal(events(c1, 'plain').length, 0);
    assert.equal(events(c1, 'lobby-plain').length, 0);
    assert.equal(events(a1, 'lobby-plain').length, 0);
    for (const s of [a1, b1, c2]) assert.equal(events(s, 'plain').length, 1);

    A.io.local.emit('local-only');
    await waitEvent(a1, 'local-only');
    await waitEvent(a2, 'local-only');
    await settle(A, all);
    for (const s of [b1, c1, c2]) assert.equal(events(s, 'local-only').length, 0, `${s.clientName} is not on A`);
  });

  live('timeout().emit collects the acks of clients on every server', async () => {
    const { A, B, C } = env.servers;
    const a1 = await client(A, 'ack-a1');
    const b1 = await client(B, 'ack-b1');
    const b2 = await client(B, 'ack-b2');
    const c1 = await client(C, 'ack-c1');
    for (const s of [a1, b1, b2, c1]) await joinRoom(s, 'ackroom');
    const responses = await withTimeout(A.io.to('ackroom').timeout(4000).emitWithAck('ask', 'q1'), 6000, 'acks');
    assert.deepEqual(sorted(responses), ['ack-a1:q1', 'ack-b1:q1', 'ack-b2:q1', 'ack-c1:q1']);

    // Callback form, to everyone: at least our four answer (other tests' clients may too).
    const res2 = await withTimeout(
      new Promise((resolve, reject) => C.io.timeout(4000).emit('ask', 'q2', (err, r) => (err ? reject(err) : resolve(r)))),
      6000,
      'acks to all',
    );
    for (const n of ['ack-a1', 'ack-b1', 'ack-b2', 'ack-c1']) assert.ok(res2.includes(`${n}:q2`), `${n} answered`);

    // A client that does not answer: timeout error with the answers that did come.
    const mute = await client(B, 'ack-mute');
    mute.off('ask');
    mute.on('ask', () => {});
    await joinRoom(mute, 'ackroom');
    const t0 = Date.now();
    await assert.rejects(A.io.to('ackroom').timeout(800).emitWithAck('ask', 'q3'), /timed out/);
    assert.ok(Date.now() - t0 >= 700);
  });

  live('socketsJoin and socketsLeave act on sockets of other servers', async () => {
    const { A, B, C } = env.servers;
    const b1 = await client(B, 'sj-b1');
    const c1 = await client(C, 'sj-c1');
    const c2 = await client(C, 'sj-c2');
    await joinRoom(c2, 'sj-src');
    await joinRoom(b1, 'sj-src');
    await A.io.in('sj-src').socketsJoin('sj-dst');
    await A.io.in(c1.id).socketsJoin(['sj-dst', 'sj-other']);
    await until(async () => (await A.io.in('sj-dst').fetchSockets()).length === 3, { what: 'three sockets in sj-dst' });
    assert.deepEqual(sorted((await A.io.in('sj-dst').fetchSockets()).map((s) => s.id)), sorted([b1.id, c1.id, c2.id]));
    assert.ok(C.io.sockets.sockets.get(c1.id).rooms.has('sj-other'));
    await until(async () => (await numsub(roomChannel('sj-dst'))) === 2, { what: 'B and C to subscribe sj-dst' });
    A.io.to('sj-dst').emit('in-dst');
    for (const s of [b1, c1, c2]) await waitEvent(s, 'in-dst');

    await B.io.in('sj-dst').except('sj-src').socketsLeave('sj-dst');
    await until(async () => (await A.io.in('sj-dst').fetchSockets()).length === 2, { what: 'c1 to leave sj-dst' });
    assert.ok(!C.io.sockets.sockets.get(c1.id).rooms.has('sj-dst'));
    await B.io.socketsLeave('sj-dst');
    await until(async () => (await A.io.in('sj-dst').fetchSockets()).length === 0, { what: 'sj-dst to be empty' });
    await until(async () => (await numsub(roomChannel('sj-dst'))) === 0, { what: 'nobody to subscribe sj-dst' });
  });

  live('disconnectSockets disconnects the matching sockets on every server', async () => {
    const { A, B, C } = env.servers;
    const a1 = await client(A, 'dc-a1');
    const b1 = await client(B, 'dc-b1');
    const c1 = await client(C, 'dc-c1');
    const c2 = await client(C, 'dc-c2');
    await joinRoom(b1, 'doomed');
    await joinRoom(c1, 'doomed');
    const reasons = new Map();
    for (const s of [a1, b1, c1, c2]) s.on('disconnect', (reason) => reasons.set(s.clientName, reason));
    A.io.in('doomed').disconnectSockets(true);
    await until(() => reasons.has('dc-b1') && reasons.has('dc-c1'), { what: 'b1 and c1 to be disconnected' });
    assert.equal(reasons.get('dc-b1'), 'io server disconnect');
    assert.equal(reasons.get('dc-c1'), 'io server disconnect');
    await settle(A, [a1, c2]);
    assert.ok(a1.connected && c2.connected);
    assert.equal(reasons.size, 2);
    await until(async () => (await numsub(roomChannel('doomed'))) === 0, { what: 'the room, and its channel with it, to be gone' });
  });

  live('fetchSockets returns remote sockets with their data and rooms; a remote socket can be emitted to', async () => {
    const { A, B, C } = env.servers;
    const a1 = await client(A, 'fs-a1');
    const b1 = await client(B, 'fs-b1');
    const c1 = await client(C, 'fs-c1');
    for (const s of [a1, b1, c1]) await joinRoom(s, 'fs-room');
    await joinRoom(c1, 'fs-extra');
    const found = await withTimeout(B.io.in('fs-room').fetchSockets(), 5000, 'fetchSockets');
    assert.deepEqual(sorted(found.map((s) => s.id)), sorted([a1.id, b1.id, c1.id]));
    const remoteC = found.find((s) => s.id === c1.id);
    assert.deepEqual(remoteC.data, { name: 'fs-c1', server: 'C' });
    assert.ok(remoteC.rooms.has('fs-extra') && remoteC.rooms.has(c1.id));
    assert.equal(remoteC.handshake.auth.name, 'fs-c1');
    remoteC.emit('for-you', 'from B');
    const [m] = await waitEvent(c1, 'for-you');
    assert.deepEqual(m.args, ['from B']);
    // every socket
    const everyone = await A.io.fetchSockets();
    for (const s of [a1, b1, c1]) assert.ok(everyone.some((x) => x.id === s.id));
  });

  live('serverSideEmit: plain, with responses, and with a server that does not answer', async () => {
    const { A, B, C } = env.servers;
    const notes = [];
    for (const s of [A, B, C]) {
      s.io.of('/').on('note', (x) => notes.push(`${s.name}:${x}`));
      s.io.of('/').on('svc', (x, cb) => cb(`${s.name}:${x}`));
    }
    B.io.of('/').on('svc-slow', (cb) => cb('B'));
    C.io.of('/').on('svc-slow', () => {}); // never answers
    try {
      A.io.serverSideEmit('note', 1);
      await until(() => notes.length === 2, { what: 'B and C to get the note' });
      await sleep(QUIET_MS);
      assert.deepEqual(sorted(notes), ['B:1', 'C:1'], 'every other server, not the sender');

      const responses = await withTimeout(A.io.serverSideEmitWithAck('svc', 7), 6000, 'serverSideEmitWithAck');
      assert.deepEqual(sorted(responses), ['B:7', 'C:7']);

      const t0 = Date.now();
      const err = await withTimeout(A.io.serverSideEmitWithAck('svc-slow').then(() => null, (e) => e), 8000, 'timeout');
      assert.ok(err, 'expected a timeout');
      assert.equal(err.message, 'timeout reached: only 1 responses received out of 2');
      assert.deepEqual(err.responses, ['B']);
      const waited = Date.now() - t0;
      assert.ok(waited >= REQUESTS_TIMEOUT - 50 && waited < 4000, `waited requestsTimeout (${waited} ms), not socket.io-adapter's fixed 5 s`);
    } finally {
      for (const s of [A, B, C]) s.io.of('/').removeAllListeners('note').removeAllListeners('svc').removeAllListeners('svc-slow');
    }
  });

  live('room channels: a server with no socket in a room neither subscribes nor receives its broadcasts', async () => {
    const { A, B, C } = env.servers;
    const a1 = await client(A, 'solo-a1');
    const b1 = await client(B, 'solo-b1');
    assert.equal(await numsub(roomChannel('solo')), 0);
    await joinRoom(a1, 'solo');
    assert.equal(await numsub(roomChannel('solo')), 1, 'only sidecar A subscribes the channel of solo');
    const bSpy = spyMessages(B);
    try {
      C.io.to('solo').emit('solo-msg', 1);
      await waitEvent(a1, 'solo-msg');
      await settle(C, [a1, b1]);
      assert.equal(bSpy.filter((m) => m.type === BROADCAST).length, 1, "B saw only the marker, not solo's broadcast");

      await joinRoom(b1, 'solo'); // resolves once B's subscription is confirmed
      assert.equal(await numsub(roomChannel('solo')), 2);
      C.io.to('solo').emit('solo-msg', 2);
      await waitEvent(b1, 'solo-msg');
      await waitEvent(a1, 'solo-msg', 2);

      await leaveRoom(b1, 'solo');
      await until(async () => (await numsub(roomChannel('solo'))) === 1, { what: 'B to unsubscribe solo' });
      const before = bSpy.filter((m) => m.type === BROADCAST).length;
      C.io.to('solo').emit('solo-msg', 3);
      await waitEvent(a1, 'solo-msg', 3);
      await settle(C, [a1, b1]);
      assert.equal(bSpy.filter((m) => m.type === BROADCAST).length, before + 1, 'only the marker again');
      assert.deepEqual(events(b1, 'solo-msg').map((m) => m.args[0]), [2]);

      // Private rooms (socket ids) never get a channel.
      assert.equal(await numsub(roomChannel(a1.id)), 0);
    } finally {
      bSpy.restore();
    }
  });

  live('namespaces share the connection but not the channels', async () => {
    const { A, B, C } = env.servers;
    const chats = [A, B, C].map((s) => s.io.of('/chat'));
    assert.equal(chats[0].adapter.client, A.adapter().client, 'one podrelay connection per server');
    await Promise.all(chats.map((n) => withTimeout(n.adapter.ready, 5000, 'chat adapter ready')));
    await until(async () => (await Promise.all(chats.map((n) => n.adapter.serverCount()))).every((c) => c === 3), {
      what: 'serverCount() == 3 in /chat',
    });
    assert.equal(await numsub(channelsOf('socket.io', '/chat').namespace), 3);
    const chatB = await client(B, 'chat-b', '/chat');
    const rootB = await client(B, 'root-b');
    chats[0].emit('in-chat', 1);
    A.io.emit('in-root', 1);
    await waitEvent(chatB, 'in-chat');
    await waitEvent(rootB, 'in-root');
    await settle(A, [rootB]);
    assert.equal(events(chatB, 'in-root').length, 0);
    assert.equal(events(rootB, 'in-chat').length, 0);
  });

  // These sidecars have no --durable: recovery is refused loudly, and everything else works
  // as without the option (recovery itself: test/matrix/recovery.test.js).
  live('with connectionStateRecovery on but no durable recovery log: a clear error, events flow without offsets', async () => {
    const { A, B, C } = env.servers;
    const D = await startServer('D', 'A', { connectionStateRecovery: {} });
    try {
      await waitServerCount([A, B, C, D], 4);
      const d1 = await client(D, 'csr-d1');
      B.io.emit('csr', 'x', 1);
      D.io.emit('csr', 'local', 2);
      await waitEvent(d1, 'csr', 2);
      assert.deepEqual(sorted(events(d1, 'csr').map((m) => JSON.stringify(m.args))), ['["local",2]', '["x",1]']);
      assert.equal(D.errors.length, 1, D.errors.map((e) => e.message).join('\n'));
      assert.match(D.errors[0].message, /--durable 'socket\.io#recovery#\*'/);
      assert.equal(D.io.of('/').adapter.recoveryError, D.errors[0]);
    } finally {
      await closeServer(D);
      delete env.servers.D;
    }
    await waitServerCount([A, B, C], 3);
  });

  // podrelay_publish_acks_total of a sidecar: acknowledged PUBs it answered OK.
  async function acksOf(sidecarName) {
    const text = await new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: env.sidecars[sidecarName].admin, path: '/metrics', timeout: 2000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(body));
      });
      req.on('timeout', () => req.destroy(new Error('metrics timeout')));
      req.on('error', reject);
    });
    const m = /^podrelay_publish_acks_total(?:\{[^}]*\})? (\S+)$/m.exec(text);
    assert.ok(m, 'podrelay_publish_acks_total in /metrics');
    return Number(m[1]);
  }

  live('broadcasts are fire-and-forget PUBs unless acknowledgedBroadcasts is set; both arrive', async () => {
    const N = 50;
    // Two lone servers on sidecar A, each with its own key (so neither joins A/B/C's
    // namespace), each with a client of its own on another server of the same key.
    const servers = [];
    try {
      const mk = async (name, sidecar, opts) => {
        const s = await startServer(name, sidecar, {}, opts);
        servers.push(s);
        return s;
      };
      const ff = await mk('FF1', 'A', { key: 'socket.io-ff' });
      const ffPeer = await mk('FF2', 'B', { key: 'socket.io-ff' });
      const ack = await mk('ACK1', 'A', { key: 'socket.io-acked', acknowledgedBroadcasts: true });
      const ackPeer = await mk('ACK2', 'B', { key: 'socket.io-acked', acknowledgedBroadcasts: true });
      await waitServerCount([ff, ffPeer], 2);
      await waitServerCount([ack, ackPeer], 2);
      const cFf = await client(ffPeer, 'ff-peer');
      const cAck = await client(ackPeer, 'ack-peer');

      const before = await acksOf('A');
      for (let i = 0; i < N; i++) ff.io.emit('ff', i);
      const got = await waitEvent(cFf, 'ff', N);
      assert.deepEqual(got.map((g) => g.args[0]), Array.from({ length: N }, (_, i) => i));
      const afterFf = await acksOf('A');
      // Heartbeats and the like are still acknowledged: a few, never one per broadcast.
      assert.ok(afterFf - before < N / 2, `sidecar A answered ${afterFf - before} acks for ${N} fire-and-forget broadcasts`);

      for (let i = 0; i < N; i++) ack.io.emit('acked', i);
      const gotAck = await waitEvent(cAck, 'acked', N);
      assert.deepEqual(gotAck.map((g) => g.args[0]), Array.from({ length: N }, (_, i) => i));
      await until(async () => (await acksOf('A')) - afterFf >= N, { what: `sidecar A to ack ${N} broadcasts` });
      for (const s of servers) assert.deepEqual(s.errors.map((e) => e.message), [], `server ${s.name}`);
    } finally {
      for (const s of servers) {
        await closeServer(s);
        delete env.servers[s.name];
      }
    }
  });

  live('no adapter reported an error so far', () => {
    for (const s of Object.values(env.servers)) assert.deepEqual(s.errors.map((e) => e.message), [], `server ${s.name}`);
  });

  live('a server that vanishes drops out of serverCount after the heartbeat timeout, and comes back', async () => {
    const { A, B, C } = env.servers;
    await waitServerCount([A, B, C], 3);
    const stay = await client(C, 'stay-c1');
    await joinRoom(stay, 'persist');
    // Cut server C off: kill its sidecar. C's adapter keeps trying; A and B stop hearing it.
    const killedAt = Date.now();
    await stop(env.sidecars.C.proc, 'SIGKILL');
    assert.equal(await serverCount(A), 3, 'not dropped at once: only the heartbeat timeout tells');
    await waitServerCount([A, B], 2, HEARTBEAT_TIMEOUT + 8000);
    const took = Date.now() - killedAt;
    assert.ok(took >= HEARTBEAT_TIMEOUT - HEARTBEAT_INTERVAL, `dropped after ${took} ms`);
    // While C is cut off, requests to the cluster only wait for A and B.
    const ids = await withTimeout(A.io.fetchSockets(), 5000, 'fetchSockets without C');
    assert.ok(Array.isArray(ids));

    // The sidecar comes back on the same port: C's client reconnects and resubscribes.
    startSidecar('C');
    await waitReady('C');
    await waitServerCount([A, B, C], 3, 15000);
    const c1 = await client(C, 'back-c1');
    await joinRoom(c1, 'back');
    A.io.to('back').emit('welcome-back');
    await waitEvent(c1, 'welcome-back');
    // The room channel subscribed before the kill was re-established by the reconnect.
    await until(async () => (await numsub(roomChannel('persist'))) === 1, { what: 'sidecar C to resubscribe persist' });
    B.io.to('persist').emit('still-here');
    await waitEvent(stay, 'still-here');
  });

  live('a server that closes says so: the others drop it at once', async () => {
    const { A, B, C } = env.servers;
    await waitServerCount([A, B, C], 3);
    const t0 = Date.now();
    await closeServer(C);
    delete env.servers.C;
    await waitServerCount([A, B], 2, HEARTBEAT_TIMEOUT);
    assert.ok(Date.now() - t0 < HEARTBEAT_TIMEOUT, 'ADAPTER_CLOSE, not the heartbeat timeout');
    const ch = channelsOf('socket.io', '/');
    await until(async () => (await numsub(ch.namespace)) === 2, { what: 'sidecar C to leave the namespace channel' });
    // Requests now wait for B only.
    B.io.of('/').on('svc-after-close', (cb) => cb('B'));
    const t1 = Date.now();
    assert.deepEqual(await withTimeout(A.io.serverSideEmitWithAck('svc-after-close'), 6000, 'serverSideEmit'), ['B']);
    assert.ok(Date.now() - t1 < 2000, 'no wait for the closed server');
  });
});
