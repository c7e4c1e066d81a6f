// Client behaviour against an in-process fake sidecar built on the codec. These tests
// script what a real sidecar cannot be made to do on demand (dropping a connection with
// a publish in flight, refusing a handshake, pausing reads, tiny frame limits).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, test } from 'node:test';

import { connect, PodrelayError } from '../src/index.js';
import {
  FrameDecoder,
  encodeErr,
  encodeGoaway,
  encodeMsg,
  encodeOk,
  encodePong,
  encodeRsubok,
  encodeSmsg,
  encodeWelcome,
} from '../src/protocol.js';

async function until(fn, { timeout = 3000, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const withTimeout = (p, ms, what) =>
  Promise.race([
    p,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms).unref()),
  ]);

// A scripted sidecar. By default it welcomes, OKs every request and PONGs pings; set
// `reply` to false to answer by hand, or `onFrame(conn, frame)` returning true to take
// over a frame.
class FakeSidecar {
  constructor({ welcome = {}, reply = true, onFrame } = {}) {
    this.welcome = { serverVersion: 'fake', nodeId: 'fake-1', ...welcome };
    this.reply = reply;
    this.onFrame = onFrame;
    this.conns = [];
    this.server = net.createServer((socket) => this._accept(socket));
  }

  listen(path) {
    return new Promise((resolve) => {
      if (path) this.server.listen(path, () => resolve(`unix:${path}`));
      else this.server.listen(0, '127.0.0.1', () => resolve(`127.0.0.1:${this.server.address().port}`));
    });
  }

  _accept(socket) {
    const conn = { socket, frames: [], closed: false };
    this.conns.push(conn);
    const decoder = new FrameDecoder();
    socket.on('error', () => {});
    socket.on('close', () => {
      conn.closed = true;
    });
    socket.on('data', (chunk) => {
      for (const f of decoder.push(chunk)) {
        conn.frames.push(f);
        if (this.onFrame && this.onFrame(conn, f)) continue;
        this._default(conn, f);
      }
    });
  }

  _default(conn, f) {
    if (f.type === 'HELLO') return conn.socket.write(encodeWelcome(this.welcome));
    if (!this.reply) return;
    if (f.type === 'PING') return conn.socket.write(encodePong(f.requestId));
    if ((f.type === 'PUB' || f.type === 'PUBX') && f.requestId !== 0) return conn.socket.write(encodeOk(f.requestId));
    if (['SUB', 'UNSUB', 'PSUB', 'PUNSUB'].includes(f.type)) return conn.socket.write(encodeOk(f.requestId));
  }

  get last() {
    return this.conns[this.conns.length - 1];
  }

  frames(type, conn = this.last) {
    return conn ? conn.frames.filter((f) => f.type === type) : [];
  }

  async close() {
    for (const c of this.conns) c.socket.destroy();
    await new Promise((r) => this.server.close(() => r()));
  }
}

const cleanups = [];
afterEach(async () => {
  while (cleanups.length) {
    const fn = cleanups.pop();
    try {
      await fn();
    } catch {
      // best effort
    }
  }
});

async function setup(sidecarOpts = {}, clientOpts = {}) {
  const fake = new FakeSidecar(sidecarOpts);
  const address = await fake.listen();
  cleanups.push(() => fake.close());
  const client = connect({ address, reconnectMinDelay: 10, reconnectMaxDelay: 50, pingInterval: 0, ...clientOpts });
  cleanups.push(() => client.destroy());
  return { fake, client, address };
}

describe('handshake', () => {
  test('sends HELLO with name and token, resolves ready() with WELCOME info', async () => {
    const { fake, client } = await setup({ welcome: { maxFrameBytes: 4096, nodeId: 'n-7' } }, { clientName: 'app', authToken: 's3cret' });
    const connected = new Promise((r) => client.once('connect', r));
    const info = await withTimeout(client.ready(), 2000, 'ready');
    assert.deepEqual(info, { version: 1, serverVersion: 'fake', nodeId: 'n-7', maxFrameBytes: 4096, maxQueueBytes: 8 * 1024 * 1024 });
    assert.deepEqual(await connected, info);
    const hello = fake.frames('HELLO')[0];
    assert.equal(hello.version, 1);
    assert.equal(hello.clientName.toString(), 'app');
    assert.equal(hello.authToken.toString(), 's3cret');
    assert.equal(client.connected, true);
  });

  test('a refused handshake is fatal: ready() and later calls reject with the sidecar error', async () => {
    const { client } = await setup({
      onFrame(conn, f) {
        if (f.type !== 'HELLO') return false;
        conn.socket.end(encodeErr(0, 105, 'bad token'));
        return true;
      },
    });
    const errors = [];
    client.on('error', (e) => errors.push(e));
    const queued = client.publish('c', 'x');
    await assert.rejects(withTimeout(client.ready(), 2000, 'ready'), (e) => e instanceof PodrelayError && e.code === 105 && e.name === 'AUTH_FAILED');
    await assert.rejects(queued, (e) => e.code === 105);
    await assert.rejects(client.publish('c', 'y'), (e) => e.code === 105);
    assert.equal(errors[0].code, 105);
    assert.equal(client.state, 'closed');
  });
});

describe('requests', () => {
  test('acked publish resolves on OK and rejects on ERR with code, name and message', async () => {
    const { fake, client } = await setup({
      onFrame(conn, f) {
        if (f.type === 'PUB' && f.channel.toString() === 'bad') {
          conn.socket.write(encodeErr(f.requestId, 303, 'ERR wrong'));
          return true;
        }
        return false;
      },
    });
    await client.publish('good', 'hi');
    await assert.rejects(client.publish('bad', 'hi'), (e) => {
      assert.ok(e instanceof PodrelayError);
      assert.equal(e.code, 303);
      assert.equal(e.name, 'REDIS_ERROR');
      assert.equal(e.message, 'ERR wrong');
      assert.equal(e.local, false);
      return true;
    });
    const pubs = fake.frames('PUB');
    assert.equal(pubs[0].payload.toString(), 'hi');
    assert.notEqual(pubs[0].requestId, 0);
    assert.notEqual(pubs[0].requestId, pubs[1].requestId);
  });

  test('fire and forget publishes use request id 0 and resolve once written', async () => {
    const { fake, client } = await setup({ reply: false });
    await client.ready();
    await withTimeout(client.publish('c', Buffer.from([0, 1, 2]), { ack: false }), 2000, 'publish');
    await until(() => fake.frames('PUB').length === 1, { what: 'PUB' });
    assert.equal(fake.frames('PUB')[0].requestId, 0);
  });

  test('request ids wrap around and skip 0', async () => {
    const { fake, client } = await setup();
    await client.ready();
    client._lastId = 0xfffffffe;
    await client.publish('c', 'a');
    await client.publish('c', 'b');
    await client.publish('c', 'c');
    assert.deepEqual(fake.frames('PUB').map((f) => f.requestId), [0xffffffff, 1, 2]);
  });

  test('ping resolves with a latency; an unanswered ping times out', async () => {
    const { client } = await setup();
    const ms = await client.ping();
    assert.ok(typeof ms === 'number' && ms >= 0 && ms < 1000);
    const { client: mute } = await setup({ reply: false });
    await assert.rejects(mute.ping({ timeout: 100 }), (e) => e.name === 'TIMEOUT');
  });

  test('publish larger than the sidecar frame limit is refused locally', async () => {
    const { fake, client } = await setup({ welcome: { maxFrameBytes: 100 } });
    await client.ready();
    await assert.rejects(client.publish('c', Buffer.alloc(200)), (e) => e.code === 101 && e.local === true);
    await client.publish('c', Buffer.alloc(50));
    assert.equal(fake.frames('PUB').length, 1);
  });

  test('bad arguments reject without touching the connection', async () => {
    const { client } = await setup();
    await assert.rejects(client.publish(42, 'x'), TypeError);
    await assert.rejects(client.publish('c', { a: 1 }), TypeError);
    await assert.rejects(client.subscribe([], () => {}), (e) => e.name === 'INVALID_ARGUMENT');
    await assert.rejects(client.subscribe('c'), TypeError);
    await client.publish('c', 'still fine');
  });
});

describe('subscriptions', () => {
  test('dispatches MSG to channel and pattern handlers, strings or buffers as subscribed', async () => {
    const { fake, client } = await setup();
    const got = [];
    await client.subscribe(['news', 'sport'], (p, ch, pat) => got.push(['s', p.toString(), ch, pat]));
    await client.subscribe(Buffer.from([0xff, 0x00]), (p, ch, pat) => got.push(['b', p, ch, pat]));
    await client.psubscribe('news.*', (p, ch, pat) => got.push(['p', p.toString(), ch, pat]));
    assert.deepEqual(fake.frames('SUB')[0].channels.map(String), ['news', 'sport']);
    assert.deepEqual(fake.frames('PSUB')[0].patterns.map(String), ['news.*']);
    const s = fake.last.socket;
    s.write(encodeMsg('news', '', 'one'));
    s.write(encodeMsg(Buffer.from([0xff, 0x00]), '', Buffer.from([1, 2])));
    s.write(encodeMsg('news.eu', 'news.*', 'two'));
    s.write(encodeMsg('unknown', '', 'dropped'));
    await until(() => got.length === 3, { what: 'three messages' });
    assert.deepEqual(got[0], ['s', 'one', 'news', null]);
    assert.deepEqual(got[1], ['b', Buffer.from([1, 2]), Buffer.from([0xff, 0x00]), null]);
    assert.deepEqual(got[2], ['p', 'two', 'news.eu', 'news.*']);
  });

  test('unsubscribe stops delivery at once and sends UNSUB; per-handler removal', async () => {
    const { fake, client } = await setup();
    const a = [];
    const b = [];
    const ha = (p) => a.push(p.toString());
    const hb = (p) => b.push(p.toString());
    await client.subscribe('c', ha);
    await client.subscribe('c', hb);
    await client.unsubscribe('c', ha);
    assert.equal(fake.frames('UNSUB').length, 0, 'channel still has a handler');
    fake.last.socket.write(encodeMsg('c', '', '1'));
    await until(() => b.length === 1, { what: 'message 1' });
    assert.deepEqual(a, []);
    await client.unsubscribe('c');
    assert.deepEqual(fake.frames('UNSUB')[0].channels.map(String), ['c']);
    fake.last.socket.write(encodeMsg('c', '', '2'));
    await client.ping();
    assert.deepEqual(b, ['1']);
    await client.psubscribe(['x*', 'y*'], () => {});
    await client.punsubscribe();
    assert.deepEqual(fake.frames('PUNSUB')[0].patterns, []);
  });

  test('a refused SUB rejects and rolls the new channel back', async () => {
    const { fake, client } = await setup({
      onFrame(conn, f) {
        if (f.type === 'SUB' && f.channels.some((c) => c.toString() === 'nope')) {
          conn.socket.write(encodeErr(f.requestId, 201, 'too many'));
          return true;
        }
        return false;
      },
    });
    await assert.rejects(client.subscribe(['ok1', 'nope'], () => {}), (e) => e.code === 201 && e.name === 'TOO_MANY_SUBSCRIPTIONS');
    assert.equal(client._subs.size, 0);
    await until(() => fake.frames('UNSUB').length === 1, { what: 'cleanup UNSUB' });
  });
});

describe('reconnect', () => {
  test('in-flight acked publish rejects OUTCOME_UNKNOWN; reconnect re-sends HELLO and resubscribes', async () => {
    let dropNext = true;
    const { fake, client } = await setup({
      onFrame(conn, f) {
        if (f.type === 'PUB' && dropNext) {
          dropNext = false;
          conn.socket.destroy();
          return true;
        }
        return false;
      },
    }, { clientName: 'r' });
    const events = [];
    client.on('disconnect', () => events.push('disconnect'));
    client.on('reconnecting', () => events.push('reconnecting'));
    client.on('connect', () => events.push('connect'));
    await client.subscribe(['a', 'b'], () => {});
    await client.psubscribe('p*', () => {});
    await assert.rejects(client.publish('a', 'lost?'), (e) => e.code === 302 && e.name === 'OUTCOME_UNKNOWN' && e.local);
    await until(() => fake.conns.length === 2 && fake.frames('PSUB').length === 1, { what: 'resubscribe' });
    const second = fake.conns[1];
    assert.equal(second.frames[0].type, 'HELLO');
    assert.equal(second.frames[0].clientName.toString(), 'r');
    assert.deepEqual(fake.frames('SUB', second)[0].channels.map(String), ['a', 'b']);
    assert.deepEqual(fake.frames('PSUB', second)[0].patterns.map(String), ['p*']);
    await client.publish('a', 'again');
    assert.deepEqual(events.slice(0, 4), ['connect', 'disconnect', 'reconnecting', 'connect']);
  });

  test('publishes and subscribes while disconnected wait, then go out after the resubscribe', async () => {
    const fake = new FakeSidecar();
    const address = await fake.listen();
    cleanups.push(() => fake.close());
    const client = connect({ address, reconnectMinDelay: 20, reconnectMaxDelay: 40, pingInterval: 0 });
    cleanups.push(() => client.destroy());
    await client.ready();
    await client.subscribe('old', () => {});
    // Take the sidecar away.
    await fake.close();
    await until(() => client.state !== 'ready', { what: 'disconnect' });
    const p1 = client.publish('old', 'queued-1');
    const s1 = client.subscribe('new', () => {});
    const p2 = client.publish('old', 'queued-2', { ack: false });
    assert.ok(client.pendingBytes > 0);
    // Bring a sidecar back on the same port.
    const fake2 = new FakeSidecar();
    await new Promise((r) => fake2.server.listen(Number(address.split(':')[1]), '127.0.0.1', r));
    cleanups.push(() => fake2.close());
    await withTimeout(Promise.all([p1, s1, p2]), 3000, 'queued operations');
    const types = fake2.last.frames.map((f) => f.type);
    assert.deepEqual(types, ['HELLO', 'SUB', 'PUB', 'PUB']);
    assert.deepEqual(fake2.last.frames[1].channels.map(String).sort(), ['new', 'old']);
    assert.deepEqual(fake2.last.frames.slice(2).map((f) => f.payload.toString()), ['queued-1', 'queued-2']);
    assert.equal(client.pendingBytes, 0);
  });

  test('the disconnected queue is bounded by maxPendingBytes', async () => {
    const { fake, client } = await setup({}, { maxPendingBytes: 1000 });
    await client.ready();
    await fake.close();
    await until(() => client.state !== 'ready', { what: 'disconnect' });
    const ok = client.publish('c', Buffer.alloc(900));
    ok.catch(() => {});
    await assert.rejects(client.publish('c', Buffer.alloc(200)), (e) => e.name === 'PUBLISH_BUFFER_FULL' && e.local);
    client.destroy();
    await assert.rejects(ok, (e) => e.name === 'CLIENT_CLOSED');
  });

  test('GOAWAY is emitted and the client reconnects', async () => {
    const { fake, client } = await setup();
    await client.ready();
    const goaway = new Promise((r) => client.once('goaway', r));
    fake.last.socket.end(encodeGoaway(401, 'draining'));
    assert.deepEqual(await withTimeout(goaway, 2000, 'goaway'), { code: 401, name: 'SHUTTING_DOWN', message: 'draining' });
    await until(() => fake.conns.length === 2 && client.connected, { what: 'reconnect' });
    await client.publish('c', 'after goaway');
  });

  test('reconnect: false closes the client and rejects queued work', async () => {
    const { fake, client } = await setup({}, { reconnect: false });
    await client.ready();
    const closed = new Promise((r) => client.once('close', r));
    fake.last.socket.destroy();
    await withTimeout(closed, 2000, 'close');
    await assert.rejects(client.publish('c', 'x'), (e) => e.name === 'CLIENT_CLOSED');
  });

  test('keepalive: a sidecar that stops answering PING is dropped and reconnected', async () => {
    let mute = true;
    const { fake, client } = await setup(
      {
        onFrame(conn, f) {
          return f.type === 'PING' && mute && fake.conns.length === 1;
        },
      },
      { pingInterval: 30, pingTimeout: 50 },
    );
    await client.ready();
    await until(() => fake.conns.length === 2 && client.connected, { what: 'keepalive reconnect' });
    mute = false;
    await client.ping();
  });
});

describe('backpressure', () => {
  test('publishes queue while the socket pushes back, bounded, and drain', async () => {
    const { fake, client } = await setup({}, { maxPendingBytes: 256 * 1024 });
    await client.ready();
    fake.last.socket.pause(); // the sidecar stops reading
    const payload = Buffer.alloc(16 * 1024, 1);
    const pubs = [];
    let full = null;
    for (let i = 0; i < 2000 && !full; i++) {
      const p = client.publish('c', payload);
      pubs.push(p);
      p.catch((e) => {
        full = e;
      });
      if (i % 16 === 0) await new Promise((r) => setImmediate(r));
    }
    await until(() => full, { what: 'PUBLISH_BUFFER_FULL' });
    assert.equal(full.name, 'PUBLISH_BUFFER_FULL');
    assert.ok(client.pendingBytes > 0 && client.pendingBytes <= 256 * 1024);
    const drained = new Promise((r) => client.once('drain', r));
    fake.last.socket.resume();
    await withTimeout(drained, 5000, 'drain');
    const results = await Promise.allSettled(pubs);
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    const failed = results.filter((r) => r.status === 'rejected');
    assert.ok(failed.every((r) => r.reason.name === 'PUBLISH_BUFFER_FULL'));
    assert.equal(fake.frames('PUB').length, ok);
    assert.equal(client.pendingBytes, 0);
  });
});

describe('close', () => {
  test('close() waits for in-flight acked publishes', async () => {
    const { fake, client } = await setup({ reply: false });
    await client.ready();
    const p = client.publish('c', 'x');
    await until(() => fake.frames('PUB').length === 1, { what: 'PUB' });
    const closing = client.close();
    setTimeout(() => fake.last.socket.write(encodeOk(fake.frames('PUB')[0].requestId)), 50);
    await p;
    await closing;
    assert.equal(client.state, 'closed');
  });

  test('unix socket addresses work', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'podrelay-node-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const fake = new FakeSidecar();
    const address = await fake.listen(join(dir, 's.sock'));
    cleanups.push(() => fake.close());
    const client = connect({ address, pingInterval: 0 });
    cleanups.push(() => client.destroy());
    await client.publish('c', 'over unix');
    assert.equal(fake.frames('PUB')[0].payload.toString(), 'over unix');
    await client.close();
  });
});

// The sidecar binary of this repository speaks version 2, so a sidecar from before it is
// played by the fake: it refuses HELLO v2 with UNSUPPORTED_VERSION, as version 1 did.
describe('protocol version fallback', () => {
  test('HELLO v2 refused with UNSUPPORTED_VERSION: the client says v1 at once and works', async () => {
    const { fake, client } = await setup(
      {
        onFrame(conn, f) {
          if (f.type !== 'HELLO' || f.version === 1) return false;
          conn.socket.end(encodeErr(0, 104, 'unsupported protocol version 2'));
          return true;
        },
      },
      { protocolVersion: 2, reconnect: false },
    );
    const info = await withTimeout(client.ready(), 2000, 'ready');
    assert.equal(info.version, 1);
    assert.equal(client.protocolVersion, 1);
    assert.deepEqual(fake.conns.map((c) => c.frames[0].version), [2, 1]);
    assert.equal(await withTimeout(client.publish('room:1', 'x'), 2000, 'publish'), undefined);
    await assert.rejects(client.subscribeDurable('room:1', () => {}), { name: 'NOT_SUPPORTED' });
  });

  // A sidecar that speaks versions up to `top`: refuses a higher HELLO as a real one does
  // (ERR 104, then close), welcomes the others with the version asked for.
  const upTo = (top) => ({
    onFrame(conn, f) {
      if (f.type !== 'HELLO') return false;
      if (f.version > top) conn.socket.end(encodeErr(0, 104, `unsupported protocol version ${f.version}`));
      else conn.socket.write(encodeWelcome({ version: f.version, serverVersion: 'fake', nodeId: 'fake-1' }));
      return true;
    },
  });

  test('HELLO v3 refused by a version 1 sidecar: the client says v2, then v1, and echo: false is a plain PUB', async () => {
    const { fake, client } = await setup(upTo(1), { protocolVersion: 3, reconnect: false });
    const info = await withTimeout(client.ready(), 2000, 'ready');
    assert.equal(info.version, 1);
    assert.equal(client.protocolVersion, 1);
    assert.deepEqual(fake.conns.map((c) => c.frames[0].version), [3, 2, 1]);
    await withTimeout(client.publish('room:1', 'x', { echo: false }), 2000, 'publish');
    assert.equal(fake.frames('PUBX').length, 0);
    assert.equal(fake.frames('PUB').length, 1);
  });

  test('on a version 3 connection echo: false goes out as PUBX, the default as PUB', async () => {
    const { fake, client } = await setup(upTo(3), { protocolVersion: 3, reconnect: false });
    assert.equal((await withTimeout(client.ready(), 2000, 'ready')).version, 3);
    assert.equal(client.protocolVersion, 3);
    await withTimeout(client.publish('room:1', 'acked', { echo: false }), 2000, 'acked PUBX');
    await withTimeout(client.publish('room:1', 'ff', { echo: false, ack: false }), 2000, 'fire and forget PUBX');
    await withTimeout(client.publish('room:1', 'plain'), 2000, 'PUB');
    await until(() => fake.frames('PUBX').length === 2 && fake.frames('PUB').length === 1, { what: 'frames' });
    const [acked, ff] = fake.frames('PUBX');
    assert.equal(acked.payload.toString(), 'acked');
    assert.notEqual(acked.requestId, 0);
    assert.equal(ff.requestId, 0);
    assert.equal(fake.frames('PUB')[0].payload.toString(), 'plain');
  });

  test('a publish queued while disconnected goes out as the new connection allows: PUB to a sidecar downgraded to version 2', async () => {
    let top = 3;
    const fake = new FakeSidecar({
      onFrame(conn, f) {
        if (f.type !== 'HELLO') return false;
        if (f.version > top) conn.socket.end(encodeErr(0, 104, `unsupported protocol version ${f.version}`));
        else conn.socket.write(encodeWelcome({ version: f.version }));
        return true;
      },
    });
    const address = await fake.listen();
    cleanups.push(() => fake.close());
    const client = connect({ address, protocolVersion: 3, reconnectMinDelay: 200, reconnectMaxDelay: 200, pingInterval: 0 });
    client.on('error', () => {});
    cleanups.push(() => client.destroy());
    assert.equal((await withTimeout(client.ready(), 2000, 'ready')).version, 3);
    top = 2; // "rolled back" while the client is away
    fake.last.socket.destroy();
    await until(() => client.state !== 'ready', { what: 'the client to notice' });
    const sent = client.publish('room:1', 'queued', { echo: false });
    await withTimeout(sent, 3000, 'queued publish');
    assert.equal(client.protocolVersion, 2);
    assert.deepEqual(fake.conns.slice(1).map((c) => c.frames[0].version), [3, 2]);
    assert.equal(fake.frames('PUBX').length, 0);
    assert.equal(fake.frames('PUB')[0].payload.toString(), 'queued');
  });

  test('protocolVersion outside 1..3 is refused at connect()', () => {
    for (const v of [0, 4, 2.5, '3']) assert.throws(() => connect({ address: '127.0.0.1:1', protocolVersion: v }), RangeError);
  });

  test('without the option the client says v1 and rejects subscribeDurable', async () => {
    const { fake, client } = await setup();
    await withTimeout(client.ready(), 2000, 'ready');
    assert.equal(fake.frames('HELLO')[0].version, 1);
    await assert.rejects(client.subscribeDurable('room:1', () => {}), { name: 'NOT_SUPPORTED' });
  });
});

describe('durable channels (version 2) against a scripted sidecar', () => {
  test('an RSUB lost with its connection is re-sent; later resumes carry the tracked id and epoch', async () => {
    let dropFirst = true;
    const { fake, client } = await setup(
      {
        welcome: { version: 2 },
        onFrame(conn, f) {
          if (f.type !== 'RSUB') return false;
          if (dropFirst) {
            dropFirst = false;
            conn.socket.destroy(); // the RSUB is never answered
            return true;
          }
          const since = f.sinceId.toString();
          if (since) conn.socket.write(encodeSmsg(f.channel, '7-0', 'missed'));
          conn.socket.write(encodeRsubok(f.requestId, 1, 'E1', since ? '7-0' : '5-0'));
          return true;
        },
      },
      { protocolVersion: 2 },
    );
    const got = [];
    const resumed = [];
    client.on('resumed', (channel, outcome) => resumed.push([channel, outcome]));
    const outcome = await withTimeout(
      client.subscribeDurable('room:1', (p, ch, id) => got.push([p.toString(), ch, id])),
      3000,
      'subscribeDurable',
    );
    assert.deepEqual(outcome, { channel: 'room:1', recovered: true, epoch: 'E1', lastId: '5-0' });
    assert.equal(fake.conns.length, 2);
    assert.deepEqual(resumed, []); // the first answer settles the call, it is not a resume
    fake.last.socket.write(encodeSmsg('room:1', '6-0', 'live'));
    await until(() => got.length === 1, { what: 'the live SMSG' });
    assert.deepEqual(client.durablePositions.get('room:1'), { id: '6-0', epoch: 'E1' });
    fake.last.socket.destroy();
    await until(() => resumed.length === 1, { what: 'the resume after the reconnect' });
    const rsub = fake.frames('RSUB').at(-1);
    assert.equal(rsub.sinceId.toString(), '6-0');
    assert.equal(rsub.epoch.toString(), 'E1');
    assert.deepEqual(resumed[0], ['room:1', { channel: 'room:1', recovered: true, epoch: 'E1', lastId: '7-0' }]);
    assert.deepEqual(got, [['live', 'room:1', '6-0'], ['missed', 'room:1', '7-0']]);
  });

  test('a sidecar that sends SMSGs past last_id before its RSUBOK (against PROTOCOL.md section 9): the position stays at the newest id received', async () => {
    const { fake, client } = await setup(
      {
        welcome: { version: 2 },
        onFrame(conn, f) {
          if (f.type !== 'RSUB') return false;
          conn.socket.write(encodeSmsg(f.channel, '7-0', 'replayed'));
          conn.socket.write(encodeSmsg(f.channel, '8-0', 'live, early'));
          conn.socket.write(encodeRsubok(f.requestId, 1, 'E1', '7-0'));
          return true;
        },
      },
      { protocolVersion: 2 },
    );
    const got = [];
    const outcome = await withTimeout(client.subscribeDurable('room:1', (p, ch, id) => got.push(id), { since: '6-0', epoch: 'E1' }), 3000, 'subscribeDurable');
    assert.equal(outcome.lastId, '7-0');
    assert.deepEqual(got, ['7-0', '8-0']);
    assert.deepEqual(client.durablePositions.get('room:1'), { id: '8-0', epoch: 'E1' });
    const resumed = [];
    client.on('resumed', (channel) => resumed.push(channel));
    fake.last.socket.destroy();
    await until(() => resumed.length === 1, { what: 'the resume after the reconnect' });
    assert.equal(fake.frames('RSUB').at(-1).sinceId.toString(), '8-0', 'resumes after 8-0, not 7-0 (no duplicate)');
  });

  test('a version 2 frame on a version 1 connection is a protocol violation', async () => {
    const { fake, client } = await setup();
    const errors = [];
    client.on('error', (e) => errors.push(e));
    await withTimeout(client.ready(), 2000, 'ready');
    fake.last.socket.write(encodeSmsg('room:1', '1-0', 'x'));
    await until(() => errors.length === 1, { what: 'the error' });
    assert.equal(errors[0].name, 'UNEXPECTED_FRAME');
    await until(() => fake.conns.length === 2, { what: 'the reconnect' });
  });
});
