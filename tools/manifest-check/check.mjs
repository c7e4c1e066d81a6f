#!/usr/bin/env node
// Validates podrelay's Kubernetes manifests offline.
//
//   node check.mjs [options] PATH...         PATH: YAML files or folders (searched recursively)
//     --stdin NAME          also read one multi-document YAML stream from stdin (e.g. the
//                           output of `kubectl kustomize`), reported as NAME
//     --expect-podrelay     every workload must carry a podrelay container (rendered patches)
//     --extract-rules FILE  write the PrometheusRule groups as a plain Prometheus rule file
//     --alert-tests FILE    every alert must appear in this promtool test file's exp_alerts
//     --readme FILE         every alert must be named in this document
//
// What it checks, per document:
//   - YAML parses, no duplicate keys;
//   - Kubernetes objects: a known apiVersion/kind, the Kubernetes JSON schema (via
//     kubernetes-models / @kubernetes-models/prometheus-operator), and no unknown fields;
//   - kustomizations: known keys, every referenced file or folder exists, patch files are
//     schema-checked as partial objects, generated podrelay-config settings are real flags;
//   - podrelay policy: every podrelay container has the hardened securityContext, the three
//     probes on the admin port, bounded resources, a native-sidecar restartPolicy when it is
//     an init container; pods give it enough terminationGracePeriodSeconds to drain; the
//     podrelay-config ConfigMap uses only known PODRELAY_* variables and a loopback listener.
// Exit status 1 and one line per problem when anything fails.

import { readFileSync, readdirSync, statSync, existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments, stringify } from "yaml";
import { shapeOfFile, unknownFields } from "./lib/dts-shape.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const NODE_MODULES = path.join(HERE, "node_modules");

// Every daemon flag that may come from the environment (PODRELAY_<FLAG>).
export const KNOWN_SETTINGS = new Set(
  [
    "listen", "redis", "admin-listen", "channel-prefix", "log-level", "log-format",
    "max-frame-bytes", "max-queue-bytes", "publish-buffer-bytes", "publish-buffer-timeout",
    "max-connections", "drain-timeout", "redis-password-file", "auth-token-file",
    "tls-ca-file", "tls-cert-file", "tls-key-file", "tls-server-name", "allow-remote",
    "max-subscriptions", "node-id", "redis-connect-timeout", "redis-ping-interval",
    "redis-ping-timeout", "soft-queue-bytes", "soft-queue-seconds", "hello-timeout",
    "resp-listen", "resp-channel-prefix",
  ].map((f) => `PODRELAY_${f.toUpperCase().replaceAll("-", "_")}`),
);
const DEFAULT_DRAIN_TIMEOUT = 10;
const DEFAULT_GRACE_PERIOD = 30;
const ADMIN_PORT = 9400;

const KUSTOMIZE_KEYS = new Set([
  "apiVersion", "kind", "metadata", "resources", "components", "patches", "patchesStrategicMerge",
  "patchesJson6902", "configMapGenerator", "secretGenerator", "generatorOptions", "labels",
  "commonLabels", "commonAnnotations", "namespace", "namePrefix", "nameSuffix", "images",
  "replicas", "replacements", "transformers", "generators", "crds", "openapi", "buildMetadata",
  "sortOptions", "vars", "helmCharts", "configurations",
]);

// ---------------------------------------------------------------------------------------------
// Small helpers

function parseQuantity(q) {
  if (typeof q === "number") return q;
  const m = /^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(String(q));
  if (!m) return NaN;
  const mult = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
  return Number(m[1]) * (m[2] ? mult[m[2]] : 1);
}

function isPodrelayContainer(c) {
  return c?.name === "podrelay" || /(^|\/)podrelay(:|@|$)/.test(String(c?.image ?? ""));
}

function isLoopbackListen(value) {
  return String(value)
    .split(",")
    .every((v) => /^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/.test(v.trim()) || v.trim().startsWith("unix:"));
}

/** Pod spec and metadata of any workload kind, or null. */
export function podTemplateOf(doc) {
  switch (doc?.kind) {
    case "Pod":
      return { meta: doc.metadata ?? {}, spec: doc.spec ?? {}, where: "/spec" };
    case "Deployment":
    case "StatefulSet":
    case "DaemonSet":
    case "ReplicaSet":
    case "Job":
      return doc.spec?.template
        ? { meta: doc.spec.template.metadata ?? {}, spec: doc.spec.template.spec ?? {}, where: "/spec/template/spec" }
        : null;
    case "CronJob": {
      const t = doc.spec?.jobTemplate?.spec?.template;
      return t ? { meta: t.metadata ?? {}, spec: t.spec ?? {}, where: "/spec/jobTemplate/spec/template/spec" } : null;
    }
    default:
      return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Schema validation

const modelCache = new Map();

async function modelFor(apiVersion, kind) {
  const key = `${apiVersion}/${kind}`;
  if (modelCache.has(key)) return modelCache.get(key);
  let result = null;
  if (/^[A-Za-z0-9]+$/.test(kind) && /^([a-z0-9.-]+\/)?v[0-9a-z]+$/.test(apiVersion)) {
    const sub = apiVersion.startsWith("monitoring.coreos.com/")
      ? `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`
      : `kubernetes-models/${apiVersion}/${kind}`;
    const dts = path.join(NODE_MODULES, `${sub}.d.ts`);
    if (existsSync(dts)) {
      const mod = await import(sub);
      if (mod[kind]) result = { Model: mod[kind], dts };
    }
  }
  modelCache.set(key, result);
  return result;
}

async function validateObject(doc, { partial }) {
  const problems = [];
  const model = await modelFor(String(doc.apiVersion), String(doc.kind));
  if (!model) return [`unknown apiVersion/kind ${doc.apiVersion}/${doc.kind} (no schema to check it against)`];
  try {
    new model.Model(doc).validate();
  } catch (e) {
    for (const err of e.errors ?? [{ instancePath: "", message: e.message }]) {
      // A strategic-merge patch is a partial object: required fields live in the target.
      if (partial && err.keyword === "required") continue;
      let msg = `${err.instancePath || "/"} ${err.message}`;
      if (err.params?.allowedValues) msg += ` (${err.params.allowedValues.join(", ")})`;
      problems.push(`schema: ${msg}`);
    }
  }
  for (const p of unknownFields(doc, shapeOfFile(model.dts, NODE_MODULES), NODE_MODULES)) {
    if (p.startsWith("/status")) continue;
    problems.push(`schema: ${p} is not a field of ${doc.kind} (typo? the API server would drop it)`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// podrelay policy

function checkProbe(c, field, paths, portNames, problems, where) {
  const probe = c[field];
  if (!probe) return problems.push(`${where}: ${field} is missing`);
  const get = probe.httpGet;
  if (!get) return problems.push(`${where}: ${field} must be an httpGet probe on the admin port`);
  if (!paths.includes(get.path)) problems.push(`${where}: ${field} path is ${get.path}, want ${paths.join(" or ")}`);
  const port = typeof get.port === "string" ? portNames.get(get.port) : get.port;
  if (port === undefined) problems.push(`${where}: ${field} port ${get.port} is not a declared containerPort name`);
  else if (port !== ADMIN_PORT) problems.push(`${where}: ${field} port ${get.port} is not the admin port ${ADMIN_PORT}`);
}

/** Problems with one podrelay container. `init`: it sits in initContainers. */
export function checkPodrelayContainer(c, { init, where }) {
  const problems = [];
  if (!c.image) problems.push(`${where}: image is missing`);
  if (init && c.restartPolicy !== "Always") {
    problems.push(`${where}: in initContainers podrelay needs restartPolicy: Always (native sidecar), or the pod never starts`);
  }
  const portNames = new Map((c.ports ?? []).map((p) => [p.name, p.containerPort]));
  if (![...portNames.values()].includes(ADMIN_PORT)) problems.push(`${where}: containerPort ${ADMIN_PORT} (admin) is not declared`);

  checkProbe(c, "livenessProbe", ["/healthz"], portNames, problems, where);
  checkProbe(c, "readinessProbe", ["/readyz"], portNames, problems, where);
  // A native sidecar's startupProbe gates the app's start, so it must wait for Redis.
  checkProbe(c, "startupProbe", init ? ["/readyz"] : ["/readyz", "/healthz"], portNames, problems, where);

  const res = c.resources ?? {};
  for (const kind of ["requests", "limits"]) {
    for (const r of ["cpu", "memory"]) {
      const v = res[kind]?.[r];
      if (v === undefined) problems.push(`${where}: resources.${kind}.${r} is missing`);
      else if (Number.isNaN(parseQuantity(v))) problems.push(`${where}: resources.${kind}.${r} "${v}" is not a quantity`);
    }
  }
  for (const r of ["cpu", "memory"]) {
    const req = parseQuantity(res.requests?.[r]);
    const lim = parseQuantity(res.limits?.[r]);
    if (req > lim) problems.push(`${where}: resources.requests.${r} exceeds the limit`);
  }

  const sc = c.securityContext ?? {};
  const want = [
    ["runAsNonRoot", sc.runAsNonRoot === true, "true"],
    ["runAsUser", sc.runAsUser === 65532, "65532"],
    ["readOnlyRootFilesystem", sc.readOnlyRootFilesystem === true, "true"],
    ["allowPrivilegeEscalation", sc.allowPrivilegeEscalation === false, "false"],
    ["capabilities.drop", (sc.capabilities?.drop ?? []).includes("ALL"), "[ALL]"],
    ["seccompProfile.type", sc.seccompProfile?.type === "RuntimeDefault", "RuntimeDefault"],
  ];
  for (const [field, ok, value] of want) if (!ok) problems.push(`${where}: securityContext.${field} must be ${value}`);
  if ((sc.capabilities?.add ?? []).length) problems.push(`${where}: securityContext.capabilities.add must be empty`);
  if (sc.privileged) problems.push(`${where}: securityContext.privileged must not be set`);

  const env = new Map((c.env ?? []).map((e) => [e.name, e.value]));
  for (const name of env.keys()) {
    if (name.startsWith("PODRELAY_") && !KNOWN_SETTINGS.has(name)) problems.push(`${where}: env ${name} is not a podrelay setting`);
  }
  if (env.has("PODRELAY_LISTEN") && !isLoopbackListen(env.get("PODRELAY_LISTEN"))) {
    problems.push(`${where}: PODRELAY_LISTEN must stay on loopback or a unix socket`);
  }
  const configured =
    env.has("PODRELAY_REDIS") ||
    (c.args ?? []).some((a) => String(a).startsWith("--redis")) ||
    (c.envFrom ?? []).some((e) => /^podrelay-config/.test(e.configMapRef?.name ?? ""));
  if (!configured) problems.push(`${where}: gets no Redis address (envFrom podrelay-config, env PODRELAY_REDIS or --redis)`);
  return problems;
}

function preStopSeconds(c) {
  const cmd = c.lifecycle?.preStop?.exec?.command ?? [];
  if (/(^|\/)sleep$/.test(cmd[0] ?? "")) return Number(cmd[1]) || 0;
  return Number(c.lifecycle?.preStop?.sleep?.seconds) || 0;
}

/** Problems with a pod that carries podrelay, or with any pod when `expectPodrelay`. */
export function checkPod(tpl, { where, partial, expectPodrelay, drainTimeout }) {
  const problems = [];
  const spec = tpl.spec;
  const all = [
    ...(spec.initContainers ?? []).map((c, i) => ({ c, init: true, where: `${where}/initContainers/${i}(${c.name})` })),
    ...(spec.containers ?? []).map((c, i) => ({ c, init: false, where: `${where}/containers/${i}(${c.name})` })),
  ];
  const relays = all.filter((x) => isPodrelayContainer(x.c));
  if (relays.length === 0) {
    if (expectPodrelay) problems.push(`${where}: no podrelay container (did the patch target match?)`);
    return problems;
  }
  if (relays.length > 1) problems.push(`${where}: ${relays.length} podrelay containers, want one`);
  for (const r of relays) problems.push(...checkPodrelayContainer(r.c, r));

  if (tpl.meta.labels?.["podrelay.io/sidecar"] !== "true") {
    problems.push(`${where}: pod label podrelay.io/sidecar: "true" is missing (PodMonitor and NetworkPolicy select it)`);
  }
  const volumes = new Set((spec.volumes ?? []).map((v) => v.name));
  for (const { c, where: w } of all) {
    for (const m of c.volumeMounts ?? []) {
      if (!volumes.has(m.name) && !partial) problems.push(`${w}: volumeMount ${m.name} has no volume in the pod`);
      if (!volumes.has(m.name) && partial && isPodrelayContainer(c)) problems.push(`${w}: patch mounts ${m.name} but adds no such volume`);
    }
  }
  if (!partial) {
    const grace = spec.terminationGracePeriodSeconds ?? DEFAULT_GRACE_PERIOD;
    const needed = Math.max(...relays.map((r) => preStopSeconds(r.c))) + drainTimeout;
    if (grace <= needed) {
      problems.push(`${where}: terminationGracePeriodSeconds ${grace} must exceed podrelay's preStop + drain timeout (${needed} s)`);
    }
  }
  return problems;
}

function checkSettings(data, where) {
  const problems = [];
  for (const [k, v] of Object.entries(data ?? {})) {
    if (!KNOWN_SETTINGS.has(k)) problems.push(`${where}: ${k} is not a podrelay setting (known: PODRELAY_<FLAG> of podrelay --help)`);
    if (k === "PODRELAY_LISTEN" && !isLoopbackListen(v)) problems.push(`${where}: PODRELAY_LISTEN ${v} must stay on loopback or a unix socket`);
    if (/_(BYTES|TIMEOUT|CONNECTIONS)$/.test(k) && !/^[1-9][0-9]*$/.test(String(v))) {
      problems.push(`${where}: ${k}=${v} must be a positive integer`);
    }
  }
  return problems;
}

function parseEnvFile(text) {
  const out = {};
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (!t || t.startsWith("#")) continue;
    const eq = t.indexOf("=");
    out[eq < 0 ? t : t.slice(0, eq)] = eq < 0 ? "" : t.slice(eq + 1);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Kustomizations

function checkKustomization(doc, file, ctx) {
  const problems = [];
  const dir = path.dirname(file);
  for (const k of Object.keys(doc)) if (!KUSTOMIZE_KEYS.has(k)) problems.push(`unknown kustomization key ${k}`);
  const wantKind = doc.apiVersion === "kustomize.config.k8s.io/v1alpha1" ? "Component" : "Kustomization";
  if (doc.kind !== wantKind) problems.push(`kind ${doc.kind} does not go with apiVersion ${doc.apiVersion}`);
  const mustExist = (rel, what) => {
    if (/^[a-z]+:\/\/|^github\.com\//.test(rel)) return null; // remote: not checked offline
    const abs = path.resolve(dir, rel);
    if (!existsSync(abs)) problems.push(`${what} ${rel} does not exist`);
    return abs;
  };
  for (const r of doc.resources ?? []) mustExist(r, "resource");
  for (const c of doc.components ?? []) {
    const abs = mustExist(c, "component");
    if (abs && !existsSync(path.join(abs, "kustomization.yaml"))) problems.push(`component ${c} has no kustomization.yaml`);
  }
  for (const p of doc.patches ?? []) {
    if (p.path) {
      const abs = mustExist(p.path, "patch");
      if (abs) ctx.patchFiles.add(abs);
    } else if (!p.patch) problems.push("patch entry without path or patch");
    if (p.target && !p.target.kind) problems.push(`patch ${p.path ?? "(inline)"} target has no kind`);
  }
  for (const g of doc.configMapGenerator ?? []) {
    const data = {};
    for (const env of g.envs ?? []) {
      const abs = mustExist(env, "env file");
      if (abs && existsSync(abs)) Object.assign(data, parseEnvFile(readFileSync(abs, "utf8")));
    }
    for (const lit of g.literals ?? []) Object.assign(data, parseEnvFile(lit));
    if (g.name === "podrelay-config") {
      problems.push(...checkSettings(data, `configMapGenerator ${g.name}`));
      ctx.settings.push(data);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Driver

function yamlFilesUnder(p) {
  const st = statSync(p);
  if (st.isFile()) return [p];
  return readdirSync(p, { withFileTypes: true })
    .filter((e) => e.name !== "node_modules" && !e.name.startsWith("."))
    .flatMap((e) => {
      const full = path.join(p, e.name);
      if (e.isDirectory()) return yamlFilesUnder(full);
      return /\.ya?ml$/.test(e.name) ? [full] : [];
    })
    .sort();
}

function parseSource({ name, text }) {
  const docs = [];
  const problems = [];
  for (const d of parseAllDocuments(text, { uniqueKeys: true })) {
    for (const e of [...d.errors, ...d.warnings]) problems.push(`${name}: yaml: ${e.message.split("\n")[0]}`);
    const value = d.toJS({ maxAliasCount: 100 });
    if (value !== null && value !== undefined) docs.push(value);
  }
  return { docs, problems };
}

/**
 * Checks sources: [{name, text, file?}]. Returns {problems, stats, rules}.
 * `file` is set for sources on disk (needed for kustomization paths and patch detection).
 */
export async function checkSources(sources, opts = {}) {
  const ctx = { patchFiles: new Set(), settings: [] };
  const problems = [];
  const stats = { files: sources.length, objects: 0, kustomizations: 0, podrelayPods: 0 };
  const parsed = sources.map((s) => ({ ...s, ...parseSource(s) }));
  for (const s of parsed) problems.push(...s.problems);

  // Pass 1: kustomizations (they say which files are patches) and the settings in use.
  for (const s of parsed) {
    for (const doc of s.docs) {
      if (String(doc.apiVersion ?? "").startsWith("kustomize.config.k8s.io/")) {
        stats.kustomizations++;
        if (!s.file) problems.push(`${s.name}: a kustomization cannot be checked without its folder`);
        else problems.push(...checkKustomization(doc, s.file, ctx).map((p) => `${s.name}: ${p}`));
      } else if (doc.kind === "ConfigMap" && /^podrelay-config/.test(doc.metadata?.name ?? "")) {
        ctx.settings.push(doc.data ?? {});
      }
    }
  }
  const drains = ctx.settings.map((d) => Number(d.PODRELAY_DRAIN_TIMEOUT)).filter((n) => n > 0);
  const drainTimeout = Math.max(DEFAULT_DRAIN_TIMEOUT, ...drains);

  // Pass 2: every other document.
  const rules = [];
  for (const s of parsed) {
    const partial = Boolean(s.file && ctx.patchFiles.has(path.resolve(s.file)));
    s.docs.forEach((doc, i) => {
      stats.objects++;
      const name = s.docs.length > 1 ? `${s.name}[${i}] ${doc.kind ?? "?"}/${doc.metadata?.name ?? "?"}` : s.name;
      s.jobs = s.jobs ?? [];
      s.jobs.push(
        (async () => {
          if (typeof doc !== "object" || Array.isArray(doc)) return [`${name}: not a YAML mapping`];
          if (String(doc.apiVersion ?? "").startsWith("kustomize.config.k8s.io/")) return [];
          if (doc.rule_files && doc.tests) return []; // promtool unit tests: checked by promtool
          if (!doc.apiVersion || !doc.kind) return [`${name}: no apiVersion/kind: not a Kubernetes object`];
          const out = (await validateObject(doc, { partial })).map((p) => `${name}: ${p}`);
          if (doc.kind === "ConfigMap" && /^podrelay-config/.test(doc.metadata?.name ?? "")) {
            out.push(...checkSettings(doc.data, `${name}`));
          }
          if (doc.kind === "PrometheusRule") rules.push(...(doc.spec?.groups ?? []));
          if (doc.kind === "Deployment" && !partial) {
            const sel = doc.spec?.selector?.matchLabels ?? {};
            const labels = doc.spec?.template?.metadata?.labels ?? {};
            for (const [k, v] of Object.entries(sel)) {
              if (labels[k] !== v) out.push(`${name}: selector ${k}=${v} does not match the pod template labels`);
            }
          }
          const tpl = podTemplateOf(doc);
          if (tpl) {
            const found = [...(tpl.spec.initContainers ?? []), ...(tpl.spec.containers ?? [])].some(isPodrelayContainer);
            if (found) stats.podrelayPods++;
            out.push(
              ...checkPod(tpl, { where: tpl.where, partial, expectPodrelay: opts.expectPodrelay && !partial, drainTimeout }).map(
                (p) => `${name}: ${p}`,
              ),
            );
          }
          return out;
        })(),
      );
    });
  }
  for (const s of parsed) for (const r of await Promise.all(s.jobs ?? [])) problems.push(...r);
  return { problems, stats, rules };
}

export function loadPaths(paths) {
  return paths.flatMap(yamlFilesUnder).map((file) => ({ name: path.relative(process.cwd(), file) || file, file, text: readFileSync(file, "utf8") }));
}

export function alertNames(groups) {
  return groups.flatMap((g) => (g.rules ?? []).map((r) => r.alert).filter(Boolean));
}

async function main(argv) {
  const opts = { expectPodrelay: false };
  const paths = [];
  let stdinName = null;
  let rulesOut = null;
  let alertTests = null;
  let readme = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--expect-podrelay") opts.expectPodrelay = true;
    else if (a === "--stdin") stdinName = argv[++i];
    else if (a === "--extract-rules") rulesOut = argv[++i];
    else if (a === "--alert-tests") alertTests = argv[++i];
    else if (a === "--readme") readme = argv[++i];
    else if (a === "-h" || a === "--help") {
      console.log(readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n").slice(1, 26).join("\n"));
      return 0;
    } else if (a.startsWith("-")) {
      console.error(`check.mjs: unknown option ${a}`);
      return 2;
    } else paths.push(a);
  }
  const sources = loadPaths(paths);
  if (stdinName) sources.push({ name: stdinName, text: readFileSync(0, "utf8") });
  if (sources.length === 0) {
    console.error("check.mjs: nothing to check");
    return 2;
  }
  const { problems, stats, rules } = await checkSources(sources, opts);
  if (stats.objects === 0) problems.push("no YAML documents found");

  const alerts = alertNames(rules);
  if (rulesOut) {
    if (rules.length === 0) problems.push("--extract-rules: no PrometheusRule found");
    writeFileSync(rulesOut, stringify({ groups: rules }));
  }
  if (alertTests) {
    const tested = new Set();
    for (const d of parseAllDocuments(readFileSync(alertTests, "utf8"))) {
      for (const t of d.toJS()?.tests ?? []) for (const a of t.alert_rule_test ?? []) tested.add(a.alertname);
    }
    for (const a of alerts) if (!tested.has(a)) problems.push(`alert ${a} has no test in ${alertTests}`);
  }
  if (readme) {
    const text = readFileSync(readme, "utf8");
    for (const a of alerts) if (!text.includes(a)) problems.push(`alert ${a} is not explained in ${readme}`);
  }

  for (const p of problems) console.log(`FAIL ${p}`);
  const label = stdinName ?? paths.join(" ");
  console.log(
    `manifest-check ${label}: ${stats.files} files, ${stats.objects} documents, ${stats.kustomizations} kustomizations, ` +
      `${stats.podrelayPods} pods with podrelay, ${problems.length} problems`,
  );
  return problems.length ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
