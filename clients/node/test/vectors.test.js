// Checks the codec against every vector of proto/vectors/frames.json (PROTOCOL.md §7).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

import { FrameDecoder, ProtocolError, encodeFrame, ErrorCode } from '../src/protocol.js';

const vectorsPath = fileURLToPath(new URL('../../../proto/vectors/frames.json', import.meta.url));
const vectors = JSON.parse(readFileSync(vectorsPath, 'utf8'));
const maxFrameBytes = vectors.max_frame_bytes;

// Vector field names are the spec's (snake_case); the codec uses camelCase.
const camel = (name) => name.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

// Converts a decoded frame to the vector representation: Buffers as lowercase hex.
function toVector(frame) {
  const out = {};
  for (const [key, value] of Object.entries(frame)) {
    const name = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    if (Buffer.isBuffer(value)) out[name] = value.toString('hex');
    else if (Array.isArray(value)) out[name] = value.map((b) => b.toString('hex'));
    else out[name] = value;
  }
  return out;
}

// Converts a vector frame to the codec's input: hex strings as Buffers.
const STRING_FIELDS = new Set(['type']);
function fromVector(frame) {
  const out = {};
  for (const [key, value] of Object.entries(frame)) {
    if (STRING_FIELDS.has(key)) out[key] = value;
    else if (typeof value === 'string') out[camel(key)] = Buffer.from(value, 'hex');
    else if (Array.isArray(value)) out[camel(key)] = value.map((h) => Buffer.from(h, 'hex'));
    else out[camel(key)] = value;
  }
  return out;
}

function decodeAll(bytes, splits) {
  const d = new FrameDecoder({ maxFrameBytes });
  const frames = [];
  let at = 0;
  for (const cut of [...splits, bytes.length]) {
    frames.push(...d.push(bytes.subarray(at, cut)));
    at = cut;
  }
  d.end();
  return frames;
}

test('vector file has both sections', () => {
  assert.ok(Number.isInteger(maxFrameBytes) && maxFrameBytes > 0);
  assert.ok(vectors.valid.length > 0);
  assert.ok(vectors.malformed.length > 0);
});

describe('valid vectors', () => {
  for (const v of vectors.valid) {
    const bytes = Buffer.from(v.hex, 'hex');

    test(`decode ${v.name}`, () => {
      const frames = decodeAll(bytes, []);
      assert.equal(frames.length, 1);
      assert.deepEqual(toVector(frames[0]), v.frame);
    });

    test(`encode ${v.name}`, () => {
      assert.equal(encodeFrame(fromVector(v.frame)).toString('hex'), v.hex);
    });

    test(`decode ${v.name} split at every byte boundary`, () => {
      for (let i = 0; i <= bytes.length; i++) {
        const frames = decodeAll(bytes, [i]);
        assert.equal(frames.length, 1, `split at ${i}`);
        assert.deepEqual(toVector(frames[0]), v.frame, `split at ${i}`);
      }
      // One byte per read.
      const oneByOne = Array.from({ length: bytes.length }, (_, i) => i);
      assert.deepEqual(toVector(decodeAll(bytes, oneByOne)[0]), v.frame, 'byte by byte');
    });
  }

  test('all valid vectors back to back, in one read and byte by byte', () => {
    const all = Buffer.concat(vectors.valid.map((v) => Buffer.from(v.hex, 'hex')));
    const expected = vectors.valid.map((v) => v.frame);
    assert.deepEqual(decodeAll(all, []).map(toVector), expected);
    const cuts = Array.from({ length: all.length }, (_, i) => i);
    assert.deepEqual(decodeAll(all, cuts).map(toVector), expected);
  });
});

describe('malformed vectors', () => {
  for (const v of vectors.malformed) {
    const bytes = Buffer.from(v.hex, 'hex');
    const expectError = (err) => {
      assert.ok(err instanceof ProtocolError, `expected ProtocolError, got ${err}`);
      assert.equal(err.code, v.code);
      assert.equal(err.name, v.error);
      assert.equal(ErrorCode[v.error], v.code);
      return true;
    };

    test(`reject ${v.name} with ${v.error}`, () => {
      const d = new FrameDecoder({ maxFrameBytes });
      assert.throws(() => d.push(bytes), expectError);
      // The decoder stays failed.
      assert.throws(() => d.push(Buffer.alloc(0)), expectError);
    });

    test(`reject ${v.name} fed byte by byte`, () => {
      const d = new FrameDecoder({ maxFrameBytes });
      let failedAt = -1;
      for (let i = 0; i < bytes.length; i++) {
        try {
          assert.deepEqual(d.push(bytes.subarray(i, i + 1)), []);
        } catch (err) {
          expectError(err);
          failedAt = i;
          break;
        }
      }
      assert.notEqual(failedAt, -1, 'no error raised');
      if (v.code === ErrorCode.FRAME_TOO_LARGE) {
        assert.equal(failedAt, 3, 'FRAME_TOO_LARGE must be raised once the 4 length bytes are in');
      }
    });
  }
});
