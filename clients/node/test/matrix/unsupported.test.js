// For an install whose socket.io-adapter predates the cluster adapter (package.json
// "podrelayMatrix": { "expect": "unsupported" }): createAdapter() must refuse at once, naming
// the version found and the reason, instead of running deaf. Run by run.mjs like
// behaviour.test.js.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';

const INSTALL = process.env.MATRIX_INSTALL;
const found = JSON.parse(readFileSync(join(INSTALL, 'node_modules', 'socket.io-adapter', 'package.json'), 'utf8')).version;

test(`createAdapter() refuses socket.io-adapter ${found} and says why`, async () => {
  const mod = process.env.PODRELAY_ADAPTER_MODULE ? pathToFileURL(process.env.PODRELAY_ADAPTER_MODULE).href : '../../src/socket.io.js';
  const { createAdapter } = await import(mod); // loading the module must not throw
  assert.throws(
    () => createAdapter({ address: '127.0.0.1:1' }),
    (err) => err.message.includes(`socket.io-adapter ${found} is installed`) && err.message.includes('>= 2.5.3'),
  );
});
