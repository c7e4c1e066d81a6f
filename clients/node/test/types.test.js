// The TypeScript declarations against what a strict TypeScript app does (test/types/usage.ts,
// the README's usage, with socket.io's own types): compiled with tsc, never run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = fileURLToPath(new URL('.', import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

test('the declarations compile what the README shows, under --strict', () => {
  const r = spawnSync(process.execPath, [tsc, '-p', `${here}types/tsconfig.json`], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(r.error, undefined, String(r.error));
  assert.equal(r.status, 0, `tsc failed:\n${r.stdout}${r.stderr}`);
});
