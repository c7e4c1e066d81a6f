// podrelay client: one connection to the local sidecar, kept alive across sidecar
// restarts. All protocol bytes come from protocol.js; this file is the I/O and the
// bookkeeping around it (request ids, subscriptions, queueing, reconnect).
//
// Delivery contract, in one place:
// - An operation that was never written to a socket waits in a bounded queue (while
//   disconnected, or while the socket pushes back) and is sent after the reconnect.
// - An acked publish that was written but not answered when the connection broke is
//   rejected with OUTCOME_UNKNOWN (302): it may or may not have been published.
// - Nothing is dropped without its promise being settled.

import { EventEmitter } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  DEFAULT_MAX_FRAME_BYTES,
  ErrorCode,
  FrameDecoder,
  FrameType,
  MAX_LIST_ITEMS,
  MAX_PROTOCOL_VERSION,
  MAX_U32,
  PROTOCOL_VERSION,
  PodrelayError,
  encodeHello,
  encodePing,
  encodePub,
  encodePsub,
  encodePunsub,
  encodeRsub,
  encodeSub,
  encodeUnsub,
  errorName,
  toBytes,
} from './protocol.js';

export const DEFAULT_ADDRESS = '127.0.0.1:7400';

const localError = (code, name, message, cause) =>
  new PodrelayError(code, name, message, { local: true, cause });
const outcomeUnknown = (why) =>
  localError(ErrorCode.OUTCOME_UNKNOWN, 'OUTCOME_UNKNOWN', `publish outcome unknown: ${why}`);
const connectionLost = (why) => localError(0, 'CONNECTION_LOST', `connection to the sidecar lost: ${why}`);
const needsVersion2 = (channel) =>
  localError(
    ErrorCode.NOT_SUPPORTED,
    'NOT_SUPPORTED',
    `durable channel ${channel}: this connection speaks protocol version 1 ` +
      '(connect with protocolVersion: 2 or 3, and a sidecar with durable channels)',
  );

const STREAM_ID_TEXT = /^(\d{1,20})-(\d{1,20})$/;
/** True for a stream id `<ms>-<seq>` (two decimal unsigned 64-bit numbers). */
export const isStreamIdText = (s) => typeof s === 'string' && STREAM_ID_TEXT.test(s);
/** Compares two stream ids numerically, ms first: negative, 0 or positive. */
export function compareStreamIds(a, b) {
  const [, am, as] = STREAM_ID_TEXT.exec(a);
  const [, bm, bs] = STREAM_ID_TEXT.exec(b);
  const d = BigInt(am) - BigInt(bm) || BigInt(as) - BigInt(bs);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

// Stream ids and epochs are ASCII on the wire; latin1 keeps them byte-exact both ways.
const idText = (bytes) => bytes.toString('latin1');
const idBytes = (text) => Buffer.from(text, 'latin1');

/**
 * Parses 'host:port', '[v6]:port', ':port', 'port' or 'unix:/path' into net.connect
 * options.
 */
export function parseAddress(address) {
  if (typeof address !== 'string' || address === '') throw new TypeError('address must be a non-empty string');
  if (address.startsWith('unix:')) {
    const path = address.slice(5);
    if (!path) throw new TypeError(`no socket path in address ${address}`);
    return { path };
  }
  let host = '127.0.0.1';
  let portText = address;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(address);
  if (v6) {
    host = v6[1];
    portText = v6[2];
  } else if (address.includes(':')) {
    const i = address.lastIndexOf(':');
    host = address.slice(0, i) || host;
    portText = address.slice(i + 1);
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) throw new TypeError(`bad port in address ${address}`);
  return { host, port };
}

// Per-name subscription bookkeeping. Names are keyed by their bytes (latin1 maps each
// byte to one code unit, so the key is exact for binary names).
const keyOf = (bytes) => bytes.toString('latin1');

function toNameList(names, what) {
  const list = Array.isArray(names) ? names : [names];
  return list.map((n, i) => {
    if (typeof n !== 'string' && !(n instanceof Uint8Array)) {
      throw new TypeError(`${what}[${i}] must be a string or a Buffer`);
    }
    const bytes = toBytes(n, what);
    if (bytes.length > 0xffff) throw new RangeError(`${what}[${i}] is longer than 65535 bytes`);
    return { name: typeof n === 'string' ? n : Buffer.from(bytes), bytes };
  });
}

/** Simple FIFO with O(1) shift; ops hold their own `cancelled` flag. */
class Queue {
  constructor() {
    this.items = [];
    this.head = 0;
  }
  get length() {
    return this.items.length - this.head;
  }
  push(x) {
    this.items.push(x);
  }
  peek() {
    return this.items[this.head];
  }
  shift() {
    const x = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return x;
  }
  drainAll() {
    const out = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return out;
  }
}

/**
 * A connection to a podrelay sidecar. Create it with connect().
 *
 * Events: 'connect' (welcome info), 'disconnect' (error|undefined), 'reconnecting'
 * ({ attempt, delay, error }), 'goaway' ({ code, name, message }), 'message' (payload,
 * channel: Buffer, pattern: Buffer|null, streamId: string|null), 'resumed' (channel,
 * outcome: a durable channel re-subscribed after a reconnect), 'drain', 'error' (err;
 * only emitted when a listener is attached), 'close'.
 * Thread-safety: single-threaded; every method and event runs on the Node event loop.
 */
export class Client extends EventEmitter {
  constructor(options = {}) {
    super();
    const {
      address = DEFAULT_ADDRESS,
      clientName = '',
      authToken = '',
      reconnect = true,
      reconnectMinDelay = 100,
      reconnectMaxDelay = 5000,
      connectTimeout = 5000,
      maxPendingBytes = 8 * 1024 * 1024,
      maxIncomingFrameBytes = 16 * 1024 * 1024,
      pingInterval = 30000,
      pingTimeout = 10000,
      drainWait = 35000,
      protocolVersion = PROTOCOL_VERSION,
    } = options;
    if (!Number.isInteger(protocolVersion) || protocolVersion < 1 || protocolVersion > MAX_PROTOCOL_VERSION) {
      throw new RangeError('protocolVersion must be 1, 2 or 3');
    }
    this._target = parseAddress(address);
    this.address = address;
    // Version 2 adds durable channels, version 3 PUBX (publish with echo: false). A sidecar
    // from before a version refuses its HELLO (UNSUPPORTED_VERSION) and closes; the client
    // then says the next lower version at once (3, 2, 1), and asks for the highest again
    // after that connection ends (the sidecar may have been upgraded meanwhile).
    this._wantVersion = protocolVersion;
    this._helloVersion = protocolVersion;
    this._hellos = {};
    for (let v = 1; v <= protocolVersion; v++) this._hellos[v] = encodeHello({ version: v, clientName, authToken });
    this._version = 0; // the version the current connection speaks; 0 while not ready
    this._opts = {
      reconnect: !!reconnect,
      reconnectMinDelay,
      reconnectMaxDelay,
      connectTimeout,
      maxPendingBytes,
      maxIncomingFrameBytes,
      pingInterval,
      pingTimeout,
      drainWait,
    };

    // 'connecting' -> 'handshaking' -> 'ready' [-> 'draining' after GOAWAY]
    //   -> ('backoff' -> 'connecting' ...) -> 'closed'
    this._state = 'connecting';
    this._closing = false;
    this._closePromise = null;
    this._fatalError = null;
    this._lastError = undefined;
    this._socket = null;
    this._decoder = null;
    this._writable = false;
    this._corked = false;
    this._connectTimer = null;
    this._reconnectTimer = null;
    this._keepaliveTimer = null;
    this._attempt = 0;
    this._fallingBack = false;

    this._lastId = 0;
    this._pending = new Map(); // request id -> op, for requests written on this socket
    this._queue = new Queue(); // ops not yet written
    this._queuedBytes = 0;
    this._wasBackedUp = false;
    this._unflushed = new Set(); // fire-and-forget publishes written but not yet flushed

    this._subs = new Map(); // key -> { name, bytes, handlers: Set }
    this._psubs = new Map();
    // Durable channels: key -> { name, bytes, handlers: Set, id, epoch, waiters, inflight,
    // confirmed }. `id`/`epoch` are the position the next RSUB resumes from.
    this._durable = new Map();
    this._subWaiters = []; // { resolve, reject } settled by the next resubscribe

    this._readyWaiters = [];
    this._idleWaiter = null;

    this.serverInfo = null;
    this._serverMaxFrame = DEFAULT_MAX_FRAME_BYTES;

    this._connect();
  }

  /** True while a handshaken connection is up. */
  get connected() {
    return this._state === 'ready';
  }

  /** 'connecting' | 'handshaking' | 'ready' | 'draining' | 'backoff' | 'closed' */
  get state() {
    return this._state;
  }

  /** The protocol version the current connection speaks (1, 2 or 3); 0 while not connected. */
  get protocolVersion() {
    return this._version;
  }

  /**
   * Where each durable channel resumes after a reconnect: a new Map from the channel (as
   * subscribed) to { id, epoch }, the last stream id received and the epoch it belongs to.
   * Persist it to resume across process restarts (subscribeDurable's since/epoch).
   */
  get durablePositions() {
    const out = new Map();
    for (const e of this._durable.values()) out.set(e.name, { id: e.id, epoch: e.epoch });
    return out;
  }

  /** Bytes of frames waiting in the client (disconnected or socket backpressure). */
  get pendingBytes() {
    return this._queuedBytes;
  }

  /** Resolves once the client is connected (at once if it is); rejects if it closes first. */
  ready() {
    if (this._state === 'ready') return Promise.resolve(this.serverInfo);
    if (this._state === 'closed' || this._closing) return Promise.reject(this._closedError());
    return new Promise((resolve, reject) => this._readyWaiters.push({ resolve, reject }));
  }

  // -------------------------------------------------------------------------
  // Public operations

  /**
   * Publishes `payload` on `channel`. With ack (default) resolves when Redis accepted the
   * message and rejects with a PodrelayError on ERR; with { ack: false } resolves once
   * the frame was handed to the operating system. On a durable channel over protocol
   * version 2 or 3 the acked publish resolves with the stream id Redis assigned (PUBOK);
   * otherwise with undefined.
   * With { echo: false } the sidecar does not deliver the message back to this
   * connection's subscribe() of `channel` (PUBX), if the connection the frame goes out on
   * speaks version 3; on an older one it is a plain PUB and does come back. Best effort
   * even on version 3 (PROTOCOL.md section 10): keep dropping your own messages yourself.
   */
  publish(channel, payload, { ack = true, echo = true } = {}) {
    if (this._closing || this._state === 'closed') return Promise.reject(this._closedError());
    let buf;
    try {
      if (typeof channel !== 'string' && !(channel instanceof Uint8Array)) {
        throw new TypeError('channel must be a string or a Buffer');
      }
      if (typeof payload !== 'string' && !(payload instanceof Uint8Array)) {
        throw new TypeError('payload must be a string or a Buffer');
      }
      buf = encodePub(0, channel, payload);
    } catch (err) {
      return Promise.reject(err);
    }
    if (buf.length - 4 > this._serverMaxFrame) {
      return Promise.reject(this._tooLarge(buf.length - 4));
    }
    return new Promise((resolve, reject) => {
      // Encoded as a PUB; _write makes it a PUBX if the connection it goes out on speaks
      // version 3 (`noEcho`). Deciding there, not here, keeps a publish queued while
      // disconnected or behind backpressure from reaching an older sidecar as a PUBX.
      this._submit({ kind: ack ? 'pub' : 'pub0', buf, needsId: ack, keepQueued: true, noEcho: !echo, resolve, reject });
    });
  }

  /**
   * Subscribes to one channel or a list. `handler(payload, channel, pattern)` is called for
   * each message; channel is a string if it was subscribed as a string, else a Buffer;
   * pattern is null. Resolves when the sidecar confirmed (Redis has the subscription).
   */
  subscribe(channels, handler) {
    return this._subscribe('sub', channels, handler);
  }

  /** Like subscribe() for glob patterns; handler's third argument is the pattern. */
  psubscribe(patterns, handler) {
    return this._subscribe('psub', patterns, handler);
  }

  /**
   * Unsubscribes from the given channels (all of them when omitted or empty). With a
   * handler, only that handler is removed, and the channel is left once none remain.
   * No handler is called for a removed channel after this call returns.
   */
  unsubscribe(channels, handler) {
    return this._unsubscribe('sub', channels, handler);
  }

  /** Like unsubscribe() for patterns. */
  punsubscribe(patterns, handler) {
    return this._unsubscribe('psub', patterns, handler);
  }

  /**
   * Subscribes `handler(payload, channel, streamId)` to a durable channel (one the
   * sidecar's --durable patterns select; needs protocolVersion 2). With `since` (and the
   * `epoch` it belongs to) the sidecar first replays what was published after that id.
   * Resolves with the RSUBOK outcome { channel, recovered, epoch, lastId }: recovered
   * false means the history no longer reaches back to `since` (trimmed, or the stream was
   * recreated): reload the state from its source of truth. The client then tracks the
   * last id itself and resumes after it on every reconnect ('resumed' event).
   * A further handler on a channel already subscribed joins the live stream at once
   * (its since/epoch are not used).
   */
  subscribeDurable(channel, handler, { since, epoch } = {}) {
    if (this._closing || this._state === 'closed') return Promise.reject(this._closedError());
    let name;
    let bytes;
    try {
      if (typeof handler !== 'function') throw new TypeError('handler must be a function');
      [{ name, bytes }] = toNameList([channel], 'channel');
      for (const [v, what] of [[since, 'since'], [epoch, 'epoch']]) {
        if (v !== undefined && v !== null && typeof v !== 'string') throw new TypeError(`${what} must be a string`);
      }
      if (this._state === 'ready' && this._version < 2) throw needsVersion2(bytes.toString('utf8'));
    } catch (err) {
      return Promise.reject(err);
    }
    const key = keyOf(bytes);
    let entry = this._durable.get(key);
    if (entry && entry.confirmed && !entry.inflight) {
      entry.handlers.add(handler);
      return Promise.resolve({ channel: entry.name, recovered: true, epoch: entry.epoch, lastId: entry.id });
    }
    if (!entry) {
      entry = {
        name, bytes, handlers: new Set(), id: since || '', epoch: since ? epoch || '' : '',
        waiters: [], inflight: false, confirmed: false,
      };
      this._durable.set(key, entry);
    }
    entry.handlers.add(handler);
    const done = new Promise((resolve, reject) => entry.waiters.push({ resolve, reject, handler }));
    // Not connected: the RSUB goes out with the others once the connection is up.
    if (this._state === 'ready' && !entry.inflight) this._sendRsub(entry);
    return done;
  }

  /**
   * Ends a durable subscription (every handler, or only `handler`) and, once no handler
   * remains, forgets its position.
   */
  unsubscribeDurable(channel, handler) {
    if (this._closing || this._state === 'closed') return Promise.reject(this._closedError());
    let bytes;
    try {
      [{ bytes }] = toNameList([channel], 'channel');
    } catch (err) {
      return Promise.reject(err);
    }
    const key = keyOf(bytes);
    const entry = this._durable.get(key);
    if (!entry) return Promise.resolve();
    if (handler) {
      entry.handlers.delete(handler);
      if (entry.handlers.size > 0) return Promise.resolve();
    }
    this._durable.delete(key);
    // An RSUB still in flight is answered ERR (the UNSUB cut it short); its callers learn
    // it from that answer.
    if (this._state !== 'ready' || this._subs.has(key)) {
      // Not connected, or a plain subscribe() of the channel still wants the subscription.
      const err = localError(0, 'UNSUBSCRIBED', `unsubscribed from ${bytes.toString('utf8')} before it was confirmed`);
      if (!entry.inflight) for (const w of entry.waiters.splice(0)) w.reject(err);
      return Promise.resolve();
    }
    return this._sendList('unsub', [bytes]).then(() => undefined);
  }

  /** Round trip to the sidecar (not to Redis). Resolves with the latency in milliseconds. */
  ping({ timeout = 5000 } = {}) {
    if (this._closing || this._state === 'closed') return Promise.reject(this._closedError());
    return new Promise((resolve, reject) => {
      const op = { kind: 'ping', buf: encodePing(0), needsId: true, keepQueued: true, resolve, reject };
      op.timer = setTimeout(() => {
        this._cancel(op, localError(0, 'TIMEOUT', `no PONG within ${timeout} ms`));
      }, timeout);
      this._submit(op);
    });
  }

  /**
   * Closes the client. Operations already accepted are given up to `timeout` ms to finish
   * (if connected); after that they are rejected. Resolves once the socket is closed.
   */
  close({ timeout = 5000 } = {}) {
    if (this._closePromise) return this._closePromise;
    this._closing = true;
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    this._stopKeepalive();
    this._closePromise = (async () => {
      if (this._state === 'ready' && this._socket) {
        await this._waitIdle(timeout);
      } else if (this._state === 'draining' && this._socket) {
        await this._waitAnswered(timeout);
      }
      const socket = this._socket;
      if (socket && this._state !== 'ready') {
        socket.destroy();
      } else if (socket) {
        await new Promise((resolve) => {
          const timer = setTimeout(() => socket.destroy(), Math.max(100, Math.min(timeout, 1000)));
          socket.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
          socket.end();
        });
      }
      this._finalize(this._closedError());
    })();
    return this._closePromise;
  }

  /** Closes at once: every unsettled operation is rejected. */
  destroy() {
    this._closing = true;
    clearTimeout(this._reconnectTimer);
    this._stopKeepalive();
    if (this._socket) this._socket.destroy();
    this._finalize(this._closedError());
  }

  // -------------------------------------------------------------------------
  // Subscriptions

  _subscribe(kind, names, handler) {
    if (this._closing || this._state === 'closed') return Promise.reject(this._closedError());
    const what = kind === 'sub' ? 'channels' : 'patterns';
    let list;
    try {
      if (typeof handler !== 'function') throw new TypeError('handler must be a function');
      list = toNameList(names, what);
      if (list.length === 0) {
        throw localError(ErrorCode.INVALID_ARGUMENT, 'INVALID_ARGUMENT', `${what} must not be empty`);
      }
    } catch (err) {
      return Promise.reject(err);
    }
    const table = kind === 'sub' ? this._subs : this._psubs;
    const added = []; // names this call added the handler to, to roll back on refusal
    for (const { name, bytes } of list) {
      const key = keyOf(bytes);
      let entry = table.get(key);
      if (!entry) {
        entry = { name, bytes, handlers: new Set() };
        table.set(key, entry);
      }
      if (!entry.handlers.has(handler)) {
        entry.handlers.add(handler);
        added.push(key);
      }
    }
    let done;
    if (this._state === 'ready') {
      done = this._sendList(kind, list.map((x) => x.bytes));
    } else {
      done = new Promise((resolve, reject) => this._subWaiters.push({ resolve, reject }));
    }
    return done.then(
      () => undefined,
      (err) => {
        if (err && !err.local) this._rollback(kind, added, handler);
        throw err;
      },
    );
  }

  _rollback(kind, keys, handler) {
    const table = kind === 'sub' ? this._subs : this._psubs;
    const gone = [];
    for (const key of keys) {
      const entry = table.get(key);
      if (!entry) continue;
      entry.handlers.delete(handler);
      if (entry.handlers.size === 0) {
        table.delete(key);
        gone.push(entry.bytes);
      }
    }
    // The sidecar may have applied part of the request; undo it quietly.
    if (gone.length && this._state === 'ready') {
      this._sendList(kind === 'sub' ? 'unsub' : 'punsub', gone).catch(() => {});
    }
  }

  _unsubscribe(kind, names, handler) {
    if (this._closing || this._state === 'closed') return Promise.reject(this._closedError());
    const table = kind === 'sub' ? this._subs : this._psubs;
    const what = kind === 'sub' ? 'channels' : 'patterns';
    let list;
    try {
      list = names === undefined || names === null ? [] : toNameList(names, what);
    } catch (err) {
      return Promise.reject(err);
    }
    let toSend;
    if (list.length === 0) {
      if (handler) {
        toSend = [];
        for (const [key, entry] of table) {
          entry.handlers.delete(handler);
          if (entry.handlers.size === 0) {
            table.delete(key);
            toSend.push(entry.bytes);
          }
        }
        if (toSend.length === 0) return Promise.resolve();
      } else if (kind === 'sub' && this._durable.size > 0) {
        // An empty UNSUB would end the durable subscriptions too: name the plain ones.
        toSend = [...table.values()].map((e) => e.bytes);
        table.clear();
        if (toSend.length === 0) return Promise.resolve();
      } else {
        table.clear();
        toSend = []; // an empty list removes every subscription of this kind
      }
    } else {
      toSend = [];
      for (const { bytes } of list) {
        const key = keyOf(bytes);
        const entry = table.get(key);
        if (!entry) continue;
        if (handler) entry.handlers.delete(handler);
        if (!handler || entry.handlers.size === 0) {
          table.delete(key);
          toSend.push(bytes);
        }
      }
      if (toSend.length === 0) return Promise.resolve();
    }
    // A channel also subscribed durably keeps its subscription on the sidecar.
    if (kind === 'sub' && toSend.length > 0) {
      toSend = toSend.filter((b) => !this._durable.has(keyOf(b)));
      if (toSend.length === 0) return Promise.resolve();
    }
    // Not connected: there is nothing to remove on the sidecar; the resubscribe after the
    // reconnect uses the tables, which no longer hold these names.
    if (this._state !== 'ready') return Promise.resolve();
    return this._sendList(kind === 'sub' ? 'unsub' : 'punsub', toSend);
  }

  // Sends SUB/UNSUB/PSUB/PUNSUB for `names`, split into frames that fit the sidecar's
  // limit. Resolves when every part was confirmed.
  _sendList(kind, names, batch) {
    const encode = { sub: encodeSub, unsub: encodeUnsub, psub: encodePsub, punsub: encodePunsub }[kind];
    const chunks = [];
    if (names.length === 0) {
      chunks.push([]);
    } else {
      let cur = [];
      let size = 4 + 1 + 4 + 2;
      for (const b of names) {
        if (cur.length && (cur.length === MAX_LIST_ITEMS || size + 2 + b.length > this._serverMaxFrame)) {
          chunks.push(cur);
          cur = [];
          size = 4 + 1 + 4 + 2;
        }
        cur.push(b);
        size += 2 + b.length;
      }
      chunks.push(cur);
    }
    return Promise.all(
      chunks.map(
        (chunk) =>
          new Promise((resolve, reject) => {
            this._submit(
              { kind, buf: encode(0, chunk), needsId: true, keepQueued: false, resolve, reject, batch },
              true,
            );
          }),
      ),
    );
  }

  // Re-establishes every subscription on a fresh connection, then settles the callers
  // that subscribed while disconnected.
  _resubscribe() {
    const waiters = this._subWaiters;
    this._subWaiters = [];
    const batch = { waiters, done: false };
    const parts = [];
    if (this._subs.size) parts.push(this._sendList('sub', [...this._subs.values()].map((e) => e.bytes), batch));
    if (this._psubs.size) parts.push(this._sendList('psub', [...this._psubs.values()].map((e) => e.bytes), batch));
    Promise.all(parts).then(
      () => {
        if (batch.done) return;
        batch.done = true;
        for (const w of waiters) w.resolve();
      },
      (err) => {
        if (batch.done) return;
        batch.done = true;
        if (this._state === 'closed') {
          for (const w of waiters) w.reject(this._closedError());
          return;
        }
        if (err && err.name === 'CONNECTION_LOST') {
          // Retried after the next reconnect.
          this._subWaiters.push(...waiters);
          return;
        }
        for (const w of waiters) w.reject(err);
        this._emitError(err);
      },
    );
  }

  // Sends one RSUB for a durable channel from its tracked position. Only while connected;
  // at most one per channel in flight (the sidecar refuses a second one).
  _sendRsub(entry, auto = false) {
    entry.inflight = true;
    entry.sawSmsg = false; // SMSGs from here on belong to the stream this RSUB answers for
    const buf = encodeRsub(0, entry.bytes, idBytes(entry.id), idBytes(entry.epoch));
    this._submit({ kind: 'rsub', buf, needsId: true, keepQueued: false, entry, auto, resolve() {}, reject() {} }, true);
  }

  // After a handshake: every durable channel resumes from its position (version 2 or 3),
  // or its callers learn that this sidecar cannot (version 1).
  _resubscribeDurable() {
    for (const entry of this._durable.values()) {
      if (this._version >= 2) {
        this._sendRsub(entry, entry.confirmed);
        continue;
      }
      const err = needsVersion2(entry.bytes.toString('utf8'));
      if (entry.confirmed) {
        this._emitError(err); // kept: a later connection to a version 2 sidecar resumes it
        continue;
      }
      this._durable.delete(keyOf(entry.bytes));
      for (const w of entry.waiters.splice(0)) w.reject(err);
    }
  }

  _onRsubok(op, frame) {
    const { entry } = op;
    entry.inflight = false;
    const outcome = {
      channel: entry.name,
      recovered: frame.recovered !== 0,
      epoch: idText(frame.epoch),
      lastId: idText(frame.lastId),
    };
    // A position never moves back: PROTOCOL.md section 9 puts every SMSG before the RSUBOK at
    // or before last_id (integration/test_durable.py checks the sidecar under live load), but
    // should a sidecar break that, resume after the newest id the handlers already got
    // rather than replay it twice.
    if (!(entry.sawSmsg && isStreamIdText(entry.id) && isStreamIdText(outcome.lastId) && compareStreamIds(entry.id, outcome.lastId) > 0)) {
      entry.id = outcome.lastId;
    }
    entry.epoch = outcome.epoch;
    const wasConfirmed = entry.confirmed;
    entry.confirmed = true;
    for (const w of entry.waiters.splice(0)) w.resolve(outcome);
    if (op.auto && wasConfirmed) this.emit('resumed', entry.name, outcome);
  }

  _onRsubErr(op, err) {
    const { entry } = op;
    entry.inflight = false;
    const waiters = entry.waiters.splice(0);
    for (const w of waiters) w.reject(err);
    if (!entry.confirmed) {
      // Never subscribed: the handlers of the refused calls go.
      for (const w of waiters) entry.handlers.delete(w.handler);
      if (entry.handlers.size === 0 && this._durable.get(keyOf(entry.bytes)) === entry) {
        this._durable.delete(keyOf(entry.bytes));
      }
    }
    if (op.auto) this._emitError(err);
  }

  // -------------------------------------------------------------------------
  // Writing

  _tooLarge(length) {
    return localError(
      ErrorCode.FRAME_TOO_LARGE,
      'FRAME_TOO_LARGE',
      `frame length ${length} exceeds the sidecar's limit of ${this._serverMaxFrame} bytes`,
    );
  }

  // Sends an op now if the socket takes it, else queues it (bounded). `control` ops
  // (subscription requests, only issued while connected) are small and skip the queue, so
  // a resubscribe goes out before the publishes that waited for the reconnect.
  _submit(op, control = false) {
    if (this._state === 'ready' && (control || (this._writable && this._queue.length === 0))) {
      this._write(op);
      return;
    }
    if (this._state === 'closed') {
      this._settle(op, this._closedError());
      return;
    }
    if (!control && this._queuedBytes + op.buf.length > this._opts.maxPendingBytes) {
      this._settle(
        op,
        localError(
          ErrorCode.PUBLISH_BUFFER_FULL,
          'PUBLISH_BUFFER_FULL',
          `client queue full: ${this._queuedBytes} bytes waiting, maxPendingBytes is ${this._opts.maxPendingBytes}` +
            (this._state === 'ready' ? ' (socket backpressure)' : ' (not connected)'),
        ),
      );
      return;
    }
    op.queued = true;
    this._queuedBytes += op.buf.length;
    this._queue.push(op);
    if (this._state === 'ready') this._wasBackedUp = true;
  }

  _nextRequestId() {
    do {
      this._lastId = this._lastId >= MAX_U32 ? 1 : this._lastId + 1;
    } while (this._pending.has(this._lastId));
    return this._lastId;
  }

  _write(op) {
    const socket = this._socket;
    if (op.needsId) {
      op.id = this._nextRequestId();
      op.buf.writeUInt32BE(op.id, 5);
      this._pending.set(op.id, op);
    }
    // PUBX has PUB's body: the type byte alone says which one. Set on every write, from the
    // version of this very connection, so a PUBX never reaches a version 1 or 2 sidecar
    // (it would be UNKNOWN_TYPE there, and cost the connection).
    if (op.noEcho) op.buf[4] = this._version >= 3 ? FrameType.PUBX : FrameType.PUB;
    op.written = true;
    if (op.kind === 'ping') op.sentAt = performance.now();
    if (!this._corked) {
      // Coalesce the frames of one tick into as few writes as possible.
      this._corked = true;
      socket.cork();
      process.nextTick(() => {
        this._corked = false;
        socket.uncork();
      });
    }
    let ok;
    if (op.kind === 'pub0') {
      this._unflushed.add(op);
      ok = socket.write(op.buf, (err) => {
        this._unflushed.delete(op);
        if (err) this._settle(op, outcomeUnknown(`write failed: ${err.message}`));
        else this._settle(op, null);
      });
    } else {
      ok = socket.write(op.buf);
    }
    if (!ok) this._writable = false;
  }

  _flush() {
    while (this._state === 'ready' && this._writable && this._queue.length) {
      const op = this._queue.shift();
      if (op.cancelled) continue;
      op.queued = false;
      this._queuedBytes -= op.buf.length;
      if (op.needsId && op.buf.length - 4 > this._serverMaxFrame) {
        // The sidecar came back with a smaller limit.
        this._settle(op, this._tooLarge(op.buf.length - 4));
        continue;
      }
      this._write(op);
    }
    if (this._queue.length === 0 && this._wasBackedUp && this._state === 'ready' && this._writable) {
      this._wasBackedUp = false;
      this.emit('drain');
    }
    this._checkIdle();
  }

  _cancel(op, err) {
    if (op.settled) return;
    if (op.queued) {
      op.cancelled = true;
      op.queued = false;
      this._queuedBytes -= op.buf.length;
    }
    if (op.id !== undefined && this._pending.get(op.id) === op) this._pending.delete(op.id);
    this._settle(op, err);
  }

  // Settles an op once: `err` null resolves (with `value`), else rejects.
  _settle(op, err, value) {
    if (op.settled) return;
    op.settled = true;
    clearTimeout(op.timer);
    if (err) op.reject(err);
    else op.resolve(value);
    this._checkIdle();
  }

  // -------------------------------------------------------------------------
  // Connection lifecycle

  _connect() {
    this._state = 'connecting';
    const socket = net.connect(this._target);
    this._socket = socket;
    this._decoder = new FrameDecoder({ maxFrameBytes: this._opts.maxIncomingFrameBytes });
    this._writable = true;
    this._corked = false;
    this._lastError = undefined;
    this._connectTimer = setTimeout(() => {
      socket.destroy(new Error(`no WELCOME within ${this._opts.connectTimeout} ms`));
    }, this._opts.connectTimeout);
    socket.on('connect', () => {
      if (socket !== this._socket) return;
      if (this._target.host !== undefined) socket.setNoDelay(true);
      this._state = 'handshaking';
      socket.write(this._hellos[this._helloVersion]);
    });
    socket.on('data', (chunk) => this._onData(socket, chunk));
    socket.on('drain', () => {
      if (socket !== this._socket) return;
      this._writable = true;
      this._flush();
    });
    socket.on('error', (err) => {
      if (socket === this._socket) this._lastError = err;
    });
    socket.on('close', () => this._onClose(socket));
  }

  _onData(socket, chunk) {
    if (socket !== this._socket) return;
    let frames;
    try {
      frames = this._decoder.push(chunk);
    } catch (err) {
      this._protocolViolation(socket, err);
      return;
    }
    for (const frame of frames) {
      if (socket !== this._socket) return;
      this._onFrame(socket, frame);
    }
  }

  _protocolViolation(socket, err) {
    this._lastError = err;
    this._emitError(err);
    socket.destroy();
  }

  _onFrame(socket, frame) {
    if (this._state === 'handshaking') {
      if (frame.type === 'WELCOME') return this._onWelcome(frame);
      if (frame.type === 'ERR' && frame.code === ErrorCode.UNSUPPORTED_VERSION && this._helloVersion > 1) {
        // A sidecar from before this version: say the next lower one, at once.
        const refused = this._helloVersion;
        this._helloVersion = refused - 1;
        this._fallingBack = true;
        this._lastError = new PodrelayError(
          frame.code,
          errorName(frame.code),
          `sidecar refused protocol version ${refused}; retrying with version ${refused - 1}`,
        );
        socket.destroy();
        return;
      }
      if (frame.type === 'ERR') {
        // The sidecar refused the handshake (bad token, version): retrying cannot help.
        const err = new PodrelayError(frame.code, errorName(frame.code), `sidecar refused the handshake: ${frame.message.toString('utf8')}`);
        this._fatalError = err;
        this._emitError(err);
        socket.destroy();
        return;
      }
      if (frame.type === 'GOAWAY') return this._onGoaway(socket, frame);
      return this._protocolViolation(socket, localError(ErrorCode.UNEXPECTED_FRAME, 'UNEXPECTED_FRAME', `${frame.type} before WELCOME`));
    }
    if (this._version < 2 && (frame.type === 'SMSG' || frame.type === 'PUBOK' || frame.type === 'RSUBOK')) {
      return this._protocolViolation(
        socket,
        localError(ErrorCode.UNEXPECTED_FRAME, 'UNEXPECTED_FRAME', `${frame.type} on a protocol version 1 connection`),
      );
    }
    switch (frame.type) {
      case 'MSG':
        return this._onMsg(frame);
      case 'SMSG':
        return this._onSmsg(frame);
      case 'PUBOK':
      case 'RSUBOK': {
        const op = this._pending.get(frame.requestId);
        if (!op) return;
        this._pending.delete(frame.requestId);
        if (frame.type === 'RSUBOK' && op.kind === 'rsub') this._onRsubok(op, frame);
        else if (frame.type === 'PUBOK' && op.kind === 'pub') this._settle(op, null, idText(frame.id));
        else {
          this._settle(op, localError(ErrorCode.UNEXPECTED_FRAME, 'UNEXPECTED_FRAME', `${frame.type} answered a ${op.kind}`));
        }
        return;
      }
      case 'OK':
      case 'PONG': {
        const op = this._pending.get(frame.requestId);
        if (!op) return; // e.g. a ping that timed out
        this._pending.delete(frame.requestId);
        if (op.kind === 'ping') this._settle(op, null, performance.now() - op.sentAt);
        else this._settle(op, null);
        return;
      }
      case 'ERR': {
        const err = new PodrelayError(frame.code, errorName(frame.code), frame.message.toString('utf8'));
        const op = frame.requestId === 0 ? undefined : this._pending.get(frame.requestId);
        if (op) {
          this._pending.delete(frame.requestId);
          if (op.kind === 'rsub') this._onRsubErr(op, err);
          else this._settle(op, err);
        } else {
          // A connection-level error (1xx); the sidecar closes the connection next.
          this._lastError = err;
          this._emitError(err);
        }
        return;
      }
      case 'GOAWAY':
        return this._onGoaway(socket, frame);
      default:
        return this._protocolViolation(
          socket,
          localError(ErrorCode.UNEXPECTED_FRAME, 'UNEXPECTED_FRAME', `unexpected ${frame.type} frame from the sidecar`),
        );
    }
  }

  _onWelcome(frame) {
    // A sidecar answers the version asked for; one that answers a lower version it knows
    // (1 to a HELLO v2, say) is a clean fallback too: the connection speaks that version.
    if (!(frame.version >= 1 && frame.version <= this._helloVersion)) {
      this._protocolViolation(
        this._socket,
        localError(ErrorCode.UNSUPPORTED_VERSION, 'UNSUPPORTED_VERSION', `sidecar speaks version ${frame.version}`),
      );
      return;
    }
    clearTimeout(this._connectTimer);
    this._connectTimer = null;
    this._attempt = 0;
    this.serverInfo = {
      version: frame.version,
      serverVersion: frame.serverVersion.toString('utf8'),
      nodeId: frame.nodeId.toString('utf8'),
      maxFrameBytes: frame.maxFrameBytes,
      maxQueueBytes: frame.maxQueueBytes,
    };
    this._serverMaxFrame = frame.maxFrameBytes || DEFAULT_MAX_FRAME_BYTES;
    this._version = frame.version;
    this._state = 'ready';
    // Subscriptions first, so that publishes queued while away follow them.
    this._resubscribe();
    this._resubscribeDurable();
    this._flush();
    this._startKeepalive();
    const waiters = this._readyWaiters;
    this._readyWaiters = [];
    for (const w of waiters) w.resolve(this.serverInfo);
    this.emit('connect', this.serverInfo);
  }

  _onGoaway(socket, frame) {
    const info = { code: frame.code, name: errorName(frame.code), message: frame.message.toString('utf8') };
    this._lastError = new PodrelayError(frame.code, info.name, `GOAWAY: ${info.message}`);
    if (this._state === 'ready') {
      // The sidecar reads nothing more, but it still sends the answers to the publishes it
      // read, then closes (PROTOCOL.md, GOAWAY). Stop writing (new and queued operations
      // wait for the next connection) and keep reading until that close, bounded.
      this._state = 'draining';
      this._stopKeepalive();
      for (const op of this._pending.values()) {
        if (op.kind === 'ping') this._cancel(op, connectionLost(`GOAWAY: ${info.message}`));
      }
      const timer = setTimeout(() => socket.destroy(), this._opts.drainWait);
      timer.unref();
      socket.once('close', () => clearTimeout(timer));
    }
    this.emit('goaway', info);
    socket.end();
  }

  _onMsg(frame) {
    const { channel, pattern, payload } = frame;
    const isPattern = pattern.length > 0;
    const entry = (isPattern ? this._psubs : this._subs).get(keyOf(isPattern ? pattern : channel));
    if (this.listenerCount('message') > 0) {
      this.emit('message', payload, channel, isPattern ? pattern : null);
    }
    if (!entry) return; // unsubscribed meanwhile
    const channelOut =
      typeof entry.name === 'string' ? (isPattern ? channel.toString('utf8') : entry.name) : channel;
    const patternOut = isPattern ? entry.name : null;
    for (const handler of [...entry.handlers]) this._callHandler(handler, payload, channelOut, patternOut);
  }

  _onSmsg(frame) {
    const { channel, id, payload } = frame;
    const key = keyOf(channel);
    const entry = this._durable.get(key);
    const streamId = idText(id);
    if (entry) {
      entry.id = streamId; // the next RSUB resumes after it
      entry.sawSmsg = true;
    }
    if (this.listenerCount('message') > 0) this.emit('message', payload, channel, null, streamId);
    // A plain subscribe() of a durable channel gets it as a message, without the id.
    const plain = this._subs.get(key);
    const calls = [];
    if (entry) for (const h of entry.handlers) calls.push([h, entry.name, streamId]);
    if (plain) for (const h of plain.handlers) calls.push([h, plain.name, null]);
    for (const [handler, name, third] of calls) this._callHandler(handler, payload, name, third);
  }

  _callHandler(handler, payload, channel, third) {
    try {
      handler(payload, channel, third);
    } catch (err) {
      if (this.listenerCount('error') > 0) this.emit('error', err);
      else queueMicrotask(() => {
        throw err;
      });
    }
  }

  _onClose(socket) {
    if (socket !== this._socket) return;
    const wasReady = this._state === 'ready' || this._state === 'draining';
    this._version = 0;
    // After a lower version connection ends, ask for the highest again (see the constructor).
    if (wasReady) this._helloVersion = this._wantVersion;
    for (const entry of this._durable.values()) entry.inflight = false;
    this._socket = null;
    this._decoder = null;
    this._writable = false;
    clearTimeout(this._connectTimer);
    this._connectTimer = null;
    this._stopKeepalive();
    const why = this._lastError ? this._lastError.message : 'connection closed';

    // Requests on the wire: their outcome is unknown, except subscriptions, which the
    // next connection re-establishes from the tables anyway.
    const pending = [...this._pending.values()];
    this._pending.clear();
    for (const op of pending) this._lost(op, true, why);
    for (const op of this._unflushed) this._settle(op, outcomeUnknown(why));
    this._unflushed.clear();
    // Queued subscription requests are superseded by the resubscribe; publishes and pings
    // stay queued for the next connection.
    const queued = this._queue.drainAll();
    for (const op of queued) {
      if (op.cancelled) continue;
      if (op.keepQueued) this._queue.push(op);
      else {
        op.queued = false;
        this._queuedBytes -= op.buf.length;
        this._lost(op, false, why);
      }
    }

    if (wasReady) this.emit('disconnect', this._lastError);
    if (this._closing) {
      this._checkIdle();
      return;
    }
    if (this._fatalError) {
      this._closing = true;
      this._finalize(this._fatalError);
      return;
    }
    if (this._fallingBack) {
      this._fallingBack = false;
      this._connect(); // the same sidecar, at once, now with HELLO v1
      return;
    }
    if (!this._opts.reconnect) {
      this._closing = true;
      this._finalize(localError(0, 'NOT_CONNECTED', `not connected to the sidecar at ${this.address}: ${why}`));
      return;
    }
    this._state = 'backoff';
    const base = Math.min(this._opts.reconnectMaxDelay, this._opts.reconnectMinDelay * 2 ** Math.min(this._attempt, 30));
    const delay = Math.round(base / 2 + (Math.random() * base) / 2);
    this._attempt++;
    this.emit('reconnecting', { attempt: this._attempt, delay, error: this._lastError });
    this._reconnectTimer = setTimeout(() => {
      this._reconnectTimer = null;
      if (!this._closing) this._connect();
    }, delay);
  }

  // An op whose connection went away. `written`: it reached the socket.
  _lost(op, written, why) {
    switch (op.kind) {
      case 'pub':
        this._settle(op, outcomeUnknown(why));
        break;
      case 'pub0':
        break; // settled by its write callback
      case 'ping':
        this._settle(op, connectionLost(why));
        break;
      case 'sub':
      case 'psub':
        if (op.batch) {
          // Part of a resubscribe: report it lost so the batch's waiters are retried.
          this._settle(op, connectionLost(why));
        } else {
          // The subscription is in the tables: the caller is settled by the resubscribe.
          op.settled = true;
          this._subWaiters.push({ resolve: op.resolve, reject: op.reject });
        }
        break;
      case 'unsub':
      case 'punsub':
        // Closing the connection removed the subscription on the sidecar.
        this._settle(op, null);
        break;
      case 'rsub':
        // Its callers wait on the channel's entry; the next connection re-sends the RSUB.
        op.entry.inflight = false;
        op.settled = true;
        break;
    }
  }

  _finalize(err) {
    if (this._state === 'closed') return;
    this._state = 'closed';
    this._closing = true;
    clearTimeout(this._reconnectTimer);
    clearTimeout(this._connectTimer);
    this._stopKeepalive();
    for (const op of this._pending.values()) this._lost(op, true, err.message);
    this._pending.clear();
    for (const op of this._unflushed) this._settle(op, outcomeUnknown(err.message));
    this._unflushed.clear();
    for (const op of this._queue.drainAll()) {
      if (op.cancelled) continue;
      op.queued = false;
      this._settle(op, err);
    }
    this._queuedBytes = 0;
    const subWaiters = this._subWaiters;
    this._subWaiters = [];
    for (const w of subWaiters) w.reject(err);
    for (const entry of this._durable.values()) for (const w of entry.waiters.splice(0)) w.reject(err);
    const readyWaiters = this._readyWaiters;
    this._readyWaiters = [];
    for (const w of readyWaiters) w.reject(err);
    this._checkIdle();
    this.emit('close', err === this._fatalError ? err : undefined);
  }

  _closedError() {
    if (this._fatalError) return this._fatalError;
    return localError(0, 'CLIENT_CLOSED', 'the client is closed');
  }

  _waitIdle(timeout) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeout);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this._idleWaiter = done;
      this._checkIdle();
    });
  }

  _checkIdle() {
    if (!this._idleWaiter) return;
    if (this._socket && (this._pending.size > 0 || this._queue.length > 0)) return;
    const done = this._idleWaiter;
    this._idleWaiter = null;
    done();
  }

  // Draining: waits (at most `timeout` ms) for the answers on the wire; nothing queued
  // is sent on this connection any more.
  async _waitAnswered(timeout) {
    const deadline = performance.now() + timeout;
    while (this._socket && this._pending.size > 0 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  _startKeepalive() {
    const { pingInterval, pingTimeout } = this._opts;
    if (!pingInterval) return;
    const socket = this._socket;
    this._keepaliveTimer = setTimeout(() => {
      this._keepaliveTimer = null;
      if (socket !== this._socket || this._state !== 'ready') return;
      if (!this._writable || this._queue.length) {
        this._startKeepalive(); // busy; the write path shows the socket is alive enough
        return;
      }
      const op = {
        kind: 'ping',
        buf: encodePing(0),
        needsId: true,
        keepQueued: false,
        resolve: () => {
          if (socket === this._socket) this._startKeepalive();
        },
        reject: () => {},
      };
      op.timer = setTimeout(() => {
        if (op.settled || socket !== this._socket) return;
        this._cancel(op, connectionLost('keepalive timeout'));
        this._lastError = new Error(`no PONG within ${pingTimeout} ms`);
        socket.destroy();
      }, pingTimeout);
      this._write(op);
    }, pingInterval);
  }

  _stopKeepalive() {
    clearTimeout(this._keepaliveTimer);
    this._keepaliveTimer = null;
  }

  _emitError(err) {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }
}

/**
 * Connects to a sidecar. Returns the Client at once; operations issued before the
 * connection is up are queued. Use `await client.ready()` to wait for it.
 */
export function connect(options = {}) {
  return new Client(options);
}
