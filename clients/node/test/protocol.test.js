// Codec behaviour beyond the shared vectors: encoder limits, chunking, errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  DEFAULT_MAX_FRAME_BYTES,
  ErrorCode,
  FrameDecoder,
  FrameType,
  PodrelayError,
  ProtocolError,
  decodeFrame,
  encodeErr,
  encodeFrame,
  encodeHello,
  encodeMsg,
  encodePing,
  encodePub,
  encodeSub,
  encodeUnsub,
  errorClass,
  errorName,
  pubFrameSize,
} from '../src/protocol.js';

test('worked example of PROTOCOL.md section 6', () => {
  assert.equal(encodeHello({ clientName: 'app' }).toString('hex'), '0000000a01000100036170700000');
  assert.equal(encodeSub(1, ['news']).toString('hex'), '0000000d0300000001000100046e657773');
  assert.equal(encodePub(2, 'news', 'hi').toString('hex'), '0000000d020000000200046e6577736869');
  assert.equal(encodeMsg('news', '', 'hi').toString('hex'), '0000000b8200046e65777300006869');
});

test('strings are UTF-8, buffers and typed arrays pass through', () => {
  const f = decodeFrame(encodePub(9, 'café', new Uint8Array([0, 255, 1])));
  assert.deepEqual(f.channel, Buffer.from('café', 'utf8'));
  assert.deepEqual(f.payload, Buffer.from([0, 255, 1]));
  assert.equal(pubFrameSize(Buffer.byteLength('café'), 3) - 4, encodePub(9, 'café', Buffer.alloc(3)).length - 4);
});

test('encoders refuse values the wire cannot carry', () => {
  assert.throws(() => encodePub(-1, 'a', ''), RangeError);
  assert.throws(() => encodePub(2 ** 32, 'a', ''), RangeError);
  assert.throws(() => encodePub(1.5, 'a', ''), RangeError);
  assert.throws(() => encodePub(1, 'x'.repeat(65536), ''), RangeError);
  assert.doesNotThrow(() => encodePub(1, 'x'.repeat(65535), ''));
  assert.throws(() => encodeSub(1, new Array(65536).fill('a')), RangeError);
  assert.throws(() => encodeErr(1, 70000, ''), RangeError);
  assert.throws(() => encodePub(1, 'a', 42), TypeError);
  assert.throws(() => encodeFrame({ type: 'NOPE' }), TypeError);
});

test('empty UNSUB list means all', () => {
  assert.equal(encodeUnsub(5).toString('hex'), '0000000704000000050000');
});

test('encodeFrame accepts the type byte too', () => {
  assert.equal(encodeFrame({ type: FrameType.PING, requestId: 42 }).toString('hex'), '00000005070000002a');
});

test('many frames in one chunk, and frames straddling chunks', () => {
  const frames = [encodePing(1), encodePub(2, 'c', Buffer.alloc(3000, 7)), encodeMsg('c', 'p*', 'x'), encodePing(3)];
  const all = Buffer.concat(frames);
  for (const size of [1, 2, 3, 7, 100, 1000, all.length]) {
    const d = new FrameDecoder();
    const out = [];
    for (let i = 0; i < all.length; i += size) out.push(...d.push(all.subarray(i, i + size)));
    d.end();
    assert.deepEqual(out.map((f) => f.type), ['PING', 'PUB', 'MSG', 'PING'], `chunk ${size}`);
    assert.equal(out[1].payload.length, 3000);
    assert.ok(out[1].payload.every((b) => b === 7));
    assert.equal(d.bufferedBytes, 0);
  }
});

test('FRAME_TOO_LARGE at the 4th byte, with the default 1 MiB limit', () => {
  const d = new FrameDecoder();
  assert.equal(d.maxFrameBytes, DEFAULT_MAX_FRAME_BYTES);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(DEFAULT_MAX_FRAME_BYTES + 1);
  d.push(header.subarray(0, 3));
  assert.throws(() => d.push(header.subarray(3)), (e) => e instanceof ProtocolError && e.code === 101 && e.name === 'FRAME_TOO_LARGE');
  const ok = new FrameDecoder();
  header.writeUInt32BE(DEFAULT_MAX_FRAME_BYTES);
  assert.deepEqual(ok.push(header), []);
});

test('end() inside a frame is MALFORMED_FRAME', () => {
  const d = new FrameDecoder();
  d.push(encodePing(1).subarray(0, 6));
  assert.throws(() => d.end(), (e) => e.code === ErrorCode.MALFORMED_FRAME);
  assert.throws(() => decodeFrame(Buffer.concat([encodePing(1), encodePing(2)])), (e) => e.code === 100);
});

test('error names and classes, including unknown codes by range', () => {
  assert.equal(errorName(302), 'OUTCOME_UNKNOWN');
  assert.equal(errorName(204), 'SUBSCRIBE_REFUSED');
  assert.equal(errorClass(204), 'request');
  assert.equal(errorName(107), 'CONNECTION_ERROR_107');
  assert.equal(errorName(250), 'REQUEST_ERROR_250');
  assert.equal(errorName(399), 'PUBLISH_ERROR_399');
  assert.equal(errorName(499), 'GOAWAY_499');
  assert.equal(errorName(7), 'UNKNOWN_ERROR_7');
  assert.equal(errorClass(105), 'connection');
  assert.equal(errorClass(201), 'request');
  assert.equal(errorClass(303), 'publish');
  assert.equal(errorClass(401), 'goaway');
  assert.equal(errorClass(900), 'unknown');
  const e = new ProtocolError(100, 'x');
  assert.ok(e instanceof PodrelayError && e instanceof Error);
  assert.equal(e.name, 'MALFORMED_FRAME');
  assert.equal(e.local, true);
});
