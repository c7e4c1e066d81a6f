// Sans-I/O codec for the podrelay wire protocol, versions 1 to 3 (proto/PROTOCOL.md).
// The codec knows every type of every version; which ones a connection may use is the
// client's business (client.js checks them against the version its WELCOME said).
//
// Nothing here touches a socket: encoders return Buffers, and FrameDecoder turns a
// stream of byte chunks into frame objects. The client (client.js) and the tests
// are the only callers; other tools may use it through `podrelay/protocol`.

export const PROTOCOL_VERSION = 1;
/** The highest protocol version this codec speaks (3: PUBX). */
export const MAX_PROTOCOL_VERSION = 3;
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;
export const MAX_STR_BYTES = 0xffff;
export const MAX_LIST_ITEMS = 0xffff;
export const MAX_U32 = 0xffffffff;

/** Frame type bytes (section 2). Client to sidecar have the high bit clear. */
export const FrameType = Object.freeze({
  HELLO: 0x01,
  PUB: 0x02,
  SUB: 0x03,
  UNSUB: 0x04,
  PSUB: 0x05,
  PUNSUB: 0x06,
  PING: 0x07,
  RSUB: 0x08, // version 2 (durable channels)
  PUBX: 0x09, // version 3: PUB, but not delivered back to the sending connection
  WELCOME: 0x81,
  MSG: 0x82,
  OK: 0x83,
  ERR: 0x84,
  PONG: 0x85,
  GOAWAY: 0x86,
  SMSG: 0x87, // version 2
  PUBOK: 0x88, // version 2
  RSUBOK: 0x89, // version 2
});

const TYPE_NAMES = new Map(Object.entries(FrameType).map(([name, byte]) => [byte, name]));

/** Returns the frame name ('PUB', ...) of a type byte, or undefined when unknown. */
export function frameTypeName(byte) {
  return TYPE_NAMES.get(byte);
}

/** Error codes (section 4). */
export const ErrorCode = Object.freeze({
  MALFORMED_FRAME: 100,
  FRAME_TOO_LARGE: 101,
  UNKNOWN_TYPE: 102,
  HANDSHAKE_REQUIRED: 103,
  UNSUPPORTED_VERSION: 104,
  AUTH_FAILED: 105,
  UNEXPECTED_FRAME: 106,
  INVALID_ARGUMENT: 200,
  TOO_MANY_SUBSCRIPTIONS: 201,
  NOT_SUPPORTED: 202,
  DRAINING: 203,
  SUBSCRIBE_REFUSED: 204,
  PUBLISH_BUFFER_FULL: 300,
  PUBLISH_TIMEOUT: 301,
  OUTCOME_UNKNOWN: 302,
  REDIS_ERROR: 303,
  NOT_REPLICATED: 304,
  SLOW_CONSUMER: 400,
  SHUTTING_DOWN: 401,
  TOO_MANY_CONNECTIONS: 402,
  STREAM_LOST: 403,
});

const CODE_NAMES = new Map(Object.entries(ErrorCode).map(([name, code]) => [code, name]));

/**
 * Name of an error code. Unknown codes are named after their range, as the spec asks
 * clients to treat them: CONNECTION_ERROR_1xx, REQUEST_ERROR_2xx, PUBLISH_ERROR_3xx,
 * GOAWAY_4xx, otherwise UNKNOWN_ERROR_<code>.
 */
export function errorName(code) {
  const known = CODE_NAMES.get(code);
  if (known !== undefined) return known;
  const prefix = ['', 'CONNECTION_ERROR', 'REQUEST_ERROR', 'PUBLISH_ERROR', 'GOAWAY'][
    Math.floor(code / 100)
  ];
  return prefix ? `${prefix}_${code}` : `UNKNOWN_ERROR_${code}`;
}

/**
 * Consequence of an error code, by range: 'connection' (1xx, the sidecar closes),
 * 'request' (2xx), 'publish' (3xx), 'goaway' (4xx), or 'unknown'.
 */
export function errorClass(code) {
  return ['unknown', 'connection', 'request', 'publish', 'goaway'][Math.floor(code / 100)] ?? 'unknown';
}

/**
 * Every error this package reports: `code` is the protocol error code (or 0 for
 * conditions that exist only in the client, such as CLIENT_CLOSED), `name` its name.
 * `local` is true when the client produced the error rather than the sidecar.
 */
export class PodrelayError extends Error {
  constructor(code, name, message, { local = false, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.name = name ?? errorName(code);
    this.local = local;
  }
}

/** Raised by the codec when bytes violate the framing rules. */
export class ProtocolError extends PodrelayError {
  constructor(code, message) {
    super(code, errorName(code), message, { local: true });
  }
}

// ---------------------------------------------------------------------------
// Encoding

/** Converts a str/rest argument to bytes: strings as UTF-8, byte views as is. */
export function toBytes(value, what = 'value') {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return Buffer.from(value);
  throw new TypeError(`${what} must be a string, Buffer or Uint8Array`);
}

function checkU16(n, what) {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new RangeError(`${what} must be a u16, got ${n}`);
}
function checkU32(n, what) {
  if (!Number.isInteger(n) || n < 0 || n > MAX_U32) throw new RangeError(`${what} must be a u32, got ${n}`);
}
function strBytes(value, what) {
  const b = toBytes(value, what);
  if (b.length > MAX_STR_BYTES) throw new RangeError(`${what} is ${b.length} bytes, a str holds at most 65535`);
  return b;
}
function listBytes(values, what) {
  if (!Array.isArray(values)) values = [values];
  if (values.length > MAX_LIST_ITEMS) throw new RangeError(`${what} has ${values.length} items, a list holds at most 65535`);
  return values.map((v, i) => strBytes(v, `${what}[${i}]`));
}

// A tiny writer over a pre-sized buffer. Every encoder computes the exact size first,
// so each frame costs one allocation.
class Writer {
  constructor(type, bodyLen) {
    this.buf = Buffer.allocUnsafe(5 + bodyLen);
    this.buf.writeUInt32BE(1 + bodyLen, 0);
    this.buf[4] = type;
    this.pos = 5;
  }
  u16(n) { this.buf.writeUInt16BE(n, this.pos); this.pos += 2; return this; }
  u32(n) { this.buf.writeUInt32BE(n, this.pos); this.pos += 4; return this; }
  str(b) { this.u16(b.length); return this.raw(b); }
  list(items) { this.u16(items.length); for (const b of items) this.str(b); return this; }
  raw(b) { b.copy(this.buf, this.pos); this.pos += b.length; return this; }
}
const listSize = (items) => items.reduce((n, b) => n + 2 + b.length, 2);

export function encodeHello({ version = PROTOCOL_VERSION, clientName = '', authToken = '' } = {}) {
  checkU16(version, 'version');
  const name = strBytes(clientName, 'clientName');
  const token = strBytes(authToken, 'authToken');
  return new Writer(FrameType.HELLO, 2 + 2 + name.length + 2 + token.length).u16(version).str(name).str(token).buf;
}

/** Bytes of a PUB frame; `requestId` 0 means fire and forget. */
export function encodePub(requestId, channel, payload) {
  checkU32(requestId, 'requestId');
  const ch = strBytes(channel, 'channel');
  const body = toBytes(payload, 'payload');
  return new Writer(FrameType.PUB, 4 + 2 + ch.length + body.length).u32(requestId).str(ch).raw(body).buf;
}

/**
 * Bytes of a PUBX frame (version 3): PUB's body under type 0x09, so the sidecar does not
 * deliver the message back to this connection's SUB of `channel`. Because the bodies are
 * the same, a PUBX becomes a PUB by rewriting byte 4 (the type) alone.
 */
export function encodePubx(requestId, channel, payload) {
  const buf = encodePub(requestId, channel, payload);
  buf[4] = FrameType.PUBX;
  return buf;
}

/** Size on the wire of a PUB (or PUBX) frame, without encoding it. */
export function pubFrameSize(channelBytes, payloadBytes) {
  return 4 + 1 + 4 + 2 + channelBytes + payloadBytes;
}

function encodeListRequest(type, requestId, names, what) {
  checkU32(requestId, 'requestId');
  const items = listBytes(names, what);
  return new Writer(type, 4 + listSize(items)).u32(requestId).list(items).buf;
}
export const encodeSub = (requestId, channels) => encodeListRequest(FrameType.SUB, requestId, channels, 'channels');
export const encodeUnsub = (requestId, channels = []) => encodeListRequest(FrameType.UNSUB, requestId, channels, 'channels');
export const encodePsub = (requestId, patterns) => encodeListRequest(FrameType.PSUB, requestId, patterns, 'patterns');
export const encodePunsub = (requestId, patterns = []) => encodeListRequest(FrameType.PUNSUB, requestId, patterns, 'patterns');

function encodeIdOnly(type, requestId) {
  checkU32(requestId, 'requestId');
  return new Writer(type, 4).u32(requestId).buf;
}
export const encodePing = (requestId) => encodeIdOnly(FrameType.PING, requestId);
export const encodeOk = (requestId) => encodeIdOnly(FrameType.OK, requestId);
export const encodePong = (requestId) => encodeIdOnly(FrameType.PONG, requestId);

export function encodeWelcome({
  version = PROTOCOL_VERSION,
  serverVersion = '',
  nodeId = '',
  maxFrameBytes = DEFAULT_MAX_FRAME_BYTES,
  maxQueueBytes = 8 * 1024 * 1024,
} = {}) {
  checkU16(version, 'version');
  checkU32(maxFrameBytes, 'maxFrameBytes');
  checkU32(maxQueueBytes, 'maxQueueBytes');
  const sv = strBytes(serverVersion, 'serverVersion');
  const node = strBytes(nodeId, 'nodeId');
  return new Writer(FrameType.WELCOME, 2 + 2 + sv.length + 2 + node.length + 8)
    .u16(version).str(sv).str(node).u32(maxFrameBytes).u32(maxQueueBytes).buf;
}

export function encodeMsg(channel, pattern, payload) {
  const ch = strBytes(channel, 'channel');
  const pat = strBytes(pattern, 'pattern');
  const body = toBytes(payload, 'payload');
  return new Writer(FrameType.MSG, 2 + ch.length + 2 + pat.length + body.length).str(ch).str(pat).raw(body).buf;
}

export function encodeErr(requestId, code, message = '') {
  checkU32(requestId, 'requestId');
  checkU16(code, 'code');
  const msg = strBytes(message, 'message');
  return new Writer(FrameType.ERR, 4 + 2 + 2 + msg.length).u32(requestId).u16(code).str(msg).buf;
}

export function encodeGoaway(code, message = '') {
  checkU16(code, 'code');
  const msg = strBytes(message, 'message');
  return new Writer(FrameType.GOAWAY, 2 + 2 + msg.length).u16(code).str(msg).buf;
}

/** Version 2: subscribe to a durable channel, resuming after `sinceId` (empty: from now). */
export function encodeRsub(requestId, channel, sinceId = '', epoch = '') {
  checkU32(requestId, 'requestId');
  const ch = strBytes(channel, 'channel');
  const since = strBytes(sinceId, 'sinceId');
  const ep = strBytes(epoch, 'epoch');
  return new Writer(FrameType.RSUB, 4 + 2 + ch.length + 2 + since.length + 2 + ep.length)
    .u32(requestId).str(ch).str(since).str(ep).buf;
}

export function encodeSmsg(channel, id, payload) {
  const ch = strBytes(channel, 'channel');
  const sid = strBytes(id, 'id');
  const body = toBytes(payload, 'payload');
  return new Writer(FrameType.SMSG, 2 + ch.length + 2 + sid.length + body.length).str(ch).str(sid).raw(body).buf;
}

export function encodePubok(requestId, id) {
  checkU32(requestId, 'requestId');
  const sid = strBytes(id, 'id');
  return new Writer(FrameType.PUBOK, 4 + 2 + sid.length).u32(requestId).str(sid).buf;
}

export function encodeRsubok(requestId, recovered, epoch, lastId) {
  checkU32(requestId, 'requestId');
  checkU16(recovered, 'recovered');
  const ep = strBytes(epoch, 'epoch');
  const last = strBytes(lastId, 'lastId');
  return new Writer(FrameType.RSUBOK, 4 + 2 + 2 + ep.length + 2 + last.length)
    .u32(requestId).u16(recovered).str(ep).str(last).buf;
}

/**
 * Encodes a frame object of the shape FrameDecoder produces (`{ type: 'PUB', requestId,
 * channel, payload }`, ...). `type` may be the name or the type byte.
 */
export function encodeFrame(frame) {
  const type = typeof frame.type === 'number' ? frameTypeName(frame.type) : frame.type;
  switch (type) {
    case 'HELLO': return encodeHello(frame);
    case 'PUB': return encodePub(frame.requestId, frame.channel, frame.payload);
    case 'PUBX': return encodePubx(frame.requestId, frame.channel, frame.payload);
    case 'SUB': return encodeSub(frame.requestId, frame.channels);
    case 'UNSUB': return encodeUnsub(frame.requestId, frame.channels);
    case 'PSUB': return encodePsub(frame.requestId, frame.patterns);
    case 'PUNSUB': return encodePunsub(frame.requestId, frame.patterns);
    case 'PING': return encodePing(frame.requestId);
    case 'WELCOME': return encodeWelcome(frame);
    case 'MSG': return encodeMsg(frame.channel, frame.pattern, frame.payload);
    case 'OK': return encodeOk(frame.requestId);
    case 'ERR': return encodeErr(frame.requestId, frame.code, frame.message);
    case 'PONG': return encodePong(frame.requestId);
    case 'GOAWAY': return encodeGoaway(frame.code, frame.message);
    case 'RSUB': return encodeRsub(frame.requestId, frame.channel, frame.sinceId, frame.epoch);
    case 'SMSG': return encodeSmsg(frame.channel, frame.id, frame.payload);
    case 'PUBOK': return encodePubok(frame.requestId, frame.id);
    case 'RSUBOK': return encodeRsubok(frame.requestId, frame.recovered, frame.epoch, frame.lastId);
    default: throw new TypeError(`unknown frame type ${String(frame.type)}`);
  }
}

// ---------------------------------------------------------------------------
// Decoding

class Reader {
  constructor(buf, type) {
    this.buf = buf;
    this.pos = 0;
    this.type = type;
  }
  need(n, what) {
    if (this.buf.length - this.pos < n) {
      throw new ProtocolError(
        ErrorCode.MALFORMED_FRAME,
        `${this.type} body too short: ${what} needs ${n} bytes at offset ${this.pos}, ${this.buf.length - this.pos} left`,
      );
    }
  }
  u16(what) { this.need(2, what); const v = this.buf.readUInt16BE(this.pos); this.pos += 2; return v; }
  u32(what) { this.need(4, what); const v = this.buf.readUInt32BE(this.pos); this.pos += 4; return v; }
  str(what) {
    const n = this.u16(what);
    this.need(n, what);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  list(what) {
    const k = this.u16(what);
    const items = new Array(k);
    for (let i = 0; i < k; i++) items[i] = this.str(`${what}[${i}]`);
    return items;
  }
  rest() { const v = this.buf.subarray(this.pos); this.pos = this.buf.length; return v; }
  end() {
    if (this.pos !== this.buf.length) {
      throw new ProtocolError(
        ErrorCode.MALFORMED_FRAME,
        `${this.type} has ${this.buf.length - this.pos} trailing bytes`,
      );
    }
  }
}

/**
 * Decodes one frame body (the bytes after the type byte). `str` and `rest` fields are
 * Buffers that share memory with `body`; lists are arrays of Buffers.
 */
export function decodeBody(typeByte, body) {
  const type = frameTypeName(typeByte);
  if (type === undefined) {
    throw new ProtocolError(ErrorCode.UNKNOWN_TYPE, `unknown frame type 0x${typeByte.toString(16).padStart(2, '0')}`);
  }
  const r = new Reader(body, type);
  let frame;
  switch (type) {
    case 'HELLO':
      frame = { type, version: r.u16('version'), clientName: r.str('client_name'), authToken: r.str('auth_token') };
      break;
    case 'PUB':
    case 'PUBX':
      frame = { type, requestId: r.u32('request_id'), channel: r.str('channel'), payload: r.rest() };
      break;
    case 'SUB':
    case 'UNSUB':
      frame = { type, requestId: r.u32('request_id'), channels: r.list('channels') };
      break;
    case 'PSUB':
    case 'PUNSUB':
      frame = { type, requestId: r.u32('request_id'), patterns: r.list('patterns') };
      break;
    case 'PING':
    case 'OK':
    case 'PONG':
      frame = { type, requestId: r.u32('request_id') };
      break;
    case 'WELCOME':
      frame = {
        type,
        version: r.u16('version'),
        serverVersion: r.str('server_version'),
        nodeId: r.str('node_id'),
        maxFrameBytes: r.u32('max_frame_bytes'),
        maxQueueBytes: r.u32('max_queue_bytes'),
      };
      break;
    case 'MSG':
      frame = { type, channel: r.str('channel'), pattern: r.str('pattern'), payload: r.rest() };
      break;
    case 'ERR':
      frame = { type, requestId: r.u32('request_id'), code: r.u16('code'), message: r.str('message') };
      break;
    case 'GOAWAY':
      frame = { type, code: r.u16('code'), message: r.str('message') };
      break;
    case 'RSUB':
      frame = {
        type, requestId: r.u32('request_id'), channel: r.str('channel'), sinceId: r.str('since_id'),
        epoch: r.str('epoch'),
      };
      break;
    case 'SMSG':
      frame = { type, channel: r.str('channel'), id: r.str('id'), payload: r.rest() };
      break;
    case 'PUBOK':
      frame = { type, requestId: r.u32('request_id'), id: r.str('id') };
      break;
    case 'RSUBOK':
      frame = {
        type, requestId: r.u32('request_id'), recovered: r.u16('recovered'), epoch: r.str('epoch'),
        lastId: r.str('last_id'),
      };
      break;
  }
  r.end();
  return frame;
}

/**
 * Incremental frame decoder. Feed it chunks with push(); it returns the frames completed
 * so far. Framing errors throw a ProtocolError as early as the bytes allow (a too large
 * or zero length as soon as the 4 length bytes are in, an unknown type as soon as the
 * type byte is), and the decoder then stays failed: every later call throws the same
 * error, since the stream cannot be resynchronised.
 */
export class FrameDecoder {
  constructor({ maxFrameBytes = DEFAULT_MAX_FRAME_BYTES } = {}) {
    checkU32(maxFrameBytes, 'maxFrameBytes');
    this.maxFrameBytes = maxFrameBytes;
    this._chunks = [];   // unconsumed input; _chunks[0] starts at _offset
    this._offset = 0;
    this._avail = 0;     // bytes available across _chunks from _offset
    this._frameLen = -1; // 4 + length of the frame being assembled, -1 before its header
    this._typeChecked = false;
    this._error = null;
  }

  /** Bytes received but not yet returned as frames. */
  get bufferedBytes() {
    return this._avail;
  }

  /** Appends a chunk and returns every frame it completed (possibly none). */
  push(chunk) {
    if (this._error) throw this._error;
    if (chunk.length > 0) {
      this._chunks.push(chunk);
      this._avail += chunk.length;
    }
    const frames = [];
    try {
      for (;;) {
        if (this._frameLen < 0) {
          if (this._avail < 4) break;
          const length = this._peekU32();
          if (length === 0) {
            throw new ProtocolError(ErrorCode.MALFORMED_FRAME, 'frame length is 0');
          }
          if (length > this.maxFrameBytes) {
            throw new ProtocolError(
              ErrorCode.FRAME_TOO_LARGE,
              `frame length ${length} exceeds the limit of ${this.maxFrameBytes} bytes`,
            );
          }
          this._frameLen = 4 + length;
          this._typeChecked = false;
        }
        if (!this._typeChecked && this._avail >= 5) {
          const t = this._peekByte(4);
          if (!TYPE_NAMES.has(t)) {
            throw new ProtocolError(ErrorCode.UNKNOWN_TYPE, `unknown frame type 0x${t.toString(16).padStart(2, '0')}`);
          }
          this._typeChecked = true;
        }
        if (this._avail < this._frameLen) break;
        const bytes = this._take(this._frameLen);
        this._frameLen = -1;
        frames.push(decodeBody(bytes[4], bytes.subarray(5)));
      }
    } catch (err) {
      this._error = err;
      throw err;
    }
    return frames;
  }

  /**
   * Declares the end of the stream: throws MALFORMED_FRAME if it stopped inside a frame
   * (including inside the length prefix).
   */
  end() {
    if (this._error) throw this._error;
    if (this._avail > 0) {
      this._error = new ProtocolError(
        ErrorCode.MALFORMED_FRAME,
        `stream ended inside a frame (${this._avail} bytes buffered${this._frameLen > 0 ? ` of ${this._frameLen}` : ''})`,
      );
      throw this._error;
    }
  }

  _peekByte(i) {
    let idx = this._offset + i;
    for (const c of this._chunks) {
      if (idx < c.length) return c[idx];
      idx -= c.length;
    }
    throw new Error('unreachable: peek past buffered data');
  }

  _peekU32() {
    const c = this._chunks[0];
    if (c.length - this._offset >= 4) return c.readUInt32BE(this._offset);
    return ((this._peekByte(0) << 24) | (this._peekByte(1) << 16) | (this._peekByte(2) << 8) | this._peekByte(3)) >>> 0;
  }

  // Removes n buffered bytes and returns them, without copying when they lie in one chunk.
  _take(n) {
    const first = this._chunks[0];
    let out;
    if (first.length - this._offset >= n) {
      out = first.subarray(this._offset, this._offset + n);
      this._offset += n;
      if (this._offset === first.length) {
        this._chunks.shift();
        this._offset = 0;
      }
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const c = this._chunks[0];
        const k = Math.min(c.length - this._offset, n - filled);
        c.copy(out, filled, this._offset, this._offset + k);
        filled += k;
        this._offset += k;
        if (this._offset === c.length) {
          this._chunks.shift();
          this._offset = 0;
        }
      }
    }
    this._avail -= n;
    return out;
  }
}

/**
 * Decodes a buffer holding exactly one frame. Throws a ProtocolError when it is
 * malformed, incomplete or followed by further bytes.
 */
export function decodeFrame(bytes, { maxFrameBytes = DEFAULT_MAX_FRAME_BYTES } = {}) {
  const d = new FrameDecoder({ maxFrameBytes });
  const frames = d.push(toBytes(bytes, 'bytes'));
  d.end();
  if (frames.length !== 1) {
    throw new ProtocolError(ErrorCode.MALFORMED_FRAME, `expected one frame, got ${frames.length}`);
  }
  return frames[0];
}
