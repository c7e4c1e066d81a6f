// Unit tests of the Socket.IO adapter's pieces that need no sidecar: the MessagePack
// codec, the message envelope and the channel names.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { decode, encode } from '../src/msgpack.js';
import { channelsOf, decodeHeader, decodeMessage, encodeMessage, looksLikeSocketId } from '../src/socket.io.js';

const hex = (b) => Buffer.from(b).toString('hex');

describe('msgpack', () => {
  test('encodes like the MessagePack spec', () => {
    const cases = [
      [0, '00'],
      [127, '7f'],
      [128, 'cc80'],
      [255, 'ccff'],
      [256, 'cd0100'],
      [65535, 'cdffff'],
      [65536, 'ce00010000'],
      [2 ** 32 - 1, 'ceffffffff'],
      [2 ** 32, 'cf0000000100000000'],
      [Number.MAX_SAFE_INTEGER, 'cf001fffffffffffff'],
      [-1, 'ff'],
      [-32, 'e0'],
      [-33, 'd0df'],
      [-128, 'd080'],
      [-129, 'd1ff7f'],
      [-32768, 'd18000'],
      [-32769, 'd2ffff7fff'],
      [-(2 ** 31), 'd280000000'],
      [-(2 ** 31) - 1, 'd3ffffffff7fffffff'],
      [1.5, 'cb3ff8000000000000'],
      [-0, 'cb8000000000000000'],
      [null, 'c0'],
      [false, 'c2'],
      [true, 'c3'],
      ['', 'a0'],
      ['a', 'a161'],
      ['é', 'a2c3a9'],
      ['x'.repeat(31), `bf${'78'.repeat(31)}`],
      ['x'.repeat(32), `d920${'78'.repeat(32)}`],
      ['x'.repeat(256), `da0100${'78'.repeat(256)}`],
      [[], '90'],
      [[1, [2]], '920191' + '02'],
      [{}, '80'],
      [{ a: 1 }, '81a16101'],
      [Buffer.from([1, 2]), 'c4020102'],
      [new Uint8Array(0), 'c400'],
      [undefined, 'd40000'],
      [[undefined, () => {}], '92d40000c0'],
      [{ a: undefined, b: () => {}, c: 1 }, '81a16301'],
      [new Date(0), 'd6ff00000000'],
      [10n, 'cf000000000000000a'],
      [-10n, 'd3fffffffffffffff6'],
    ];
    for (const [value, want] of cases) assert.equal(hex(encode(value)), want, `encode(${String(value)})`);
  });

  test('round-trips values across every size threshold', () => {
    const values = [
      'é'.repeat(10), // 20 bytes, estimated 30: header estimate shrinks
      'é'.repeat(16), // 32 bytes: str8
      'é'.repeat(128), // 256 bytes: str16
      '✓'.repeat(21846), // 65538 bytes: str32
      'x'.repeat(70000),
      '\u0000\uffff😀',
      Array.from({ length: 15 }, (_, i) => i),
      Array.from({ length: 16 }, (_, i) => i),
      Array.from({ length: 70000 }, (_, i) => i % 300),
      Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`k${i}`, i])),
      Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, { v: [i, `s${i}`] }])),
      Buffer.alloc(255, 1),
      Buffer.alloc(256, 2),
      Buffer.alloc(70000, 3),
      [0.1, -2.5e300, Infinity, -Infinity, 2 ** 53 + 2, -(2 ** 40)],
      { nested: { deeper: [{ x: null, y: true, z: 'z' }] } },
    ];
    for (const v of values) assert.deepEqual(decode(encode(v)), v);
    assert.ok(Number.isNaN(decode(encode(NaN))));
    assert.ok(Object.is(decode(encode(-0)), -0));
  });

  test('binary: any view or ArrayBuffer becomes bytes, decoded as a Buffer view', () => {
    const u16 = new Uint16Array([1, 0xffff]);
    const out = decode(encode({ a: u16, b: u16.buffer, c: new DataView(u16.buffer, 2, 2) }));
    assert.ok(Buffer.isBuffer(out.a));
    assert.deepEqual(out.a, Buffer.from(u16.buffer));
    assert.deepEqual(out.b, Buffer.from(u16.buffer));
    assert.deepEqual(out.c, Buffer.from([0xff, 0xff]));
  });

  test('dates, bigints, toJSON and undefined', () => {
    const dates = [new Date(1700000000123), new Date(-1), new Date(Date.UTC(2500, 0, 1, 0, 0, 0, 7)), new Date(2 ** 32 * 1000)];
    for (const d of dates) assert.equal(decode(encode(d)).getTime(), d.getTime());
    assert.equal(decode(encode(new Date(NaN))), null);
    assert.equal(decode(encode(2n ** 63n)), 2n ** 63n);
    assert.equal(decode(encode(-(2n ** 63n))), -(2n ** 63n));
    assert.equal(decode(encode(5n)), 5);
    assert.throws(() => encode(2n ** 64n), RangeError);
    assert.deepEqual(decode(encode({ toJSON: () => ({ x: 1 }) })), { x: 1 });
    assert.deepEqual(decode(encode([undefined, 1])), [undefined, 1]);
    assert.ok(!('a' in decode(encode({ a: undefined }))));
    assert.deepEqual(decode(encode(new Map([[1, 2]]))), {}, 'as JSON.stringify does');
  });

  test('decoding is strict and safe', () => {
    assert.throws(() => decode(Buffer.from('a3616263', 'hex').subarray(0, 3)), /truncated/);
    assert.throws(() => decode(Buffer.from('0000', 'hex')), /trailing/);
    assert.throws(() => decode(Buffer.from('c1', 'hex')), /invalid type byte/);
    assert.throws(() => decode(Buffer.from('c6ffffffff', 'hex')), /truncated/);
    assert.throws(() => decode(Buffer.from('d5010000', 'hex')), /unsupported extension/);
    assert.throws(() => decode(Buffer.alloc(600, 0x91)), /nested too deeply/);
    const cyclic = { a: 1 };
    cyclic.self = cyclic;
    assert.throws(() => encode(cyclic), /nested too deeply/);
    // '__proto__' becomes an own property, not the prototype
    const obj = decode(Buffer.from('81a95f5f70726f746f5f5f81a178 01'.replace(/ /g, ''), 'hex'));
    assert.equal(Object.getPrototypeOf(obj), Object.prototype);
    assert.deepEqual(Object.keys(obj), ['__proto__']);
    assert.equal({}.x, undefined);
    // float32 and non-string map keys are accepted
    assert.equal(decode(Buffer.from('ca3fc00000', 'hex')), 1.5);
    assert.deepEqual(decode(Buffer.from('810102', 'hex')), { 1: 2 });
  });

  test('encode writes an optional prefix in front', () => {
    assert.equal(hex(encode([1], Buffer.from([0xaa, 0xbb]))), 'aabb9101');
  });
});

describe('socket.io adapter envelope and channels', () => {
  test('messages round-trip with their header', () => {
    const msg = {
      type: 3,
      data: { packet: { type: 2, data: ['ev', Buffer.from([0, 255]), { n: 1 }], nsp: '/' }, opts: { rooms: ['r'], except: [], flags: {} } },
    };
    const payload = encodeMessage('0123456789abcdef', msg, 7);
    assert.deepEqual(payload.subarray(0, 22), Buffer.from('01' + '10' + hex(Buffer.from('0123456789abcdef')) + '00000007', 'hex'));
    assert.deepEqual(decodeHeader(payload), { uid: '0123456789abcdef', seq: 7, bodyOffset: 22 });
    const back = decodeMessage(payload);
    assert.deepEqual(back, { uid: '0123456789abcdef', seq: 7, ...msg });
    assert.ok(!('requestId' in back.data), 'absent keys stay absent (a requestId of undefined means no ack)');
    // A message without data (heartbeat): just the type.
    const hb = encodeMessage('u', { type: 2 });
    assert.equal(hex(hb), '010175' + '00000000' + '9102');
    assert.deepEqual(decodeMessage(hb), { uid: 'u', seq: 0, type: 2, data: undefined });
    assert.equal(decodeHeader(Buffer.from('hello')), null);
    assert.throws(() => decodeMessage(Buffer.from('hello world')), TypeError);
  });

  test('channel names, with # and % escaped so names never collide', () => {
    const ch = channelsOf('socket.io', '/');
    assert.equal(ch.namespace, 'socket.io#/#');
    assert.equal(ch.room('lobby'), 'socket.io#/#room#lobby');
    assert.equal(ch.room(42), 'socket.io#/#room#42');
    assert.equal(ch.server('abc'), 'socket.io#/#server#abc');
    assert.equal(channelsOf('k', '/a#b').room('x%y#z'), 'k#/a%23b#room#x%25y%23z');
    assert.notEqual(channelsOf('k', '/a#room#b').namespace, channelsOf('k', '/a').room('b#'));
    assert.notEqual(channelsOf('k', '/a').room('%23'), channelsOf('k', '/a').room('#'));
  });

  test('private rooms are the ones shaped like socket ids', () => {
    assert.equal(looksLikeSocketId('Zk3bT0-_aaaaaaaaaaaa'), true);
    assert.equal(looksLikeSocketId('lobby'), false);
    assert.equal(looksLikeSocketId('Zk3bT0-_aaaaaaaaaaa!'), false);
    assert.equal(looksLikeSocketId(12345678901234567890), false);
  });
});
