import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FrameOp, MAX_CHUNK, STREAM_WINDOW, encodeFrame } from "@sbx/protocol";
import { InvalidOptionError, RpcError, Sandbox } from "@sbx/client";
import { useSandbox } from "../helpers/fixtures.js";
import { RawClient } from "../helpers/raw.js";

const { daemon, sb } = useSandbox();
let raw: RawClient;

const SIGNALS = "SIGTERM, SIGKILL, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGSTOP, SIGCONT, SIGTSTP, SIGALRM, SIGPIPE, SIGWINCH, SIGABRT";
const BYTES = 'must be a non-negative number of bytes or a size such as "512MiB", "1.5GiB" or "10GB"';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const spawnParams = (extra: Record<string, unknown> = {}) => ({ sandbox: sb.id, cmd: "true", stdin: null, stdout: null, stderr: null, ...extra });

async function waitClosed(client: RawClient, timeoutMs = 5000): Promise<{ code: number; reason: string }> {
  const deadline = Date.now() + timeoutMs;
  while (!client.closed) {
    if (Date.now() > deadline) throw new Error("the daemon did not close the connection");
    await sleep(10);
  }
  return client.closed;
}

/** A fresh connection still gets served. */
async function daemonStillServes(): Promise<void> {
  const fresh = await RawClient.open(daemon.url, daemon.token);
  try {
    const res = await fresh.call("sandbox.list", {});
    expect(res.error).toBeUndefined();
    expect(res.result.map((s: { id: string }) => s.id)).toContain(sb.id);
    const spawned = await fresh.call("process.spawn", spawnParams());
    expect(spawned.result.pid).toBeGreaterThan(1);
  } finally {
    fresh.close();
  }
}

beforeAll(async () => {
  raw = await RawClient.open(daemon.url, daemon.token);
});
afterAll(() => {
  raw?.close();
});

describe("every bad param is -32602 naming the field", () => {
  const cases: Array<[string, string, () => Record<string, unknown>, string]> = [
    ["wrong type (cmd: 5)", "process.spawn", () => spawnParams({ cmd: 5 }), "params.cmd: must be a non-empty command without NUL bytes"],
    ["wrong type (args: string)", "process.spawn", () => spawnParams({ args: "-la" }), "params.args: expected array"],
    ["wrong type (labels value)", "sandbox.create", () => ({ labels: { a: 1 } }), "params.labels.a: expected string"],
    ["unknown field (memroy)", "sandbox.create", () => ({ memroy: 1 }), "params.memroy: is not a known field"],
    ["unknown field in spawn", "process.spawn", () => spawnParams({ shell: true }), "params.shell: is not a known field"],
    ["missing field (cmd)", "process.spawn", () => ({ sandbox: sb.id, stdin: null, stdout: null, stderr: null }), "params.cmd: is required"],
    ["missing field (sandbox)", "fs.stat", () => ({ path: "/tmp" }), "params.sandbox: is required"],
    ["NUL in a path", "fs.stat", () => ({ sandbox: sb.id, path: "a\u0000b" }), "params.path: must be a non-empty path of at most 4096 characters without NUL bytes"],
    ["NUL in a rename target", "fs.rename", () => ({ sandbox: sb.id, from: "a", to: "/tmp/\u0000" }), "params.to: must be a non-empty path of at most 4096 characters without NUL bytes"],
    ["NUL in args", "process.spawn", () => spawnParams({ args: ["ok", "a\u0000b"] }), "params.args[1]: must be a string without NUL bytes"],
    ["NUL in cmd", "process.spawn", () => spawnParams({ cmd: "true\u0000rm" }), "params.cmd: must be a non-empty command without NUL bytes"],
    ["NUL in an env value", "process.spawn", () => spawnParams({ env: { A: "x\u0000y" } }), "params.env.A: expected string to match '^[^\\u0000]*$'"],
    ["negative memory", "sandbox.create", () => ({ memory: -1 }), `params.memory: ${BYTES}`],
    ["negative disk", "sandbox.create", () => ({ disk: -5 }), `params.disk: ${BYTES}`],
    ["nonsense memory string", "sandbox.create", () => ({ memory: "lots" }), `params.memory: ${BYTES}`],
    ["zero cpus", "sandbox.create", () => ({ cpus: 0 }), "params.cpus: expected number to be greater or equal to 0.01"],
    ["unknown signal", "process.kill", () => ({ sandbox: sb.id, pid: 2, signal: "SIGFOO" }), `params.signal: must be one of ${SIGNALS}`],
    ["non-positive pid", "process.kill", () => ({ sandbox: sb.id, pid: 0 }), "params.pid: expected integer to be greater or equal to 1"],
    ["bad timeout", "sandbox.create", () => ({ timeout: "5 minutes" }), 'params.timeout: must be "session" or a duration such as "30s", "5m", "2h" or "1h30m"'],
    ["bad extend duration", "sandbox.extendTimeout", () => ({ id: sb.id, duration: "soon" }), 'params.duration: must be a duration such as "30s", "5m", "2h" or "1h30m"'],
    ["env name with '='", "env.set", () => ({ sandbox: sb.id, name: "A=B", value: "x" }), "params.name: must be a non-empty name without '=' or NUL bytes"],
    ["stream id 0", "fs.readFile", () => ({ sandbox: sb.id, path: "/etc/hostname", stream: 0 }), "params.stream: expected integer to be greater or equal to 1"],
    ["mode out of range", "fs.chmod", () => ({ sandbox: sb.id, path: "/tmp", mode: 0o10000 }), "params.mode: expected integer to be less or equal to 4095"],
  ];

  it.each(cases)("%s", async (_name, method, params, message) => {
    const res = await raw.call(method, params());
    expect(res.result).toBeUndefined();
    expect(res.error).toEqual({ code: -32602, message });
  });

  it("map keys are validated too: env names with '=' or NUL, empty label names", async () => {
    const before = (await raw.call("sandbox.list", {})).result.map((s: { id: string }) => s.id);
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ["process.spawn", spawnParams({ env: { "A=B": "x" } }), /^params\.env\["A=B"\]: /],
      ["process.spawn", spawnParams({ env: { "A\u0000": "x" } }), /^params\.env\["A\\u0000"\]: /],
      ["sandbox.create", { timeout: "5s", env: { "BAD=NAME": { not: "a string" } } }, /^params\.env\["BAD=NAME"\]: /],
      ["sandbox.create", { timeout: "5s", labels: { "": 5 } }, /^params\.labels\[""\]: /],
      ["sandbox.list", { labels: { "": { deep: [1] } } }, /^params\.labels\[""\]: /],
    ];
    const problems: string[] = [];
    for (const [method, params, message] of cases) {
      const res = await raw.call(method, params);
      if (res.result?.id) await raw.call("sandbox.kill", { id: res.result.id }); // must not have been created
      if (res.error?.code !== -32602 || !message.test(res.error.message)) {
        problems.push(`${method} ${JSON.stringify(params)} -> ${JSON.stringify(res.error ?? { result: res.result })}`);
      }
    }
    expect(problems).toEqual([]);
    expect((await raw.call("sandbox.list", {})).result.map((s: { id: string }) => s.id)).toEqual(before);
  });

  it("params that are not an object", async () => {
    expect((await raw.call("sandbox.list", [1, 2])).error).toEqual({ code: -32602, message: "params: must be an object (by-name parameters)" });
    expect((await raw.call("sandbox.list", "x")).error).toEqual({ code: -32602, message: "params: must be an object (by-name parameters)" });
  });

  it("memory below 128MiB (and other out-of-range values) are refused naming the field, creating nothing", async () => {
    const before = (await raw.call("sandbox.list", {})).result.length;
    const low = await raw.call("sandbox.create", { memory: "64MiB" });
    expect(low.error.code).toBe(-32602);
    expect(low.error.message).toMatch(/^params\.memory: must be between 128MiB and this host's \d+MiB$/);
    const lowNumber = await raw.call("sandbox.create", { memory: 128 * 1024 * 1024 - 1 });
    expect(lowNumber.error.message).toMatch(/^params\.memory: /);
    const tinyDisk = await raw.call("sandbox.create", { disk: 1000 });
    expect(tinyDisk.error).toEqual({ code: -32602, message: "params.disk: must be at least 1MiB" });
    const manyCpus = await raw.call("sandbox.create", { cpus: 1000 });
    expect(manyCpus.error.code).toBe(-32602);
    expect(manyCpus.error.message).toMatch(/^params\.cpus: must be at most this host's \d+ cores$/);
    expect((await raw.call("sandbox.list", {})).result.length).toBe(before);
    // Exactly 128MiB is fine.
    const ok = await raw.call("sandbox.create", { memory: "128MiB", timeout: "10s" });
    expect(ok.error).toBeUndefined();
    expect((await raw.call("sandbox.kill", { id: ok.result.id })).result).toBeNull();
  });

  it("the SDK maps -32602 to InvalidOptionError", async () => {
    const err = await Sandbox.create({ ...daemon.opts, memory: -1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect(err).toBeInstanceOf(RpcError);
    expect((err as InvalidOptionError).code).toBe("INVALID_OPTION");
    expect((err as InvalidOptionError).rpcCode).toBe(-32602);
    expect((err as Error).message).toBe(`params.memory: ${BYTES}`);
    const spawnErr = await sb.spawn("echo", { args: ["a\u0000b"] }).catch((e: unknown) => e);
    expect(spawnErr).toBeInstanceOf(InvalidOptionError);
    expect((spawnErr as Error).message).toBe("params.args[0]: must be a string without NUL bytes");
    const timeoutErr = await Sandbox.create({ ...daemon.opts, timeout: "5 minutes" as never }).catch((e: unknown) => e);
    expect(timeoutErr).toBeInstanceOf(InvalidOptionError);
    // The sandbox handle is still fine afterwards.
    expect(await sb.sh`echo fine`.text()).toBe("fine\n");
  });
});

describe("protocol-level errors", () => {
  it("unknown method is -32601", async () => {
    expect((await raw.call("sandbox.destroy", { id: sb.id })).error).toEqual({ code: -32601, message: "no such method 'sandbox.destroy'" });
    expect((await raw.call("__proto__", {})).error).toEqual({ code: -32601, message: "no such method '__proto__'" });
    expect((await raw.call("constructor")).error.code).toBe(-32601);
  });

  it("invalid JSON is -32700", async () => {
    const res = await raw.sendText('{"jsonrpc":"2.0","id":1,"method":');
    expect(res).toEqual({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "message is not valid JSON" } });
  });

  it("JSON nested 1000 levels deep is -32700 and the connection keeps working", async () => {
    const deep = "[".repeat(1000) + "]".repeat(1000);
    expect(await raw.sendText(deep)).toEqual({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "message nests deeper than 64 levels" } });
    const deepParams = `{"jsonrpc":"2.0","id":"deep","method":"sandbox.list","params":{"labels":${'{"a":'.repeat(1000)}1${"}".repeat(1000)}}}`;
    expect((await raw.sendText(deepParams, "null")).error).toEqual({ code: -32700, message: "message nests deeper than 64 levels" });
    expect(raw.closed).toBeNull();
    const res = await raw.call("sandbox.list", {});
    expect(res.error).toBeUndefined();
    expect(Array.isArray(res.result)).toBe(true);
  });

  it("batch requests are rejected", async () => {
    const batch = [
      { jsonrpc: "2.0", id: 901, method: "sandbox.list", params: {} },
      { jsonrpc: "2.0", id: 902, method: "sandbox.list", params: {} },
    ];
    expect(await raw.send(batch)).toEqual({ jsonrpc: "2.0", id: null, error: { code: -32600, message: "batch requests are not supported" } });
  });

  it("a non-JSON-RPC message is -32600", async () => {
    expect(await raw.send({ jsonrpc: "1.0", id: 7, method: "sandbox.list" }, 7)).toEqual({
      jsonrpc: "2.0",
      id: 7,
      error: { code: -32600, message: "not a JSON-RPC 2.0 request" },
    });
  });

  it("an unknown sandbox id is -32001", async () => {
    const id = `sbx_${"0".repeat(24)}`;
    for (const [method, params] of [
      ["sandbox.connect", { id }],
      ["env.toObject", { sandbox: id }],
      ["fs.stat", { sandbox: id, path: "/tmp" }],
      ["process.spawn", { sandbox: id, cmd: "true", stdin: null, stdout: null, stderr: null }],
    ] as const) {
      expect((await raw.call(method, params)).error, method).toEqual({ code: -32001, message: `no running sandbox '${id}'` });
    }
  });
});

describe("bounds on a connection", () => {
  it("more than 256 calls in flight: the excess get -32007, the rest complete", async () => {
    const client = await RawClient.open(daemon.url, daemon.token);
    try {
      const N = 300;
      const responses: any[] = new Array(N);
      // Each fs.upload stays in flight until its tar stream ends, which we hold back.
      const calls = Array.from({ length: N }, (_, i) => {
        const p = client.call("fs.upload", { sandbox: sb.id, path: `/tmp/inflight-${i}`, stream: 1000 + i });
        p.then((r) => (responses[i] = r));
        return p;
      });
      const deadline = Date.now() + 10_000;
      while (responses.filter(Boolean).length < N - 256 && Date.now() < deadline) await sleep(20);
      await sleep(200); // nothing else should arrive
      const answered = responses.map((r, i) => (r ? i : -1)).filter((i) => i >= 0);
      expect(answered).toEqual(Array.from({ length: N - 256 }, (_, k) => 256 + k));
      for (const i of answered) {
        expect(responses[i].error).toEqual({ code: -32007, message: "more than 256 calls in flight on this connection" });
      }
      for (let i = 0; i < 256; i++) client.end(1000 + i);
      const done = await Promise.all(calls.slice(0, 256));
      for (const r of done) expect(r.result).toEqual({ entries: 0, bytes: 0 });
      // With the calls finished, there is room again.
      expect((await client.call("sandbox.list", {})).error).toBeUndefined();
      expect(await sb.sh`ls /tmp | grep -c '^inflight-'`.text()).toBe("256\n");
    } finally {
      client.close();
    }
  });

  it("a DATA frame overrunning the window on a stdin stream closes the connection with 1008", async () => {
    const client = await RawClient.open(daemon.url, daemon.token);
    const spawned = await client.call("process.spawn", { sandbox: sb.id, cmd: "sleep", args: ["30"], stdin: 7, stdout: null, stderr: null });
    expect(spawned.result.pid).toBeGreaterThan(1);
    const chunk = new Uint8Array(MAX_CHUNK);
    for (let sent = 0; sent <= STREAM_WINDOW; sent += chunk.length) client.data(7, chunk); // one chunk past the window, while sleep reads nothing
    expect(await waitClosed(client)).toEqual({ code: 1008, reason: "flow control violated" });
    expect(daemon.logs()).toMatch(/connection \d+: flow control violated; closing it/);
    await daemonStillServes();
    expect(await sb.sh`echo sandbox-ok`.text()).toBe("sandbox-ok\n");
  });

  it("a malformed binary frame closes the connection with 1008", async () => {
    const unknownOp = await RawClient.open(daemon.url, daemon.token);
    unknownOp.ws.send(Buffer.from([9, 0, 0, 0, 1]));
    expect(await waitClosed(unknownOp)).toEqual({ code: 1008, reason: "malformed stream frame: unknown frame op 9" });

    const short = await RawClient.open(daemon.url, daemon.token);
    short.ws.send(Buffer.from([0, 0]));
    expect(await waitClosed(short)).toEqual({ code: 1008, reason: "malformed stream frame: frame shorter than its header" });

    const oversized = await RawClient.open(daemon.url, daemon.token);
    oversized.ws.send(encodeFrame(FrameOp.Data, 3, new Uint8Array(MAX_CHUNK + 1)));
    expect(await waitClosed(oversized)).toEqual({ code: 1008, reason: `malformed stream frame: DATA frame of ${MAX_CHUNK + 1} bytes exceeds ${MAX_CHUNK}` });

    const oversizedInFragments = await RawClient.open(daemon.url, daemon.token);
    oversizedInFragments.fragments([encodeFrame(FrameOp.Data, 3), new Uint8Array(MAX_CHUNK), new Uint8Array(1)]);
    expect(await waitClosed(oversizedInFragments)).toEqual({ code: 1008, reason: `malformed stream frame: DATA frame of ${MAX_CHUNK + 1} bytes exceeds ${MAX_CHUNK}` });

    const unknownOpInFragments = await RawClient.open(daemon.url, daemon.token);
    unknownOpInFragments.fragments([encodeFrame(9 as FrameOp, 3), new Uint8Array(4)]);
    expect(await waitClosed(unknownOpInFragments)).toEqual({ code: 1008, reason: "malformed stream frame: unknown frame op 9" });

    const streamZero = await RawClient.open(daemon.url, daemon.token);
    streamZero.ws.send(encodeFrame(FrameOp.End, 0));
    expect(await waitClosed(streamZero)).toEqual({ code: 1008, reason: "malformed stream frame: frame for stream 0" });

    await daemonStillServes();
  });

  it("a DATA frame in fragments, split anywhere, reaches the process whole (the SDK sends header, then payload)", async () => {
    const client = await RawClient.open(daemon.url, daemon.token);
    try {
      const spawned = await client.call("process.spawn", { sandbox: sb.id, cmd: "sha256sum", stdin: 11, stdout: 12, stderr: null });
      expect(spawned.error).toBeUndefined();
      const hash = createHash("sha256");
      const splits = (frame: Uint8Array) => [[frame], [frame.subarray(0, 5), frame.subarray(5)], [frame.subarray(0, 2), frame.subarray(2)], [frame.subarray(0, 5), frame.subarray(5, 100), frame.subarray(100)], [frame.subarray(0, 9), frame.subarray(9)]];
      for (let i = 0; i < 5; i++) {
        const payload = randomBytes(MAX_CHUNK - i);
        hash.update(payload);
        client.fragments(splits(encodeFrame(FrameOp.Data, 11, payload))[i]!);
      }
      client.end(11);
      const deadline = Date.now() + 10_000;
      while (!client.frames.some((f) => f.stream === 12 && f.op === FrameOp.End) && Date.now() < deadline) await sleep(10);
      const out = Buffer.concat(client.frames.filter((f) => f.stream === 12 && f.op === FrameOp.Data).map((f) => f.payload)).toString();
      expect(out).toBe(`${hash.digest("hex")}  -\n`);
      expect(client.closed).toBeNull();
    } finally {
      client.close();
    }
  });

  it("DATA on a stream the daemon writes closes the connection with 1008", async () => {
    const client = await RawClient.open(daemon.url, daemon.token);
    const spawned = await client.call("process.spawn", { sandbox: sb.id, cmd: "sleep", args: ["30"], stdin: null, stdout: 5, stderr: null });
    expect(spawned.error).toBeUndefined();
    client.data(5, new Uint8Array([1, 2, 3]));
    expect(await waitClosed(client)).toEqual({ code: 1008, reason: "DATA on the daemon's stream 5" });
    await daemonStillServes();
  });

  it("the connection used for bad params above was never dropped", async () => {
    expect(raw.closed).toBeNull();
    expect((await raw.call("env.toObject", { sandbox: sb.id })).result).toMatchObject({ HOME: "/home/sandbox" });
  });
});
