/**
 * The gateway finding real daemons through Kubernetes EndpointSlices (a local API server): a
 * terminating daemon keeps its sandboxes reachable but gets no new ones, and a daemon whose
 * endpoint is deleted turns its sandboxes into "host lost".
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ErrorCodes } from "@sbx/protocol";
import { RpcError, Sandbox } from "@sbx/client";
import { Gateway } from "../src/gateway.js";
import { resolveConfig } from "../src/config.js";
import { startDaemon, type TestDaemon } from "../../daemon/test/helpers/daemon.js";
import { FakeKube, slice } from "./helpers/fake-kube.js";
import { token } from "./helpers/fleet.js";

const SVC = "sbx-daemon";
let kube: FakeKube;
let daemons: TestDaemon[];
let gateway: Gateway;
let dir: string;
let log = "";
const tenant = token("tenant");
const operator = token("operator");
const portOf = (d: TestDaemon) => Number(new URL(d.url).port);
const sliceOf = (i: number, state: { terminating?: boolean } = {}) => slice(`sbx-daemon-${i}`, SVC, portOf(daemons[i]!), [{ ip: "127.0.0.1", pod: `sbx-daemon-pod-${i}`, ...state }]);
const prefixOf = (id: string) => /^sbx_(k\d)_/.exec(id)?.[1];

async function logShows(pattern: RegExp): Promise<void> {
  for (const end = Date.now() + 15_000; !pattern.test(log); await new Promise((r) => setTimeout(r, 20))) {
    if (Date.now() > end) throw new Error(`log never matched ${pattern}:\n${log}`);
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "sbx-gw-kube-"));
  writeFileSync(join(dir, "tokens"), `${tenant}\n`);
  writeFileSync(join(dir, "operator"), `${operator}\n`);
  writeFileSync(join(dir, "sa-token"), "sa-token\n");
  kube = await FakeKube.start("sbx", SVC);
  daemons = await Promise.all([0, 1].map((i) => startDaemon({ env: { SBX_TOKEN: operator }, config: { idPrefix: `k${i}`, tokens: [tenant], warmPool: 0 } })));
  for (const i of [0, 1]) kube.apply("ADDED", sliceOf(i));
  const config = resolveConfig({
    listen: "127.0.0.1:0",
    tokensFile: join(dir, "tokens"),
    daemonTokenFile: join(dir, "operator"),
    kubernetes: { service: SVC, namespace: "sbx", portName: "api", apiUrl: kube.url, tokenFile: join(dir, "sa-token"), caFile: kube.caFile },
  });
  const line = (level: string) => (m: string) => (log += `${level} ${m}\n`);
  gateway = await Gateway.start(config, { log: { info: line("info"), warn: line("warn"), error: line("error") } });
  await logShows(/sbx-daemon-pod-0 \(ws:\/\/127\.0\.0\.1:\d+\) up: sandbox ids sbx_k0_/);
  await logShows(/sbx-daemon-pod-1 \(ws:\/\/127\.0\.0\.1:\d+\) up: sandbox ids sbx_k1_/);
});
afterAll(async () => {
  await gateway?.close();
  await kube?.[Symbol.asyncDispose]();
  await Promise.all((daemons ?? []).map((d) => d[Symbol.asyncDispose]()));
  rmSync(dir, { recursive: true, force: true });
});

it("a terminating daemon gets no new sandboxes but keeps serving its own; a deleted endpoint makes them 'host lost'", async () => {
  const opts = { url: gateway.url, token: tenant };
  const first = [await Sandbox.create({ ...opts, timeout: "5m" }), await Sandbox.create({ ...opts, timeout: "5m" })];
  expect(first.map((s) => prefixOf(s.id)).sort()).toEqual(["k0", "k1"]);
  const onK1 = first.find((s) => prefixOf(s.id) === "k1")!;

  kube.apply("MODIFIED", sliceOf(1, { terminating: true }));
  await logShows(/sbx-daemon-pod-1 \(ws:\/\/127\.0\.0\.1:\d+\) is not ready \(or terminating\): it gets no new sandboxes/);
  const later: Sandbox[] = [];
  for (let i = 0; i < 3; i++) later.push(await Sandbox.create({ ...opts, timeout: "5m" }));
  expect(later.map((s) => prefixOf(s.id))).toEqual(["k0", "k0", "k0"]);
  expect((await onK1.sh`echo still served`.text()).trim()).toBe("still served");

  const sleeper = await onK1.spawn("sleep", { args: ["60"] });
  kube.apply("DELETED", sliceOf(1));
  expect(await sleeper.status).toMatchObject({ signal: "SIGKILL" });
  const err = await Sandbox.connect(onK1.id, opts).catch((e: unknown) => e);
  expect((err as RpcError).rpcCode).toBe(ErrorCodes.Unavailable);
  expect((err as Error).message).toMatch(/^host lost: sandbox sbx_k1_\w+ was on the sbx daemon sbx-daemon-pod-1 \(ws:\/\/127\.0\.0\.1:\d+\), which went away \(it is no longer listed by discovery/);
  expect(kube.requests.filter((r) => !r.watch)).toHaveLength(1);

  await onK1.close();
  await Promise.all([...first.filter((s) => s !== onK1), ...later].map((s) => s.kill()));
});
