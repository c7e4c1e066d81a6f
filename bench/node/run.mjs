#!/usr/bin/env node
// podrelay Node benchmark: the podrelay Socket.IO adapter and Node client against
// @socket.io/redis-adapter and ioredis, side by side, in one invocation; and, for Socket.IO,
// the unmodified @socket.io/redis-adapter + ioredis pointed at the sidecars' --resp-listen.
// See README.md beside this file for what each figure means and what limits it.
//
//   node run.mjs [--quick] [--json FILE] [--reps N] [--cpu-prof DIR] [--only socketio|direct]
//
// The Socket.IO table opens with the rows issue 13 item 4 sets goals for (latency p50/p99 at
// each --sio-rates rate, burst throughput, CPU per broadcast of servers + sidecars + redis
// at each rate and saturated), each with its ratio and whether it meets the goal.

import { spawn, fork, execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const WORKER = path.join(HERE, 'worker.mjs');

// ---------------------------------------------------------------------------
// Options

const USAGE = `usage: node run.mjs [options]
  --quick               a few-seconds smoke run (1 rep, small counts; figures mean little)
  --json FILE           also write the results as JSON
  --reps N              measured repetitions per variant, interleaved (default 5; quick 1)
  --only SECTION        socketio or direct (default: both)
  --clients N           socket.io clients connected to server 2 (default 1)
  --sio-n N             broadcasts per Socket.IO burst (throughput) run (default 50000)
  --sio-rates R,R       broadcasts/s of the Socket.IO latency runs, one run per rate
                        (default 1000,2000; --sio-rate R is the same with one rate)
  --sio-lat-n N         broadcasts per Socket.IO latency run (default 10000)
  --variants V,V        Socket.IO variants to run: baseline, podrelay, resp, proxy, ref
                        (default baseline,podrelay,resp; ref needs --ref-client-src).
                        proxy: the baseline with each server's ioredis pair through a
                        byte-copying TCP proxy of its own (podrelay-bench-forwarder), what
                        the extra hop and wake-up of any sidecar cost
  --forwarder-bin PATH  the proxy of variant proxy (default build/bin/podrelay-bench-forwarder)
  --ref-client-src DIR  a second copy of the podrelay client sources (e.g. a checkout of
                        the previous commit): variant 'ref', the same adapter on the same
                        sidecars, for a before/after in one run
  --direct-n N          messages per direct pub/sub throughput run (default 400000)
  --direct-rate R       messages/s of the direct latency runs (default 2000)
  --lat-seconds S       duration of each direct latency run (default 2)
  --payload BYTES       payload size: direct message bytes / Socket.IO padding string (default 100)
  --sio-window N        broadcasts in flight, end to end (default 1000)
  --direct-window N     messages in flight, end to end (default 4000)
  --phase-timeout S     give up on a run after S seconds (default 30; quick 10)
  --perf-stat           count syscalls and context switches (wake-ups) of every process
                        during the latency runs with \`perf stat\` (needs perf and the
                        right to trace: root or kernel.perf_event_paranoid <= 1); adds rows
  --cpu-prof DIR        run every Node child with --cpu-prof, profiles into DIR
                        (slows everything; summarise with: node cpuprof-top.mjs DIR/*/*.cpuprofile)
  --client-src DIR      podrelay Node client sources to test (default ../../clients/node/src);
                        a patched copy elsewhere A/Bs a change against the same baseline
  --podrelay-bin PATH   sidecar binary (default $PODRELAY_BIN, else build/bin/podrelay)
  --redis-server PATH   (default $REDIS_SERVER, else redis-server)`;

function parseArgs(argv) {
  const o = {
    quick: false,
    json: null,
    reps: null,
    only: null,
    clients: 1,
    sioN: null,
    sioRates: [1000, 2000],
    sioLatN: null,
    variants: ['baseline', 'podrelay', 'resp'],
    directN: null,
    directRate: 2000,
    latSeconds: null,
    payload: 100,
    sioWindow: 1000,
    directWindow: 4000,
    phaseTimeout: null,
    cpuProf: null,
    perfStat: false,
    clientSrc: path.join(REPO, 'clients/node/src'),
    refClientSrc: null,
    podrelayBin: process.env.PODRELAY_BIN || path.join(REPO, 'build/bin/podrelay'),
    forwarderBin: path.join(REPO, 'build/bin/podrelay-bench-forwarder'),
    redisServer: process.env.REDIS_SERVER || 'redis-server',
  };
  const num = (name, v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} needs a positive number, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--quick': o.quick = true; break;
      case '--json': o.json = val(); break;
      case '--reps': o.reps = Math.round(num(a, val())); break;
      case '--only': o.only = val(); break;
      case '--clients': o.clients = Math.round(num(a, val())); break;
      case '--sio-n': o.sioN = Math.round(num(a, val())); break;
      case '--sio-rate': o.sioRates = [num(a, val())]; break;
      case '--sio-rates': o.sioRates = val().split(',').map((x) => num(a, x)); break;
      case '--sio-lat-n': o.sioLatN = Math.round(num(a, val())); break;
      case '--variants': o.variants = val().split(','); break;
      case '--direct-n': o.directN = Math.round(num(a, val())); break;
      case '--direct-rate': o.directRate = num(a, val()); break;
      case '--lat-seconds': o.latSeconds = num(a, val()); break;
      case '--payload': o.payload = Math.round(num(a, val())); break;
      case '--sio-window': o.sioWindow = Math.round(num(a, val())); break;
      case '--direct-window': o.directWindow = Math.round(num(a, val())); break;
      case '--phase-timeout': o.phaseTimeout = num(a, val()); break;
      case '--cpu-prof': o.cpuProf = path.resolve(val()); break;
      case '--perf-stat': o.perfStat = true; break;
      case '--client-src': o.clientSrc = path.resolve(val()); break;
      case '--ref-client-src': o.refClientSrc = path.resolve(val()); break;
      case '--podrelay-bin': o.podrelayBin = val(); break;
      case '--forwarder-bin': o.forwarderBin = val(); break;
      case '--redis-server': o.redisServer = val(); break;
      case '-h': case '--help': console.log(USAGE); process.exit(0); break;
      default: throw new Error(`unknown option ${a}\n${USAGE}`);
    }
  }
  if (o.only && !['socketio', 'direct'].includes(o.only)) throw new Error('--only takes socketio or direct');
  if (!o.variants.includes('baseline') || o.variants.some((v) => !['baseline', 'podrelay', 'resp', 'proxy', 'ref'].includes(v))) {
    throw new Error('--variants takes baseline (always) and any of podrelay, resp, proxy, ref');
  }
  if (o.refClientSrc && !o.variants.includes('ref')) o.variants.push('ref');
  if (o.variants.includes('ref') && !o.refClientSrc) throw new Error('variant ref needs --ref-client-src DIR');
  o.reps ??= o.quick ? 1 : 5;
  o.sioN ??= o.quick ? 3000 : 50000;
  o.sioLatN ??= o.quick ? 500 : 10000;
  o.directN ??= o.quick ? 10000 : 400000;
  o.latSeconds ??= o.quick ? 0.5 : 2;
  o.phaseTimeout ??= o.quick ? 10 : 30;
  o.warmupN = { sio: o.quick ? 500 : 5000, direct: o.quick ? 2000 : 20000 };
  return o;
}

// ---------------------------------------------------------------------------
// Process management: every child is tracked and killed on exit, error or signal.

const children = new Set(); // ChildProcess
let tmpDir = null;

function killAll(signal = 'SIGKILL') {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill(signal);
      } catch {
        // already gone
      }
    }
  }
}
process.on('exit', () => {
  killAll('SIGKILL');
  if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`\nrun.mjs: ${sig}, stopping every child`);
    process.exit(130);
  });
}

/** A child died on its own: nothing measured from here on would mean anything. */
function abort(why) {
  console.error(`run.mjs: aborting: ${why}`);
  process.exit(1); // the 'exit' handler kills every other child
}

function track(child) {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function withTimeout(promise, ms, what) {
  let timer;
  try {
    return await Promise.race([
      promise,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(check, { timeout, every = 50, what }) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
    await sleep(every);
  }
}

function redisPing(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    s.setTimeout(500, () => s.destroy());
    s.on('connect', () => s.write('*1\r\n$4\r\nPING\r\n'));
    s.on('data', (d) => {
      buf += d;
      if (buf.includes('\r\n')) {
        s.destroy();
        resolve(buf.startsWith('+PONG'));
      }
    });
    s.on('error', () => resolve(false));
    s.on('close', () => resolve(false));
  });
}

function httpStatus(port, p) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, timeout: 500 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
  });
}

/** A native child (redis-server, sidecar) with its log kept for error reports. */
function spawnNative(name, cmd, args) {
  const child = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  child.benchName = name;
  child.log = [];
  const keep = (d) => {
    child.log.push(String(d));
    if (child.log.length > 200) child.log.splice(0, 100);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.on('error', (err) => keep(`spawn error: ${err.message}\n`));
  return child;
}

/**
 * CPU time of a native process in microseconds. /proc/<pid>/stat (utime + stime) counts in
 * clock ticks (10 ms at CLK_TCK 100): too coarse for a sidecar that spends a few µs per
 * message over a run of a few seconds. So the sum of the first field of
 * /proc/<pid>/task/<tid>/schedstat (ns on CPU, per thread) is used where the kernel has
 * it, and /proc/<pid>/stat otherwise. (Threads that exit during a run would be missed by
 * schedstat; redis-server's and the sidecar's threads live as long as the process.)
 */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();
function procStatCpuUs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // after ')': state is field 3, utime field 14, stime field 15 -> indexes 11 and 12
  return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
}
function schedstatCpuUs(pid) {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
  }
  return ns / 1000;
}
let nativeCpuSource = null;
function procCpuUs(pid) {
  if (nativeCpuSource === null) {
    try {
      nativeCpuSource = schedstatCpuUs(pid) > 0 ? 'schedstat' : 'stat';
    } catch {
      nativeCpuSource = 'stat';
    }
  }
  return nativeCpuSource === 'schedstat' ? schedstatCpuUs(pid) : procStatCpuUs(pid);
}

/** A Node child (worker.mjs) spoken to over IPC. */
class Worker {
  constructor(name, role, cfg, opts) {
    this.name = name;
    const execArgv = [];
    // One directory per child: a child with a module hook thread writes two profiles.
    if (opts.cpuProf) execArgv.push('--cpu-prof', '--cpu-prof-dir', path.join(opts.cpuProf, name));
    this.proc = track(fork(WORKER, [role, JSON.stringify({ ...cfg, name, clientSrc: cfg.clientSrc ?? opts.clientSrc })], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    this.listeners = new Set();
    this.exited = false;
    this.proc.on('message', (m) => {
      for (const l of [...this.listeners]) l(m);
    });
    this.stopping = false;
    this.proc.on('exit', (code, signal) => {
      this.exited = true;
      const err = new Error(`${name} exited (code ${code}, signal ${signal})`);
      for (const l of [...this.listeners]) l({ ev: '__exit', err });
      if (!this.stopping) abort(err.message);
    });
    this.cpuSeq = 0;
    // Every child announces {ev: 'ready'} once; catch it from the start.
    this.ready = this.once('ready', () => true, 30000);
    this.ready.catch(() => {});
  }
  send(msg) {
    if (!this.exited && this.proc.connected) this.proc.send(msg);
  }
  on(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
  /** Resolves with the next message `ev` that satisfies `pred`. */
  once(ev, pred = () => true, timeout = 30000) {
    if (this.exited) return Promise.reject(new Error(`${this.name} has exited`));
    let off;
    const p = new Promise((resolve, reject) => {
      off = this.on((m) => {
        if (m.ev === '__exit') return reject(m.err);
        if (m.ev === 'fatal') return reject(new Error(`${this.name}: ${m.message}`));
        if (m.ev === ev && pred(m)) resolve(m);
        return undefined;
      });
    });
    return withTimeout(p, timeout, `${this.name} ${ev}`).finally(off);
  }
  async cpu() {
    const id = ++this.cpuSeq;
    const p = this.once('cpu', (m) => m.id === id, 5000);
    this.send({ cmd: 'cpu', id });
    return p;
  }
  async stop(timeout = 3000) {
    this.stopping = true;
    if (this.exited) return;
    const gone = new Promise((r) => this.proc.once('exit', r));
    this.send({ cmd: 'exit' });
    if ((await Promise.race([gone.then(() => true), sleep(timeout).then(() => false)])) === false) {
      this.proc.kill('SIGKILL');
      await gone;
    }
  }
}

// ---------------------------------------------------------------------------
// Infrastructure: redis-server and two sidecars.

async function startRedis(o) {
  const port = await freePort();
  const child = spawnNative('redis-server', o.redisServer, [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', tmpDir, '--daemonize', 'no', '--loglevel', 'warning',
  ]);
  await waitFor(() => redisPing(port), { timeout: 10000, what: 'redis-server to answer PING' }).catch((err) => {
    throw new Error(`${err.message}\n${child.log.join('')}`);
  });
  return { port, child, pid: child.pid };
}

async function startSidecar(o, name, redisPort) {
  const port = await freePort();
  const admin = await freePort();
  const respPort = await freePort();
  const child = spawnNative(name, o.podrelayBinUsed, [
    '--listen', `127.0.0.1:${port}`,
    '--resp-listen', `127.0.0.1:${respPort}`,
    '--redis', `redis://127.0.0.1:${redisPort}`,
    '--admin-listen', `127.0.0.1:${admin}`,
    '--log-level', 'warn',
    '--node-id', name,
  ]);
  await waitFor(async () => (await httpStatus(admin, '/readyz')) === 200, { timeout: 15000, every: 100, what: `${name} /readyz` }).catch((err) => {
    throw new Error(`${err.message}\n${child.log.join('')}`);
  });
  await waitFor(() => redisPing(respPort), { timeout: 10000, what: `${name} --resp-listen to answer PING` }).catch((err) => {
    throw new Error(`${err.message}\n${child.log.join('')}`);
  });
  return { name, port, admin, respPort, child, pid: child.pid, address: `127.0.0.1:${port}` };
}

// A podrelay-bench-forwarder to Redis: a TCP proxy that copies bytes and nothing else.
async function startProxy(o, name, redisPort) {
  if (!existsSync(o.forwarderBin)) throw new Error(`${o.forwarderBin} not found (scripts/build.sh builds it; or --forwarder-bin)`);
  const port = await freePort();
  const child = spawnNative(name, o.forwarderBin, [String(port), String(redisPort)]);
  await waitFor(() => redisPing(port), { timeout: 10000, what: `${name} to pass PING through` }).catch((err) => {
    throw new Error(`${err.message}\n${child.log.join('')}`);
  });
  return { name, port, child, pid: child.pid };
}

// ---------------------------------------------------------------------------
// One measured run ("phase"): arm the receiver, snapshot CPU, let the sender go, wait
// for the receiver to count every message, snapshot CPU again.

let phaseSeq = 0;

async function snapshot(nodeProcs, nativeProcs) {
  const out = {};
  const cpus = await Promise.all(nodeProcs.map((w) => w.cpu()));
  nodeProcs.forEach((w, i) => {
    const c = cpus[i];
    out[w.role] = { us: c.user + c.system, sysUs: c.system, errors: c.errors, lastError: c.lastError, reads: c.reads, readBytes: c.readBytes };
  });
  for (const [role, pid] of Object.entries(nativeProcs)) out[role] = { us: procCpuUs(pid) };
  return out;
}

// --perf-stat: one `perf stat` per process, counting system calls and context switches
// (a process that sleeps in epoll_wait and is woken switches out once per sleep, so
// voluntary switches ~ wake-ups). Started after the CPU snapshot, stopped (SIGINT) before
// the next one, so the window covers the run.
const PERF_EVENTS = ['raw_syscalls:sys_enter', 'context-switches'];
function startPerfStat(pids) {
  return Object.entries(pids).map(([role, pid]) => {
    const child = track(spawn('perf', ['stat', '-x', ',', '-e', PERF_EVENTS.join(','), '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] }));
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const done = new Promise((resolve) => child.on('exit', () => resolve(err)));
    return { role, child, done };
  });
}
async function stopPerfStat(perfs) {
  const out = {};
  for (const p of perfs) p.child.kill('SIGINT');
  for (const p of perfs) {
    const text = await withTimeout(p.done, 5000, `perf stat of ${p.role}`);
    const counts = {};
    for (const line of text.split('\n')) {
      const f = line.split(',');
      if (f.length > 3 && PERF_EVENTS.includes(f[2])) counts[f[2]] = Number(f[0]);
    }
    out[p.role] = { syscalls: counts['raw_syscalls:sys_enter'] ?? null, switches: counts['context-switches'] ?? null };
  }
  return out;
}

async function runPhase(v, { mode, n, rate, window, batch, reportEvery, timeoutMs, perfStat }) {
  const phase = ++phaseSeq;
  const { sender, receiver } = v;
  const nodeProcs = v.nodeProcs;
  receiver.send({ cmd: 'expect', phase, n, mode: mode === 'tput' ? 'tput' : 'lat', reportEvery });
  await receiver.once('armed', (m) => m.phase === phase, 5000);
  const offRelay = receiver.on((m) => {
    if (m.ev === 'progress' && m.phase === phase) sender.send({ cmd: 'credit', phase, delivered: m.delivered });
  });
  if (mode !== 'tput' && v.hopAt) {
    const started = v.hopAt.once('hopStarted', () => true, 5000);
    v.hopAt.send({ cmd: 'hopStart' });
    await started;
  }
  const cpu0 = await snapshot(nodeProcs, v.natives);
  let perfs = null;
  if (perfStat && mode !== 'tput') {
    perfs = startPerfStat({ ...Object.fromEntries(nodeProcs.map((w) => [w.role, w.proc.pid])), ...v.natives });
    await sleep(200); // perf attaches
  }
  const sentP = sender.once('sent', (m) => m.phase === phase, timeoutMs);
  const doneP = receiver.once('done', (m) => m.phase === phase, timeoutMs);
  if (mode === 'tput') sender.send({ cmd: 'tput', phase, n, window, batch });
  else sender.send({ cmd: 'rate', phase, n, rate });
  let sent;
  let done;
  let incomplete = null;
  try {
    [sent, done] = await Promise.all([sentP, doneP]);
  } catch (err) {
    if (/exited|fatal/.test(err.message)) throw err;
    sentP.catch(() => {});
    doneP.catch(() => {});
    const stopped = receiver.once('stopped', () => true, 5000);
    receiver.send({ cmd: 'stop' });
    sender.send({ cmd: 'stop' });
    const s = await stopped;
    incomplete = `${err.message}; receiver had ${s.total} of ${n * v.nSources} deliveries`;
  } finally {
    offRelay();
  }
  await sleep(100); // let the last acks and socket writes settle into the CPU counters
  const perfCounts = perfs ? await stopPerfStat(perfs) : null;
  const cpu1 = await snapshot(nodeProcs, v.natives);
  let hop = null;
  if (mode !== 'tput' && v.hopAt) {
    const got = v.hopAt.once('hop', () => true, 5000);
    v.hopAt.send({ cmd: 'hopStop' });
    hop = await got;
  }
  const cpuPerMsg = {};
  const sysPerMsg = {};
  const readsPerMsg = {};
  const errs = [];
  for (const role of Object.keys(cpu1)) {
    cpuPerMsg[role] = (cpu1[role].us - cpu0[role].us) / n;
    if (cpu1[role].sysUs !== undefined) sysPerMsg[role] = (cpu1[role].sysUs - cpu0[role].sysUs) / n;
    if (cpu1[role].reads !== undefined) {
      readsPerMsg[role] = {
        reads: (cpu1[role].reads - cpu0[role].reads) / n,
        bytes: (cpu1[role].readBytes - cpu0[role].readBytes) / n,
      };
    }
    const de = (cpu1[role].errors || 0) - (cpu0[role].errors || 0);
    if (de > 0) errs.push(`${role}: ${de} errors (last: ${cpu1[role].lastError})`);
  }
  const r = { mode, n, cpuPerMsgUs: cpuPerMsg, sysCpuPerMsgUs: sysPerMsg, inboundReadsPerMsg: readsPerMsg, errors: errs, incomplete };
  if (perfCounts) {
    // The window also holds ~300 ms of idle time (attach, settle): a few timer wake-ups.
    r.perfPerMsg = {};
    for (const [role, c] of Object.entries(perfCounts)) {
      r.perfPerMsg[role] = { syscalls: c.syscalls === null ? null : c.syscalls / n, switches: c.switches === null ? null : c.switches / n };
    }
  }
  if (!incomplete) {
    const durUs = done.tEnd - sent.t0;
    r.seconds = durUs / 1e6;
    r.msgsPerSec = n / r.seconds;
    r.deliveriesPerSec = (n * v.nSources) / r.seconds;
    r.disorder = done.disorder;
    if (done.lat) r.lat = done.lat;
    if (hop && hop.count > 0) r.hopToServer2 = { count: hop.count, p50Us: hop.p50Us, p90Us: hop.p90Us, p99Us: hop.p99Us };
    if (mode === 'lat') r.rate = rate;
  }
  return r;
}

async function probe(v, timeout = 15000) {
  const p = v.receiver.once('probed', () => true, timeout);
  v.receiver.send({ cmd: 'expectProbe' });
  v.sender.send({ cmd: 'probe' });
  try {
    await p;
  } finally {
    const stopped = v.sender.once('stopped', () => true, 5000);
    v.sender.send({ cmd: 'stop' });
    await stopped;
  }
  await sleep(100); // stragglers of the probe are ignored (phase -1) but let them pass
}

// ---------------------------------------------------------------------------
// Sections

function median(xs) {
  const a = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((p, q) => p - q);
  if (a.length === 0) return null;
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}

async function measure(o, variants, params, log) {
  // Warm-up (JIT, connections, Redis buffers), not recorded.
  for (const v of variants) {
    log(`  warm-up ${v.label}`);
    const w = await runPhase(v, { ...params.tput, n: params.warmupN, timeoutMs: o.phaseTimeout * 1000 });
    if (w.incomplete) throw new Error(`${v.label} warm-up failed: ${w.incomplete}`);
  }
  const reps = Object.fromEntries(variants.map((v) => [v.key, { tput: [], lat: [] }]));
  for (let rep = 0; rep < o.reps; rep++) {
    // Interleave, alternating which variant goes first (ABBA...), so drift in the load of
    // the shared machine hits both alike.
    const order = rep % 2 === 0 ? variants : [...variants].reverse();
    for (const v of order) {
      const t = await runPhase(v, { ...params.tput, timeoutMs: o.phaseTimeout * 1000 });
      log(`  rep ${rep + 1} ${v.label.padEnd(9)} throughput ${fmt(t.msgsPerSec, 0)} msg/s${t.incomplete ? ` INCOMPLETE: ${t.incomplete}` : ''}`);
      reps[v.key].tput.push(t);
    }
    for (const lat of params.lats) {
      for (const v of [...order].reverse()) {
        const l = await runPhase(v, { ...lat, timeoutMs: o.phaseTimeout * 1000, perfStat: o.perfStat });
        log(`  rep ${rep + 1} ${v.label.padEnd(9)} latency @ ${lat.rate}/s p50 ${fmt(l.lat?.p50Us / 1000, 3)} ms p99 ${fmt(l.lat?.p99Us / 1000, 3)} ms${l.incomplete ? ` INCOMPLETE: ${l.incomplete}` : ''}`);
        reps[v.key].lat.push(l); // every rate's runs; rows pick theirs by r.rate
      }
    }
  }
  return reps;
}

const med = (runs, f) => median(runs.filter((r) => !r.incomplete).map(f));

function row(metric, unit, better, base, pod, note) {
  const ratio = base && pod !== null && pod !== undefined && base !== null ? pod / base : null;
  return { metric, unit, better, baseline: base, podrelay: pod, ratio, ...(note ? { note } : {}) };
}

/** A row of the Socket.IO section: baseline, podrelay and resp (redis-adapter via RESP). */
function row3(reps, metric, unit, better, kind, f) {
  const r = row(metric, unit, better, med(reps.baseline[kind], f), med(reps.podrelay[kind], f));
  r.resp = med(reps.resp[kind], f);
  r.respRatio = r.baseline && r.resp !== null ? r.resp / r.baseline : null;
  if (reps.proxy) {
    r.proxy = med(reps.proxy[kind], f);
    r.proxyRatio = r.baseline && r.proxy !== null ? r.proxy / r.baseline : null;
  }
  if (reps.ref) {
    r.ref = med(reps.ref[kind], f);
    r.refRatio = r.baseline && r.ref !== null ? r.ref / r.baseline : null;
  }
  return r;
}

function cpuRows(reps, kind, roles, suffix, msgUnit) {
  const rows = [];
  for (const [role, label] of roles) {
    const b = med(reps.baseline[kind], (r) => r.cpuPerMsgUs[role]);
    const p = med(reps.podrelay[kind], (r) => r.cpuPerMsgUs[role]);
    rows.push(row(`${label} CPU${suffix}`, `µs/${msgUnit}`, 'lower', b ?? null, p ?? null));
  }
  return rows;
}

function sumRoles(r, roles) {
  let s = 0;
  let any = false;
  for (const role of roles) {
    if (r.cpuPerMsgUs[role] !== undefined) {
      s += r.cpuPerMsgUs[role];
      any = true;
    }
  }
  return any ? s : null;
}

async function socketioSection(o, infra, log) {
  log(`Socket.IO: 2 servers per variant, ${o.clients} clients on server 2`);
  const base = { redisPort: infra.redis.port, pad: o.payload };
  const mk = (variant, key, label, relay1, relay2, extra1 = {}, extra2 = {}) => {
    const s1 = new Worker(`sio-${key}-s1`, 'sio-server', { ...base, variant, relayAddress: relay1, ...extra1 }, o);
    const s2 = new Worker(`sio-${key}-s2`, 'sio-server', { ...base, variant, relayAddress: relay2, ...extra2 }, o);
    s1.role = 'server1';
    s2.role = 'server2';
    return { key, label, s1, s2 };
  };
  // Only the variants asked for (--variants) start their servers.
  const want = (key, make) => (o.variants.includes(key) ? make() : null);
  const vb = mk('baseline', 'baseline', 'baseline');
  const vp = want('podrelay', () => mk('podrelay', 'podrelay', 'podrelay', infra.sidecars[0].address, infra.sidecars[1].address));
  // @socket.io/redis-adapter + ioredis exactly as the baseline, but each server's ioredis
  // pair (pub and sub) on its own sidecar's --resp-listen port. Its own adapter key keeps
  // its channels apart from the baseline's on the shared redis-server.
  const respKey = 'socket.io-resp';
  const vr = want('resp', () => mk('resp', 'resp', 'resp', undefined, undefined,
    { redisPort: infra.sidecars[0].respPort, adapterKey: respKey },
    { redisPort: infra.sidecars[1].respPort, adapterKey: respKey }));
  // The podrelay adapter from --ref-client-src, on the same sidecars, with its own key.
  const vref = want('ref', () => mk('podrelay', 'ref', 'ref', infra.sidecars[0].address, infra.sidecars[1].address,
    { clientSrc: o.refClientSrc, adapterKey: 'socket.io-ref' }, { clientSrc: o.refClientSrc, adapterKey: 'socket.io-ref' }));
  // The baseline again, each server's ioredis pair through its own TCP proxy to Redis.
  const vx = want('proxy', () => mk('baseline', 'proxy', 'proxy', undefined, undefined,
    { redisPort: infra.proxies[0].port, adapterKey: 'socket.io-proxy' },
    { redisPort: infra.proxies[1].port, adapterKey: 'socket.io-proxy' }));
  const variants = [vb, vp, vr, vx, vref].filter(Boolean);
  const all = [];
  try {
    for (const v of variants) {
      all.push(v.s1, v.s2);
      const [, r2] = await Promise.all([v.s1.ready, v.s2.ready]);
      v.clients = new Worker(`sio-${v.key}-clients`, 'sio-clients', { url: `http://127.0.0.1:${r2.port}`, clients: o.clients }, o);
      v.clients.role = 'clients';
      all.push(v.clients);
      await v.clients.ready;
      v.sender = v.s1;
      v.receiver = v.clients;
      v.nSources = o.clients;
      v.nodeProcs = [v.s1, v.s2, v.clients];
      v.hopAt = v.s2; // sender emit -> server 2's adapter hands it to its sockets
      v.natives = { redis: infra.redis.pid };
      if (v.key === 'proxy') {
        // The proxies stand where the sidecars do: their CPU goes in the sidecar rows.
        v.natives.sidecar1 = infra.proxies[0].pid;
        v.natives.sidecar2 = infra.proxies[1].pid;
      } else if (v.key !== 'baseline') {
        v.natives.sidecar1 = infra.sidecars[0].pid;
        v.natives.sidecar2 = infra.sidecars[1].pid;
      }
      await probe(v);
    }
    const latN = o.sioLatN;
    const params = {
      warmupN: o.warmupN.sio,
      tput: { mode: 'tput', n: o.sioN, window: o.sioWindow, batch: Math.max(1, Math.min(100, o.sioWindow >> 2)), reportEvery: Math.max(1, o.sioWindow >> 3) },
      lats: o.sioRates.map((rate) => ({ mode: 'lat', n: latN, rate, reportEvery: Math.max(1, latN >> 2) })),
    };
    const reps = await measure(o, variants, params, log);
    for (const key of ['podrelay', 'resp']) reps[key] ??= { tput: [], lat: [] }; // not run: its column stays empty
    const nodeRoles = ['server1', 'server2'];
    const sysRoles = ['server1', 'server2', 'sidecar1', 'sidecar2', 'redis'];
    const r3 = (metric, unit, better, kind, f, goal = false) => ({ ...row3(reps, metric, unit, better, kind, f), ...(goal ? { goal: true } : {}) });
    // Latency rows: only the runs at rate R.
    const atRate = (R, f) => (r) => (r.rate === R ? f(r) : null);
    const cpu3 = (kind, roles, suffix, msgUnit) => roles.map(([role, label]) => r3(`${label} CPU${suffix}`, `µs/${msgUnit}`, 'lower', kind, (r) => r.cpuPerMsgUs[role]));
    const rates = o.sioRates;
    const rows = [
      // The rows issue 13 item 4 sets goals for (ratio <= 1.0 for lower-is-better, >= 1.0 for throughput).
      ...rates.flatMap((R) => [
        r3(`latency p50 @ ${R}/s`, 'ms', 'lower', 'lat', atRate(R, (r) => r.lat.p50Us / 1000), true),
        r3(`latency p99 @ ${R}/s`, 'ms', 'lower', 'lat', atRate(R, (r) => r.lat.p99Us / 1000), true),
      ]),
      r3(`cross-server throughput (burst of ${o.sioN})`, 'broadcasts/s', 'higher', 'tput', (r) => r.msgsPerSec, true),
      ...rates.map((R) => r3(`servers + sidecars + redis CPU @ ${R}/s`, 'µs/broadcast', 'lower', 'lat', atRate(R, (r) => sumRoles(r, sysRoles)), true)),
      r3('servers + sidecars + redis CPU (saturated)', 'µs/broadcast', 'lower', 'tput', (r) => sumRoles(r, sysRoles), true),
      // Where it goes.
      r3(`deliveries to the ${o.clients} client(s) on server 2`, 'msgs/s', 'higher', 'tput', (r) => r.deliveriesPerSec),
      r3('capacity if each server had its own core (1e6 / busier server µs)', 'broadcasts/s', 'higher', 'tput', (r) => capacity(r, nodeRoles)),
      ...rates.flatMap((R) => [
        r3(`latency p90 @ ${R}/s`, 'ms', 'lower', 'lat', atRate(R, (r) => r.lat.p90Us / 1000)),
        r3(`  of which emit → server 2 decoded, p50 @ ${R}/s`, 'ms', 'lower', 'lat', atRate(R, (r) => (r.hopToServer2 ? r.hopToServer2.p50Us / 1000 : null))),
        r3(`  of which emit → server 2 decoded, p99 @ ${R}/s`, 'ms', 'lower', 'lat', atRate(R, (r) => (r.hopToServer2 ? r.hopToServer2.p99Us / 1000 : null))),
        ...[['server1', 'server 1 (sender) Node'], ['server2', 'server 2 (receiver) Node'], ['sidecar1', 'sidecar 1'], ['sidecar2', 'sidecar 2'], ['redis', 'redis-server']].map(([role, label]) =>
          r3(`${label} CPU @ ${R}/s`, 'µs/broadcast', 'lower', 'lat', atRate(R, (r) => r.cpuPerMsgUs[role]))),
        r3(`server 2 inbound socket reads @ ${R}/s`, 'reads/broadcast', 'lower', 'lat', atRate(R, (r) => r.inboundReadsPerMsg.server2?.reads)),
        ...(o.perfStat
          ? ['server1', 'server2', 'sidecar1', 'sidecar2', 'redis'].flatMap((role) => [
              r3(`${role} syscalls @ ${R}/s (perf)`, '/broadcast', 'lower', 'lat', atRate(R, (r) => r.perfPerMsg?.[role]?.syscalls)),
              r3(`${role} context switches @ ${R}/s (perf)`, '/broadcast', 'lower', 'lat', atRate(R, (r) => r.perfPerMsg?.[role]?.switches)),
            ])
          : []),
      ]),
      ...cpu3('tput', [['server1', 'server 1 (sender) Node'], ['server2', 'server 2 (receiver) Node']], ' (saturated)', 'broadcast'),
      r3('both servers Node CPU (saturated)', 'µs/broadcast', 'lower', 'tput', (r) => sumRoles(r, nodeRoles)),
      ...cpu3('tput', [['sidecar1', 'sidecar 1 (server 1)'], ['sidecar2', 'sidecar 2 (server 2)'], ['redis', 'redis-server']], ' (saturated)', 'broadcast'),
      r3('clients process CPU (saturated; same work in all)', 'µs/broadcast', 'lower', 'tput', (r) => r.cpuPerMsgUs.clients),
    ];
    for (const r of rows) {
      if (!o.variants.includes('resp')) delete r.resp, delete r.respRatio;
      if (!o.variants.includes('ref')) delete r.ref, delete r.refRatio;
      if (!o.variants.includes('proxy')) delete r.proxy, delete r.proxyRatio;
    }
    return { rows, reps, errors: collectErrors(reps) };
  } finally {
    await Promise.all(all.map((w) => w.stop()));
  }
}

async function directSection(o, infra, log) {
  log('Direct pub/sub: publisher and subscriber in separate processes');
  const channel = 'bench:direct';
  const mk = (variant, key, relay1, relay2) => {
    const pubW = new Worker(`direct-${key}-pub`, 'pub', { variant, channel, redisPort: infra.redis.port, relayAddress: relay1, payload: o.payload }, o);
    const subW = new Worker(`direct-${key}-sub`, 'sub', { variant, channel, redisPort: infra.redis.port, relayAddress: relay2 }, o);
    pubW.role = 'publisher';
    subW.role = 'subscriber';
    return { key, label: key, sender: pubW, receiver: subW, nSources: 1, nodeProcs: [pubW, subW] };
  };
  const vb = mk('baseline', 'baseline');
  const vp = mk('podrelay', 'podrelay', infra.sidecars[0].address, infra.sidecars[1].address);
  vb.natives = { redis: infra.redis.pid };
  vp.natives = { redis: infra.redis.pid, sidecar1: infra.sidecars[0].pid, sidecar2: infra.sidecars[1].pid };
  const all = [vb.sender, vb.receiver, vp.sender, vp.receiver];
  try {
    await Promise.all(all.map((w) => w.ready));
    await probe(vb);
    await probe(vp);
    const latN = Math.max(1, Math.round(o.directRate * o.latSeconds));
    const params = {
      warmupN: o.warmupN.direct,
      tput: { mode: 'tput', n: o.directN, window: o.directWindow, batch: Math.max(1, Math.min(500, o.directWindow >> 2)), reportEvery: Math.max(1, o.directWindow >> 3) },
      lats: [{ mode: 'lat', n: latN, rate: o.directRate, reportEvery: Math.max(1, latN >> 2) }],
    };
    const reps = await measure(o, [vb, vp], params, log);
    const R = o.directRate;
    const nodeRoles = ['publisher', 'subscriber'];
    const sysRoles = ['publisher', 'subscriber', 'sidecar1', 'sidecar2', 'redis'];
    const rows = [
      row('throughput (acked publishes, windowed)', 'msgs/s', 'higher', med(reps.baseline.tput, (r) => r.msgsPerSec), med(reps.podrelay.tput, (r) => r.msgsPerSec)),
      row('capacity if each process had its own core (1e6 / busier process µs)', 'msgs/s', 'higher', med(reps.baseline.tput, (r) => capacity(r, nodeRoles)), med(reps.podrelay.tput, (r) => capacity(r, nodeRoles))),
      row(`latency p50 @ ${R}/s`, 'ms', 'lower', med(reps.baseline.lat, (r) => r.lat.p50Us / 1000), med(reps.podrelay.lat, (r) => r.lat.p50Us / 1000)),
      row(`latency p99 @ ${R}/s`, 'ms', 'lower', med(reps.baseline.lat, (r) => r.lat.p99Us / 1000), med(reps.podrelay.lat, (r) => r.lat.p99Us / 1000)),
      ...cpuRows(reps, 'tput', [['publisher', 'publisher Node'], ['subscriber', 'subscriber Node']], ' (saturated)', 'msg'),
      row('publisher + subscriber Node CPU (saturated)', 'µs/msg', 'lower', med(reps.baseline.tput, (r) => sumRoles(r, nodeRoles)), med(reps.podrelay.tput, (r) => sumRoles(r, nodeRoles))),
      ...cpuRows(reps, 'tput', [['sidecar1', 'sidecar 1 (publisher)'], ['sidecar2', 'sidecar 2 (subscriber)'], ['redis', 'redis-server']], ' (saturated)', 'msg'),
      row('Node + sidecars + redis CPU (saturated)', 'µs/msg', 'lower', med(reps.baseline.tput, (r) => sumRoles(r, sysRoles)), med(reps.podrelay.tput, (r) => sumRoles(r, sysRoles))),
      row(`publisher + subscriber Node CPU @ ${R}/s`, 'µs/msg', 'lower', med(reps.baseline.lat, (r) => sumRoles(r, nodeRoles)), med(reps.podrelay.lat, (r) => sumRoles(r, nodeRoles))),
      row(`Node + sidecars + redis CPU @ ${R}/s`, 'µs/msg', 'lower', med(reps.baseline.lat, (r) => sumRoles(r, sysRoles)), med(reps.podrelay.lat, (r) => sumRoles(r, sysRoles))),
    ];
    return { rows, reps, errors: collectErrors(reps) };
  } finally {
    await Promise.all(all.map((w) => w.stop()));
  }
}

/** 1e6 / the busiest Node process's CPU per message: msgs/s if each had a core to itself. */
function capacity(r, roles) {
  const m = Math.max(...roles.map((role) => r.cpuPerMsgUs[role] ?? NaN));
  return Number.isFinite(m) && m > 0 ? 1e6 / m : null;
}

function collectErrors(reps) {
  const out = [];
  for (const [variant, kinds] of Object.entries(reps)) {
    for (const [kind, runs] of Object.entries(kinds)) {
      runs.forEach((r, i) => {
        if (r.incomplete) out.push(`${variant} ${kind} rep ${i + 1}: ${r.incomplete}`);
        for (const e of r.errors) out.push(`${variant} ${kind} rep ${i + 1}: ${e}`);
        if (r.disorder) out.push(`${variant} ${kind} rep ${i + 1}: ${r.disorder} messages out of order`);
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Output

function fmt(x, digits) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  if (digits === undefined) {
    const a = Math.abs(x);
    digits = a >= 1000 ? 0 : a >= 100 ? 1 : a >= 10 ? 2 : 3;
  }
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function table(title, rows) {
  // The Socket.IO rows also carry `resp` (redis-adapter via sidecar RESP) and its ratio to
  // the same baseline: two more columns.
  const withResp = rows.some((r) => 'resp' in r);
  // Rows with a goal (issue 13: podrelay no worse than the baseline) say whether it is met.
  const withGoal = rows.some((r) => r.goal);
  const withRef = rows.some((r) => 'ref' in r);
  const withProxy = rows.some((r) => 'proxy' in r);
  const head = ['metric', 'unit', 'baseline', 'podrelay', 'ratio', ...(withGoal ? ['goal'] : []), ...(withResp ? ['redis-adapter via RESP', 'ratio'] : []), ...(withProxy ? ['redis-adapter via TCP proxies', 'ratio'] : []), ...(withRef ? ['podrelay ref', 'ratio'] : [])];
  const ratioCell = (x, better) => (x === null || x === undefined ? '—' : `${fmt(x, 2)}x${better === 'higher' ? ' ↑' : ' ↓'}`);
  const goalCell = (r) => {
    if (!r.goal) return '';
    if (r.ratio === null || r.ratio === undefined) return '—';
    const met = r.better === 'higher' ? r.ratio >= 1 : r.ratio <= 1;
    return `${r.better === 'higher' ? '≥' : '≤'}1.0 ${met ? 'met' : 'NOT met'}`;
  };
  const body = rows.map((r) => [
    r.metric,
    r.unit,
    fmt(r.baseline),
    fmt(r.podrelay),
    ratioCell(r.ratio, r.better),
    ...(withGoal ? [goalCell(r)] : []),
    ...(withResp ? [fmt(r.resp), ratioCell(r.respRatio, r.better)] : []),
    ...(withProxy ? [fmt(r.proxy), ratioCell(r.proxyRatio, r.better)] : []),
    ...(withRef ? [fmt(r.ref), ratioCell(r.refRatio, r.better)] : []),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => (i >= 2 ? c.padStart(w[i]) : c.padEnd(w[i]))).join(' | ')} |`;
  return [`\n${title}`, line(head), `|${w.map((n, i) => (i >= 2 ? '-'.repeat(n + 1) + ':' : '-'.repeat(n + 2))).join('|')}|`, ...body.map(line)].join('\n');
}

function versions() {
  const req = createRequire(path.join(HERE, 'package.json'));
  const v = {};
  for (const p of ['socket.io', 'socket.io-client', 'socket.io-adapter', '@socket.io/redis-adapter', 'ioredis']) {
    try {
      v[p] = req(`${p}/package.json`).version;
    } catch {
      v[p] = null;
    }
  }
  return v;
}

// ---------------------------------------------------------------------------

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  const log = (s) => console.error(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${s}`);
  if (!existsSync(path.join(HERE, 'node_modules'))) throw new Error(`run 'npm ci' in ${HERE} first`);
  if (!existsSync(o.podrelayBin)) throw new Error(`sidecar binary ${o.podrelayBin} not found (build it, or set PODRELAY_BIN / --podrelay-bin)`);
  if (o.cpuProf) mkdirSync(o.cpuProf, { recursive: true });
  tmpDir = mkdtempSync(path.join(os.tmpdir(), 'podrelay-bench-node-'));
  // Run a private copy of the sidecar, so that a rebuild of build/ during the run cannot
  // swap or remove the binary under it.
  const bin = path.join(tmpDir, 'podrelay');
  copyFileSync(o.podrelayBin, bin);
  chmodSync(bin, 0o755);
  o.podrelayBinUsed = bin;

  const meta = {
    started: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    loadavgStart: os.loadavg(),
    versions: versions(),
    podrelay: (() => {
      try {
        return execFileSync(o.podrelayBin, ['--version']).toString().trim();
      } catch {
        return null;
      }
    })(),
    redis: (() => {
      try {
        return execFileSync(o.redisServer, ['--version']).toString().trim();
      } catch {
        return null;
      }
    })(),
    options: { ...o },
  };

  log('starting redis-server and two sidecars');
  const redis = await startRedis(o);
  const sidecars = await Promise.all([startSidecar(o, 'sidecar1', redis.port), startSidecar(o, 'sidecar2', redis.port)]);
  const proxies = o.variants.includes('proxy') && (!o.only || o.only === 'socketio')
    ? await Promise.all([startProxy(o, 'proxy1', redis.port), startProxy(o, 'proxy2', redis.port)])
    : [];
  const infra = { redis, sidecars, proxies };
  // A native child dying mid-run is fatal.
  let stoppingNatives = false;
  for (const c of [redis.child, ...sidecars.map((s) => s.child), ...proxies.map((p) => p.child)]) {
    c.on('exit', (code, sig) => {
      if (!stoppingNatives) abort(`${c.benchName} exited (code ${code}, signal ${sig})\n${c.log.join('').slice(-2000)}`);
    });
  }

  const sections = {};
  if (!o.only || o.only === 'socketio') {
    sections.socketio = await socketioSection(o, infra, log);
  }
  if (!o.only || o.only === 'direct') {
    sections.direct = await directSection(o, infra, log);
  }

  meta.loadavgEnd = os.loadavg();
  meta.nativeCpuSource = nativeCpuSource;
  meta.seconds = (Date.now() - t0) / 1000;
  // ok: every run completed, nothing reported an error, and every figure is there (the
  // baseline has no sidecar rows).
  const ok = Object.values(sections).every(
    (s) => s.errors.length === 0 && s.rows.every((r) => (r.podrelay !== null || !s.reps.podrelay.tput.length) && (!('resp' in r) || r.resp !== null) && (!('proxy' in r) || r.proxy !== null) && (r.baseline !== null || r.metric.startsWith('sidecar'))),
  );

  const out = [];
  out.push(`podrelay Node benchmark: ${meta.node}, ${meta.cpus} CPUs, load ${meta.loadavgStart.map((x) => x.toFixed(2)).join(' ')} → ${meta.loadavgEnd.map((x) => x.toFixed(2)).join(' ')}; medians of ${o.reps} interleaved rep(s)${o.quick ? ' (QUICK: figures mean little)' : ''}`);
  out.push(`baseline = ${o.only === 'direct' ? '' : `@socket.io/redis-adapter ${meta.versions['@socket.io/redis-adapter']} / `}ioredis ${meta.versions.ioredis}; podrelay = clients/node via sidecar ${meta.podrelay ?? ''}; ratio = podrelay / baseline (↑ higher is better, ↓ lower is better)`);
  if (sections.socketio) out.push('redis-adapter via RESP = the baseline\'s @socket.io/redis-adapter + ioredis, each server\'s ioredis on its own sidecar\'s --resp-listen port; its ratio is to the same baseline');
  if (sections.socketio && o.variants.includes('proxy')) out.push('redis-adapter via TCP proxies = the baseline\'s code with each server\'s ioredis through its own podrelay-bench-forwarder (copies bytes, nothing else) to the same Redis: a sidecar hop with no work of its own; its ratio is to the same baseline');
  if (sections.socketio) out.push(table(`Socket.IO cross-server (server 1 io.emit → server 2 → ${o.clients} clients; ${o.sioN} broadcasts, payload ~${o.payload + 40} B)`, sections.socketio.rows));
  if (sections.direct) out.push(table(`Direct pub/sub (${o.directN} messages of ${Math.max(16, o.payload)} B, publisher and subscriber in separate processes)`, sections.direct.rows));
  for (const [name, s] of Object.entries(sections)) {
    if (s.errors.length) out.push(`\n${name} errors:\n  ${s.errors.join('\n  ')}`);
  }
  console.log(out.join('\n'));
  if (o.cpuProf) console.log(`\nCPU profiles in ${o.cpuProf} (node ${path.join(HERE, 'cpuprof-top.mjs')} ${o.cpuProf}/*/*.cpuprofile)`);

  if (o.json) {
    writeFileSync(o.json, `${JSON.stringify({ ok, meta, sections }, null, 2)}\n`);
    log(`JSON written to ${o.json}`);
  }

  stoppingNatives = true;
  for (const c of [...sidecars.map((s) => s.child), ...proxies.map((p) => p.child), redis.child]) c.kill('SIGTERM');
  await sleep(200);
  log('done');
  process.exitCode = ok ? 0 : 1;
}

main().catch((err) => {
  console.error(`run.mjs: ${err.stack || err}`);
  process.exit(1); // the 'exit' handler kills every child
});
