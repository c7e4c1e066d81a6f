// A small MessagePack codec (https://github.com/msgpack/msgpack/blob/master/spec.md) for
// the messages Socket.IO servers exchange through podrelay. Written here so that the
// adapter has no runtime dependency.
//
// Values map like JSON.stringify would map them, except that bytes stay bytes:
// - null, booleans, numbers, strings, arrays and plain objects as usual; an object's
//   own enumerable string keys are encoded, `toJSON()` is honoured (as in JSON);
// - Buffer / Uint8Array / any ArrayBufferView / ArrayBuffer -> bin (decoded as a Buffer
//   that is a view into the input: no copy);
// - Date -> the msgpack timestamp extension (-1), decoded as a Date;
// - undefined -> in objects the key is left out (as in JSON), in arrays it is the
//   fixext 1 type 0 that notepack.io also uses, decoded as undefined;
// - functions and symbols: left out of objects, nil in arrays (as in JSON);
// - bigint -> int64/uint64; integers beyond 2^53 decode as bigint, others as numbers.
//
// Stateless and synchronous; safe to share.

const MAX_DEPTH = 512;

class Writer {
  constructor(size) {
    this.buf = Buffer.allocUnsafe(size);
    this.pos = 0;
  }

  ensure(n) {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v) {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  u8u8(a, b) {
    this.ensure(2);
    this.buf[this.pos++] = a;
    this.buf[this.pos++] = b;
  }

  u8u16(a, v) {
    this.ensure(3);
    this.buf[this.pos] = a;
    this.buf.writeUInt16BE(v, this.pos + 1);
    this.pos += 3;
  }

  u8u32(a, v) {
    this.ensure(5);
    this.buf[this.pos] = a;
    this.buf.writeUInt32BE(v, this.pos + 1);
    this.pos += 5;
  }

  bytes(b) {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
}

function writeNumber(w, v) {
  if (Number.isInteger(v) && !Object.is(v, -0)) {
    if (v >= 0) {
      if (v < 0x80) return w.u8(v);
      if (v < 0x100) return w.u8u8(0xcc, v);
      if (v < 0x10000) return w.u8u16(0xcd, v);
      if (v < 0x100000000) return w.u8u32(0xce, v);
      if (v <= Number.MAX_SAFE_INTEGER) {
        w.ensure(9);
        w.buf[w.pos] = 0xcf;
        w.buf.writeBigUInt64BE(BigInt(v), w.pos + 1);
        w.pos += 9;
        return undefined;
      }
    } else {
      if (v >= -0x20) return w.u8(v & 0xff);
      if (v >= -0x80) return w.u8u8(0xd0, v & 0xff);
      if (v >= -0x8000) {
        w.ensure(3);
        w.buf[w.pos] = 0xd1;
        w.buf.writeInt16BE(v, w.pos + 1);
        w.pos += 3;
        return undefined;
      }
      if (v >= -0x80000000) {
        w.ensure(5);
        w.buf[w.pos] = 0xd2;
        w.buf.writeInt32BE(v, w.pos + 1);
        w.pos += 5;
        return undefined;
      }
      if (v >= Number.MIN_SAFE_INTEGER) {
        w.ensure(9);
        w.buf[w.pos] = 0xd3;
        w.buf.writeBigInt64BE(BigInt(v), w.pos + 1);
        w.pos += 9;
        return undefined;
      }
    }
  }
  // Non-integers, -0, and integers beyond 2^53 (already imprecise as numbers).
  w.ensure(9);
  w.buf[w.pos] = 0xcb;
  w.buf.writeDoubleBE(v, w.pos + 1);
  w.pos += 9;
  return undefined;
}

function writeBigInt(w, v) {
  w.ensure(9);
  if (v >= 0n && v <= 0xffffffffffffffffn) {
    w.buf[w.pos] = 0xcf;
    w.buf.writeBigUInt64BE(v, w.pos + 1);
  } else if (v < 0n && v >= -0x8000000000000000n) {
    w.buf[w.pos] = 0xd3;
    w.buf.writeBigInt64BE(v, w.pos + 1);
  } else {
    throw new RangeError(`bigint ${v} does not fit in 64 bits`);
  }
  w.pos += 9;
}

function writeString(w, s) {
  // UTF-8 is at most 3 bytes per UTF-16 code unit; reserve for the worst case, then
  // write the header in front once the real length is known.
  const max = s.length * 3;
  const headerLen = max < 0x20 ? 1 : max < 0x100 ? 2 : max < 0x10000 ? 3 : 5;
  w.ensure(headerLen + max);
  const n = w.buf.write(s, w.pos + headerLen, 'utf8');
  const realHeader = n < 0x20 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
  if (realHeader !== headerLen) w.buf.copyWithin(w.pos + realHeader, w.pos + headerLen, w.pos + headerLen + n);
  const p = w.pos;
  if (realHeader === 1) w.buf[p] = 0xa0 | n;
  else if (realHeader === 2) {
    w.buf[p] = 0xd9;
    w.buf[p + 1] = n;
  } else if (realHeader === 3) {
    w.buf[p] = 0xda;
    w.buf.writeUInt16BE(n, p + 1);
  } else {
    w.buf[p] = 0xdb;
    w.buf.writeUInt32BE(n, p + 1);
  }
  w.pos += realHeader + n;
}

function writeBin(w, bytes) {
  const n = bytes.length;
  if (n < 0x100) w.u8u8(0xc4, n);
  else if (n < 0x10000) w.u8u16(0xc5, n);
  else w.u8u32(0xc6, n);
  w.bytes(bytes);
}

function writeDate(w, d) {
  const ms = d.getTime();
  if (Number.isNaN(ms)) return w.u8(0xc0); // JSON turns an invalid date into null as well
  const sec = Math.floor(ms / 1000);
  const nsec = (ms - sec * 1000) * 1e6;
  if (sec >= 0 && sec < 2 ** 34) {
    if (nsec === 0 && sec < 2 ** 32) {
      w.u8u8(0xd6, 0xff); // timestamp 32
      w.ensure(4);
      w.buf.writeUInt32BE(sec, w.pos);
      w.pos += 4;
    } else {
      w.u8u8(0xd7, 0xff); // timestamp 64: nsec in the upper 30 bits, sec in the lower 34
      w.ensure(8);
      w.buf.writeUInt32BE((nsec * 4 + Math.floor(sec / 2 ** 32)) >>> 0, w.pos);
      w.buf.writeUInt32BE(sec >>> 0, w.pos + 4);
      w.pos += 8;
    }
    return undefined;
  }
  w.ensure(15); // timestamp 96
  w.buf[w.pos] = 0xc7;
  w.buf[w.pos + 1] = 12;
  w.buf[w.pos + 2] = 0xff;
  w.buf.writeUInt32BE(nsec, w.pos + 3);
  w.buf.writeBigInt64BE(BigInt(sec), w.pos + 7);
  w.pos += 15;
  return undefined;
}

function writeValue(w, v, depth) {
  switch (typeof v) {
    case 'string':
      return writeString(w, v);
    case 'number':
      return writeNumber(w, v);
    case 'boolean':
      return w.u8(v ? 0xc3 : 0xc2);
    case 'bigint':
      return writeBigInt(w, v);
    case 'undefined':
      w.ensure(3);
      w.buf[w.pos++] = 0xd4; // fixext 1, type 0: undefined (notepack.io's convention)
      w.buf[w.pos++] = 0x00;
      w.buf[w.pos++] = 0x00;
      return undefined;
    case 'function':
    case 'symbol':
      return w.u8(0xc0);
    default:
      break;
  }
  if (v === null) return w.u8(0xc0);
  if (depth > MAX_DEPTH) throw new RangeError('value is nested too deeply (a cycle?)');
  if (v instanceof Uint8Array) return writeBin(w, v);
  if (ArrayBuffer.isView(v)) return writeBin(w, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  if (v instanceof ArrayBuffer) return writeBin(w, new Uint8Array(v));
  if (v instanceof Date) return writeDate(w, v);
  if (Array.isArray(v)) {
    const n = v.length;
    if (n < 0x10) w.u8(0x90 | n);
    else if (n < 0x10000) w.u8u16(0xdc, n);
    else w.u8u32(0xdd, n);
    for (let i = 0; i < n; i++) writeValue(w, v[i], depth + 1);
    return undefined;
  }
  if (typeof v.toJSON === 'function') return writeValue(w, v.toJSON(), depth + 1);
  const keys = [];
  for (const k of Object.keys(v)) {
    const t = typeof v[k];
    if (t !== 'undefined' && t !== 'function' && t !== 'symbol') keys.push(k);
  }
  const n = keys.length;
  if (n < 0x10) w.u8(0x80 | n);
  else if (n < 0x10000) w.u8u16(0xde, n);
  else w.u8u32(0xdf, n);
  for (const k of keys) {
    writeString(w, k);
    writeValue(w, v[k], depth + 1);
  }
  return undefined;
}

/**
 * Encodes `value`. `prefix` (optional bytes) is written in front of the MessagePack data
 * in the same buffer, which saves a copy when framing.
 * @returns {Buffer}
 */
export function encode(value, prefix) {
  const w = new Writer(256 + (prefix ? prefix.length : 0));
  if (prefix) w.bytes(prefix);
  writeValue(w, value, 0);
  return w.buf.subarray(0, w.pos);
}

// ---------------------------------------------------------------------------

class Reader {
  constructor(buf, pos) {
    this.buf = buf;
    this.pos = pos;
  }

  need(n) {
    if (this.pos + n > this.buf.length) throw new RangeError('msgpack: truncated input');
  }
}

// Short pure-ASCII strings (map keys, event names: most strings of an adapter message) are
// built byte by byte: a Buffer#toString call per string cost more than the decoding itself
// (bench/node profile). Anything else, or a non-ASCII byte, goes through the UTF-8 decoder.
function asciiString(b, start, end) {
  let s = '';
  for (let i = start; i < end; i++) {
    const c = b[i];
    if (c > 0x7f) return null;
    s += String.fromCharCode(c);
  }
  return s;
}

function readString(r, n) {
  r.need(n);
  let s = n <= 16 ? asciiString(r.buf, r.pos, r.pos + n) : null;
  if (s === null) s = r.buf.toString('utf8', r.pos, r.pos + n);
  r.pos += n;
  return s;
}

function readBin(r, n) {
  r.need(n);
  const b = r.buf.subarray(r.pos, r.pos + n);
  r.pos += n;
  return b;
}

function readArray(r, n, depth) {
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = readValue(r, depth + 1);
  return out;
}

function readMap(r, n, depth) {
  const out = {};
  for (let i = 0; i < n; i++) {
    const k = readValue(r, depth + 1);
    const key = typeof k === 'string' ? k : String(k);
    const v = readValue(r, depth + 1);
    if (key === '__proto__') Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
    else out[key] = v;
  }
  return out;
}

function read64(r, signed) {
  r.need(8);
  const big = signed ? r.buf.readBigInt64BE(r.pos) : r.buf.readBigUInt64BE(r.pos);
  r.pos += 8;
  return big <= BigInt(Number.MAX_SAFE_INTEGER) && big >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(big) : big;
}

function readExt(r, n) {
  r.need(1 + n);
  const type = r.buf.readInt8(r.pos);
  const p = r.pos + 1;
  r.pos += 1 + n;
  if (type === 0 && n === 1) return undefined;
  if (type === -1) {
    const b = r.buf;
    if (n === 4) return new Date(b.readUInt32BE(p) * 1000);
    if (n === 8) {
      const hi = b.readUInt32BE(p);
      const nsec = Math.floor(hi / 4);
      const sec = (hi & 3) * 2 ** 32 + b.readUInt32BE(p + 4);
      return new Date(sec * 1000 + Math.floor(nsec / 1e6));
    }
    if (n === 12) {
      const nsec = b.readUInt32BE(p);
      const sec = Number(b.readBigInt64BE(p + 4));
      return new Date(sec * 1000 + Math.floor(nsec / 1e6));
    }
  }
  throw new TypeError(`msgpack: unsupported extension type ${type} (${n} bytes)`);
}

function readValue(r, depth) {
  if (depth > MAX_DEPTH) throw new RangeError('msgpack: input nested too deeply');
  r.need(1);
  const b = r.buf;
  const t = b[r.pos++];
  if (t < 0x80) return t;
  if (t < 0x90) return readMap(r, t & 0x0f, depth);
  if (t < 0xa0) return readArray(r, t & 0x0f, depth);
  if (t < 0xc0) return readString(r, t & 0x1f);
  if (t >= 0xe0) return t - 0x100;
  let v;
  switch (t) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xc4:
      r.need(1);
      return readBin(r, b[r.pos++]);
    case 0xc5:
      r.need(2);
      v = b.readUInt16BE(r.pos);
      r.pos += 2;
      return readBin(r, v);
    case 0xc6:
      r.need(4);
      v = b.readUInt32BE(r.pos);
      r.pos += 4;
      return readBin(r, v);
    case 0xc7:
      r.need(1);
      return readExt(r, b[r.pos++]);
    case 0xc8:
      r.need(2);
      v = b.readUInt16BE(r.pos);
      r.pos += 2;
      return readExt(r, v);
    case 0xc9:
      r.need(4);
      v = b.readUInt32BE(r.pos);
      r.pos += 4;
      return readExt(r, v);
    case 0xca:
      r.need(4);
      v = b.readFloatBE(r.pos);
      r.pos += 4;
      return v;
    case 0xcb:
      r.need(8);
      v = b.readDoubleBE(r.pos);
      r.pos += 8;
      return v;
    case 0xcc:
      r.need(1);
      return b[r.pos++];
    case 0xcd:
      r.need(2);
      v = b.readUInt16BE(r.pos);
      r.pos += 2;
      return v;
    case 0xce:
      r.need(4);
      v = b.readUInt32BE(r.pos);
      r.pos += 4;
      return v;
    case 0xcf:
      return read64(r, false);
    case 0xd0:
      r.need(1);
      return b.readInt8(r.pos++);
    case 0xd1:
      r.need(2);
      v = b.readInt16BE(r.pos);
      r.pos += 2;
      return v;
    case 0xd2:
      r.need(4);
      v = b.readInt32BE(r.pos);
      r.pos += 4;
      return v;
    case 0xd3:
      return read64(r, true);
    case 0xd4:
      return readExt(r, 1);
    case 0xd5:
      return readExt(r, 2);
    case 0xd6:
      return readExt(r, 4);
    case 0xd7:
      return readExt(r, 8);
    case 0xd8:
      return readExt(r, 16);
    case 0xd9:
      r.need(1);
      return readString(r, b[r.pos++]);
    case 0xda:
      r.need(2);
      v = b.readUInt16BE(r.pos);
      r.pos += 2;
      return readString(r, v);
    case 0xdb:
      r.need(4);
      v = b.readUInt32BE(r.pos);
      r.pos += 4;
      return readString(r, v);
    case 0xdc:
      r.need(2);
      v = b.readUInt16BE(r.pos);
      r.pos += 2;
      return readArray(r, v, depth);
    case 0xdd:
      r.need(4);
      v = b.readUInt32BE(r.pos);
      r.pos += 4;
      return readArray(r, v, depth);
    case 0xde:
      r.need(2);
      v = b.readUInt16BE(r.pos);
      r.pos += 2;
      return readMap(r, v, depth);
    case 0xdf:
      r.need(4);
      v = b.readUInt32BE(r.pos);
      r.pos += 4;
      return readMap(r, v, depth);
    default:
      throw new TypeError(`msgpack: invalid type byte 0x${t.toString(16)}`); // 0xc1
  }
}

/**
 * Decodes one MessagePack value from `buf` starting at `offset`; the value must end
 * exactly at the end of `buf`. Throws RangeError/TypeError on malformed input.
 */
export function decode(buf, offset = 0) {
  const r = new Reader(buf, offset);
  const v = readValue(r, 0);
  if (r.pos !== buf.length) throw new RangeError(`msgpack: ${buf.length - r.pos} trailing byte(s)`);
  return v;
}
