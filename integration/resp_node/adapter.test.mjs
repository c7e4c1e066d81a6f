// socket.io 4.8 + @socket.io/redis-adapter, unmodified, set up exactly as the adapter's
// README shows (with ioredis, and with node-redis), across three servers.
//
// Each suite runs twice: "direct" (the three servers on one real redis-server: the
// control that proves the test) and "sidecar" (three podrelay pods on that Redis, each
// server talking only to its own pod's RESP port). The sidecar variants are skipped only
// when `podrelay --help` does not list --resp-listen, with the reason printed.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";

import { Server } from "socket.io";
import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import { createClient } from "redis";
import { io as ioc } from "socket.io-client";

import { Env, freePort, respCommand, respIntegers, respSkipReason, sleep, waitFor } from "./lib.mjs";

const skipReason = respSkipReason();
if (skipReason) process.stdout.write(`# sidecar variants skipped: ${skipReason}\n`);

// The README's two setups; `url` is the app's only setting.
const adapters = {
  async ioredis(url) {
    const pubClient = new Redis(url);
    const subClient = pubClient.duplicate();
    return { adapter: createAdapter(pubClient, subClient),
      close: () => { pubClient.disconnect(); subClient.disconnect(); } };
  },
  async "node-redis"(url) {
    const pubClient = createClient({ url });
    const subClient = pubClient.duplicate();
    await Promise.all([pubClient.connect(), subClient.connect()]);
    return { adapter: createAdapter(pubClient, subClient),
      close: async () => { await Promise.allSettled([pubClient.quit(), subClient.quit()]); } };
  },
};

/** Next event `ev` on socket `s`, or reject after `ms`. */
const nextEvent = (s, ev, ms = 5000) => new Promise((resolve, reject) => {
  const t = setTimeout(() => { s.off(ev, h); reject(new Error(`no '${ev}' within ${ms} ms`)); }, ms);
  const h = (...args) => { clearTimeout(t); resolve(args); };
  s.once(ev, h);
});

/** Resolves with every payload of `ev` that `s` receives within `ms`. */
const collect = (s, ev, ms) => new Promise((resolve) => {
  const got = [];
  const h = (x) => got.push(x);
  s.on(ev, h);
  setTimeout(() => { s.off(ev, h); resolve(got); }, ms);
});

/** A Socket.IO server on `adapter` at a free loopback port, as the tests' apps set it up. */
async function startServer(adapter, id, close) {
  const io = new Server({ adapter });
  const port = await freePort();
  const httpServer = createServer();
  io.attach(httpServer);
  await new Promise((r) => httpServer.listen(port, "127.0.0.1", r));
  io.on("connection", (socket) => {
    const room = socket.handshake.query.room;
    if (room) socket.join(room);
    socket.data.name = socket.handshake.query.name;
  });
  io.on("hello", (arg, cb) => { if (typeof cb === "function") cb(`${id}:${arg}`); });
  return { io, httpServer, port, close };
}

/** Connects each [name, server index, room] of `plan` into `clients`. */
async function connectClients(plan, servers, clients) {
  for (const [name, si, room] of plan) {
    const s = ioc(`http://127.0.0.1:${servers[si].port}`,
      { transports: ["websocket"], query: { room, name }, reconnection: false });
    clients[name] = s;
    await nextEvent(s, "connect", 10000);
  }
}

/** Registers the suite's cleanup; returns its test function (logs dumped on a failure). */
function suiteTests(env, servers, clients) {
  let failed = false;
  after(async () => {
    for (const s of Object.values(clients)) s.disconnect();
    for (const s of servers) {
      s.io.close();
      await s.close();
    }
    if (failed) env.dumpLogs();
    await env.close();
  });
  return (name, fn) => test(name, { timeout: 30000 }, async () => {
    try { await fn(); } catch (e) { failed = true; throw e; }
  });
}

for (const lib of Object.keys(adapters)) {
  for (const target of ["direct", "sidecar"]) {
    const skip = target === "sidecar" && skipReason ? skipReason : false;
    describe(`redis-adapter with ${lib}, ${target}`, { skip, timeout: 120000 }, () => {
      const env = new Env(`${lib}-${target}`);
      const servers = []; // { io, http, port, closeAdapter }
      const clients = {}; // name -> socket.io-client socket
      let redis;

      before(async () => {
        redis = await env.startRedis();
        const urls = [];
        for (let i = 1; i <= 3; i++) {
          urls.push(target === "direct" ? redis.url
            : (await env.startSidecar(`pod${i}`, redis.url)).url);
        }
        for (let i = 0; i < 3; i++) {
          const a = await adapters[lib](urls[i]);
          servers.push(await startServer(a.adapter, `s${i + 1}`, a.close));
        }
        // s1: c1; s2: c2 (room blue); s3: c3 (room blue), c4
        await connectClients([["c1", 0, ""], ["c2", 1, "blue"], ["c3", 2, "blue"],
          ["c4", 2, ""]], servers, clients);
        // The harness (not the apps) checks on Redis itself that all three servers'
        // subscriptions are in: one per server (direct) or one per pod (sidecar).
        let last = [];
        await waitFor(async () => {
          // NUMPAT counts distinct patterns: count the connections holding a pattern
          const list = await respCommand(redis.port, ["CLIENT", "LIST"]);
          const numpat = [...list.matchAll(/ psub=([1-9]\d*) /g)].length;
          const [req, res] = respIntegers(await respCommand(redis.port,
            ["PUBSUB", "NUMSUB", "socket.io-request#/#", "socket.io-response#/#"]));
          last = [numpat, req, res];
          return numpat === 3 && req === 3 && res === 3;
        }, 15000, "3 servers' adapter subscriptions on Redis (connections with a " +
          "pattern, NUMSUB request, " +
          "NUMSUB response)").catch((e) => { throw new Error(`${e.message}; last ${last}`); });
      });

      const t = suiteTests(env, servers, clients);

      t("serverCount sees 3 servers from each server", async () => {
        for (const s of servers) {
          assert.equal(await s.io.of("/").adapter.serverCount(), 3);
        }
      });

      t("broadcast from server 1 reaches every client of every server once", async () => {
        const names = Object.keys(clients);
        const got = Object.fromEntries(names.map((n) => [n, collect(clients[n], "news", 1500)]));
        servers[0].io.emit("news", { n: 1, text: "héllo" });
        for (const n of names) assert.deepEqual(await got[n], [{ n: 1, text: "héllo" }], n);
      });

      t("binary payload broadcast from server 3", async () => {
        const got = collect(clients.c1, "bin", 1500);
        servers[2].io.emit("bin", Buffer.from([0, 1, 2, 255, 13, 10]));
        const [b] = await got;
        assert.deepEqual(Buffer.from(b), Buffer.from([0, 1, 2, 255, 13, 10]));
      });

      t("room broadcast reaches only the room's members", async () => {
        const got = Object.fromEntries(Object.keys(clients).map((n) =>
          [n, collect(clients[n], "blue-news", 1500)]));
        servers[0].io.to("blue").emit("blue-news", "b1");
        assert.deepEqual(await got.c2, ["b1"]);
        assert.deepEqual(await got.c3, ["b1"]);
        assert.deepEqual(await got.c1, []);
        assert.deepEqual(await got.c4, []);
        const ex = collect(clients.c3, "not-blue", 1500);
        const ex4 = collect(clients.c4, "not-blue", 1500);
        servers[1].io.except("blue").emit("not-blue", "nb");
        assert.deepEqual(await ex, []);
        assert.deepEqual(await ex4, ["nb"]);
      });

      t("fetchSockets across servers", async () => {
        const all = await servers[0].io.fetchSockets();
        assert.deepEqual(all.map((s) => s.data.name).sort(), ["c1", "c2", "c3", "c4"]);
        const blue = await servers[0].io.in("blue").fetchSockets();
        assert.deepEqual(blue.map((s) => s.data.name).sort(), ["c2", "c3"]);
        // a remote socket operation: make c4 (server 3) join green from server 1
        const c4 = all.find((s) => s.data.name === "c4");
        servers[0].io.in(c4.id).socketsJoin("green");
        await waitFor(async () =>
          (await servers[1].io.in("green").fetchSockets()).length === 1, 5000, "c4 in green");
      });

      t("serverSideEmit with acks gets one answer from each other server", async () => {
        const responses = await servers[0].io.serverSideEmitWithAck("hello", "x");
        assert.deepEqual(responses.slice().sort(), ["s2:x", "s3:x"]);
        const r3 = await servers[2].io.serverSideEmitWithAck("hello", "y");
        assert.deepEqual(r3.slice().sort(), ["s1:y", "s2:y"]);
      });

      t("serverSideEmit without ack reaches the other servers", async () => {
        const got = [];
        servers[1].io.on("plain", (a) => got.push(`s2:${a}`));
        servers[2].io.on("plain", (a) => got.push(`s3:${a}`));
        servers[0].io.serverSideEmit("plain", "p");
        await waitFor(() => got.length === 2, 5000, "2 plain serverSideEmits");
        await sleep(200);
        assert.deepEqual(got.sort(), ["s2:p", "s3:p"]);
      });
    });
  }
}

// createShardedAdapter (SSUBSCRIBE/SPUBLISH, servers counted with PUBSUB SHARDNUMSUB), with
// node-redis as its README shows. Through the sidecar its shard channels are held as plain
// ones on a single Redis, and the sidecar answers SHARDNUMSUB with their count (before:
// 0, so serverCount() was 0 and fetchSockets() / acks came back short or timed out).
for (const target of ["direct", "sidecar"]) {
  const skip = target === "sidecar" && skipReason ? skipReason : false;
  describe(`sharded redis-adapter with node-redis, ${target}`, { skip, timeout: 120000 }, () => {
    const env = new Env(`sharded-${target}`);
    const servers = [];
    const clients = {};

    before(async () => {
      const redis = await env.startRedis();
      for (let i = 0; i < 3; i++) {
        const url = target === "direct" ? redis.url
          : (await env.startSidecar(`pod${i + 1}`, redis.url)).url;
        const pubClient = createClient({ url });
        const subClient = pubClient.duplicate();
        await Promise.all([pubClient.connect(), subClient.connect()]);
        servers.push(await startServer(createShardedAdapter(pubClient, subClient), `s${i + 1}`,
          async () => { await Promise.allSettled([pubClient.quit(), subClient.quit()]); }));
      }
      await connectClients([["c1", 0, ""], ["c2", 1, "blue"], ["c3", 2, "blue"]], servers,
        clients);
      // Ready when every server's subscription is in (checked on Redis by the harness).
      await waitFor(async () => {
        const [n] = respIntegers(await respCommand(redis.port,
          ["PUBSUB", target === "direct" ? "SHARDNUMSUB" : "NUMSUB", "socket.io#/#"]));
        return n === 3;
      }, 15000, "3 servers' namespace subscriptions on Redis");
    });

    const t = suiteTests(env, servers, clients);

    t("serverCount sees 3 servers from each server", async () => {
      for (const s of servers) assert.equal(await s.io.of("/").adapter.serverCount(), 3);
    });

    t("broadcasts and rooms cross servers", async () => {
      const got = Promise.all(["c2", "c3"].map((n) => nextEvent(clients[n], "blue-news")));
      servers[0].io.to("blue").emit("blue-news", "b1");
      assert.deepEqual((await got).map(([x]) => x), ["b1", "b1"]);
    });

    t("fetchSockets and serverSideEmit with acks get every server", async () => {
      const all = await servers[0].io.fetchSockets();
      assert.deepEqual(all.map((s) => s.data.name).sort(), ["c1", "c2", "c3"]);
      const responses = await servers[0].io.serverSideEmitWithAck("hello", "x");
      assert.deepEqual(responses.slice().sort(), ["s2:x", "s3:x"]);
    });
  });
}
