import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DenoRepl, PythonRepl, ReplError, RpcError, Sandbox } from "@sbx/client";
import { startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startUpstreams, type Upstreams } from "../helpers/upstreams.js";

let daemon: TestDaemon;
let sb: Sandbox;
let up: Upstreams;
const quiet = { stdout: "null", stderr: "null" } as const;

beforeAll(async () => {
  up = await startUpstreams();
  const testCa = join(mkdtempSync(join(tmpdir(), "sbx-repl-test-")), "test-ca.pem");
  writeFileSync(testCa, up.caPem);
  daemon = await startDaemon({ config: { egress: { resolve: up.resolve, extraCaCerts: [testCa] } } });
  sb = await Sandbox.create(daemon.opts);
});
afterAll(async () => {
  await sb?.kill();
  await daemon?.[Symbol.asyncDispose]();
  await up?.close();
});

describe("sandbox.deno", () => {
  it("eval returns the value of the last expression", async () => {
    expect(await sb.deno.eval("const a = 1; const b = 2; a + b;", quiet)).toBe(3);
    expect(await sb.deno.eval("Deno.version.deno", quiet)).toMatch(/^2\./);
    // The binary is the daemon's, read-only, on PATH; the sandbox cannot replace it.
    expect(await sb.sh`command -v deno; deno --version | head -1; test -w /.sbx/bin/deno || echo read-only`.text()).toMatch(/^\/\.sbx\/bin\/deno\ndeno 2\.\S+ .*\nread-only\n$/);
  });

  it("repl keeps state across calls; TypeScript, top-level await, call by name or expression", async () => {
    await using repl = await sb.deno.repl(quiet);
    expect(repl).toBeInstanceOf(DenoRepl);
    expect(await repl.eval("const x = 42;")).toBeUndefined();
    await repl.eval("let y: number = 8; function add(a: number, b: number): number { return a + b }");
    expect(await repl.eval("x + y")).toBe(50);
    expect(await repl.eval("await new Promise((r) => setTimeout(() => r(x * 2), 10))")).toBe(84);
    expect(await repl.call("add", 1, 2)).toBe(3);
    expect(await repl.call("(a, b) => a + b", 1, 2)).toBe(3);
    expect(await repl.call("async (s) => s.toUpperCase()", "abc")).toBe("ABC");
  });

  it("values keep their types: undefined, NaN, -0, BigInt, Date, Map, Set, bytes, shared and circular references", async () => {
    await using repl = await sb.deno.repl(quiet);
    const v = (await repl.eval(`
      const shared = { n: 1 };
      const o = { u: undefined, nan: NaN, neg: -0, big: 2n ** 70n, d: new Date(5), m: new Map([[1, shared]]), s: new Set(["a"]), b: new Uint8Array([1, 2, 255]), shared, re: /a+/gi, $: "dollar" };
      o.self = o;
      o`)) as Record<string, unknown>;
    expect(v.u).toBeUndefined();
    expect("u" in v).toBe(true);
    expect(v.nan).toBeNaN();
    expect(Object.is(v.neg, -0)).toBe(true);
    expect(v.big).toBe(2n ** 70n);
    expect(v.d).toEqual(new Date(5));
    expect(v.m).toEqual(new Map([[1, { n: 1 }]]));
    expect((v.m as Map<number, unknown>).get(1)).toBe(v.shared);
    expect(v.s).toEqual(new Set(["a"]));
    expect(v.b).toEqual(new Uint8Array([1, 2, 255]));
    expect(v.re).toEqual(/a+/gi);
    expect(v.$).toBe("dollar");
    expect(v.self).toBe(v);
  });

  it("exceptions reject as the built-in class with the REPL's stack; the REPL goes on", async () => {
    await using repl = await sb.deno.repl(quiet);
    const err = await repl.eval("null.x").then(() => null, (e: ReplError) => e);
    expect(err).toBeInstanceOf(TypeError);
    expect(err!.message).toMatch(/null/);
    expect(await repl.eval("throw new RangeError('too far')").catch((e: ReplError) => e)).toBeInstanceOf(RangeError);
    const custom = await repl.eval("class Oops extends Error { name = 'Oops' }; throw new Oops('no')").then(() => null, (e: ReplError) => e);
    expect(custom).toBeInstanceOf(ReplError);
    expect([custom!.type, custom!.message]).toEqual(["Oops", "Oops: no"]);
    expect(await repl.eval("1 +").catch((e: ReplError) => e)).toBeInstanceOf(SyntaxError);
    expect(await repl.eval("'still here'")).toBe("still here");
  });

  it("what the code prints reaches the REPL's stdout stream", async () => {
    const repl = await sb.deno.repl({ stdout: "piped", stderr: "null" });
    await repl.eval("console.log('printed'); 1");
    await repl.close();
    expect(new TextDecoder().decode((await repl.output()).stdout!)).toBe("printed\n");
  });

  it("a call past its timeout ends the Deno REPL with TimeoutError", async () => {
    const repl = await sb.deno.repl(quiet);
    const err = await repl.eval("while (true) {}", { timeout: 300 }).then(() => null, (e: ReplError) => e);
    expect(err).toBeInstanceOf(ReplError);
    expect(err!.type).toBe("TimeoutError");
    expect((await repl.status).signal).toBe("SIGKILL");
    await expect(repl.eval("1")).rejects.toBeInstanceOf(RpcError);
  });

  it("fetch from Deno code goes through the egress proxy, with a secret substituted", async () => {
    const real = "sk-real-" + "x".repeat(24);
    await using sec = await Sandbox.create({ ...daemon.opts, secrets: { OPENAI_KEY: { hosts: ["api.openai.com"], value: real } } });
    const placeholder = await sec.deno.eval<string>(`Deno.env.get("OPENAI_KEY")`, quiet);
    expect(placeholder).toMatch(/^SBX_SECRET_/);
    const body = await sec.deno.eval<{ path: string; headers: Record<string, string> }>(
      `await (await fetch("https://api.openai.com/echo/deno-repl", { headers: { authorization: "Bearer " + Deno.env.get("OPENAI_KEY") } })).json()`,
      quiet,
    );
    // The echo shows what the sandbox sees (the placeholder, scrubbed back); the upstream got the value.
    expect(body.path).toBe("/echo/deno-repl");
    expect(up.seen.find((r) => r.path === "/echo/deno-repl")!.headers.authorization).toBe(`Bearer ${real}`);
    // A host not allowed is refused by the proxy.
    const blocked = await sec.deno.eval(`(await fetch("https://api.example.test/")).status`, quiet).catch((e: Error) => e);
    expect(blocked).toBeInstanceOf(TypeError);
    expect((await sec.egressLog()).some((e) => !e.allowed && e.host === "api.example.test")).toBe(true);
  });
});

describe("sandbox.python", () => {
  it("eval returns the last expression; state persists in a repl; call", async () => {
    expect(await sb.python.eval("x = 6\nx * 7", quiet)).toBe(42);
    await using py = await sb.python.repl(quiet);
    expect(py).toBeInstanceOf(PythonRepl);
    expect(await py.eval("import math\nr = 2")).toBeNull();
    expect(await py.eval("round(math.pi * r ** 2, 3)")).toBe(12.566);
    expect(await py.eval("def add(a, b):\n    return a + b")).toBeNull();
    expect(await py.call("add", 2, 3)).toBe(5);
    expect(await py.call("lambda s: s.upper()", "abc")).toBe("ABC");
    expect(await py.eval("import asyncio\nawait asyncio.sleep(0.01)\n'awaited'")).toBe("awaited");
    expect(await py.eval("{'a': [1, 2.5, None, True], 'b': b'\\x00\\xff', 'big': 2**70, 't': (1, 2), 's': {3}}")).toEqual({ a: [1, 2.5, null, true], b: new Uint8Array([0, 255]), big: 2n ** 70n, t: [1, 2], s: new Set([3]) });
  });

  it("captures each call's stdout and stderr, child processes included", async () => {
    await using py = await sb.python.repl(quiet);
    const out = await py.exec("import os, sys\nprint('out')\nprint('err', file=sys.stderr)\nos.system('echo from-child')\n7");
    expect(out).toMatchObject({ value: 7, repr: "7", stdout: "out\nfrom-child\n", stderr: "err\n", error: null });
    expect((await py.exec("print('next')")).stdout).toBe("next\n");
  });

  it("exceptions come back structured: type, message, traceback of the user's code only", async () => {
    await using py = await sb.python.repl(quiet);
    const out = await py.exec("print('before')\ndef f():\n    return 1 / 0\nf()");
    expect(out.stdout).toBe("before\n");
    expect(out.error).toBeInstanceOf(ReplError);
    expect([out.error!.type, out.error!.message]).toEqual(["ZeroDivisionError", "ZeroDivisionError: division by zero"]);
    expect(out.error!.traceback).toMatch(/File "<cell-\d+>", line 3, in f/);
    expect(out.error!.traceback).not.toMatch(/python-repl|\.sbx/);
    await expect(py.eval("undefined_name")).rejects.toMatchObject({ type: "NameError" });
  });

  it("a timeout interrupts the code and keeps the session and its state", async () => {
    await using py = await sb.python.repl(quiet);
    await py.eval("kept = 'yes'");
    const started = Date.now();
    const out = await py.exec("import time\nwhile True:\n    time.sleep(0.01)", { timeout: 300 });
    expect(Date.now() - started).toBeLessThan(3000);
    expect(out.error?.type).toBe("TimeoutError");
    // `except Exception` in user code does not swallow it.
    const swallowed = await py.exec("try:\n    while True: pass\nexcept Exception:\n    print('swallowed')", { timeout: "300ms" });
    expect([swallowed.error?.type, swallowed.stdout]).toEqual(["TimeoutError", ""]);
    expect(await py.eval("kept")).toBe("yes");
  });

  it("a REPL whose pipe carries garbage or an endless line is ended; the daemon and sandbox go on", async () => {
    // The driver shares its process with the user's code, which can write to the reply pipe (fd 4).
    const py = await sb.python.repl(quiet);
    await expect(py.exec("import os\nos.write(4, b'not json\\n')\nimport time; time.sleep(5)")).rejects.toThrow(/the REPL was ended: the driver sent a line that is not JSON/);
    expect((await py.status).signal).toBe("SIGKILL");
    const endless = await sb.python.repl(quiet);
    await expect(endless.exec("import os\nchunk = b'x' * (1 << 20)\nfor _ in range(64): os.write(4, chunk)")).rejects.toThrow(/longer than \d+ bytes/);
    const forged = await sb.deno.repl(quiet);
    await expect(forged.eval(`const f = await Deno.open("/dev/fd/4", { write: true }); await f.write(new TextEncoder().encode('{"id": 1, "ok": "yes"}\\n')); await new Promise(() => {})`)).rejects.toThrow(/wrong shape/);
    expect(await sb.sh`echo fine`.text()).toBe("fine\n");
  });

  it("closed or foreign REPLs are not found", async () => {
    const py = await sb.python.repl(quiet);
    await py.close();
    await expect(py.eval("1")).rejects.toThrow(/no running REPL/);
    const deno = await sb.deno.repl(quiet);
    await using other = await Sandbox.create(daemon.opts);
    // Another sandbox of the same token cannot reach it by pid, nor can another token at all.
    await expect((other as unknown as { conn: { request: (m: string, p: unknown) => Promise<unknown> } }).conn.request("repl.eval", { sandbox: other.id, pid: deno.pid, code: "1" })).rejects.toThrow(/no running REPL/);
    await deno.close();
  });
});

describe('config "deno": false', () => {
  it("gives sandboxes no Deno, and sandbox.deno says why; Python keeps working", async () => {
    await using noDeno = await startDaemon({ config: { deno: false } });
    const plain = await Sandbox.create(noDeno.opts);
    try {
      expect(await plain.sh`test -e /.sbx/bin/deno && echo present || echo absent; command -v deno || true`.text()).toBe("absent\n");
      const err = await plain.deno.eval("1 + 1", quiet).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RpcError);
      expect((err as Error).message).toMatch(/this daemon's sandboxes have no Deno \(config deno: false/);
      expect(await plain.python.eval("6 * 7", quiet)).toBe(42);
    } finally {
      await plain.kill();
    }
  });
});
