// podrelay/socket.io: a Socket.IO adapter that connects Socket.IO servers through the
// local podrelay sidecar instead of a Redis client.
//
//   io.adapter(createAdapter());          // instead of createAdapter(pubClient, subClient)
//
// Built on socket.io-adapter's ClusterAdapterWithHeartbeat (socket.io-adapter >= 2.5.3),
// which implements every cluster operation (broadcasts with acks, socketsJoin,
// fetchSockets, serverSideEmit, server counting by heartbeats) on top of two primitives:
// doPublish(message) and doPublishResponse(serverUid, response). This file supplies them,
// plus the channel routing that keeps room traffic away from servers without sockets in
// the room, and what socket.io-adapter leaves to each adapter: allRooms(), requestsTimeout,
// a `ready` that means "peers known", and the replay that keeps a broadcast from being
// lost while a room's subscription is still in flight.
//
// Channels (podrelay channel names; the sidecar adds its prefix, `podrelay:` by default):
//   <key>#<nsp>#                 namespace channel: every server of the namespace
//   <key>#<nsp>#room#<room>      one per public room; subscribed only while this server
//                                has a local socket in the room
//   <key>#<nsp>#server#<uid>     one per server: responses addressed to it
//   <key>#recovery#<nsp>         with connectionStateRecovery only: the recovery log, a
//                                durable channel (see socket.io-recovery.js)
// `#` and `%` inside <nsp> and <room> are written %23 and %25, so names never collide.
//
// Payload: 0x01 | uid length (u8) | uid | u32 BE seq | MessagePack [type, data].
// The sender's uid comes first so a server drops its own messages without decoding them.
// Messages on channels this server subscribes itself (namespace, room) are published with
// echo: false (PUBX, protocol version 3), so a sidecar that speaks it does not send them
// back at all; the uid check stays, since PUBX is best effort and older sidecars ignore it.
// `seq` numbers every message a server publishes (1, 2, ...): a broadcast published on
// several room channels carries the same seq on each, so a server subscribed to more than
// one of them acts on the first copy only, and a server that just subscribed a room asks
// for the room broadcasts it may have missed by seq (see "Subscription lag" below).

import adapterPkg from 'socket.io-adapter';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { connect } from './client.js';
import { decode, encode } from './msgpack.js';
import {
  RecentLog,
  RecoveryMessageType,
  compareIds,
  durablePatternFor,
  isRecoverable,
  isStreamId,
  readHistory,
  selectSession,
} from './socket.io-recovery.js';

const { ClusterAdapterWithHeartbeat, Adapter: InMemoryAdapter } = adapterPkg;

// socket.io-adapter's ClusterMessage types (fixed: they are its wire format). Spelled out
// here because socket.io-adapter 2.5.3 does not export its MessageType enum.
const MessageType = Object.freeze({
  INITIAL_HEARTBEAT: 1,
  HEARTBEAT: 2,
  BROADCAST: 3,
  SOCKETS_JOIN: 4,
  SOCKETS_LEAVE: 5,
  DISCONNECT_SOCKETS: 6,
  FETCH_SOCKETS: 7,
  FETCH_SOCKETS_RESPONSE: 8,
  SERVER_SIDE_EMIT: 9,
  SERVER_SIDE_EMIT_RESPONSE: 10,
  BROADCAST_CLIENT_COUNT: 11,
  BROADCAST_ACK: 12,
  ADAPTER_CLOSE: 13,
});

const FORMAT = 0x01;
const DEFAULT_ADDRESS = '127.0.0.1:7400';

// podrelay's own message types, above socket.io-adapter's (1..13). Servers that do not know
// them ignore them (ClusterAdapter logs "unknown message type").
export const PodrelayMessageType = Object.freeze({
  ALL_ROOMS: 64,
  ALL_ROOMS_RESPONSE: 65,
  REPLAY_REQUEST: 66,
});

// ---------------------------------------------------------------------------
// Which socket.io-adapter we run on. socket.io 4.6 to 4.8 all depend on socket.io-adapter
// ~2.5.2; the cluster adapter this file builds on appeared in 2.5.3. An app whose lockfile
// still holds 2.5.2 gets a clear error from createAdapter() instead of a silent failure.

const MIN_SOCKET_IO_ADAPTER = '2.5.3';

function socketIoAdapterInfo() {
  try {
    // import.meta.resolve follows the same resolution as the import above (loader hooks too).
    let dir = dirname(fileURLToPath(import.meta.resolve('socket.io-adapter')));
    for (let i = 0; i < 5; i++) {
      try {
        const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
        if (pkg.name === 'socket.io-adapter') return { version: pkg.version, dir };
      } catch {
        // not here: one level up
      }
      dir = dirname(dir);
    }
  } catch {
    // resolution failed: reported as unknown
  }
  return { version: 'unknown', dir: 'unknown' };
}

/** Why this socket.io-adapter cannot be used, or null when it can. */
function unsupportedReason() {
  if (typeof ClusterAdapterWithHeartbeat === 'function') return null;
  const { version, dir } = socketIoAdapterInfo();
  return (
    `podrelay/socket.io needs socket.io-adapter >= ${MIN_SOCKET_IO_ADAPTER} (for ClusterAdapterWithHeartbeat), ` +
    `but socket.io-adapter ${version} is installed (${dir}). ` +
    `Update it, e.g. \`npm update socket.io-adapter\` (socket.io 4.6 to 4.8 accept any 2.5.x).`
  );
}

// Socket.IO v4 socket ids (and so the private room each socket joins) are 15 random bytes
// in base64url: 20 characters.
const SOCKET_ID = /^[A-Za-z0-9_-]{20}$/;

/** Default `isPrivateRoom`: true for names shaped like a Socket.IO socket id. */
export function looksLikeSocketId(room) {
  return typeof room === 'string' && SOCKET_ID.test(room);
}

const escapeName = (s) => String(s).replace(/%/g, '%25').replace(/#/g, '%23');

/** The podrelay channel names used for namespace `nsp` (exported for tests and tools). */
export function channelsOf(key, nsp) {
  const base = `${key}#${escapeName(nsp)}#`;
  return {
    namespace: base,
    recovery: `${key}#recovery#${escapeName(nsp)}`,
    room: (room) => `${base}room#${escapeName(room)}`,
    server: (uid) => `${base}server#${uid}`,
  };
}

/**
 * Encodes an inter-server message: header (sender uid, seq) + MessagePack [type, data].
 * `uid` and `nsp` are not in the body: the header and the channel carry them.
 */
export function encodeMessage(uid, message, seq = 0) {
  const uidBytes = Buffer.from(uid, 'latin1');
  if (uidBytes.length > 255) throw new RangeError('uid longer than 255 bytes');
  const header = Buffer.allocUnsafe(2 + uidBytes.length + 4);
  header[0] = FORMAT;
  header[1] = uidBytes.length;
  uidBytes.copy(header, 2);
  header.writeUInt32BE(seq >>> 0, 2 + uidBytes.length);
  const body = message.data === undefined ? [message.type] : [message.type, message.data];
  return encode(body, header);
}

/** Reads the header of a payload: { uid, seq, bodyOffset } or null when it is not ours. */
export function decodeHeader(payload) {
  if (payload.length < 6 || payload[0] !== FORMAT) return null;
  const n = payload[1];
  if (payload.length < 2 + n + 4 + 1) return null;
  return {
    uid: payload.toString('latin1', 2, 2 + n),
    seq: payload.readUInt32BE(2 + n),
    bodyOffset: 2 + n + 4,
  };
}

/** Decodes a whole payload into { uid, seq, type, data }; throws when malformed. */
export function decodeMessage(payload) {
  const h = decodeHeader(payload);
  if (!h) throw new TypeError('not a podrelay socket.io message');
  const body = decode(payload, h.bodyOffset);
  if (!Array.isArray(body) || typeof body[0] !== 'number') throw new TypeError('malformed podrelay socket.io message');
  return { uid: h.uid, seq: h.seq, type: body[0], data: body[1] };
}

// Room broadcasts received (directly, as a copy on another room channel, or replayed) are
// remembered by "<uid>:<seq>" for this long, and at most this many, so none is acted on twice.
const SEEN_TTL_MS = 30_000;
const SEEN_MAX = 10_000;
// Room broadcasts a server keeps for replay to servers whose room subscription was still in
// flight when they were published. A replay request arrives a sidecar round trip or two
// after the subscription is confirmed; these bounds are far above that.
const REPLAY_KEEP_MS = 5_000;
const REPLAY_KEEP_MAX = 2_000;

// Connection state recovery (see socket.io-recovery.js). Live log entries kept to bridge a
// restore's history read to the live position (a restore needs a few milliseconds of it).
const RECENT_LOG_MAX = 10_000;
const RECENT_LOG_MS = 30_000;
// What one restore may hold while it reads the log (the log itself holds about
// --durable-max-len entries), and how many restores run at once per namespace.
const RESTORE_MAX_ENTRIES = 200_000;
const RESTORE_MAX_BYTES = 64 * 1024 * 1024;
const RESTORE_CONCURRENCY = 4;

const RESOLVED = Promise.resolve(undefined);
// Acknowledged publish on a channel this server subscribes itself: not back to us (PUBX).
const NO_ECHO = Object.freeze({ echo: false });

const sleep = (ms) =>
  new Promise((resolve) => {
    setTimeout(resolve, ms).unref?.();
  });

function randomId() {
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
}

/**
 * Returns an adapter constructor for `io.adapter(...)`. All namespaces of the server share
 * one podrelay connection, opened with the first namespace and closed with the last.
 * Throws at once when the installed socket.io-adapter cannot be supported.
 */
export function createAdapter(opts = {}) {
  const reason = unsupportedReason();
  if (reason) throw new Error(reason);
  const shared = {
    opts: {
      key: 'socket.io',
      heartbeatInterval: 5000,
      heartbeatTimeout: 10000,
      requestsTimeout: 5000,
      discoveryWindow: 50,
      maxRoomFanout: 16,
      isPrivateRoom: looksLikeSocketId,
      acknowledgedBroadcasts: false,
      ...opts,
    },
    client: opts.client || null,
    ownsClient: !opts.client,
    adapters: new Set(),
  };
  if (typeof shared.opts.isPrivateRoom !== 'function') throw new TypeError('isPrivateRoom must be a function');
  if (!(shared.opts.maxRoomFanout >= 1)) throw new TypeError('maxRoomFanout must be >= 1');
  if (!(shared.opts.requestsTimeout > 0)) throw new TypeError('requestsTimeout must be > 0');
  if (!(shared.opts.discoveryWindow >= 0)) throw new TypeError('discoveryWindow must be >= 0');
  return function PodrelayAdapterFactory(nsp) {
    return new PodrelayAdapter(nsp, shared);
  };
}

function addressOf(shared) {
  return shared.opts.address || process.env.PODRELAY_ADDRESS || DEFAULT_ADDRESS;
}

// The connection asks for protocol version 3: PUBX keeps this server's own broadcasts and
// heartbeats from coming back to it (one read and wake-up less per message), and version 3
// includes version 2, which connection state recovery needs (stream ids on the recovery
// log). Version 2's one change for existing code, pattern subscriptions no longer getting
// durable channels' messages, does not matter here: the adapter subscribes no pattern.
// An older sidecar refuses HELLO 3, and the client falls back to 2, then 1, by itself.
// Every namespace of a server shares the connection and its options.
function acquireClient(shared) {
  if (!shared.client || (shared.ownsClient && shared.client.state === 'closed')) {
    const { connectOptions = {} } = shared.opts;
    const client = connect({ clientName: `socket.io pid ${process.pid}`, ...connectOptions, protocolVersion: 3, address: addressOf(shared) });
    client.on('error', (err) => {
      for (const a of shared.adapters) a._report(err);
    });
    // One listener for every namespace (a listener each would trip Node's leak warning).
    client.on('resumed', (channel, outcome) => {
      for (const a of shared.adapters) a._onResumed?.(channel, outcome);
    });
    shared.client = client;
  }
  return shared.client;
}

// With a socket.io-adapter too old to have the cluster adapter, the module still loads (so
// that createAdapter() can say why it refuses); constructing the class directly throws.
const Base =
  typeof ClusterAdapterWithHeartbeat === 'function'
    ? ClusterAdapterWithHeartbeat
    : class Unsupported {
        constructor() {
          throw new Error(unsupportedReason());
        }
      };

export class PodrelayAdapter extends Base {
  constructor(nsp, shared) {
    const { heartbeatInterval, heartbeatTimeout } = shared.opts;
    super(nsp, { heartbeatInterval, heartbeatTimeout });
    this._shared = shared;
    // socket.io's own options object: connectionStateRecovery with its defaults filled in.
    this._recovery = nsp.server?.opts?.connectionStateRecovery || null;
    this.client = acquireClient(shared);
    shared.adapters.add(this);
    this.requestsTimeout = shared.opts.requestsTimeout;
    this._discoveryWindow = shared.opts.discoveryWindow;
    this._isPrivateRoom = shared.opts.isPrivateRoom;
    this._maxRoomFanout = shared.opts.maxRoomFanout;
    // Broadcasts go out as fire-and-forget PUBs unless asked otherwise (see doPublish).
    // Everything published on the namespace and room channels is echo: false: this server
    // subscribes those channels itself and would only drop its own copy (by uid) on arrival.
    this._broadcastPubOpts = { ack: !!shared.opts.acknowledgedBroadcasts, echo: false };
    this.channels = channelsOf(shared.opts.key, nsp.name);
    this.channel = this.channels.namespace;
    this.responseChannel = this.channels.server(this.uid);
    this._uidBytes = Buffer.from(this.uid, 'latin1');
    this._seq = 0; // seq of the last message published
    this._lastSeq = new Map(); // peer uid -> highest seq received from it
    this._seen = new Map(); // "<uid>:<seq>" of room broadcasts acted on -> time first seen
    this._recent = []; // room broadcasts published: { seq, rooms, payload, at }, oldest first
    this._pendingRooms = new Map(); // room -> promise of its SUBSCRIBE, until confirmed
    this._replayQueue = []; // [room, horizon] to ask the peers about, sent in one message
    this._roomRequests = new Map(); // allRooms() requests in flight
    this._closed = false;
    this._isReady = false;
    if (this._recovery) this._initRecovery();

    this._reportBound = (err) => this._report(err);
    this._onNamespaceMessage = (payload) => this._onPayload(payload, false, false);
    this._onResponseMessage = (payload) => this._onPayload(payload, true, false);
    this._onRoomMessage = (payload) => this._onPayload(payload, false, true);

    this.on('create-room', (room) => this._subscribeRoom(room));
    this.on('delete-room', (room) => this._unsubscribeRoom(room));

    // Subscribed from the constructor, not from init(): socket.io calls adapter.init() only
    // from 4.8.2 on, so an adapter that waits for init() never subscribes on 4.6 to 4.8.1
    // and receives nothing, without any error. Detecting whether the server will call
    // init() would mean sniffing socket.io's version; starting here works the same on every
    // version, and init() (when called) just returns the same promise.
    this.ready = this._start();
  }

  /**
   * Subscribes the namespace and response channels, announces this server and waits until
   * the servers already running have answered: once `ready` resolves, serverCount() counts
   * them. Never rejects (failures go to the 'error' event).
   *
   * Why a wait and not a count: redis-adapter counts servers with PUBSUB NUMSUB, but the
   * podrelay protocol has no such request (a sidecar subscribes once for all its local
   * clients anyway, so Redis' count would be of sidecars, not servers). Servers are
   * discovered by heartbeats instead: INITIAL_HEARTBEAT is published with an acknowledged
   * publish, whose OK means Redis has handed it to every subscribed sidecar; every running
   * server answers with a HEARTBEAT, which takes about one more such round trip. `ready`
   * waits for max(discoveryWindow, 4 round trips) after the OK. Of two servers starting
   * together, the later announcement always reaches the earlier server (it subscribed
   * before announcing), whose answer then reaches the later one; so once every server's
   * `ready` resolved, every server counts every other.
   */
  async _start() {
    try {
      await Promise.all([
        this.client.subscribe(this.channel, this._onNamespaceMessage),
        this.client.subscribe(this.responseChannel, this._onResponseMessage),
        this._recovery ? this._subscribeLog() : undefined,
      ]);
      if (this._closed) return;
      const t0 = Date.now();
      this.scheduleHeartbeat();
      await this.publishAndReturnOffset({ type: MessageType.INITIAL_HEARTBEAT });
      const roundTrip = Date.now() - t0;
      if (this._closed) return;
      await sleep(Math.min(this._shared.opts.heartbeatInterval, Math.max(this._discoveryWindow, 4 * roundTrip)));
    } catch (err) {
      this._report(err);
    } finally {
      this._isReady = true;
    }
  }

  /** socket.io >= 4.8.2 calls this; the work started in the constructor. */
  init() {
    return this.ready;
  }

  /** Waits for `ready`, but never longer than requestsTimeout (the sidecar may be away). */
  async _whenReady() {
    if (this._isReady) return;
    let timer;
    await Promise.race([this.ready, new Promise((resolve) => (timer = setTimeout(resolve, this.requestsTimeout)))]);
    clearTimeout(timer);
  }

  async serverCount() {
    await this._whenReady();
    return 1 + this.nodesMap.size;
  }

  close() {
    if (this._closed) return undefined;
    this._closed = true;
    super.close(); // publishes ADAPTER_CLOSE and stops the timers
    for (const [id, request] of this._roomRequests) {
      clearTimeout(request.timeout);
      this._roomRequests.delete(id);
      request.resolve(request.rooms);
    }
    const shared = this._shared;
    shared.adapters.delete(this);
    const client = this.client;
    const quiet = () => {};
    client.unsubscribe(null, this._onNamespaceMessage).catch(quiet);
    client.unsubscribe(null, this._onResponseMessage).catch(quiet);
    client.unsubscribe(null, this._onRoomMessage).catch(quiet);
    if (this._recovery) {
      client.unsubscribeDurable(this.channels.recovery, this._onLogMessage).catch(quiet);
      this._resolveLogReady?.();
    }
    this._pendingRooms.clear();
    this._recent = [];
    if (shared.ownsClient && shared.adapters.size === 0) {
      shared.client = null;
      return client.close(); // lets ADAPTER_CLOSE and the UNSUBs finish first
    }
    return undefined;
  }

  /**
   * As in the in-memory adapter; the returned promise (which `socket.join()` returns)
   * resolves once every newly created room's channel subscription is confirmed.
   */
  addAll(id, rooms) {
    super.addAll(id, rooms);
    let waits;
    for (const room of rooms) {
      const p = this._pendingRooms.get(room);
      if (p) (waits ||= []).push(p);
    }
    return waits ? Promise.all(waits).then(() => undefined) : undefined;
  }

  // ClusterAdapter appends the offset doPublish resolved with to every recoverable event
  // when connectionStateRecovery is on. Only the recovery log has offsets (stream ids); a
  // broadcast that did not go through it has none, and gets nothing appended.
  addOffsetIfNecessary(packet, opts, offset) {
    if (offset !== undefined) super.addOffsetIfNecessary(packet, opts, offset);
  }

  /** Every room of every server (socket ids included), as redis-adapter's allRooms(). */
  async allRooms() {
    const rooms = new Set(this.rooms.keys());
    await this._whenReady();
    const expected = this.nodesMap.size;
    if (expected === 0) return rooms;
    const requestId = randomId();
    return new Promise((resolve, reject) => {
      const request = { resolve, rooms, missing: new Set(this.nodesMap.keys()), expected, timeout: null };
      request.timeout = setTimeout(() => {
        if (this._roomRequests.get(requestId) !== request) return;
        this._roomRequests.delete(requestId);
        reject(new Error('timeout reached while waiting for allRooms response'));
      }, this.requestsTimeout);
      this._roomRequests.set(requestId, request);
      this.publish({ type: PodrelayMessageType.ALL_ROOMS, data: { requestId } });
    });
  }

  /**
   * As socket.io-adapter's, but waiting `requestsTimeout` ms (not a fixed 5 s) and failing
   * with the base ClusterAdapter's (and redis-adapter's) message:
   * "timeout reached: only <n> responses received out of <expected>".
   */
  async serverSideEmit(packet) {
    const withAck = typeof packet[packet.length - 1] === 'function';
    if (!withAck) return super.serverSideEmit(packet);
    const ack = packet.pop();
    await this._whenReady();
    const expected = this.nodesMap.size;
    if (expected <= 0) return ack(null, []);
    const requestId = randomId();
    const request = {
      type: MessageType.SERVER_SIDE_EMIT,
      resolve: ack,
      timeout: null,
      missingUids: new Set(this.nodesMap.keys()),
      responses: [],
    };
    request.timeout = setTimeout(() => {
      if (this.customRequests.get(requestId) !== request) return;
      this.customRequests.delete(requestId);
      ack(new Error(`timeout reached: only ${request.responses.length} responses received out of ${expected}`), request.responses);
    }, this.requestsTimeout);
    this.customRequests.set(requestId, request);
    this.publish({ type: MessageType.SERVER_SIDE_EMIT, data: { requestId, packet } });
    return undefined;
  }

  /** `io.timeout(ms)` wins; without it, requestsTimeout (not a fixed 5 s). */
  fetchSockets(opts) {
    if (opts.flags?.local || opts.flags?.timeout) return super.fetchSockets(opts);
    return super.fetchSockets({ ...opts, flags: { ...opts.flags, timeout: this.requestsTimeout } });
  }

  removeNode(uid) {
    super.removeNode(uid);
    this._lastSeq.delete(uid);
    for (const [id, request] of this._roomRequests) {
      if (request.missing.delete(uid) && request.missing.size === 0) this._finishRoomRequest(id, request);
    }
  }

  onMessage(message, offset) {
    super.onMessage(message, offset); // counts the sender as alive; ignores our own types
    if (message.uid === this.uid) return;
    if (message.type === PodrelayMessageType.ALL_ROOMS) {
      this.publishResponse(message.uid, {
        type: PodrelayMessageType.ALL_ROOMS_RESPONSE,
        data: { requestId: message.data.requestId, rooms: [...this.rooms.keys()] },
      });
    } else if (message.type === PodrelayMessageType.REPLAY_REQUEST) {
      this._replay(message.uid, message.data.rooms);
    }
  }

  onResponse(response) {
    if (response.type === PodrelayMessageType.ALL_ROOMS_RESPONSE) {
      const request = this._roomRequests.get(response.data.requestId);
      if (!request) return;
      for (const room of response.data.rooms) request.rooms.add(room);
      if (request.missing.delete(response.uid) && request.missing.size === 0) this._finishRoomRequest(response.data.requestId, request);
      return;
    }
    super.onResponse(response);
  }

  _finishRoomRequest(id, request) {
    clearTimeout(request.timeout);
    this._roomRequests.delete(id);
    request.resolve(request.rooms);
  }

  // -------------------------------------------------------------------------
  // Room channels, and the replay that covers their subscription lag.
  //
  // A server subscribes a room's channel when the room is created on it. Until Redis has
  // the SUBSCRIBE, broadcasts to the room published by other servers pass it by. So, when
  // the room is created, the server notes the highest seq it has received from each peer
  // (its horizon: everything up to there was published before the join); when the SUBSCRIBE
  // is confirmed it asks every peer (REPLAY_REQUEST on the namespace channel) for the
  // room's broadcasts above its horizon. Each peer republishes those it still keeps to the
  // requester's response channel; whatever it publishes after reading the request reaches
  // the room channel after the SUBSCRIBE. Broadcasts received both ways are acted on once
  // (by "<uid>:<seq>").

  _subscribeRoom(room) {
    if (this._closed || this._isPrivateRoom(room)) return;
    const horizon = {};
    for (const [uid, seq] of this._lastSeq) horizon[uid] = seq;
    const p = this.client.subscribe(this.channels.room(room), this._onRoomMessage).then(
      () => {
        if (this._pendingRooms.get(room) !== p) return;
        this._pendingRooms.delete(room);
        if (!this._closed && this.rooms.has(room)) this._queueReplayRequest(room, horizon);
      },
      (err) => {
        if (this._pendingRooms.get(room) === p) this._pendingRooms.delete(room);
        if (!this._closed) this._report(err);
      },
    );
    this._pendingRooms.set(room, p);
  }

  _unsubscribeRoom(room) {
    if (this._closed || this._isPrivateRoom(room)) return;
    this._pendingRooms.delete(room);
    this.client.unsubscribe(this.channels.room(room), this._onRoomMessage).catch((err) => this._report(err));
  }

  _queueReplayRequest(room, horizon) {
    if (Object.keys(horizon).length === 0) return; // no peer known when the room was created
    if (this._replayQueue.push([room, horizon]) > 1) return;
    queueMicrotask(() => {
      const rooms = this._replayQueue;
      this._replayQueue = [];
      if (!this._closed) this.publish({ type: PodrelayMessageType.REPLAY_REQUEST, data: { rooms } });
    });
  }

  _replay(requesterUid, rooms) {
    this._trimRecent(Date.now());
    if (this._recent.length === 0 || !Array.isArray(rooms)) return;
    const wanted = new Map(); // seq -> payload, each broadcast once
    for (const [room, horizon] of rooms) {
      const after = horizon?.[this.uid];
      if (after === undefined) continue; // the requester did not know us yet
      for (const entry of this._recent) {
        if (entry.seq > after && entry.rooms.includes(room)) wanted.set(entry.seq, entry.payload);
      }
    }
    const channel = this.channels.server(requesterUid); // not ours: a plain PUB, as doPublishResponse
    for (const seq of [...wanted.keys()].sort((a, b) => a - b)) {
      this.client.publish(channel, wanted.get(seq)).catch((err) => this._report(err));
    }
  }

  _trimRecent(now) {
    const r = this._recent;
    let drop = 0;
    while (drop < r.length && (now - r[drop].at > REPLAY_KEEP_MS || r.length - drop > REPLAY_KEEP_MAX)) drop++;
    if (drop > 0) r.splice(0, drop);
  }

  // Which channels a message goes to. Only plain broadcasts whose rooms are all public
  // use room channels; everything that expects an answer from every server (acked
  // broadcasts, fetchSockets, serverSideEmit), heartbeats, and socket management use the
  // namespace channel. Returns null for the namespace channel.
  _roomsOf(message) {
    if (message.type === MessageType.BROADCAST && message.data.requestId === undefined) {
      const rooms = message.data.opts.rooms;
      if (rooms.length > 0 && rooms.length <= this._maxRoomFanout) {
        const isPrivate = this._isPrivateRoom;
        if (!rooms.some((r) => isPrivate(r))) return rooms;
      }
    }
    return null;
  }

  doPublish(message) {
    const rooms = this._roomsOf(message);
    this._seq = this._seq >= 0xffffffff ? 1 : this._seq + 1;
    let payload;
    try {
      payload = encodeMessage(this.uid, message, this._seq);
    } catch (err) {
      this._report(err);
      return Promise.reject(err);
    }
    if (message.type === MessageType.BROADCAST) {
      // Broadcasts (the hot path) are fire-and-forget PUBs by default: nothing waits for
      // Redis' answer anyway (ClusterAdapter delivers to local sockets once doPublish
      // resolves, so it resolves at once), and an acknowledged PUB costs an OK frame per
      // broadcast: a write in the sidecar, and a read, a frame decode and a promise here
      // (BENCHMARKS.md, Node, has the before/after). What can still fail is reported: a
      // write that fails or a connection lost before the frame was flushed rejects ('error'
      // event); a PUB the sidecar could not publish (Redis unreachable past
      // --publish-buffer-timeout, buffer full, draining) is counted in its
      // podrelay_messages_dropped_total{reason}.
      // `acknowledgedBroadcasts: true` brings back one OK/ERR per broadcast.
      const po = this._broadcastPubOpts;
      if (rooms) {
        const now = Date.now();
        this._recent.push({ seq: this._seq, rooms, payload, at: now });
        if (this._recent.length > REPLAY_KEEP_MAX || now - this._recent[0].at > REPLAY_KEEP_MS) this._trimRecent(now);
        for (const r of rooms) this.client.publish(this.channels.room(r), payload, po).catch(this._reportBound);
      } else {
        this.client.publish(this.channel, payload, po).catch(this._reportBound);
      }
      return RESOLVED;
    }
    const sent = rooms
      ? Promise.all(rooms.map((r) => this.client.publish(this.channels.room(r), payload, NO_ECHO)))
      : this.client.publish(this.channel, payload, NO_ECHO);
    return sent.then(
      () => undefined,
      (err) => {
        this._report(err);
        throw err; // ClusterAdapter logs it and carries on with the local part
      },
    );
  }

  doPublishResponse(requesterUid, response) {
    let payload;
    try {
      this._seq = this._seq >= 0xffffffff ? 1 : this._seq + 1;
      payload = encodeMessage(this.uid, response, this._seq);
    } catch (err) {
      this._report(err);
      return Promise.reject(err);
    }
    // A plain PUB: this server never subscribes another server's response channel, so there
    // is no copy to withhold (the sidecar would only look the channel up to find that out).
    return this.client.publish(this.channels.server(requesterUid), payload).catch((err) => {
      this._report(err);
      throw err;
    });
  }

  _onPayload(payload, onResponseChannel, onRoomChannel) {
    if (this._closed) return undefined;
    const h = decodeHeader(payload);
    if (!h) return this._report(new TypeError('dropped a message that is not a podrelay socket.io message'));
    const n = this._uidBytes.length;
    if (payload[1] === n && payload.compare(this._uidBytes, 0, n, 2, 2 + n) === 0) return undefined; // our own
    const last = this._lastSeq.get(h.uid);
    if (last === undefined || h.seq > last) this._lastSeq.set(h.uid, h.seq);
    if (onRoomChannel && this._isDuplicate(`${h.uid}:${h.seq}`)) return undefined;
    let body;
    try {
      body = decode(payload, h.bodyOffset);
      if (!Array.isArray(body) || typeof body[0] !== 'number') throw new TypeError('body is not [type, data]');
    } catch (err) {
      return this._report(new TypeError(`dropped a malformed message from ${h.uid}: ${err.message}`));
    }
    const message = { uid: h.uid, nsp: this.nsp.name, type: body[0] };
    if (body.length > 1) message.data = body[1];
    // A broadcast on our response channel is a replayed room broadcast.
    const replayed = onResponseChannel && message.type === MessageType.BROADCAST;
    if (replayed && this._isDuplicate(`${h.uid}:${h.seq}`)) return undefined;
    if (onResponseChannel && !replayed) this._dispatch(() => this.onResponse(message));
    else this._dispatch(() => this.onMessage(message));
    return undefined;
  }

  _dispatch(fn) {
    try {
      fn();
    } catch (err) {
      // Thrown by an application handler (a serverSideEmit listener, say). As with
      // redis-adapter, it surfaces as an uncaught exception instead of being swallowed; it
      // is rethrown on the next tick so that this message's bookkeeping is complete.
      process.nextTick(() => {
        throw err;
      });
    }
  }

  // -------------------------------------------------------------------------
  // Connection state recovery (socket.io's connectionStateRecovery option), on the
  // recovery log: one durable channel per namespace (socket.io-recovery.js says why).
  //
  // A recoverable broadcast (an event without ack, not volatile, not local; with the option
  // on, socket.emit() is one too, to the socket's own room) is appended to the log and
  // delivered, on every server and on this one too, when the log entry comes back from the
  // sidecar: so every socket gets the log's packets in stream order, and the last offset a
  // client holds says exactly what it has. Room channels carry the rest as before.

  _initRecovery() {
    this._logChannel = this.channels.recovery;
    this._logReady = new Promise((resolve) => (this._resolveLogReady = resolve));
    this._logConfirmed = false;
    this._logEpoch = '';
    this._logPosition = null; // stream id of the last log entry delivered (or subscribed at)
    this._recentLog = new RecentLog(RECENT_LOG_MAX, RECENT_LOG_MS);
    this._deliveredLocally = new Set(); // seqs delivered without the log (append failed)
    this.recoveryError = null;
    this._warned = false;
    this._restoresRunning = 0;
    this._restoresWaiting = [];
    this._onLogMessage = (payload, channel, id) => this._onLogEntry(payload, id);
    this._onResumed = (channel, outcome) => {
      if (channel !== this._logChannel) return;
      if (!outcome.recovered) {
        this._report(new Error(`podrelay/socket.io: the recovery log ${channel} lost entries while the sidecar connection was down (trimmed or recreated): broadcasts of that gap were not delivered by this server`));
      }
      this._logEpoch = outcome.epoch;
    };
  }

  _subscribeLog() {
    return this.client.subscribeDurable(this._logChannel, this._onLogMessage).then(
      (outcome) => {
        this._logEpoch = outcome.epoch;
        this._logPosition ??= outcome.lastId;
        this._logConfirmed = true;
        this._resolveLogReady();
      },
      (err) => {
        this._recoveryFailed(err);
        this._resolveLogReady();
      },
    );
  }

  /** Recovery cannot work with this sidecar: say so loudly, once, and keep serving. */
  _recoveryFailed(cause) {
    if (this.recoveryError) return;
    const pattern = durablePatternFor(this._shared.opts.key);
    this.recoveryError = new Error(
      `podrelay/socket.io: connectionStateRecovery is on, but the sidecar at ${this.client.address} does not keep ` +
        `the recovery log "${this._logChannel}" durable (${cause.message}). Start every sidecar with ` +
        `--durable '${pattern}' (PODRELAY_DURABLE); until then no session is persisted or recovered, and broadcasts are delivered without offsets.`,
      { cause },
    );
    this._alarm();
  }

  // 'error' when someone listens; otherwise a process warning (printed on stderr by
  // default), so that a misconfiguration is never silent. Once per adapter.
  _alarm() {
    if (this._warned) return;
    this._warned = true;
    if (this.listenerCount('error') > 0) this.emit('error', this.recoveryError);
    else process.emitWarning(this.recoveryError.message, { code: 'PODRELAY_RECOVERY_DISABLED' });
  }

  broadcast(packet, opts) {
    if (!this._recovery || !isRecoverable(packet, opts)) return super.broadcast(packet, opts);
    return this._broadcastLogged(packet, opts);
  }

  async _broadcastLogged(packet, opts) {
    if (!this._logConfirmed) await this._logReady; // an entry before our position would never come back
    if (this._closed) return;
    if (this.recoveryError) return super.broadcast(packet, opts); // as without recovery
    this._seq = this._seq >= 0xffffffff ? 1 : this._seq + 1;
    const seq = this._seq;
    let payload;
    try {
      const data = { packet, opts: { rooms: [...opts.rooms], except: [...opts.except], flags: opts.flags } };
      payload = encodeMessage(this.uid, { type: MessageType.BROADCAST, data }, seq);
    } catch (err) {
      this._report(err);
      return;
    }
    let id;
    try {
      // Echo on (the default): every server, this one too, delivers a log entry when it comes
      // back from the sidecar, so the sender's sockets get it in stream order with its offset.
      id = await this.client.publish(this._logChannel, payload);
    } catch (err) {
      // Not appended (or not known to be): this server's sockets still get it, without an
      // offset (as ClusterAdapter does when a publish fails), and only once.
      this._report(err);
      this._deliveredLocally.add(seq);
      if (this._deliveredLocally.size > 1000) this._deliveredLocally.delete(this._deliveredLocally.values().next().value);
      InMemoryAdapter.prototype.broadcast.call(this, packet, opts);
      return;
    }
    if (id === undefined) {
      // Published on pub/sub instead (the sidecar lost its --durable): no entry comes back.
      this._recoveryFailed(new Error('the sidecar answered OK, not PUBOK: the channel is not durable'));
      InMemoryAdapter.prototype.broadcast.call(this, packet, opts);
    }
  }

  _onLogEntry(payload, id) {
    if (this._closed) return undefined;
    const h = decodeHeader(payload);
    if (!h) return this._report(new TypeError(`dropped recovery log entry ${id}: not a podrelay socket.io message`));
    this._logPosition = id;
    this._recentLog.push(id, payload, Date.now());
    let body;
    try {
      body = decode(payload, h.bodyOffset);
      if (!Array.isArray(body) || typeof body[0] !== 'number') throw new TypeError('body is not [type, data]');
    } catch (err) {
      return this._report(new TypeError(`dropped recovery log entry ${id} from ${h.uid}: ${err.message}`));
    }
    if (body[0] !== MessageType.BROADCAST) return undefined; // sessions: read by restores only
    const message = { uid: h.uid, nsp: this.nsp.name, type: body[0], data: body[1] };
    if (h.uid !== this.uid) {
      this._dispatch(() => this.onMessage(message, id)); // appends the offset, delivers
      return undefined;
    }
    if (this._deliveredLocally.delete(h.seq)) return undefined;
    const { packet, opts } = message.data;
    const decoded = { rooms: new Set(opts.rooms), except: new Set(opts.except), flags: opts.flags };
    this._dispatch(() => {
      this.addOffsetIfNecessary(packet, decoded, id);
      InMemoryAdapter.prototype.broadcast.call(this, packet, decoded);
    });
    return undefined;
  }

  /** socket.io calls this when a socket lost its transport (recoverable reasons only). */
  persistSession(session) {
    if (!this._recovery || this._closed) return;
    if (this.recoveryError) {
      this._alarm();
      return;
    }
    let payload;
    try {
      const data = {
        pid: session.pid,
        sid: session.sid,
        rooms: session.rooms,
        data: session.data,
        expiresAt: Date.now() + this._recovery.maxDisconnectionDuration,
      };
      this._seq = this._seq >= 0xffffffff ? 1 : this._seq + 1;
      payload = encodeMessage(this.uid, { type: RecoveryMessageType.SESSION, data }, this._seq);
    } catch (err) {
      this._report(new Error(`podrelay/socket.io: session ${session.sid} not persisted: ${err.message}`, { cause: err }));
      return;
    }
    this.client.publish(this._logChannel, payload).then(
      (id) => {
        if (id === undefined) this._recoveryFailed(new Error('the sidecar answered OK, not PUBOK: the channel is not durable'));
      },
      (err) => this._report(new Error(`podrelay/socket.io: session ${session.sid} not persisted: ${err.message}`, { cause: err })),
    );
  }

  /**
   * socket.io calls this when a client reconnects with { pid, offset }: the session with the
   * packets it missed, or null (unknown or expired pid, an offset the log no longer
   * reaches, the sidecar unreachable). Never rejects.
   */
  async restoreSession(pid, offset) {
    if (!this._recovery || this._closed || typeof pid !== 'string' || !isStreamId(offset)) return null;
    if (!this._logConfirmed) await this._logReady;
    if (this.recoveryError || this._closed) return null;
    await this._restoreSlot();
    try {
      const history = await readHistory({
        address: this.client.address, // the same sidecar, also for a client passed in
        connectOptions: this._shared.opts.connectOptions,
        channel: this._logChannel,
        since: offset,
        epoch: this._logEpoch,
        timeoutMs: this.requestsTimeout,
        maxEntries: RESTORE_MAX_ENTRIES,
        maxBytes: RESTORE_MAX_BYTES,
      });
      if (!history.recovered || this._closed) return null;
      // From here on nothing waits: socket.io creates the socket, in its rooms, before this
      // server delivers another log entry. So the missed packets are those up to the live
      // position now; the history read may be ahead of it (the rest arrives live) or behind
      // it (the recent live entries fill the gap).
      // The read holds the entries up to RSUBOK's last id, and possibly a few live ones that
      // followed the RSUBOK in the same read (the handler runs for them before the RSUBOK's
      // promise settles): it reaches up to the later of the two.
      let raw = history.entries;
      const newest = raw.length > 0 ? raw[raw.length - 1].id : history.lastId;
      const readTo = compareIds(newest, history.lastId) > 0 ? newest : history.lastId;
      const live = this._logPosition;
      if (compareIds(readTo, live) < 0) {
        const tail = this._recentLog.after(readTo);
        if (!tail) return null;
        raw = raw.concat(tail);
      }
      raw = raw.filter((e) => compareIds(e.id, live) <= 0);
      const entries = [];
      for (const { id, payload } of raw) {
        try {
          const { uid, type, data } = decodeMessage(payload);
          entries.push({ id, message: { uid, type, data } });
        } catch {
          // not ours: nothing to restore from it
        }
      }
      const session = selectSession(entries, pid, Date.now());
      if (session) this._publishRestored(pid);
      return session;
    } catch (err) {
      this._report(new Error(`podrelay/socket.io: session not restored: ${err.message}`, { cause: err }));
      return null;
    } finally {
      this._releaseRestoreSlot();
    }
  }

  // A restored session is not restored twice: later restores see this after its SESSION.
  _publishRestored(pid) {
    try {
      this._seq = this._seq >= 0xffffffff ? 1 : this._seq + 1;
      const payload = encodeMessage(this.uid, { type: RecoveryMessageType.SESSION_RESTORED, data: { pid } }, this._seq);
      this.client.publish(this._logChannel, payload).catch(this._reportBound);
    } catch (err) {
      this._report(err);
    }
  }

  _restoreSlot() {
    if (this._restoresRunning < RESTORE_CONCURRENCY) {
      this._restoresRunning++;
      return RESOLVED;
    }
    return new Promise((resolve) => this._restoresWaiting.push(resolve));
  }

  _releaseRestoreSlot() {
    const next = this._restoresWaiting.shift();
    if (next) next();
    else this._restoresRunning--;
  }

  _isDuplicate(key) {
    const now = Date.now();
    if (this._seen.has(key)) return true;
    // Insertion order is time order: expire from the front.
    for (const [k, t] of this._seen) {
      if (now - t < SEEN_TTL_MS && this._seen.size < SEEN_MAX) break;
      this._seen.delete(k);
    }
    this._seen.set(key, now);
    return false;
  }

  /** Emits 'error' on the adapter when someone listens; errors never throw from here. */
  _report(err) {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }
}
