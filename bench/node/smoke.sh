#!/usr/bin/env bash
# Smoke test of the Node benchmark: a --quick run (a few seconds) must exit 0 and write
# JSON holding both sections, each with its rows, every variant's runs (socketio: baseline,
# podrelay and resp = redis-adapter via the sidecars' RESP front end), the Socket.IO rows that
# issue 13 sets goals for (latency at 1000/s and 2000/s, burst, CPU at each rate and
# saturated), each with a ratio, and no errors.
# No timing assertions: the figures of a quick run mean nothing.
# Usage: bench/node/smoke.sh   (needs build/bin/podrelay or $PODRELAY_BIN, and redis-server)
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi
json=$(mktemp /tmp/podrelay-bench-node-smoke.XXXXXX)
trap 'rm -f "$json"' EXIT
timeout 180 node run.mjs --quick --variants baseline,podrelay,resp,proxy --json "$json" >/dev/null
node - "$json" <<'JS'
const fs = require('node:fs');
const doc = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const fail = (msg) => {
  console.error(`smoke: ${msg}`);
  process.exit(1);
};
const want = ['socketio', 'direct'];
const sections = doc.sections || {};
const missing = want.filter((s) => !(s in sections));
if (missing.length) fail(`sections missing from JSON: ${missing.join(', ')}`);
for (const name of want) {
  const s = sections[name];
  if (!Array.isArray(s.rows) || s.rows.length === 0) fail(`section ${name} has no rows`);
  if (s.errors && s.errors.length) fail(`section ${name} reported errors: ${s.errors.join('; ')}`);
  for (const row of s.rows) {
    for (const key of ['metric', 'unit', 'better', 'baseline', 'podrelay', 'ratio']) {
      if (!(key in row)) fail(`${name} row lacks ${key}: ${JSON.stringify(row)}`);
    }
    if (typeof row.podrelay !== 'number') fail(`${name} row without a podrelay figure: ${row.metric}`);
    if (typeof row.baseline !== 'number' && !row.metric.startsWith('sidecar')) fail(`${name} row without a baseline figure: ${row.metric}`);
  }
  // The rows issue 13 item 4 sets goals for, each marked as such and with a ratio.
  if (name === 'socketio') {
    const goals = s.rows.filter((r) => r.goal).map((r) => r.metric);
    const want = [
      'latency p50 @ 1000/s', 'latency p99 @ 1000/s', 'latency p50 @ 2000/s', 'latency p99 @ 2000/s',
      'servers + sidecars + redis CPU @ 1000/s', 'servers + sidecars + redis CPU @ 2000/s',
      'servers + sidecars + redis CPU (saturated)',
    ];
    for (const m of want) if (!goals.includes(m)) fail(`socketio: goal row '${m}' missing (have: ${goals.join('; ')})`);
    if (!goals.some((m) => m.startsWith('cross-server throughput (burst'))) fail('socketio: burst throughput goal row missing');
    for (const r of s.rows.filter((x) => x.goal)) if (typeof r.ratio !== 'number') fail(`socketio goal row without a ratio: ${r.metric}`);
    const rates = new Set(s.reps.podrelay.lat.map((r) => r.rate));
    if (!rates.has(1000) || !rates.has(2000)) fail('socketio: latency runs at 1000/s and 2000/s missing');
  }
  // socketio also runs @socket.io/redis-adapter via the sidecars' RESP front end ('resp')
  // and through TCP proxies ('proxy')
  const variants = name === 'socketio' ? ['baseline', 'podrelay', 'resp', 'proxy'] : ['baseline', 'podrelay'];
  if (name === 'socketio') {
    for (const row of s.rows) {
      if (!('resp' in row) || !('respRatio' in row)) fail(`${name} row lacks resp/respRatio: ${row.metric}`);
      if (typeof row.resp !== 'number') fail(`${name} row without a redis-adapter via RESP figure: ${row.metric}`);
      if (typeof row.proxy !== 'number' && !row.metric.startsWith('sidecar')) fail(`${name} row without a TCP-proxy figure: ${row.metric}`);
    }
  }
  for (const variant of variants) {
    const reps = s.reps && s.reps[variant];
    if (!reps || !reps.tput.length || !reps.lat.length) fail(`${name}: no ${variant} runs`);
    for (const r of [...reps.tput, ...reps.lat]) {
      if (r.incomplete) fail(`${name} ${variant} run incomplete: ${r.incomplete}`);
    }
    if (!reps.lat.every((r) => r.lat && r.lat.count > 0)) fail(`${name} ${variant}: latency runs without samples`);
  }
}
if (doc.ok !== true) fail('run.mjs reported ok=false');
console.log(`smoke: ok (${want.map((n) => `${n}: ${sections[n].rows.length} rows`).join(', ')})`);
JS
