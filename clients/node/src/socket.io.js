// podrelay/socket.io: a Socket.IO adapter that connects Socket.IO servers through the
// local podrelay sidecar instead of a Redis client.
//
//   io.adapter(createAdapter());          // instead of createAdapter(pubClient, subClient)
//
// Built on socket.io-adapter's ClusterAdapterWithHeartbeat, which implements every
// cluster operation (broadcasts with acks, socketsJoin, fetchSockets, serverSideEmit,
// server counting by heartbeats) on top of two primitives: doPublish(message) and
// doPublishResponse(serverUid, response). This file supplies them, plus the channel
// routing that keeps room traffic away from servers without sockets in the room.
//
// Channels (podrelay channel names; the sidecar adds its prefix, `podrelay:` by default):
//   <key>#<nsp>#                 namespace channel: every server of the namespace
//   <key>#<nsp>#room#<room>      one per public room; subscribed only while this server
//                                has a local socket in the room
//   <key>#<nsp>#server#<uid>     one per server: responses addressed to it
// `#` and `%` inside <nsp> and <room> are written %23 and %25, so names never collide.
//
// Payload: 0x01 | uid length (u8) | uid | u32 BE copy id | MessagePack [type, data].
// The sender's uid comes first so a server drops its own messages without decoding them;
// a non-zero copy id marks a broadcast published on several room channels, so that a
// server subscribed to more than one of them acts on the first copy only.

import adapterPkg from 'socket.io-adapter';

import { connect } from './client.js';
import { decode, encode } from './msgpack.js';

const { ClusterAdapterWithHeartbeat, MessageType } = adapterPkg;

const FORMAT = 0x01;
const DEFAULT_ADDRESS = '127.0.0.1:7400';

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
    room: (room) => `${base}room#${escapeName(room)}`,
    server: (uid) => `${base}server#${uid}`,
  };
}

/**
 * Encodes an inter-server message: header (sender uid, copy id) + MessagePack [type, data].
 * `uid` and `nsp` are not in the body: the header and the channel carry them.
 */
export function encodeMessage(uid, message, copyId = 0) {
  const uidBytes = Buffer.from(uid, 'latin1');
  if (uidBytes.length > 255) throw new RangeError('uid longer than 255 bytes');
  const header = Buffer.allocUnsafe(2 + uidBytes.length + 4);
  header[0] = FORMAT;
  header[1] = uidBytes.length;
  uidBytes.copy(header, 2);
  header.writeUInt32BE(copyId >>> 0, 2 + uidBytes.length);
  const body = message.data === undefined ? [message.type] : [message.type, message.data];
  return encode(body, header);
}

/** Reads the header of a payload: { uid, copyId, bodyOffset } or null when it is not ours. */
export function decodeHeader(payload) {
  if (payload.length < 6 || payload[0] !== FORMAT) return null;
  const n = payload[1];
  if (payload.length < 2 + n + 4 + 1) return null;
  return {
    uid: payload.toString('latin1', 2, 2 + n),
    copyId: payload.readUInt32BE(2 + n),
    bodyOffset: 2 + n + 4,
  };
}

/** Decodes a whole payload into { uid, copyId, type, data }; throws when malformed. */
export function decodeMessage(payload) {
  const h = decodeHeader(payload);
  if (!h) throw new TypeError('not a podrelay socket.io message');
  const body = decode(payload, h.bodyOffset);
  if (!Array.isArray(body) || typeof body[0] !== 'number') throw new TypeError('malformed podrelay socket.io message');
  return { uid: h.uid, copyId: h.copyId, type: body[0], data: body[1] };
}

// Copies of one multi-room broadcast arrive close together (published back to back by one
// connection); remembering copy ids for this long, and at most this many, is ample.
const SEEN_TTL_MS = 30_000;
const SEEN_MAX = 10_000;

/**
 * Returns an adapter constructor for `io.adapter(...)`. All namespaces of the server share
 * one podrelay connection, opened with the first namespace and closed with the last.
 */
export function createAdapter(opts = {}) {
  const shared = {
    opts: {
      key: 'socket.io',
      heartbeatInterval: 5000,
      heartbeatTimeout: 10000,
      maxRoomFanout: 16,
      isPrivateRoom: looksLikeSocketId,
      ...opts,
    },
    client: opts.client || null,
    ownsClient: !opts.client,
    adapters: new Set(),
  };
  if (typeof shared.opts.isPrivateRoom !== 'function') throw new TypeError('isPrivateRoom must be a function');
  if (!(shared.opts.maxRoomFanout >= 1)) throw new TypeError('maxRoomFanout must be >= 1');
  return function PodrelayAdapterFactory(nsp) {
    return new PodrelayAdapter(nsp, shared);
  };
}

function acquireClient(shared) {
  if (!shared.client || (shared.ownsClient && shared.client.state === 'closed')) {
    const { address = process.env.PODRELAY_ADDRESS || DEFAULT_ADDRESS, connectOptions = {} } = shared.opts;
    const client = connect({ clientName: `socket.io pid ${process.pid}`, ...connectOptions, address });
    client.on('error', (err) => {
      for (const a of shared.adapters) a._report(err);
    });
    shared.client = client;
  }
  return shared.client;
}

export class PodrelayAdapter extends ClusterAdapterWithHeartbeat {
  constructor(nsp, shared) {
    const { heartbeatInterval, heartbeatTimeout } = shared.opts;
    super(nsp, { heartbeatInterval, heartbeatTimeout });
    this._shared = shared;
    this.client = acquireClient(shared);
    shared.adapters.add(this);
    this._isPrivateRoom = shared.opts.isPrivateRoom;
    this._maxRoomFanout = shared.opts.maxRoomFanout;
    this.channels = channelsOf(shared.opts.key, nsp.name);
    this.channel = this.channels.namespace;
    this.responseChannel = this.channels.server(this.uid);
    this._uidBytes = Buffer.from(this.uid, 'latin1');
    this._copySeq = 0;
    this._seen = new Map(); // "<uid>:<copy id>" -> time first seen
    this._pendingRooms = new Map(); // room -> promise of its SUBSCRIBE, until confirmed
    this._closed = false;

    this._onNamespaceMessage = (payload) => this._onPayload(payload, false);
    this._onResponseMessage = (payload) => this._onPayload(payload, true);
    this._onRoomMessage = (payload) => this._onPayload(payload, false);

    this.on('create-room', (room) => this._subscribeRoom(room));
    this.on('delete-room', (room) => this._unsubscribeRoom(room));
  }

  /** Subscribes the namespace and response channels, then announces this server. */
  init() {
    const subs = Promise.all([
      this.client.subscribe(this.channel, this._onNamespaceMessage),
      this.client.subscribe(this.responseChannel, this._onResponseMessage),
    ]);
    this.ready = subs.then(
      () => {
        if (!this._closed) super.init(); // publishes INITIAL_HEARTBEAT; the others answer
      },
      (err) => this._report(err),
    );
    return this.ready;
  }

  close() {
    if (this._closed) return undefined;
    this._closed = true;
    super.close(); // publishes ADAPTER_CLOSE and stops the timers
    const shared = this._shared;
    shared.adapters.delete(this);
    const client = this.client;
    const quiet = () => {};
    client.unsubscribe(null, this._onNamespaceMessage).catch(quiet);
    client.unsubscribe(null, this._onResponseMessage).catch(quiet);
    client.unsubscribe(null, this._onRoomMessage).catch(quiet);
    this._pendingRooms.clear();
    if (shared.ownsClient && shared.adapters.size === 0) {
      shared.client = null;
      return client.close(); // lets ADAPTER_CLOSE and the UNSUBs finish first
    }
    return undefined;
  }

  /**
   * As in the in-memory adapter; the returned promise (which `socket.join()` returns)
   * resolves once every newly created room's channel subscription is confirmed, so a
   * broadcast to the room sent after `await socket.join(room)` reaches this server.
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

  // Connection state recovery needs a replayable log of messages with offsets (the Redis
  // Streams adapter has one); pub/sub has none. ClusterAdapter would append our (absent)
  // offset to every event as an extra argument when the option is on: don't. Sessions are
  // then simply not recovered, as with @socket.io/redis-adapter.
  addOffsetIfNecessary() {}

  _subscribeRoom(room) {
    if (this._closed || this._isPrivateRoom(room)) return;
    const p = this.client.subscribe(this.channels.room(room), this._onRoomMessage).then(
      () => {
        if (this._pendingRooms.get(room) === p) this._pendingRooms.delete(room);
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

  // Which channels a message goes to. Only plain broadcasts whose rooms are all public
  // use room channels; everything that expects an answer from every server (acked
  // broadcasts, fetchSockets, serverSideEmit), heartbeats, and socket management use the
  // namespace channel.
  _route(message) {
    if (message.type === MessageType.BROADCAST && message.data.requestId === undefined) {
      const rooms = message.data.opts.rooms;
      if (rooms.length > 0 && rooms.length <= this._maxRoomFanout) {
        const isPrivate = this._isPrivateRoom;
        if (!rooms.some((r) => isPrivate(r))) return rooms.map((r) => this.channels.room(r));
      }
    }
    return [this.channel];
  }

  doPublish(message) {
    const channels = this._route(message);
    let copyId = 0;
    if (channels.length > 1) {
      this._copySeq = this._copySeq >= 0xffffffff ? 1 : this._copySeq + 1;
      copyId = this._copySeq;
    }
    let payload;
    try {
      payload = encodeMessage(this.uid, message, copyId);
    } catch (err) {
      this._report(err);
      return Promise.reject(err);
    }
    const sent = Promise.all(channels.map((ch) => this.client.publish(ch, payload)));
    if (message.type === MessageType.BROADCAST) {
      // ClusterAdapter delivers to local sockets only after doPublish resolves: do not make
      // them wait for Redis. Failures are still reported ('error' event).
      sent.catch((err) => this._report(err));
      return Promise.resolve(undefined);
    }
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
      payload = encodeMessage(this.uid, response);
    } catch (err) {
      this._report(err);
      return Promise.reject(err);
    }
    return this.client.publish(this.channels.server(requesterUid), payload).catch((err) => {
      this._report(err);
      throw err;
    });
  }

  _onPayload(payload, isResponse) {
    if (this._closed) return;
    const h = decodeHeader(payload);
    if (!h) return this._report(new TypeError('dropped a message that is not a podrelay socket.io message'));
    const n = this._uidBytes.length;
    if (payload[1] === n && payload.compare(this._uidBytes, 0, n, 2, 2 + n) === 0) return undefined; // our own
    if (h.copyId !== 0 && this._isDuplicate(`${h.uid}:${h.copyId}`)) return undefined;
    let body;
    try {
      body = decode(payload, h.bodyOffset);
      if (!Array.isArray(body) || typeof body[0] !== 'number') throw new TypeError('body is not [type, data]');
    } catch (err) {
      return this._report(new TypeError(`dropped a malformed message from ${h.uid}: ${err.message}`));
    }
    const message = { uid: h.uid, nsp: this.nsp.name, type: body[0] };
    if (body.length > 1) message.data = body[1];
    try {
      if (isResponse) this.onResponse(message);
      else this.onMessage(message);
    } catch (err) {
      this._report(err);
    }
    return undefined;
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
