// Live tests of durable channels (protocol version 2) in the Node client: a real
// redis-server and real podrelay sidecars ("pods") on loopback. The sidecar binary is
// build/bin/podrelay at the repository root, or $PODRELAY_BIN. Without it, redis-server or
// redis-cli the suite is skipped (PODRELAY_REQUIRE_LIVE=1 makes that a failure).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { connect } from '../src/index.js';
import { deadline, kill, redisCommand, startRedis, startSidecar, tails, waitFor, stopAll } from './matrix/harness.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = process.env.PODRELAY_BIN || join(repoRoot, 'build', 'bin', 'podrelay');
const tools = {
  redisServer: process.env.REDIS_SERVER_BIN || 'redis-server',
  redisCli: process.env.REDIS_CLI_BIN || 'redis-cli',
};

function skipReason() {
  if (!existsSync(BIN)) return `podrelay binary not found at ${BIN} (build it or set PODRELAY_BIN)`;
  for (const t of Object.values(tools)) if (spawnSync(t, ['--version']).status !== 0) return `${t} not runnable`;
  return false;
}
const skip = skipReason();
if (skip && process.env.PODRELAY_REQUIRE_LIVE === '1') {
  throw new Error(`live tests required but cannot run: ${skip}`);
}

// Every durable channel of these tests is under room:*; max-len 5 on pod C so that its
// trimming (with Redis' stream nodes of 4 entries) drops old history quickly.
const DURABLE = ['--durable', 'room:*'];

describe('live: durable channels (protocol version 2)', { skip }, () => {
  const env = { procs: [] };
  const clients = [];

  function client(pod, opts = {}) {
    const c = connect({
      address: pod.address,
      protocolVersion: 2,
      reconnectMinDelay: 20,
      reconnectMaxDelay: 200,
      pingInterval: 0,
      ...opts,
    });
    c.on('error', () => {}); // errors surface through promises
    clients.push(c);
    return c;
  }

  // Records what a durable handler got, as "payload@id".
  function recorder() {
    const got = [];
    const handler = (payload, channel, id) => got.push({ payload: payload.toString(), channel, id });
    handler.got = got;
    handler.payloads = () => got.map((m) => m.payload);
    handler.wait = (n, what = `${n} message(s)`) => waitFor(() => got.length >= n, { within: 10000, what });
    return handler;
  }

  async function publishAll(c, channel, payloads) {
    const ids = [];
    for (const p of payloads) ids.push(await deadline(c.publish(channel, p), 5000, `publish ${p}`));
    return ids;
  }

  const live = (name, fn) =>
    test(name, { timeout: 60000 }, async () => {
      try {
        await fn();
      } catch (err) {
        err.message += `\n\nprocess logs:\n${tails(env.procs.map((p) => p.proc))}`;
        throw err;
      }
    });

  before(async () => {
    env.redis = await startRedis(tools, ['--stream-node-max-entries', '4']);
    env.procs.push(env.redis);
    [env.a, env.b, env.c] = await Promise.all([
      startSidecar(BIN, 'pod-A', env.redis.port, { args: DURABLE }),
      startSidecar(BIN, 'pod-B', env.redis.port, { args: DURABLE }),
      startSidecar(BIN, 'pod-C', env.redis.port, { args: [...DURABLE, '--durable-max-len', '5'] }),
    ]);
    env.procs.push(env.a, env.b, env.c);
  });

  after(async () => {
    for (const c of clients) c.destroy();
    await Promise.allSettled(env.procs.map((p) => kill(p.proc)));
    await env.redis?.stop();
    await stopAll(); // what a before() that failed half-way started
  });

  live('a durable publish resolves with its stream id; the subscriber gets the same id', async () => {
    const pub = client(env.a);
    const sub = client(env.b);
    const h = recorder();
    const first = await deadline(sub.subscribeDurable('room:ids', h), 5000, 'subscribeDurable');
    assert.equal(first.recovered, true);
    assert.equal(first.channel, 'room:ids');
    assert.equal((await sub.ready()).version, 2);
    const ids = await publishAll(pub, 'room:ids', ['one', 'two']);
    for (const id of ids) assert.match(id, /^\d+-\d+$/);
    await h.wait(2);
    assert.deepEqual(h.got, [
      { payload: 'one', channel: 'room:ids', id: ids[0] },
      { payload: 'two', channel: 'room:ids', id: ids[1] },
    ]);
    // The stream did not exist at the RSUB: the sidecar reserved its epoch, and the first
    // publish created the stream with it.
    assert.match(first.epoch, /^[0-9a-f]{16}$/);
    assert.equal(first.lastId, '0-0');
    const stored = (await redisCommand(tools.redisCli, env.redis.port, ['GET', 'podrelay:{room:ids}:epoch'])).trim();
    assert.equal(stored, first.epoch);
    assert.deepEqual(sub.durablePositions.get('room:ids'), { id: ids[1], epoch: first.epoch });
    // A plain channel is answered OK, not PUBOK.
    assert.equal(await pub.publish('plain:x', 'p'), undefined);
  });

  live('a v1 client is unaffected: plain messages, publish resolves undefined, no durable API', async () => {
    const v1 = client(env.a, { protocolVersion: 1 });
    const v2 = client(env.b);
    const got = [];
    await deadline(v1.subscribe('room:v1', (p, ch, pattern) => got.push([p.toString(), ch, pattern])), 5000, 'v1 subscribe');
    assert.equal((await v1.ready()).version, 1);
    assert.equal(await v1.publish('room:v1', 'from v1'), undefined);
    const id = await v2.publish('room:v1', 'from v2');
    assert.match(id, /^\d+-\d+$/);
    await waitFor(() => got.length >= 2, { within: 10000, what: 'two messages on v1' });
    assert.deepEqual(got, [['from v1', 'room:v1', null], ['from v2', 'room:v1', null]]);
    await assert.rejects(v1.subscribeDurable('room:v1', () => {}), { name: 'NOT_SUPPORTED' });
  });

  live('a subscriber whose connection breaks gets exactly the missed messages, in order, on reconnect', async () => {
    const pub = client(env.a);
    // A reconnect delay well above the publishes' round trips, so they are missed.
    const sub = client(env.b, { reconnectMinDelay: 1000, reconnectMaxDelay: 1000 });
    const h = recorder();
    const resumed = [];
    sub.on('resumed', (channel, outcome) => resumed.push({ channel, ...outcome }));
    await sub.subscribeDurable('room:drop', h);
    const before = await publishAll(pub, 'room:drop', ['a1', 'a2', 'a3']);
    await h.wait(3);
    // Break the connection from the client side and keep the sidecar from being reached
    // until the misses are published: the client reconnects by itself afterwards.
    sub._socket.destroy();
    const missed = await publishAll(pub, 'room:drop', ['m1', 'm2', 'm3', 'm4', 'm5']);
    await h.wait(8, 'the missed messages');
    await waitFor(() => resumed.length >= 1, { within: 5000, what: 'resumed event' });
    assert.equal(resumed[0].channel, 'room:drop');
    assert.equal(resumed[0].recovered, true);
    const after = await publishAll(pub, 'room:drop', ['live']);
    await h.wait(9);
    assert.deepEqual(h.payloads(), ['a1', 'a2', 'a3', 'm1', 'm2', 'm3', 'm4', 'm5', 'live']);
    assert.deepEqual(h.got.map((m) => m.id), [...before, ...missed, ...after]);
  });

  live('a sidecar restart (SIGKILL, new process on the same port) loses nothing', async () => {
    const pub = client(env.a);
    const sub = client(env.b);
    const h = recorder();
    const resumed = [];
    sub.on('resumed', (channel, outcome) => resumed.push(outcome));
    await sub.subscribeDurable('room:restart', h);
    const ids = await publishAll(pub, 'room:restart', ['r1', 'r2']);
    await h.wait(2);
    await kill(env.b.proc);
    await waitFor(() => !sub.connected, { within: 5000, what: 'the client to see the sidecar gone' });
    ids.push(...(await publishAll(pub, 'room:restart', ['gone1', 'gone2', 'gone3'])));
    const nodeBefore = sub.serverInfo.nodeId;
    env.b = await startSidecar(BIN, 'pod-B', env.redis.port, { args: DURABLE, port: env.b.port });
    env.procs.push(env.b);
    await h.wait(5, 'the messages published while the sidecar was down');
    await waitFor(() => resumed.length >= 1, { within: 5000, what: 'resumed event' });
    assert.equal(resumed[0].recovered, true);
    assert.notEqual(sub.serverInfo.nodeId, nodeBefore);
    assert.deepEqual(h.payloads(), ['r1', 'r2', 'gone1', 'gone2', 'gone3']);
    assert.deepEqual(h.got.map((m) => m.id), ids);
  });

  live("another pod's sidecar resumes from the positions the first client tracked", async () => {
    const pub = client(env.a);
    const first = client(env.a);
    const h1 = recorder();
    await publishAll(pub, 'room:move', ['seed']); // the stream exists: the RSUBOK has its epoch
    await first.subscribeDurable('room:move', h1);
    const seen = await publishAll(pub, 'room:move', ['s1', 's2']);
    await h1.wait(2);
    const pos = first.durablePositions.get('room:move');
    assert.equal(pos.id, seen[1]);
    first.destroy();
    const missed = await publishAll(pub, 'room:move', ['x1', 'x2', 'x3']);
    const second = client(env.b);
    const h2 = recorder();
    const outcome = await deadline(second.subscribeDurable('room:move', h2, { since: pos.id, epoch: pos.epoch }), 5000, 'RSUB on B');
    assert.equal(outcome.recovered, true);
    assert.equal(outcome.epoch, pos.epoch);
    assert.equal(outcome.lastId, missed[2]);
    assert.deepEqual(h2.payloads(), ['x1', 'x2', 'x3']); // replayed before RSUBOK
    assert.deepEqual(h2.got.map((m) => m.id), missed);
  });

  live('a since id older than the trimmed history answers not recovered', async () => {
    const pub = client(env.c);
    const sub = client(env.c);
    const ids = await publishAll(pub, 'room:trim', Array.from({ length: 40 }, (_, i) => `t${i}`));
    const len = Number((await redisCommand(tools.redisCli, env.redis.port, ['XLEN', 'podrelay:{room:trim}'])).trim());
    assert.ok(len < 40, `the stream was trimmed (XLEN ${len})`);
    const epoch = (await redisCommand(tools.redisCli, env.redis.port, ['GET', 'podrelay:{room:trim}:epoch'])).trim();
    const h = recorder();
    const outcome = await sub.subscribeDurable('room:trim', h, { since: ids[0], epoch });
    assert.equal(outcome.recovered, false);
    assert.equal(outcome.epoch, epoch);
    // Live delivery goes on from there.
    const [next] = await publishAll(pub, 'room:trim', ['after']);
    await waitFor(() => h.got.some((m) => m.id === next), { within: 10000, what: 'the live message' });
  });

  live('a deleted stream (recreated, new epoch) answers not recovered on the automatic resume', async () => {
    const pub = client(env.a);
    const sub = client(env.b);
    const h = recorder();
    const resumed = [];
    sub.on('resumed', (channel, outcome) => resumed.push(outcome));
    await publishAll(pub, 'room:del', ['seed']);
    const first = await sub.subscribeDurable('room:del', h);
    await publishAll(pub, 'room:del', ['old1', 'old2']);
    await h.wait(2);
    const { epoch: oldEpoch } = sub.durablePositions.get('room:del');
    assert.notEqual(oldEpoch, '');
    // Pod B is down while the stream is deleted and recreated, so the resume comes after.
    await kill(env.b.proc);
    await waitFor(() => !sub.connected, { within: 5000, what: 'the client to see the sidecar gone' });
    await redisCommand(tools.redisCli, env.redis.port, ['DEL', 'podrelay:{room:del}', 'podrelay:{room:del}:epoch']);
    await publishAll(pub, 'room:del', ['new1']);
    env.b = await startSidecar(BIN, 'pod-B', env.redis.port, { args: DURABLE, port: env.b.port });
    env.procs.push(env.b);
    await waitFor(() => resumed.length >= 1, { within: 10000, what: 'resumed event' });
    assert.equal(resumed[0].recovered, false);
    assert.notEqual(resumed[0].epoch, oldEpoch);
    assert.equal(sub.durablePositions.get('room:del').epoch, resumed[0].epoch);
    assert.equal(first.epoch, oldEpoch);
    // Not recovered: what the new stream held before the resume is the app's to reload;
    // live delivery continues on the new stream.
    const [next] = await publishAll(pub, 'room:del', ['new2']);
    await waitFor(() => h.got.some((m) => m.id === next), { within: 10000, what: 'the live message' });
    assert.deepEqual(h.payloads(), ['old1', 'old2', 'new2']);
  });

  live('unsubscribeDurable stops delivery and forgets the position', async () => {
    const pub = client(env.a);
    const sub = client(env.b);
    const h = recorder();
    await sub.subscribeDurable('room:unsub', h);
    await publishAll(pub, 'room:unsub', ['before']);
    await h.wait(1);
    await deadline(sub.unsubscribeDurable('room:unsub'), 5000, 'unsubscribeDurable');
    assert.equal(sub.durablePositions.has('room:unsub'), false);
    // A marker on another subscription shows later messages would have arrived by now.
    const marker = recorder();
    await sub.subscribeDurable('room:unsub-marker', marker);
    await publishAll(pub, 'room:unsub', ['after']);
    await publishAll(pub, 'room:unsub-marker', ['marker']);
    await marker.wait(1);
    assert.deepEqual(h.payloads(), ['before']);
  });
});
