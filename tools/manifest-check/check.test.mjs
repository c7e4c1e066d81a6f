// Proves that every check in check.mjs can fail: each test breaks one thing in a copy of the
// real manifests (in memory; nothing on disk changes) and expects the matching complaint.
//   node --test tools/manifest-check/check.test.mjs
import test from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";
import { checkSources, loadPaths } from "./check.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const K8S = path.join(ROOT, "k8s");
const real = () => loadPaths([K8S]);

/** Runs the checks with `file` (relative to k8s/) rewritten by `mutate(doc)`; a mutation
 * may instead return {raw: text} to replace the file's text outright. */
async function withMutation(file, mutate, opts = {}) {
  const sources = real();
  const src = sources.find((s) => s.file === path.join(K8S, file));
  assert.ok(src, `${file} not found`);
  const doc = parse(src.text);
  const replaced = mutate(doc);
  src.text = replaced?.raw ?? stringify(doc);
  return (await checkSources(sources, opts)).problems;
}

function expectProblem(problems, re) {
  assert.ok(
    problems.some((p) => re.test(p)),
    `expected a problem matching ${re}, got:\n  ${problems.join("\n  ") || "(none)"}`,
  );
}

const NATIVE = "examples/native-sidecar/deployment.yaml";
const CLASSIC = "examples/classic-sidecar/deployment.yaml";
const native = (d) => d.spec.template.spec.initContainers[0];
const classic = (d) => d.spec.template.spec.containers.find((c) => c.name === "podrelay");

test("the committed manifests pass", async () => {
  const { problems, stats } = await checkSources(real());
  assert.deepEqual(problems, []);
  assert.ok(stats.podrelayPods >= 4, `only ${stats.podrelayPods} podrelay pods found`);
});

const policyCases = [
  ["readOnlyRootFilesystem removed", NATIVE, (d) => delete native(d).securityContext.readOnlyRootFilesystem, /readOnlyRootFilesystem must be true/],
  ["runAsUser 0", NATIVE, (d) => (native(d).securityContext.runAsUser = 0), /runAsUser must be 65532/],
  ["runAsNonRoot removed", CLASSIC, (d) => delete classic(d).securityContext.runAsNonRoot, /runAsNonRoot must be true/],
  ["privilege escalation", CLASSIC, (d) => (classic(d).securityContext.allowPrivilegeEscalation = true), /allowPrivilegeEscalation must be false/],
  ["capabilities kept", NATIVE, (d) => delete native(d).securityContext.capabilities, /capabilities.drop must be \[ALL\]/],
  ["capability added", NATIVE, (d) => (native(d).securityContext.capabilities.add = ["NET_ADMIN"]), /capabilities.add must be empty/],
  ["seccomp removed", NATIVE, (d) => delete native(d).securityContext.seccompProfile, /seccompProfile.type must be RuntimeDefault/],
  ["liveness removed", NATIVE, (d) => delete native(d).livenessProbe, /livenessProbe is missing/],
  ["readiness on /healthz", CLASSIC, (d) => (classic(d).readinessProbe.httpGet.path = "/healthz"), /readinessProbe path is \/healthz/],
  ["native startup on /healthz", NATIVE, (d) => (native(d).startupProbe.httpGet.path = "/healthz"), /startupProbe path is \/healthz/],
  ["startup removed", CLASSIC, (d) => delete classic(d).startupProbe, /startupProbe is missing/],
  ["probe on undeclared port name", NATIVE, (d) => (native(d).livenessProbe.httpGet.port = "admin"), /not a declared containerPort name/],
  ["probe on app port", NATIVE, (d) => (native(d).livenessProbe.httpGet.port = 7400), /not the admin port/],
  ["memory limit removed", NATIVE, (d) => delete native(d).resources.limits.memory, /resources.limits.memory is missing/],
  ["requests above limits", CLASSIC, (d) => (classic(d).resources.requests.cpu = "2"), /requests.cpu exceeds the limit/],
  ["init container without restartPolicy", NATIVE, (d) => delete native(d).restartPolicy, /restartPolicy: Always/],
  ["short grace period", NATIVE, (d) => (d.spec.template.spec.terminationGracePeriodSeconds = 10), /terminationGracePeriodSeconds 10/],
  ["grace eaten by preStop", CLASSIC, (d) => (d.spec.template.spec.terminationGracePeriodSeconds = 15), /preStop \+ drain timeout \(15 s\)/],
  ["pod label removed", NATIVE, (d) => delete d.spec.template.metadata.labels["podrelay.io/sidecar"], /podrelay.io\/sidecar/],
  ["no config", NATIVE, (d) => delete native(d).envFrom, /gets no Redis address/],
  ["unknown env setting", NATIVE, (d) => (native(d).env = [{ name: "PODRELAY_REDIS_URL", value: "x" }]), /PODRELAY_REDIS_URL is not a podrelay setting/],
  ["app port on all interfaces", NATIVE, (d) => (native(d).env = [{ name: "PODRELAY_LISTEN", value: "0.0.0.0:7400" }]), /must stay on loopback/],
  ["mount without volume", NATIVE, (d) => (d.spec.template.spec.volumes = []), /volumeMount podrelay-secrets has no volume/],
  ["two podrelays", CLASSIC, (d) => d.spec.template.spec.containers.push({ ...classic(d) }), /2 podrelay containers/],
  ["patch without its volume", "patch/sidecar.yaml", (d) => delete d.spec.template.spec.volumes, /adds no such volume/],
  ["patch loses seccomp", "patch/classic/sidecar.yaml", (d) => delete d.spec.template.spec.containers[0].securityContext.seccompProfile, /seccompProfile/],
];
for (const [name, file, mutate, re] of policyCases) {
  test(`policy: ${name}`, async () => expectProblem(await withMutation(file, mutate), re));
}

const schemaCases = [
  ["runAsUser as a string", NATIVE, (d) => (native(d).securityContext.runAsUser = "65532"), /must be integer/],
  ["misspelt field", NATIVE, (d) => (native(d).securityContext.readOnlyRootFileSystem = true), /readOnlyRootFileSystem is not a field/],
  ["bad enum", "redis/service.yaml", (d) => (d.spec.type = "Cluster"), /must be equal to one of the allowed values/],
  ["NetworkPolicy typo", "networkpolicy/egress-redis-only.yaml", (d) => (d.spec.egress[1].to[0].namespaceSelecter = {}), /namespaceSelecter is not a field/],
  ["PodMonitor field type", "monitoring/podmonitor.yaml", (d) => (d.spec.podMetricsEndpoints = { port: "x" }), /podMetricsEndpoints must be array/],
  ["PrometheusRule typo", "monitoring/prometheusrule.yaml", (d) => (d.spec.groups[0].rules[0].fr = "1m"), /fr is not a field/],
  ["Deployment without selector", "redis/deployment.yaml", (d) => delete d.spec.selector, /spec must have required property '?selector'?/],
  ["selector does not match", "redis/deployment.yaml", (d) => (d.spec.selector.matchLabels.extra = "x"), /selector extra=x does not match/],
  ["patch with a wrong type", "patch/sidecar.yaml", (d) => (d.spec.template.spec.initContainers[0].ports[0].containerPort = "nine"), /must be integer/],
  ["unknown kind", "redis/service.yaml", (d) => (d.kind = "Servic"), /unknown apiVersion\/kind v1\/Servic/],
  ["not a k8s object", "redis/service.yaml", () => ({ raw: "just: data\n" }), /not a Kubernetes object/],
  ["duplicate key", "redis/service.yaml", (d) => ({ raw: stringify(d) + "kind: Service\n" }), /yaml: Map keys must be unique/],
  ["configmap bad key", "base/secret.yaml", () => ({ raw: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: podrelay-config}\ndata: {PODRELAY_REDIS_URL: x}\n" }), /PODRELAY_REDIS_URL is not a podrelay setting/],
  ["configmap listen everywhere", "base/secret.yaml", () => ({ raw: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: podrelay-config}\ndata: {PODRELAY_LISTEN: '0.0.0.0:7400'}\n" }), /must stay on loopback/],
  ["configmap non-numeric limit", "base/secret.yaml", () => ({ raw: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: podrelay-config}\ndata: {PODRELAY_MAX_QUEUE_BYTES: 8MiB}\n" }), /must be a positive integer/],
  ["longer drain than grace", "base/secret.yaml", () => ({ raw: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: podrelay-config}\ndata: {PODRELAY_DRAIN_TIMEOUT: '60'}\n" }), /terminationGracePeriodSeconds 40 must exceed/],
];
for (const [name, file, mutate, re] of schemaCases) {
  test(`schema: ${name}`, async () => expectProblem(await withMutation(file, mutate), re));
}

const kustomizeCases = [
  ["missing resource", "examples/native-sidecar/kustomization.yaml", (d) => d.resources.push("nope.yaml"), /resource nope.yaml does not exist/],
  ["missing component", "examples/patch-native/kustomization.yaml", (d) => (d.components = ["../../nope"]), /component ..\/..\/nope does not exist/],
  ["missing patch", "patch/kustomization.yaml", (d) => (d.patches[0].path = "gone.yaml"), /patch gone.yaml does not exist/],
  ["unknown key", "base/kustomization.yaml", (d) => (d.resource = []), /unknown kustomization key resource/],
  ["wrong kind", "patch/kustomization.yaml", (d) => (d.kind = "Kustomization"), /kind Kustomization does not go with/],
  ["unknown setting in env", "base/kustomization.yaml", (d) => (d.configMapGenerator[0].literals = ["PODRELAY_REDIS_HOST=x"]), /PODRELAY_REDIS_HOST is not a podrelay setting/],
];
for (const [name, file, mutate, re] of kustomizeCases) {
  test(`kustomize: ${name}`, async () => expectProblem(await withMutation(file, mutate), re));
}

test("rendered output must carry podrelay when expected", async () => {
  const src = loadPaths([path.join(K8S, "examples/existing-app/deployment.yaml")]).map((s) => ({ name: s.name, text: s.text }));
  const { problems } = await checkSources(src, { expectPodrelay: true });
  expectProblem(problems, /no podrelay container \(did the patch target match\?\)/);
});
