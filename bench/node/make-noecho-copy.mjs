#!/usr/bin/env node
// Measurement aid, not a feature: writes a copy of clients/node/src into DIR in which a
// Socket.IO server whose podrelay clientName ends with '-s1' (run.mjs's sender, server 1)
// does not subscribe its namespace channel, so its own broadcasts are not delivered back to
// it. Correct only in run.mjs's topology, where server 1 never needs to receive anything on
// that channel. Run it as the `ref` variant to measure what the echo of a server's own
// broadcasts costs (BENCHMARKS.md, Node):
//
//   node make-noecho-copy.mjs /tmp/noecho && node run.mjs --only socketio --ref-client-src /tmp/noecho

import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node make-noecho-copy.mjs DIR');
  process.exit(2);
}
const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../clients/node/src');
cpSync(src, dir, { recursive: true });
const file = path.join(dir, 'socket.io.js');
const text = readFileSync(file, 'utf8');
const anchor = 'this.client.subscribe(this.channel, this._onNamespaceMessage),';
if (text.split(anchor).length !== 2) {
  console.error(`make-noecho-copy: '${anchor}' not found exactly once in ${file}; update this script`);
  process.exit(1);
}
const patched = text.replace(
  anchor,
  "String(this._shared.opts.connectOptions?.clientName || '').endsWith('-s1') ? Promise.resolve() : " + anchor,
);
writeFileSync(file, patched);
console.log(`make-noecho-copy: ${dir} (server 1 does not subscribe its namespace channel)`);
