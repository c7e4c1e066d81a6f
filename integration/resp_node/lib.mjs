// Process harness for the Node peer tests: a real redis-server and, for the sidecar
// variants, three real podrelay daemons, each with a RESP port (--resp-listen). Every wait
// is bounded, every child is killed in close(), ports are picked at run time on 127.0.0.1.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import http from "node:http";
import { fileURLToPath } from "node:url";
import { loopbackPort } from "../../clients/node/test/matrix/harness.js";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, "..", "..");
const buildDir = process.env.PODRELAY_BUILD_DIR || path.join(repoRoot, "build");
export const podrelayBin = process.env.PODRELAY_BIN || path.join(buildDir, "bin", "podrelay");
export const redisServerBin = process.env.REDIS_SERVER_BIN || "redis-server";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll `pred` (sync or async) until truthy; throws after `timeoutMs`. */
export async function waitFor(pred, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await pred();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` +
        (last ? ` (last error: ${last.message})` : ""));
    }
    await sleep(50);
  }
}

// Below the ephemeral range, never twice, checked bindable: the client matrix's rule (a
// bind(0) port can be taken by any outgoing connection's source port before the child binds).
export const freePort = loopbackPort;

/**
 * Whether the daemon has a RESP front end: `podrelay --help` lists --resp-listen.
 * Returns null when it does, else the reason the sidecar variants are skipped. A missing
 * or broken binary is not a reason to skip: it throws, and the sidecar variants fail.
 */
export function respSkipReason() {
  const r = spawnSync(podrelayBin, ["--help"], { encoding: "utf8", timeout: 10000 });
  if (r.error) throw new Error(`cannot run ${podrelayBin} --help: ${r.error.message}`);
  if ((r.stdout + r.stderr).includes("--resp-listen")) return null;
  return `${podrelayBin} --help does not list --resp-listen (daemon without the RESP front end)`;
}

/** One RESP command on a fresh connection; resolves with the raw reply text. */
export function respCommand(port, args, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1");
    let data = "";
    const timer = setTimeout(() => { s.destroy(); reject(new Error("RESP command timed out")); },
      timeoutMs);
    s.on("connect", () => {
      s.write(`*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`)
        .join(""));
    });
    s.on("data", (d) => {
      data += d.toString("latin1");
      if (respComplete(data)) { clearTimeout(timer); s.end(); resolve(data); }
    });
    s.on("error", (e) => { clearTimeout(timer); reject(e); });
  });
}

function respComplete(data) {
  let pos = 0;
  const parse = () => {
    const end = data.indexOf("\r\n", pos);
    if (end < 0) throw new RangeError();
    const t = data[pos];
    const rest = data.slice(pos + 1, end);
    pos = end + 2;
    if (t === "*") { for (let i = 0; i < Number(rest); i++) parse(); return; }
    if (t === "$") {
      const n = Number(rest);
      if (n < 0) return;
      if (data.length < pos + n + 2) throw new RangeError();
      pos += n + 2;
    }
  };
  try { parse(); return pos === data.length; } catch { return false; }
}

/** The integers of a `PUBSUB NUMSUB ch...` / `PUBSUB NUMPAT` reply. */
export const respIntegers = (reply) =>
  [...reply.matchAll(/^:(-?\d+)\r$/gm)].map((m) => Number(m[1]));

export class Env {
  constructor(name) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `podrelay-resp-node-${name}-`));
    this.children = [];
  }

  spawn(name, argv) {
    const log = fs.openSync(path.join(this.dir, `${name}.log`), "a");
    fs.writeSync(log, `=== start: ${argv.join(" ")}\n`);
    const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", log, log] });
    fs.closeSync(log);
    child.exitInfo = null;
    child.on("exit", (code, sig) => { child.exitInfo = { code, sig }; });
    child.procName = name;
    this.children.push(child);
    return child;
  }

  alive(child, what) {
    if (child.exitInfo) {
      throw new Error(`${what} exited (${JSON.stringify(child.exitInfo)}): ` +
        this.logTail(child.procName));
    }
  }

  logTail(name, bytes = 4000) {
    try {
      const t = fs.readFileSync(path.join(this.dir, `${name}.log`), "utf8");
      return t.slice(-bytes);
    } catch { return ""; }
  }

  dumpLogs() {
    for (const f of fs.readdirSync(this.dir).sort()) {
      process.stderr.write(`--- ${f} ---\n${this.logTail(f.replace(/\.log$/, ""), 20000)}\n`);
    }
  }

  async startRedis() {
    const port = await freePort();
    const dir = path.join(this.dir, "redis");
    fs.mkdirSync(dir);
    const child = this.spawn("redis", [redisServerBin, "--port", String(port), "--bind",
      "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir]);
    await waitFor(async () => {
      this.alive(child, "redis-server");
      return (await respCommand(port, ["PING"], 1000)).startsWith("+PONG");
    }, 10000, `redis-server on ${port}`);
    return { port, child, url: `redis://127.0.0.1:${port}` };
  }

  /** A podrelay daemon with a RESP port (RESP channel prefix: the daemon's default, empty). */
  async startSidecar(name, redisUrl) {
    const [port, admin, resp] = [await freePort(), await freePort(), await freePort()];
    const child = this.spawn(name, [podrelayBin, "--listen", `127.0.0.1:${port}`,
      "--admin-listen", `127.0.0.1:${admin}`, "--redis", redisUrl,
      "--resp-listen", `127.0.0.1:${resp}`, "--log-level", "debug"]);
    await waitFor(async () => {
      this.alive(child, name);
      return (await httpStatus(admin, "/readyz")) === 200;
    }, 10000, `${name} /readyz == 200`);
    await waitFor(async () => (await respCommand(resp, ["PING"], 1000)).startsWith("+PONG"),
      10000, `${name} RESP port ${resp} to answer PING`);
    return { name, port, admin, respPort: resp, child, url: `redis://127.0.0.1:${resp}` };
  }

  async close() {
    for (const c of this.children.slice().reverse()) {
      if (c.exitInfo) continue;
      c.kill("SIGTERM");
      const done = await Promise.race([new Promise((r) => c.once("exit", () => r(true))),
        sleep(3000).then(() => false)]);
      if (!done && !c.exitInfo) c.kill("SIGKILL");
    }
    if (process.env.PODRELAY_KEEP_LOGS !== "1") fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function httpStatus(port, p) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: p, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}
