// The install commands README.md gives, run as an app would: clients/node installed into an
// app pinned to socket.io-adapter 2.5.2 (a copy of test/versions/adapter-2.5.2, whose
// packages `npm ci` put there; nothing is fetched) must load the app's socket.io-adapter, so
// createAdapter() refuses with the version it found there. A plain `npm install <folder>`
// links the folder instead, and Node then resolves socket.io-adapter from this repository,
// not from the app (found by a tester following the README: the version check was
// bypassed, and on a fresh clone the import failed).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';

const clientDir = fileURLToPath(new URL('../', import.meta.url));
const appTemplate = join(clientDir, 'test', 'versions', 'adapter-2.5.2');

function skipReason() {
  if (!existsSync(join(appTemplate, 'node_modules', 'socket.io-adapter'))) {
    return `${appTemplate}/node_modules missing (npm ci there; scripts/install-deps.sh does it)`;
  }
  if (spawnSync('npm', ['--version']).status !== 0) return 'npm not runnable';
  return false;
}
const skip = skipReason();
if (skip && process.env.PODRELAY_REQUIRE_LIVE === '1') {
  throw new Error(`install tests required but cannot run: ${skip}`);
}

const CHECK = `
import { Server } from 'socket.io';
import { createAdapter } from 'podrelay/socket.io';
const io = new Server();
try {
  io.adapter(createAdapter({ address: '127.0.0.1:1' }));
  console.log(JSON.stringify({ threw: false }));
} catch (e) {
  console.log(JSON.stringify({ threw: true, message: e.message }));
}
process.exit(0);
`;

function npm(cwd, args) {
  const r = spawnSync('npm', [...args, '--offline', '--no-audit', '--no-fund'], { cwd, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `npm ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

describe('installing clients/node as README.md says', { skip }, () => {
  const dirs = [];
  after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

  function app() {
    const dir = mkdtempSync(join(tmpdir(), 'podrelay-install-'));
    dirs.push(dir);
    for (const f of ['package.json', 'package-lock.json']) cpSync(join(appTemplate, f), join(dir, f));
    cpSync(join(appTemplate, 'node_modules'), join(dir, 'node_modules'), { recursive: true, verbatimSymlinks: true });
    writeFileSync(join(dir, 'check.mjs'), CHECK);
    return dir;
  }

  function check(dir) {
    const installed = join(dir, 'node_modules', 'podrelay');
    assert.ok(lstatSync(installed).isDirectory() && !lstatSync(installed).isSymbolicLink(),
      'podrelay is copied into the app, not linked to the repository');
    const r = spawnSync(process.execPath, ['check.mjs'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop());
    assert.equal(out.threw, true, 'createAdapter() must refuse the app\'s socket.io-adapter 2.5.2');
    assert.match(out.message, /socket\.io-adapter 2\.5\.2 is installed/);
    assert.ok(out.message.includes(join(dir, 'node_modules', 'socket.io-adapter')),
      `the version found must be the app's own: ${out.message}`);
  }

  test('npm install --install-links <clients/node>', () => {
    const dir = app();
    npm(dir, ['install', '--no-save', '--install-links', clientDir]);
    check(dir);
  });

  test('npm pack, then npm install <tarball>', () => {
    const dir = app();
    npm(clientDir, ['pack', '--pack-destination', dir]);
    const [tarball] = readdirSync(dir).filter((f) => /^podrelay-.*\.tgz$/.test(f));
    assert.ok(tarball, 'npm pack wrote a tarball');
    npm(dir, ['install', '--no-save', `./${tarball}`]);
    check(dir);
  });
});
