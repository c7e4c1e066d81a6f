#!/usr/bin/env node
// Summarises V8 .cpuprofile files (from `run.mjs --cpu-prof DIR`): self time by source
// (package / podrelay file / Node internals / GC) and the top functions by self time.
//
//   node cpuprof-top.mjs [--top N] FILE.cpuprofile...

import { readFileSync } from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
let top = 25;
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--top') top = Number(args[++i]);
  else files.push(args[i]);
}
if (files.length === 0) {
  console.error('usage: node cpuprof-top.mjs [--top N] FILE.cpuprofile...');
  process.exit(2);
}

function sourceOf(url, fn) {
  if (!url) {
    if (fn === '(garbage collector)') return '(gc)';
    if (fn === '(idle)' || fn === '(program)' || fn === '(root)') return fn;
    return '(native)';
  }
  if (url.startsWith('node:')) return 'node internals';
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = u.slice(nm + 14).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  const m = /clients\/node\/src\/(.+)$/.exec(u);
  if (m) return `podrelay ${m[1]}`;
  return path.basename(u);
}

for (const file of files) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  // Self time per node from the samples and their time deltas (µs).
  const self = new Map();
  for (let i = 0; i < prof.samples.length; i++) {
    const id = prof.samples[i];
    self.set(id, (self.get(id) || 0) + (prof.timeDeltas[i] || 0));
  }
  let total = 0;
  let idle = 0;
  const bySource = new Map();
  const byFn = new Map();
  for (const [id, us] of self) {
    const n = byId.get(id);
    const { functionName, url, lineNumber } = n.callFrame;
    const fn = functionName || '(anonymous)';
    total += us;
    if (fn === '(idle)') {
      idle += us;
      continue;
    }
    const src = sourceOf(url, fn);
    bySource.set(src, (bySource.get(src) || 0) + us);
    const key = `${fn}  ${url ? `${src}:${lineNumber + 1}` : src}`;
    byFn.set(key, (byFn.get(key) || 0) + us);
  }
  const busy = total - idle;
  const pct = (us) => `${((100 * us) / busy).toFixed(1).padStart(5)}% ${(us / 1000).toFixed(0).padStart(6)} ms`;
  console.log(`\n=== ${path.basename(file)}: ${(busy / 1000).toFixed(0)} ms busy of ${(total / 1000).toFixed(0)} ms sampled`);
  console.log('-- self time by source');
  for (const [src, us] of [...bySource].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`${pct(us)}  ${src}`);
  console.log(`-- top ${top} functions by self time`);
  for (const [k, us] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${k}`);
}
