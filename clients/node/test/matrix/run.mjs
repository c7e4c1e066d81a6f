#!/usr/bin/env node
// The Socket.IO version matrix: for every install under test/versions/ (one socket.io
// version each, with its own committed lockfile), runs behaviour.test.js with podrelay and,
// where the install has @socket.io/redis-adapter, with it as the control, and
// recovery.test.js (connection state recovery) with podrelay; installs marked
// "podrelayMatrix": { "expect": "unsupported" } run unsupported.test.js instead.
//
//   node test/matrix/run.mjs [name-filter]      (PODRELAY_BIN, PODRELAY_REQUIRE_LIVE as usual)
//
// Two runs at a time, each killed after RUN_LIMIT_MS. Prints one line per run and a table;
// exits non-zero when any run failed.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const versionsDir = join(here, '..', 'versions');
const RUN_LIMIT_MS = 180_000;
const PARALLEL = Number(process.env.MATRIX_PARALLEL || 2);
const filter = process.argv[2] || '';

const runs = [];
for (const name of readdirSync(versionsDir).sort()) {
  const dir = join(versionsDir, name);
  if (!name.includes(filter) || !existsSync(join(dir, 'package.json'))) continue;
  if (!existsSync(join(dir, 'node_modules'))) {
    console.error(`matrix: ${name} is not installed: run \`npm ci\` in ${dir} (scripts/install-deps.sh does)`);
    process.exit(1);
  }
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  if (pkg.podrelayMatrix?.expect === 'unsupported') {
    runs.push({ name, dir, kind: 'podrelay', file: 'unsupported.test.js' });
    continue;
  }
  runs.push({ name, dir, kind: 'podrelay', file: 'behaviour.test.js' });
  // Connection state recovery across servers: podrelay only (redis-adapter cannot recover
  // on another server, so it is no control here).
  runs.push({ name, dir, kind: 'podrelay-recovery', file: 'recovery.test.js' });
  if (existsSync(join(dir, 'node_modules', '@socket.io', 'redis-adapter'))) runs.push({ name, dir, kind: 'redis-adapter', file: 'behaviour.test.js' });
}

function execute(run) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, ['--import', './register.mjs', '--test', '--test-reporter=spec', run.file], {
      cwd: here,
      env: { ...process.env, MATRIX_INSTALL: run.dir, MATRIX_ADAPTER: run.kind, FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => {
      out += `\nmatrix: killed after ${RUN_LIMIT_MS} ms\n`;
      child.kill('SIGKILL');
    }, RUN_LIMIT_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      const stat = (k) => Number((out.match(new RegExp(`ℹ ${k} (\\d+)`)) || [])[1] || 0);
      Object.assign(run, { code, out, seconds: (Date.now() - t0) / 1000, pass: stat('pass'), fail: stat('fail'), skipped: stat('skipped') });
      console.log(`matrix: ${run.code === 0 ? 'ok  ' : 'FAIL'} ${run.name} ${run.kind}: ${run.pass} passed, ${run.fail} failed, ${run.skipped} skipped (${run.seconds.toFixed(1)} s)`);
      if (run.code !== 0) console.log(out);
      resolve();
    });
  });
}

const t0 = Date.now();
const queue = [...runs];
await Promise.all(
  Array.from({ length: Math.min(PARALLEL, queue.length) }, async () => {
    while (queue.length) await execute(queue.shift());
  }),
);
const failed = runs.filter((r) => r.code !== 0);
console.log(`\nmatrix: ${runs.length} runs, ${failed.length} failed, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
console.log('| install | socket.io | socket.io-adapter | adapter | passed | failed | skipped |');
console.log('|---|---|---|---|---|---|---|');
for (const r of runs) {
  const v = (p) => JSON.parse(readFileSync(join(r.dir, 'node_modules', p, 'package.json'), 'utf8')).version;
  console.log(`| ${r.name} | ${v('socket.io')} | ${v('socket.io-adapter')} | ${r.kind} | ${r.pass} | ${r.fail} | ${r.skipped} |`);
}
process.exit(failed.length || runs.length === 0 ? 1 : 0);
