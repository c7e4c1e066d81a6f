// End-to-end: real browsers on three pods. A message typed on pod A (Node, WebSocket) must
// appear on pod B (Node, WebSocket) and on the Python pod (SSE), which only works through
// the pods' podrelay sidecars and Redis. Saves artifacts/chat-cross-pod.png at the repo root.
//
// Chromium: Debian's /usr/bin/chromium (apt-get install chromium), or $CHROMIUM_PATH.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { chromium } from 'playwright-core';
import { REPO_ROOT, startTopology } from '../lib/topology.mjs';

const EXECUTABLE = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const WAIT = 15_000;
const ARTIFACTS = path.join(REPO_ROOT, 'artifacts');
const SCREENSHOT = path.join(ARTIFACTS, 'chat-cross-pod.png');

let topo;
let browser;

before(async () => {
  topo = await startTopology();
  browser = await chromium.launch({
    executablePath: EXECUTABLE,
    headless: true,
    timeout: 30_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (topo) await topo.stop();
});

async function openPod(context, pod) {
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  await page.goto(pod.url, { timeout: WAIT });
  await page.locator('#pod', { hasText: pod.name }).waitFor();
  await page.locator('#status.connected').waitFor();
  return page;
}

test('a message sent on pod A appears on pod B and on the Python pod', { timeout: 90_000 }, async (t) => {
  const context = await browser.newContext({ viewport: { width: 520, height: 640 } });
  t.after(() => context.close().catch(() => {}));
  const { a, b, py } = topo.pods;
  const pageA = await openPod(context, a);
  const pageB = await openPod(context, b);
  const pagePy = await openPod(context, py);
  assert.equal(await pageA.locator('#transport').textContent(), 'websocket');
  assert.equal(await pagePy.locator('#transport').textContent(), 'sse');

  const text = `hello across pods ${randomUUID().slice(0, 8)}`;
  await pageA.fill('#nick', 'ann');
  await pageA.fill('#text', text);
  await pageA.click('#send');

  for (const [page, pod] of [[pageA, a], [pageB, b], [pagePy, py]]) {
    const item = page.locator('#messages li.msg', { hasText: text });
    await item.waitFor({ timeout: WAIT });
    // the message says which pod it was sent on: A, even when shown by B or the Python pod
    assert.match(await item.textContent(), new RegExp(`\\[via ${a.name}\\]\\s*ann:\\s*${text}`),
      `message on ${pod.name}`);
  }

  // and back: the Python pod (POST /send) reaches the Node pods
  const reply = `reply from python ${randomUUID().slice(0, 8)}`;
  await pagePy.fill('#nick', 'bob');
  await pagePy.fill('#text', reply);
  await pagePy.click('#send');
  for (const page of [pageA, pageB]) {
    await page.locator('#messages li.msg', { hasText: reply }).waitFor({ timeout: WAIT });
  }

  // One picture of the three pods side by side (each pod replays its recent history).
  mkdirSync(ARTIFACTS, { recursive: true });
  const shot = await browser.newPage({ viewport: { width: 1560, height: 560 } });
  t.after(() => shot.close().catch(() => {}));
  const frames = [a, b, py].map((p) =>
    `<figure><figcaption>${p.name}: ${p.url}</figcaption><iframe src="${p.url}"></iframe></figure>`).join('');
  await shot.setContent(`<!doctype html><style>
      body{margin:0;display:flex;gap:8px;padding:8px;background:#d1d5db;font:13px system-ui}
      figure{margin:0;flex:1;display:flex;flex-direction:column}
      iframe{border:1px solid #9ca3af;height:500px;width:100%;background:#fff}
    </style>${frames}`);
  for (let i = 0; i < 3; i++) {
    const frame = shot.frameLocator('iframe').nth(i);
    await frame.locator('#messages li.msg', { hasText: reply }).waitFor({ timeout: WAIT });
  }
  await shot.screenshot({ path: SCREENSHOT });
  console.log(`screenshot: ${SCREENSHOT}`);
});
