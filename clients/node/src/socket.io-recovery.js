// Connection state recovery for podrelay/socket.io: the pieces that do not depend on the
// adapter class. Socket.IO's contract (socket.io-adapter's persistSession/restoreSession):
// when a socket loses its transport the server persists { sid, pid, rooms, data }; when a
// client reconnects with { pid, offset } (the offset being the last string argument of the
// last event it received) a server, any server, restores the session with every packet
// emitted meanwhile that the socket would have received.
//
// Here both live in one durable podrelay channel per namespace, the recovery log
// (`<key>#recovery#<nsp>`, kept in a Redis stream by the sidecar's --durable): every
// recoverable broadcast is appended to it and delivered to every server from it, so its
// stream id is the packet's offset and every server delivers in stream order; a persisted
// session is one more entry. A restore reads the log after the client's offset through a
// short-lived second sidecar connection (RSUB since the offset): the session entry is after
// the offset (it was appended after the client's last packet), and so is every packet it
// missed.

import { compareStreamIds, connect, isStreamIdText } from './client.js';

// podrelay's own message types on the recovery log (after socket.io-adapter's 1..13 and the
// adapter's 64..66).
export const RecoveryMessageType = Object.freeze({
  SESSION: 67,
  SESSION_RESTORED: 68,
});

// socket.io-parser's EVENT packet type; only events carry an offset (as in socket.io-adapter).
const EVENT = 2;

/** True for a Redis stream id `<ms>-<seq>`. */
export const isStreamId = isStreamIdText;

/** Compares two stream ids numerically (ms first): negative, 0 or positive. */
export const compareIds = compareStreamIds;

/**
 * Whether a broadcast goes through the recovery log: the packets socket.io-adapter gives an
 * offset (events without an acknowledgement, not volatile), and not `local` ones (those
 * reach this server's sockets only, so no other server could replay them).
 */
export function isRecoverable(packet, opts) {
  return packet.type === EVENT && packet.id === undefined && opts.flags?.volatile === undefined && !opts.flags?.local;
}

/** As socket.io-adapter's in-memory session store: would a socket in `rooms` get it? */
export function shouldIncludePacket(rooms, opts) {
  const included = opts.rooms.length === 0 || rooms.some((r) => opts.rooms.includes(r));
  const notExcluded = rooms.every((r) => !opts.except.includes(r));
  return included && notExcluded;
}

/** The `--durable` glob that selects every namespace's recovery log for adapter key `key`. */
export function durablePatternFor(key) {
  return `${String(key).replace(/[\\*?[\]]/g, '\\$&')}#recovery#*`;
}

/**
 * The restored session, or null. `entries` are the recovery log's entries after the
 * client's offset, in stream order, as { id, message } (message: { uid, type, data }).
 * The session is the last one persisted for `pid`, unless it expired (its `expiresAt`,
 * set by the server that persisted it, is before `now`) or was restored already (a
 * SESSION_RESTORED for it follows). Missed packets: every broadcast of `entries` that a
 * socket in the session's rooms would have received, each with its offset appended.
 */
export function selectSession(entries, pid, now) {
  let at = -1;
  for (let i = entries.length - 1; i >= 0; i--) {
    const { message } = entries[i];
    if (message.data?.pid !== pid) continue;
    if (message.type === RecoveryMessageType.SESSION_RESTORED) return null;
    if (message.type === RecoveryMessageType.SESSION) {
      at = i;
      break;
    }
  }
  if (at < 0) return null;
  const record = entries[at].message.data;
  if (!(record.expiresAt >= now) || typeof record.sid !== 'string' || !Array.isArray(record.rooms)) return null;
  const missedPackets = [];
  for (const { id, message } of entries) {
    if (message.type !== 3 /* BROADCAST */) continue;
    const { packet, opts } = message.data;
    if (!shouldIncludePacket(record.rooms, opts)) continue;
    missedPackets.push([...packet.data, id]);
  }
  return { sid: record.sid, pid, rooms: record.rooms, data: record.data, missedPackets };
}

/**
 * The last live entries of the recovery log this server delivered, so that a restore can
 * bridge from the end of its history read to the live position. Bounded in count and age.
 * Thread-safety: single-threaded (Node event loop); owned by one adapter.
 */
export class RecentLog {
  constructor(maxEntries, maxAgeMs) {
    this._max = maxEntries;
    this._maxAge = maxAgeMs;
    this._entries = []; // { id, payload, at }, in stream order
    this._head = 0;
    this._trimmedTo = null; // id of the newest entry dropped, null while none was
  }

  push(id, payload, now) {
    this._entries.push({ id, payload, at: now });
    const e = this._entries;
    while (this._head < e.length && (e.length - this._head > this._max || now - e[this._head].at > this._maxAge)) {
      this._trimmedTo = e[this._head].id;
      e[this._head++] = undefined;
    }
    if (this._head > 1024 && this._head * 2 > e.length) {
      this._entries = e.slice(this._head);
      this._head = 0;
    }
  }

  /** Entries after `id`, oldest first, or null when some of them were dropped already. */
  after(id) {
    if (this._trimmedTo !== null && compareIds(this._trimmedTo, id) > 0) return null;
    const out = [];
    for (let i = this._head; i < this._entries.length; i++) {
      const entry = this._entries[i];
      if (compareIds(entry.id, id) > 0) out.push(entry);
    }
    return out;
  }
}

/**
 * Reads the recovery log after `since` through a short-lived connection of its own (the
 * adapter's connection already holds the channel, and one connection has one position per
 * channel). Resolves { recovered, lastId, entries: [{ id, payload }] } once the sidecar's
 * RSUBOK says the replay is complete; rejects after `timeoutMs`, or when more than
 * `maxEntries` / `maxBytes` would have to be held.
 */
export function readHistory({ address, connectOptions, channel, since, epoch, timeoutMs, maxEntries, maxBytes }) {
  const client = connect({ ...connectOptions, address, protocolVersion: 2, reconnect: false, clientName: 'socket.io recovery' });
  client.on('error', () => {}); // failures reach the promise below
  const entries = [];
  let bytes = 0;
  let collecting = true;
  let overflow = null;
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer from the sidecar within ${timeoutMs} ms`)), timeoutMs);
    client
      .subscribeDurable(
        channel,
        (payload, _channel, id) => {
          if (!collecting || overflow) return;
          bytes += payload.length;
          if (entries.length >= maxEntries || bytes > maxBytes) {
            overflow = new Error(`more than ${maxEntries} entries or ${maxBytes} bytes to replay`);
            return;
          }
          // A copy: the payload may be a view into the connection's read buffer.
          entries.push({ id, payload: Buffer.from(payload) });
        },
        { since, epoch },
      )
      .then(
        (outcome) => {
          clearTimeout(timer);
          if (overflow) reject(overflow);
          else resolve({ recovered: outcome.recovered, lastId: outcome.lastId, entries });
        },
        (err) => {
          clearTimeout(timer);
          reject(err);
        },
      );
  });
  return done.finally(() => {
    collecting = false;
    client.destroy(); // nothing of ours is in flight on it
  });
}
