/**
 * deploy/kubernetes, checked offline: every resource against the Kubernetes JSON schemas
 * (kubernetes-validate from PyPI, bundling them; strict: unknown fields fail), and against the
 * code it runs (the daemon's config reader, both CLIs' flags, names that must agree).
 */
import { execFile, execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyConfigFile, defaultConfig } from "../../daemon/src/config.js";
import { randomBytes } from "node:crypto";
import { CLI, startDaemon } from "../../daemon/test/helpers/daemon.js";
import { GATEWAY_CLI } from "./helpers/fleet.js";

const execFileP = promisify(execFile);
const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const DIR = join(ROOT, "deploy", "kubernetes");
let validator: string;
let python: string;
let work: string;

async function run(file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(file, args, { timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (err: any) {
    return { code: typeof err.code === "number" ? err.code : -1, stdout: err.stdout ?? "", stderr: err.stderr ?? "" };
  }
}

/** The resource files kustomization.yaml lists, parsed (with the venv's PyYAML). */
function resources(): Record<string, any[]> {
  const script = "import json, sys, yaml\nprint(json.dumps({f: [d for d in yaml.safe_load_all(open(f)) if d] for f in sys.argv[1:]}))";
  const files = kustomization().resources.map((f: string) => join(DIR, f));
  const parsed = JSON.parse(execFileSync(python, ["-c", script, ...files], { encoding: "utf8" }));
  return Object.fromEntries(Object.entries(parsed).map(([f, docs]) => [f.slice(DIR.length + 1), docs as any[]]));
}

function kustomization(): any {
  return JSON.parse(execFileSync(python, ["-c", "import json, yaml; print(json.dumps(yaml.safe_load(open('kustomization.yaml'))))"], { cwd: DIR, encoding: "utf8" }));
}

const find = (all: Record<string, any[]>, kind: string, name: string) => Object.values(all).flat().find((d) => d.kind === kind && d.metadata.name === name);

beforeAll(() => {
  // Made by scripts/install.sh; made here if missing (pip from PyPI).
  validator = execFileSync(join(ROOT, "scripts", "k8s-validate-venv.sh"), { encoding: "utf8" }).trim();
  python = join(validator, "..", "python");
  work = mkdtempSync(join(tmpdir(), "sbx-manifests-"));
}, 180_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("deploy/kubernetes", () => {
  it("kustomization.yaml lists every manifest in the directory", () => {
    const yamls = readdirSync(DIR).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml").sort();
    expect([...kustomization().resources].sort()).toEqual(yamls);
  });

  it.each(["1.30.0", "1.37.0"])("every resource passes strict schema validation for Kubernetes %s", async (version) => {
    const files = kustomization().resources.map((f: string) => join(DIR, f));
    const out = await run(validator, ["--strict", "-k", version, ...files]);
    expect(out.stdout + out.stderr).not.toMatch(/ERROR|WARN/);
    expect(out.code).toBe(0);
    const passed = (out.stdout + out.stderr).match(/passed for resource \S+/g) ?? [];
    expect(passed.sort()).toEqual(
      [
        "configmap/sbx-daemon-config", "daemonset/sbx-daemon", "deployment/sbx-gateway", "namespace/sbx", "networkpolicy/sbx-daemon-api",
        "poddisruptionbudget/sbx-gateway", "role/sbx-gateway", "rolebinding/sbx-gateway", "service/sbx-daemon", "service/sbx-gateway", "serviceaccount/sbx-gateway",
      ].map((r) => `passed for resource ${r}`),
    );
  });

  it("the validator does refuse a misspelt field (so the check above can fail)", async () => {
    cpSync(join(DIR, "daemon.yaml"), join(work, "daemon.yaml"));
    const text = readFileSync(join(work, "daemon.yaml"), "utf8").replace("terminationGracePeriodSeconds:", "terminationGracePeriodSecond:");
    writeFileSync(join(work, "daemon.yaml"), text);
    const out = await run(validator, ["--strict", "-k", "1.30.0", join(work, "daemon.yaml")]);
    expect(out.code).not.toBe(0);
    expect(out.stdout + out.stderr).toMatch(/'terminationGracePeriodSecond' was unexpected/);
  });
});

describe("the manifests agree with the code they run", () => {
  it("the daemons' config is one the daemon accepts, and the drain fits in the grace period", () => {
    const all = resources();
    const config = JSON.parse(find(all, "ConfigMap", "sbx-daemon-config").data["daemon.json"]);
    writeFileSync(join(work, "tenants"), "tenant-token-0123456789\n");
    writeFileSync(join(work, "daemon.json"), JSON.stringify({ ...config, tokensFile: join(work, "tenants") }));
    const parsed = defaultConfig();
    applyConfigFile(parsed, join(work, "daemon.json"));
    expect(parsed.tenants).toEqual([{ name: "token-2", token: "tenant-token-0123456789", quotas: {} }]);
    expect(config.tokensFile).toBe("/etc/sbx/tokens/tenants");

    const ds = find(all, "DaemonSet", "sbx-daemon");
    const pod = ds.spec.template.spec;
    const daemon = pod.containers[0];
    const wait = /--wait=(\d+)m/.exec(daemon.lifecycle.preStop.exec.command.join(" "))![1]!;
    expect(Number(wait) * 60).toBeLessThan(pod.terminationGracePeriodSeconds);
    // The id prefix is the node's name, from the downward API.
    expect(daemon.args).toContain("--id-prefix=$(NODE_NAME)");
    expect(daemon.env.find((e: any) => e.name === "NODE_NAME").valueFrom.fieldRef.fieldPath).toBe("spec.nodeName");
    expect(daemon.env.find((e: any) => e.name === "SBX_TOKEN").valueFrom.secretKeyRef).toEqual({ name: "sbx-tokens", key: "operator" });
    expect(pod.volumes.find((v: any) => v.name === "state").hostPath).toEqual({ path: "/var/lib/sbx", type: "DirectoryOrCreate" });
  });

  it("the probes and hooks are commands the CLIs know", async () => {
    const all = resources();
    const daemon = find(all, "DaemonSet", "sbx-daemon").spec.template.spec.containers[0];
    const asHere = (cmd: string[]) => cmd.slice(1).map((a) => a.replace("/var/lib/sbx", join(work, "no-daemon")));
    const drain = await run(process.execPath, [CLI, ...asHere(daemon.lifecycle.preStop.exec.command)]);
    expect(drain).toMatchObject({ code: 2, stderr: `sbx daemon: no sbx daemon listens for ${join(work, "no-daemon")} (pass --url or --state-dir)\n` });
    const ready = await run(process.execPath, [CLI, ...asHere(daemon.readinessProbe.exec.command)]);
    expect(ready).toMatchObject({ code: 1, stdout: `not ready: no sbx daemon listens for ${join(work, "no-daemon")} (pass --url or --state-dir)\n` });

    const gateway = find(all, "Deployment", "sbx-gateway").spec.template.spec.containers[0];
    const started = await run(process.execPath, [GATEWAY_CLI, ...gateway.args]);
    // Every flag parsed; it stops at the first file the cluster would have mounted.
    expect(started).toMatchObject({ code: 1, stderr: "sbx-gateway: tokensFile: cannot read /etc/sbx/tokens/tenants: ENOENT: no such file or directory, open '/etc/sbx/tokens/tenants'\n" });
  });

  it("the startup probe is sbx doctor against the pod's own daemon, and it passes end to end against a working one", async () => {
    const daemon = find(resources(), "DaemonSet", "sbx-daemon").spec.template.spec.containers[0];
    const probe: string[] = daemon.startupProbe.exec.command;
    expect(probe).toEqual(["sbx", "doctor", "--url=ws://127.0.0.1:7070"]);
    // The container's own --listen answers at the probe's URL.
    expect(daemon.args).toContain("--listen=0.0.0.0:7070");
    // Here: the same command against a real daemon, with the operator token as the pod has it (SBX_TOKEN).
    const operator = `operator-${randomBytes(18).toString("base64url")}`;
    await using real = await startDaemon({ env: { SBX_TOKEN: operator } });
    const args = probe.slice(1).map((a) => a.replace("ws://127.0.0.1:7070", real.url));
    const passed = await execFileP(process.execPath, [CLI, ...args], { env: { ...process.env, SBX_TOKEN: operator }, timeout: 120_000 }).then(
      (r) => ({ code: 0, stdout: r.stdout }),
      (err: any) => ({ code: err.code, stdout: `${err.stdout}${err.stderr}` }),
    );
    expect(passed.stdout).toMatch(/seccomp and namespaces/);
    expect(passed.code, passed.stdout).toBe(0);
    // And it fails while no daemon answers there (a pod whose daemon has not started is not ready).
    const none = await execFileP(process.execPath, [CLI, ...probe.slice(1).map((a) => a.replace("ws://127.0.0.1:7070", "ws://127.0.0.1:1"))], { env: { ...process.env, SBX_TOKEN: operator }, timeout: 120_000 }).then(
      () => 0,
      (err: any) => err.code,
    );
    expect(none).not.toBe(0);
  }, 180_000);

  it("names agree: Service ports and selectors, the NetworkPolicy, the gateway's RBAC", () => {
    const all = resources();
    const ds = find(all, "DaemonSet", "sbx-daemon");
    const svc = find(all, "Service", "sbx-daemon");
    const gw = find(all, "Deployment", "sbx-gateway");
    expect(svc.spec.clusterIP).toBe("None");
    expect(ds.spec.template.metadata.labels).toMatchObject(svc.spec.selector);
    const portName = /--kubernetes-port-name=(\S+)/.exec(gw.spec.template.spec.containers[0].args.join(" "))![1];
    expect(svc.spec.ports.map((p: any) => p.name)).toEqual([portName]);
    expect(gw.spec.template.spec.containers[0].args).toContain(`--kubernetes-service=${svc.metadata.name}`);
    const np = find(all, "NetworkPolicy", "sbx-daemon-api");
    expect(ds.spec.template.metadata.labels).toMatchObject(np.spec.podSelector.matchLabels);
    expect(gw.spec.template.metadata.labels).toMatchObject(np.spec.ingress[0].from[0].podSelector.matchLabels);
    // Each port the daemon listens on is reached only as the policy says: the API from gateways, /metrics from monitoring.
    const daemon = ds.spec.template.spec.containers[0];
    const ports = Object.fromEntries(daemon.ports.map((p: any) => [p.name, p.containerPort]));
    expect(daemon.args).toContain(`--listen=0.0.0.0:${ports.api}`);
    expect(daemon.args).toContain(`--metrics=0.0.0.0:${ports.metrics}`);
    expect(np.spec.ingress.map((r: any) => r.ports.map((p: any) => p.port))).toEqual([[ports.api], [ports.metrics]]);
    expect(np.spec.ingress[1].from).toEqual([{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } }]);
    expect(ds.spec.template.metadata.annotations["prometheus.io/port"]).toBe(String(ports.metrics));
    expect(find(all, "Role", "sbx-gateway").rules).toEqual([{ apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["get", "list", "watch"] }]);
    expect(gw.spec.template.spec.serviceAccountName).toBe("sbx-gateway");
    expect(ds.spec.template.spec.automountServiceAccountToken).toBe(false);
  });
});
