// Socket.IO connection state recovery across servers through podrelay/socket.io, run by
// run.mjs for every install of the version matrix (socket.io 4.6 and later). One real
// redis-server, three real sidecars with --durable on the recovery log pattern, one without;
// Socket.IO servers in this process, socket.io-client clients over loopback. A client loses
// its transport on server 1 and reconnects to server 2 (the manager pointed at the other URL).
//   MATRIX_INSTALL=<dir> node --import ./register.mjs --test recovery.test.js
// PODRELAY_ADAPTER_MODULE=<file> runs it on another copy of src/socket.io.js (to show that it
// fails on the adapter from before recovery).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { Server } from 'socket.io';
import { io as ioc } from 'socket.io-client';

import { deadline, kill, redisCommand, sleep, startRedis, startSidecar, tails, waitFor, stopAll } from './harness.js';

const INSTALL = process.env.MATRIX_INSTALL;
const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const tools = {
  podrelay: process.env.PODRELAY_BIN || join(repoRoot, 'build', 'bin', 'podrelay'),
  redisServer: process.env.REDIS_SERVER_BIN || 'redis-server',
  redisCli: process.env.REDIS_CLI_BIN || 'redis-cli',
};
const versionOf = (pkg) => JSON.parse(readFileSync(join(INSTALL, 'node_modules', pkg, 'package.json'), 'utf8')).version;
function since(pkg, want) {
  const [a, b] = [versionOf(pkg), want].map((v) => v.split('.').map(Number));
  return (a[0] - b[0] || a[1] - b[1] || a[2] - b[2]) >= 0;
}

function missing() {
  if (!existsSync(tools.podrelay)) return `no podrelay binary at ${tools.podrelay} (set PODRELAY_BIN)`;
  for (const bin of [tools.redisServer, tools.redisCli]) if (spawnSync(bin, ['--version']).status !== 0) return `${bin} not runnable`;
  return false;
}
const skip = missing();
if (skip && process.env.PODRELAY_REQUIRE_LIVE === '1') throw new Error(`live tests required but cannot run: ${skip}`);

const DURABLE = 'socket.io#recovery#*'; // what the README tells the operator to set
const MAX_DISCONNECTION_MS = 2000;
const QUIET_MS = 150; // how long to watch for a packet that must not come, after a later one came

describe(`connection state recovery, socket.io ${INSTALL ? versionOf('socket.io') : '?'} (socket.io-adapter ${INSTALL ? versionOf('socket.io-adapter') : '?'})`, { skip }, () => {
  const env = { sidecars: [] };
  let createAdapter;
  let nspSeq = 0;
  const servers = [];

  before(async () => {
    const mod = process.env.PODRELAY_ADAPTER_MODULE ? pathToFileURL(process.env.PODRELAY_ADAPTER_MODULE).href : '../../src/socket.io.js';
    ({ createAdapter } = await import(mod));
    env.redis = await startRedis(tools);
    env.sidecars = await Promise.all([0, 1, 2].map((i) => startSidecar(tools.podrelay, `sidecar-${i}`, env.redis.port, { args: ['--durable', DURABLE] })));
    env.plainSidecar = await startSidecar(tools.podrelay, 'sidecar-plain', env.redis.port);
  });

  after(async () => {
    await Promise.allSettled(servers.map((io) => closeServer(io)));
    await Promise.allSettled([...env.sidecars, env.plainSidecar].filter(Boolean).map((s) => kill(s.proc)));
    await env.redis?.stop();
    await stopAll(); // what a before() that failed half-way started
  });

  async function closeServer(io) {
    const closing = io.close();
    if (!since('socket.io', '4.7.0')) for (const nsp of io._nsps.values()) nsp.adapter.close();
    await deadline(Promise.resolve(closing), 5000, 'io.close()');
  }

  // One Socket.IO server per sidecar (all on the same adapter key), with or without recovery.
  async function startServers(sidecars, { recovery = true, key = 'socket.io' } = {}) {
    const out = [];
    for (const [i, sidecar] of sidecars.entries()) {
      const httpServer = http.createServer();
      const io = new Server(httpServer, recovery ? { connectionStateRecovery: { maxDisconnectionDuration: MAX_DISCONNECTION_MS } } : {});
      io.adapter(createAdapter({ address: sidecar.address, key, connectOptions: { clientName: `recovery-${key}-${i}` } }));
      await new Promise((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
      io.url = `http://127.0.0.1:${httpServer.address().port}`;
      servers.push(io);
      out.push(io);
    }
    return out;
  }

  // A fresh namespace on every server (so each test has its own recovery log), with a
  // 'join' handler; resolves once every adapter is ready.
  async function namespace(ios) {
    const name = `/t${++nspSeq}`;
    const nsps = ios.map((io) => {
      const nsp = io.of(name);
      nsp.on('connection', (socket) => socket.on('join', (room, ack) => Promise.resolve(socket.join(room)).then(() => ack())));
      return nsp;
    });
    await deadline(Promise.all(nsps.map((n) => n.adapter.ready)), 10000, 'the adapters to be ready');
    return { name, nsps };
  }

  const streamKey = (nsp) => `podrelay:{socket.io#recovery#${nsp}}`;
  const xlen = async (nsp) => Number(await redisCommand(tools.redisCli, env.redis.port, ['XLEN', streamKey(nsp)]));
  async function appended(nsp, before, what) {
    await waitFor(async () => (await xlen(nsp)) >= before + 1, { within: 5000, what });
    return before + 1;
  }

  function live(name, fn) {
    test(name, { timeout: 30000 }, async (t) => {
      try {
        await fn(t);
      } catch (err) {
        err.message += `\n${tails([env.redis?.proc, ...env.sidecars.map((s) => s.proc), env.plainSidecar?.proc])}`;
        throw err;
      }
    });
  }

  // A client on `url` + namespace, recovery-capable, reconnecting only when told to.
  async function client(t, url, name, opts = {}) {
    const socket = ioc(`${url}${name}`, { transports: ['websocket'], reconnection: false, forceNew: true, ...opts });
    t.after(() => socket.disconnect());
    socket.got = [];
    socket.on('ev', (...args) => socket.got.push(args));
    await deadline(new Promise((resolve, reject) => socket.once('connect', resolve).once('connect_error', reject)), 5000, 'client to connect');
    return socket;
  }

  // Kills the client's transport on the server it is on, waits until that server has
  // persisted the session (one more log entry), and points its manager at `nextUrl`.
  async function dropTransport(socket, fromNsp, nextUrl, name) {
    const before = await xlen(name);
    const disconnected = new Promise((resolve) => socket.once('disconnect', resolve));
    socket.io.uri = nextUrl;
    socket.io.engine.close();
    await deadline(disconnected, 5000, 'client disconnect');
    await waitFor(() => fromNsp.sockets.size === 0, { within: 5000, what: 'server 1 to see the disconnect' });
    return appended(name, before, 'the session entry');
  }

  async function reconnect(socket) {
    const connected = new Promise((resolve, reject) => socket.once('connect', resolve).once('connect_error', reject));
    socket.connect();
    await deadline(connected, 5000, 'client to reconnect');
  }

  let trio;
  const three = async () => (trio ||= await startServers(env.sidecars));

  live('a client reconnecting to another server gets its id, rooms, data and exactly the packets it missed, in order', async (t) => {
    const ios = await three();
    const { name, nsps } = await namespace(ios);
    nsps[0].on('connection', (s) => {
      s.data.user = 'ada';
    });
    const socket = await client(t, ios[0].url, name);
    // On server 2, where the client reconnects: once the witness has the volatile and the
    // acked packet, server 2 has sent them to its sockets, so the client, not there yet,
    // cannot get them live (it did in a CI run, by reconnecting before they arrived).
    const witness = await client(t, ios[1].url, name);
    await deadline(socket.emitWithAck ? socket.emitWithAck('join', 'r1') : new Promise((r) => socket.emit('join', 'r1', r)), 5000, 'join');
    const firstArrived = waitFor(() => socket.got.length === 1, { within: 5000, what: 'the first packet' });
    nsps[0].emit('ev', 0); // gives the client an offset
    await firstArrived;
    const [zero, offset] = socket.got[0];
    assert.equal(zero, 0);
    assert.match(offset, /^\d+-\d+$/, 'the packet carries its stream id as offset');
    const id = socket.id;

    let n = await dropTransport(socket, nsps[0], ios[1].url, name);
    // Emitted while the client is away, from every server; each waits for its log entry so
    // that the log's order is the order below.
    const emits = [
      () => nsps[2].emit('ev', 1), // everyone
      () => nsps[1].to('r1').emit('ev', 2), // its room
      () => nsps[2].except('r1').emit('ev', 3), // everyone but its room: not for it
      () => nsps[0].to('r2').emit('ev', 4), // another room: not for it
      () => nsps[0].to(id).emit('ev', 5), // its own id
      () => nsps[1].to('r1').except('r2').emit('ev', 6), // its room, except another
      () => nsps[2].emit('ev', 7),
    ];
    for (const [i, emit] of emits.entries()) {
      emit();
      n = await appended(name, n, `the log entry of packet ${i + 1}`);
    }
    nsps[0].volatile.emit('ev', 'volatile'); // never recoverable
    nsps[1].timeout(500).emit('ev', 'with-ack', () => {}); // acks cannot be replayed
    const seen = (v) => witness.got.some((a) => a[0] === v);
    await waitFor(() => seen('volatile') && seen('with-ack'), { within: 5000, what: 'server 2 to have sent the volatile and the acked packet' });

    socket.got.length = 0;
    await reconnect(socket);
    await waitFor(() => socket.got.length >= 5, { within: 5000, what: 'the missed packets' });
    await sleep(QUIET_MS);
    assert.equal(socket.recovered, true);
    assert.equal(socket.id, id, 'same socket id');
    assert.deepEqual(socket.got.map((a) => a[0]), [1, 2, 5, 6, 7], 'exactly the missed packets, in order');
    for (const args of socket.got) assert.match(args[args.length - 1], /^\d+-\d+$/);
    const restored = nsps[1].sockets.get(id);
    assert.ok(restored, 'the socket lives on server 2 now');
    assert.ok(restored.rooms.has('r1'), 'rooms kept');
    assert.equal(restored.data.user, 'ada', 'data kept');
    assert.equal(nsps[0].sockets.size, 0);

    // Live again: a room broadcast from server 3 reaches it on server 2, once.
    socket.got.length = 0;
    nsps[2].to('r1').emit('ev', 8);
    await waitFor(() => socket.got.length === 1, { within: 5000, what: 'a live room packet' });
    await sleep(QUIET_MS);
    assert.deepEqual(socket.got.map((a) => a[0]), [8]);
  });

  live('under emits from three servers while it drops and reconnects, it gets the same packets in the same order as a client that never left', async (t) => {
    const ios = await three();
    const { name, nsps } = await namespace(ios);
    const join = (s) => deadline(new Promise((r) => s.emit('join', 'r1', r)), 5000, 'join');
    const watcher = await client(t, ios[2].url, name);
    const socket = await client(t, ios[0].url, name);
    await Promise.all([join(watcher), join(socket)]);
    const TOTAL = 300; // bounded: 100 per server, one every 2 ms each
    let sent = 0;
    const emitting = Promise.all(
      nsps.map(async (nsp, i) => {
        for (let k = 0; k < TOTAL / 3; k++) {
          if (k % 2) nsp.to('r1').emit('ev', `${i}:${k}`);
          else nsp.emit('ev', `${i}:${k}`);
          sent++;
          await sleep(2);
        }
      }),
    );
    await waitFor(() => socket.got.length >= 30, { within: 10000, what: 'the first packets' });
    const disconnected = new Promise((resolve) => socket.once('disconnect', resolve));
    socket.io.uri = ios[1].url;
    socket.io.engine.close();
    await deadline(disconnected, 5000, 'client disconnect');
    const pid = socket._pid;
    // The session entry is in the log (its payload holds the pid in clear).
    await waitFor(async () => (await redisCommand(tools.redisCli, env.redis.port, ['XREVRANGE', streamKey(name), '+', '-', 'COUNT', '400'])).includes(pid), {
      within: 5000,
      what: 'the session entry',
    });
    await waitFor(() => sent >= TOTAL / 2, { within: 10000, what: 'more emits meanwhile' });
    await reconnect(socket); // while the servers keep emitting
    assert.equal(socket.recovered, true);
    await deadline(emitting, 20000, 'the emitters to finish');
    await waitFor(() => watcher.got.length === TOTAL && socket.got.length >= TOTAL, { within: 10000, what: 'every packet on both clients' });
    await sleep(QUIET_MS);
    const seq = (c) => c.got.map((a) => a[0]);
    assert.equal(new Set(seq(watcher)).size, TOTAL);
    assert.deepEqual(seq(socket), seq(watcher), 'same packets, same order, none twice');
    assert.deepEqual(socket.got.map((a) => a[1]), watcher.got.map((a) => a[1]), 'same offsets');
  });

  live('a session is restored once: the same pid again gets a new session', async (t) => {
    const ios = await three();
    const { name, nsps } = await namespace(ios);
    const socket = await client(t, ios[0].url, name);
    nsps[1].emit('ev', 'x');
    await waitFor(() => socket.got.length === 1, { within: 5000, what: 'a packet' });
    const [, offset] = socket.got[0];
    await dropTransport(socket, nsps[0], ios[1].url, name);
    await reconnect(socket);
    assert.equal(socket.recovered, true);
    const stolen = await client(t, ios[2].url, name, { auth: { pid: socket._pid, offset } });
    assert.equal(stolen.recovered, false);
    assert.notEqual(stolen.id, socket.id);
  });

  live('an unknown pid, or an offset that is not a stream id, is not recovered', async (t) => {
    const ios = await three();
    const { name, nsps } = await namespace(ios);
    const socket = await client(t, ios[0].url, name);
    nsps[0].emit('ev', 'x');
    await waitFor(() => socket.got.length === 1, { within: 5000, what: 'a packet' });
    const [, offset] = socket.got[0];
    const unknown = await client(t, ios[1].url, name, { auth: { pid: 'no-such-pid-0123456789', offset } });
    assert.equal(unknown.recovered, false);
    const badOffset = await client(t, ios[1].url, name, { auth: { pid: socket._pid, offset: 'hello' } });
    assert.equal(badOffset.recovered, false);
  });

  live('a reconnect after maxDisconnectionDuration is not recovered', async (t) => {
    const ios = await three();
    const { name, nsps } = await namespace(ios);
    const socket = await client(t, ios[0].url, name);
    nsps[0].emit('ev', 'x');
    await waitFor(() => socket.got.length === 1, { within: 5000, what: 'a packet' });
    const id = socket.id;
    await dropTransport(socket, nsps[0], ios[1].url, name);
    nsps[2].emit('ev', 'missed');
    await sleep(MAX_DISCONNECTION_MS + 500);
    socket.got.length = 0;
    await reconnect(socket);
    assert.equal(socket.recovered, false);
    assert.notEqual(socket.id, id, 'a new socket');
    await sleep(QUIET_MS);
    assert.deepEqual(socket.got, [], 'nothing replayed');
  });

  live('with recovery disabled nothing changes: no offsets, no session, broadcasts as before', async (t) => {
    const ios = await startServers(env.sidecars.slice(0, 2), { recovery: false, key: 'plain' });
    const { name, nsps } = await namespace(ios);
    const socket = await client(t, ios[0].url, name);
    nsps[1].emit('ev', 'x');
    await waitFor(() => socket.got.length === 1, { within: 5000, what: 'a packet' });
    assert.deepEqual(socket.got[0], ['x'], 'no offset appended');
    const id = socket.id;
    const disconnected = new Promise((resolve) => socket.once('disconnect', resolve));
    socket.io.uri = ios[1].url;
    socket.io.engine.close();
    await deadline(disconnected, 5000, 'disconnect');
    nsps[0].emit('ev', 'missed');
    await sleep(QUIET_MS);
    socket.got.length = 0;
    await reconnect(socket);
    assert.ok(!socket.recovered, 'not recovered (socket.io-client leaves it undefined without a pid)');
    assert.equal(socket._pid, undefined, 'the server handed out no pid');
    assert.notEqual(socket.id, id);
    nsps[0].emit('ev', 'live');
    await waitFor(() => socket.got.length === 1, { within: 5000, what: 'a live packet' });
    assert.deepEqual(socket.got, [['live']]);
    const keys = await redisCommand(tools.redisCli, env.redis.port, ['KEYS', '*plain#recovery*']);
    assert.equal(keys.trim(), '', 'no recovery log');
  });

  live('a sidecar without the --durable pattern: a clear error naming the flag, and broadcasts still flow', async (t) => {
    const [io] = await startServers([env.plainSidecar], { key: 'misconfigured' });
    const name = `/t${++nspSeq}`;
    const nsp = io.of(name);
    const errors = [];
    nsp.adapter.on('error', (err) => errors.push(err));
    await deadline(nsp.adapter.ready, 10000, 'ready');
    await waitFor(() => errors.length > 0, { within: 5000, what: 'the error' });
    assert.match(errors[0].message, /--durable 'misconfigured#recovery#\*'/);
    assert.equal(nsp.adapter.recoveryError, errors[0]);
    const socket = await client(t, io.url, name);
    nsp.emit('ev', 'still');
    await waitFor(() => socket.got.length === 1, { within: 5000, what: 'a packet' });
    assert.deepEqual(socket.got[0], ['still']);
  });
});
