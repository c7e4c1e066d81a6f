// Child process of run.mjs: one role per process, so that each has its own CPU accounting
// (process.cpuUsage() covers every thread of the process: JS, GC, libuv).
//
//   node worker.mjs <role> '<json config>'
//
// Roles (variant 'baseline' = ioredis / @socket.io/redis-adapter, 'podrelay' = podrelay;
// for sio-server also 'resp' = @socket.io/redis-adapter on ioredis pointed at a sidecar's
// --resp-listen port, given as redisPort, with its own adapter key `adapterKey`):
//   sio-server  a Socket.IO server on an ephemeral loopback port with the variant's adapter;
//               as a sender it broadcasts io.emit('m', {ph, s, t, p}) to every client
//   sio-clients `clients` socket.io-client connections (websocket only) to one server;
//               a receiver, counting 'm' events
//   pub         a publisher on one channel (ioredis PUBLISH / podrelay client.publish)
//   sub         a subscriber of that channel (ioredis SUBSCRIBE / podrelay client.subscribe)
//
// The parent drives everything over IPC ({cmd: ...} in, {ev: ...} out). A sender never
// has more than `window` messages in flight end to end: the receiver reports progress,
// the parent relays it as credit. Without that bound a sender could outrun the receiving
// side until Redis (client-output-buffer-limit pubsub) or the sidecar (--max-queue-bytes)
// disconnected it, or the podrelay client rejected publishes (maxPendingBytes).
//
// Timestamps are process.hrtime (CLOCK_MONOTONIC, shared by every process of the
// machine) in microseconds, so a receiver can subtract a sender's timestamp.

import { register } from 'node:module';
import http from 'node:http';
import { pathToFileURL } from 'node:url';

const role = process.argv[2];
const cfg = JSON.parse(process.argv[3] || '{}');

const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const send = (msg) => {
  if (process.connected) process.send(msg);
};
let errors = 0;
let lastError = '';
const countError = (err) => {
  errors++;
  lastError = String((err && err.message) || err);
};

// The parent going away closes the IPC channel: never outlive it.
process.on('disconnect', () => process.exit(0));

// Diagnostics: 'data' events (socket reads as Node delivers them) and bytes on the
// connection that brings messages in (the Redis subscriber or the podrelay connection).
const io = { reads: 0, readBytes: 0 };
function countReads(socket) {
  if (socket) socket.on('data', (chunk) => {
    io.reads++;
    io.readBytes += chunk.length;
  });
}

const handlers = {
  cpu(m) {
    const u = process.cpuUsage();
    send({ ev: 'cpu', id: m.id, user: u.user, system: u.system, rss: process.memoryUsage.rss(), errors, lastError, reads: io.reads, readBytes: io.readBytes });
  },
  async exit() {
    try {
      await cleanup();
    } catch {
      // leaving anyway
    }
    process.exit(0);
  },
};
process.on('message', (m) => {
  const h = handlers[m.cmd];
  if (h) h(m);
});
let cleanup = async () => {};

// ---------------------------------------------------------------------------
// Sender: throughput mode (credit window) and fixed-rate mode (latency).

function installSender(sendOne) {
  let st = null;
  let scheduled = false;

  const finish = () => {
    const s = st;
    st = null;
    send({ ev: 'sent', phase: s.phase, t0: s.t0, tEnd: nowUs(), sent: s.sent });
  };

  function pump() {
    scheduled = false;
    if (!st || st.mode !== 'tput') return;
    let k = 0;
    while (st.sent < st.n && st.sent - st.delivered < st.window && k < st.batch) {
      sendOne(st.phase, st.sent, 0);
      st.sent++;
      k++;
    }
    if (st.sent >= st.n) return finish();
    // Yield to the event loop between batches (acks, socket writes); resume at once if
    // the window allows, else when credit arrives.
    if (st.sent - st.delivered < st.window) {
      scheduled = true;
      setImmediate(pump);
    }
    return undefined;
  }

  function tick() {
    if (!st || st.mode !== 'rate') return undefined;
    const due = Math.min(st.n, Math.floor(((nowUs() - st.t0) * st.rate) / 1e6) + 1);
    while (st.sent < due) {
      sendOne(st.phase, st.sent, nowUs());
      st.sent++;
    }
    if (st.sent >= st.n) return finish();
    st.timer = setTimeout(tick, 1);
    return undefined;
  }

  let probeTimer = null;
  Object.assign(handlers, {
    tput(m) {
      st = { mode: 'tput', phase: m.phase, n: m.n, window: m.window, batch: m.batch, sent: 0, delivered: 0, t0: nowUs() };
      pump();
    },
    rate(m) {
      st = { mode: 'rate', phase: m.phase, n: m.n, rate: m.rate, sent: 0, t0: nowUs(), timer: null };
      tick();
    },
    credit(m) {
      if (!st || st.phase !== m.phase || st.mode !== 'tput') return;
      if (m.delivered > st.delivered) st.delivered = m.delivered;
      if (!scheduled) pump();
    },
    stop() {
      if (st && st.timer) clearTimeout(st.timer);
      st = null;
      clearInterval(probeTimer);
      probeTimer = null;
      send({ ev: 'stopped' });
    },
    // Readiness: one probe message (phase -1) every 20 ms until told to stop.
    probe() {
      clearInterval(probeTimer);
      let seq = 0;
      probeTimer = setInterval(() => sendOne(-1, seq++, nowUs()), 20);
    },
  });
}

// ---------------------------------------------------------------------------
// Receiver: counts arrivals per source, reports progress and completion.

const LAT_CAP = 2_000_000;

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function installReceiver(nSources) {
  let st = null;
  let probe = null;

  function onMessage(src, phase, seq, tUs) {
    if (phase === -1) {
      if (probe && !probe.seen[src]) {
        probe.seen[src] = true;
        if (++probe.count === nSources) {
          probe = null;
          send({ ev: 'probed' });
        }
      }
      return;
    }
    if (!st || phase !== st.phase) return;
    if (st.mode === 'lat' && tUs > 0 && st.nl < st.lat.length) st.lat[st.nl++] = nowUs() - tUs;
    if (seq <= st.last[src]) st.disorder++;
    st.last[src] = seq;
    st.total++;
    if (st.total >= st.nextReport) {
      st.nextReport += st.reportEvery;
      send({ ev: 'progress', phase: st.phase, delivered: Math.floor(st.total / nSources) });
    }
    if (st.total === st.expect) {
      const tEnd = nowUs();
      const s = st;
      st = null;
      const out = { ev: 'done', phase: s.phase, tEnd, total: s.total, disorder: s.disorder };
      if (s.mode === 'lat') {
        const lat = s.lat.subarray(0, s.nl).sort();
        let sum = 0;
        for (const v of lat) sum += v;
        out.lat = {
          count: lat.length,
          meanUs: lat.length ? sum / lat.length : null,
          p50Us: percentile(lat, 50),
          p90Us: percentile(lat, 90),
          p99Us: percentile(lat, 99),
          p999Us: percentile(lat, 99.9),
          maxUs: lat.length ? lat[lat.length - 1] : null,
        };
      }
      send(out);
    }
  }

  Object.assign(handlers, {
    expect(m) {
      const expect = m.n * nSources;
      st = {
        phase: m.phase,
        mode: m.mode,
        expect,
        total: 0,
        disorder: 0,
        last: new Float64Array(nSources).fill(-1),
        reportEvery: Math.max(1, m.reportEvery * nSources),
        nextReport: Math.max(1, m.reportEvery * nSources),
        lat: m.mode === 'lat' ? new Float64Array(Math.min(expect, LAT_CAP)) : null,
        nl: 0,
      };
      send({ ev: 'armed', phase: m.phase });
    },
    stop() {
      const s = st;
      st = null;
      send({ ev: 'stopped', total: s ? s.total : null });
    },
    expectProbe() {
      probe = { seen: new Array(nSources).fill(false), count: 0 };
    },
  });
  return onMessage;
}

// ---------------------------------------------------------------------------
// Payloads of the direct pub/sub test: phase i32 | seq u32 | t f64 (LE) | padding.

function makePayload(size) {
  const len = Math.max(16, size);
  return (phase, seq, t) => {
    const b = Buffer.allocUnsafe(len);
    b.writeInt32LE(phase, 0);
    b.writeUInt32LE(seq, 4);
    b.writeDoubleLE(t, 8);
    b.fill(0x78, 16);
    return b;
  };
}

// The podrelay client under test: clients/node/src, or another copy (run.mjs --client-src)
// to A/B a change against the same baseline.
const clientSrc = cfg.clientSrc ? `${pathToFileURL(cfg.clientSrc).href}/` : new URL('../../clients/node/src/', import.meta.url).href;

async function loadRelay() {
  return import(new URL('index.js', clientSrc).href);
}

async function loadRelayAdapter() {
  register('./adapter-hook.mjs', import.meta.url, { data: { clientSrc } });
  return import(new URL('socket.io.js', clientSrc).href);
}

async function loadIoredis() {
  const mod = await import('ioredis');
  return mod.default;
}

// ---------------------------------------------------------------------------
// Roles

async function sioServer() {
  const { Server } = await import('socket.io');
  let adapter;
  let close = async () => {};
  if (cfg.variant === 'baseline' || cfg.variant === 'resp') {
    // 'resp' is the same code as 'baseline'; only the port differs (a sidecar's RESP
    // front end instead of redis-server), and the adapter key, so that its channels do not
    // cross the baseline's on the shared redis-server (--resp-channel-prefix is empty).
    const Redis = await loadIoredis();
    const { createAdapter } = await import('@socket.io/redis-adapter');
    const pub = new Redis({ host: '127.0.0.1', port: cfg.redisPort });
    const sub = pub.duplicate();
    pub.on('error', countError);
    sub.on('error', countError);
    await Promise.all([pub.ping(), sub.ping()]);
    countReads(sub.stream);
    adapter = createAdapter(pub, sub, cfg.adapterKey ? { key: cfg.adapterKey } : {});
    close = async () => {
      pub.disconnect();
      sub.disconnect();
    };
  } else {
    const { createAdapter } = await loadRelayAdapter();
    adapter = createAdapter({ address: cfg.relayAddress, connectOptions: { clientName: `bench ${cfg.name}` }, ...(cfg.adapterKey ? { key: cfg.adapterKey } : {}) });
  }
  await installHopProbe();
  const httpServer = http.createServer();
  const io = new Server(httpServer, { adapter, transports: ['websocket'], serveClient: false });
  const nsp = io.of('/');
  if (cfg.variant === 'podrelay') {
    nsp.adapter.on('error', countError);
    await nsp.adapter.ready;
    countReads(nsp.adapter.client._socket);
  }
  await new Promise((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const pad = 'x'.repeat(cfg.pad);
  installSender((ph, s, t) => {
    io.emit('m', { ph, s, t, p: pad });
  });
  cleanup = async () => {
    io.close();
    await close();
  };
  send({ ev: 'ready', port: httpServer.address().port });
}

// Hop timestamps: every variant's adapter hands a remote broadcast to socket.io-adapter's
// in-memory Adapter#broadcast (ClusterAdapter and RedisAdapter both call super.broadcast),
// which writes it to the local sockets. Wrapping that one method on the receiving server
// measures sender emit -> "server 2 has decoded it" in every variant alike; the rest of the
// end-to-end latency is server 2 -> websocket -> client. Only armed during latency runs
// ('hopStart' / 'hopStop'); the wrapper costs one property check per broadcast otherwise.
async function installHopProbe() {
  const { Adapter } = (await import('socket.io-adapter')).default;
  const hop = { on: false, buf: new Float64Array(LAT_CAP), n: 0 };
  const orig = Adapter.prototype.broadcast;
  Adapter.prototype.broadcast = function broadcast(packet, opts) {
    if (hop.on) {
      const d = packet.data;
      if (d && d[0] === 'm' && d[1] && d[1].t > 0 && hop.n < hop.buf.length) hop.buf[hop.n++] = nowUs() - d[1].t;
    }
    return orig.call(this, packet, opts);
  };
  Object.assign(handlers, {
    hopStart() {
      hop.on = true;
      hop.n = 0;
      send({ ev: 'hopStarted' });
    },
    hopStop() {
      hop.on = false;
      const lat = hop.buf.subarray(0, hop.n).sort();
      send({ ev: 'hop', count: lat.length, p50Us: percentile(lat, 50), p90Us: percentile(lat, 90), p99Us: percentile(lat, 99) });
    },
  });
}

async function sioClients() {
  const { io } = await import('socket.io-client');
  const onMessage = installReceiver(cfg.clients);
  const sockets = [];
  await Promise.all(
    Array.from({ length: cfg.clients }, (_, i) => {
      const s = io(cfg.url, { transports: ['websocket'], reconnection: false, forceNew: true });
      sockets.push(s);
      s.on('m', (d) => onMessage(i, d.ph, d.s, d.t));
      s.on('disconnect', (why) => countError(new Error(`client ${i} disconnected: ${why}`)));
      return new Promise((resolve, reject) => {
        s.once('connect', resolve);
        s.once('connect_error', reject);
      });
    }),
  );
  cleanup = async () => {
    for (const s of sockets) {
      s.removeAllListeners('disconnect');
      s.close();
    }
  };
  send({ ev: 'ready' });
}

async function pub() {
  const payload = makePayload(cfg.payload);
  if (cfg.variant === 'baseline') {
    const Redis = await loadIoredis();
    const r = new Redis({ host: '127.0.0.1', port: cfg.redisPort });
    r.on('error', countError);
    await r.ping();
    countReads(r.stream);
    installSender((ph, s, t) => {
      r.publish(cfg.channel, payload(ph, s, t)).catch(countError);
    });
    cleanup = async () => r.disconnect();
  } else {
    const { connect } = await loadRelay();
    const c = connect({ address: cfg.relayAddress, clientName: `bench ${cfg.name}` });
    c.on('error', countError);
    await c.ready();
    countReads(c._socket);
    installSender((ph, s, t) => {
      c.publish(cfg.channel, payload(ph, s, t)).catch(countError);
    });
    cleanup = async () => c.close({ timeout: 1000 });
  }
  send({ ev: 'ready' });
}

async function sub() {
  const onMessage = installReceiver(1);
  const onBuf = (b) => onMessage(0, b.readInt32LE(0), b.readUInt32LE(4), b.readDoubleLE(8));
  if (cfg.variant === 'baseline') {
    const Redis = await loadIoredis();
    const r = new Redis({ host: '127.0.0.1', port: cfg.redisPort });
    r.on('error', countError);
    r.on('messageBuffer', (_channel, msg) => onBuf(msg));
    await r.subscribe(cfg.channel);
    countReads(r.stream);
    cleanup = async () => r.disconnect();
  } else {
    const { connect } = await loadRelay();
    const c = connect({ address: cfg.relayAddress, clientName: `bench ${cfg.name}` });
    c.on('error', countError);
    await c.subscribe(cfg.channel, onBuf);
    countReads(c._socket);
    cleanup = async () => c.close({ timeout: 1000 });
  }
  send({ ev: 'ready' });
}

const roles = { 'sio-server': sioServer, 'sio-clients': sioClients, pub, sub };
if (!roles[role]) {
  console.error(`worker: unknown role ${role}`);
  process.exit(2);
}
roles[role]().catch((err) => {
  send({ ev: 'fatal', message: String((err && err.stack) || err) });
  console.error(err);
  process.exit(1);
});
