// Unit tests of the pure parts of podrelay/socket.io's connection state recovery
// (src/socket.io-recovery.js): stream id order, which packets are recoverable, the session
// and missed packets picked from log entries, and the bounded live log. The live tests are
// test/matrix/recovery.test.js.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as recovery from '../src/socket.io-recovery.js';

const { RecentLog, RecoveryMessageType, compareIds, durablePatternFor, isRecoverable, isStreamId, selectSession, shouldIncludePacket } = recovery;

const BROADCAST = 3;
const opts = (rooms = [], except = [], flags = {}) => ({ rooms, except, flags });
const bc = (id, rooms, except, n) => ({ id, message: { uid: 's', type: BROADCAST, data: { packet: { type: 2, data: ['ev', n] }, opts: opts(rooms, except) } } });
const session = (id, pid, rooms, expiresAt = Infinity) => ({
  id,
  message: { uid: 's', type: RecoveryMessageType.SESSION, data: { pid, sid: `sid-${pid}`, rooms, data: { u: 1 }, expiresAt } },
});
const restored = (id, pid) => ({ id, message: { uid: 's', type: RecoveryMessageType.SESSION_RESTORED, data: { pid } } });

test('stream ids: recognised, and ordered numerically, ms first', () => {
  assert.ok(isStreamId('0-0'));
  assert.ok(isStreamId('1700000000000-12'));
  for (const bad of ['', '1', '1-', '-1', 'a-1', '1-1-1', ' 1-1', 1, null, undefined, `${'9'.repeat(21)}-0`]) assert.equal(isStreamId(bad), false, String(bad));
  assert.equal(compareIds('10-0', '9-5'), 1);
  assert.equal(compareIds('9-5', '10-0'), -1);
  assert.equal(compareIds('5-10', '5-9'), 1);
  assert.equal(compareIds('5-9', '5-9'), 0);
  assert.equal(compareIds('18446744073709551615-0', '18446744073709551614-99'), 1, 'beyond 2^53');
});

test('recoverable: events without ack, not volatile, not local', () => {
  const ev = { type: 2, data: ['x'] };
  assert.equal(isRecoverable(ev, { flags: {} }), true);
  assert.equal(isRecoverable(ev, {}), true);
  assert.equal(isRecoverable({ ...ev, id: 3 }, { flags: {} }), false);
  assert.equal(isRecoverable(ev, { flags: { volatile: true } }), false);
  assert.equal(isRecoverable(ev, { flags: { local: true } }), false);
  assert.equal(isRecoverable({ type: 3, data: [] }, { flags: {} }), false);
});

test('the --durable pattern for a key, glob characters escaped', () => {
  assert.equal(durablePatternFor('socket.io'), 'socket.io#recovery#*');
  assert.equal(durablePatternFor('a*b?[c]'), 'a\\*b\\?\\[c\\]#recovery#*');
});

test('shouldIncludePacket: rooms, except', () => {
  assert.equal(shouldIncludePacket(['sid', 'r1'], opts()), true);
  assert.equal(shouldIncludePacket(['sid', 'r1'], opts(['r1'])), true);
  assert.equal(shouldIncludePacket(['sid', 'r1'], opts(['r2'])), false);
  assert.equal(shouldIncludePacket(['sid', 'r1'], opts([], ['r1'])), false);
  assert.equal(shouldIncludePacket(['sid', 'r1'], opts(['r1'], ['sid'])), false);
});

test('selectSession: the missed packets of the session rooms, before and after the session entry, with offsets', () => {
  const entries = [
    bc('1-0', [], [], 1), // in flight when the transport died
    bc('2-0', ['r2'], [], 2),
    session('3-0', 'p', ['sid-p', 'r1']),
    bc('4-0', ['r1'], [], 4),
    bc('5-0', [], ['r1'], 5),
    bc('6-0', ['sid-p'], [], 6),
    session('7-0', 'q', ['sid-q']),
  ];
  const s = selectSession(entries, 'p', 0);
  assert.deepEqual(s, {
    sid: 'sid-p',
    pid: 'p',
    rooms: ['sid-p', 'r1'],
    data: { u: 1 },
    missedPackets: [
      ['ev', 1, '1-0'],
      ['ev', 4, '4-0'],
      ['ev', 6, '6-0'],
    ],
  });
  assert.deepEqual(entries[0].message.data.packet.data, ['ev', 1], 'entries are not changed');
});

test('selectSession: unknown, expired, already restored; the last session of a pid wins', () => {
  assert.equal(selectSession([bc('1-0', [], [], 1)], 'p', 0), null);
  assert.equal(selectSession([session('1-0', 'p', ['a'], 100)], 'p', 101), null);
  assert.notEqual(selectSession([session('1-0', 'p', ['a'], 100)], 'p', 100), null);
  assert.equal(selectSession([session('1-0', 'p', ['a']), restored('2-0', 'p')], 'p', 0), null);
  const again = selectSession([session('1-0', 'p', ['a']), restored('2-0', 'p'), session('3-0', 'p', ['b'])], 'p', 0);
  assert.deepEqual(again.rooms, ['b']);
  assert.equal(selectSession([{ id: '1-0', message: { type: RecoveryMessageType.SESSION, data: { pid: 'p', sid: 1, rooms: [], expiresAt: Infinity } } }], 'p', 0), null, 'malformed');
});

test('RecentLog: entries after an id; null once that part was dropped (count or age)', () => {
  const log = new RecentLog(3, 1000);
  for (let i = 1; i <= 3; i++) log.push(`${i}-0`, Buffer.from([i]), 0);
  assert.deepEqual(log.after('1-0').map((e) => e.id), ['2-0', '3-0']);
  assert.deepEqual(log.after('0-0').map((e) => e.id), ['1-0', '2-0', '3-0']);
  log.push('4-0', Buffer.from([4]), 0); // drops 1-0
  assert.equal(log.after('0-0'), null);
  assert.deepEqual(log.after('1-0').map((e) => e.id), ['2-0', '3-0', '4-0']);
  log.push('5-0', Buffer.from([5]), 2000); // the others are too old now
  assert.equal(log.after('3-0'), null);
  assert.deepEqual(log.after('4-0').map((e) => e.id), ['5-0']);
  assert.deepEqual(log.after('5-0'), []);
  const big = new RecentLog(10, 1e9);
  for (let i = 1; i <= 5000; i++) big.push(`${i}-0`, Buffer.alloc(0), 0);
  assert.deepEqual(big.after('4990-0').map((e) => e.id), ['4991-0', '4992-0', '4993-0', '4994-0', '4995-0', '4996-0', '4997-0', '4998-0', '4999-0', '5000-0']);
  assert.equal(big.after('4989-0'), null);
});
