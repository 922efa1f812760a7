import { describe, expect, it } from "vitest";
import { decodeFrame, decodeFrameParts, encodeCredit, encodeFrame, creditOf, explainParams, FrameOp, jsonDepth, MAX_CHUNK, METHODS, buildOpenRpc } from "../src/index.js";

describe("explainParams names the offending field", () => {
  it.each([
    ["process.spawn", { sandbox: "s", cmd: 5, stdin: null, stdout: null, stderr: null }, /^params\.cmd: /],
    ["process.spawn", { sandbox: "s", stdin: null, stdout: null, stderr: null }, /^params\.cmd: is required$/],
    ["sandbox.create", { memroy: 1 }, /^params\.memroy: is not a known field$/],
    ["sandbox.create", { memory: -1 }, /^params\.memory: must be a non-negative number of bytes/],
    ["sandbox.create", { timeout: "5 minutes" }, /^params\.timeout: must be "session" or a duration/],
    ["fs.stat", { sandbox: "s", path: "a\u0000b" }, /^params\.path: .*without NUL bytes/],
    ["process.kill", { sandbox: "s", pid: 3, signal: "SIGFOO" }, /^params\.signal: must be one of SIGTERM/],
    ["process.spawn", { sandbox: "s", cmd: "x", args: ["ok", "bad\u0000"], stdin: null, stdout: null, stderr: null }, /^params\.args\[1\]: must be a string without NUL bytes$/],
    ["sandbox.create", { env: { "A=B": "x" } }, /^params\.env(\["A=B"\])?: /],
    ["sandbox.create", { labels: { "": "x" } }, /^params\.labels/],
    ["sandbox.create", { labels: { a: 1 } }, /^params\.labels\.a: /],
  ] as const)("%s %j", (method, params, expected) => {
    expect(explainParams(method, params)).toMatch(expected);
  });

  it("accepts well-formed params", () => {
    expect(explainParams("sandbox.create", { memory: "1GiB", timeout: "5m", labels: { a: "b" }, env: { X: "1" } })).toBeNull();
    expect(explainParams("process.spawn", { sandbox: "s", cmd: "ls", args: ["-la"], stdin: null, stdout: 1, stderr: 2 })).toBeNull();
  });
});

describe("frames", () => {
  it("round-trips DATA and CREDIT", () => {
    const data = decodeFrame(encodeFrame(FrameOp.Data, 7, new Uint8Array([1, 2, 3])));
    expect(data).toMatchObject({ op: FrameOp.Data, stream: 7 });
    expect([...(data as { payload: Uint8Array }).payload]).toEqual([1, 2, 3]);
    const credit = decodeFrame(encodeCredit(9, 123456));
    expect(typeof credit !== "string" && creditOf(credit)).toBe(123456);
  });

  it("small frames keep their bytes while later ones are encoded (they share blocks), across a block's end", () => {
    const frames = Array.from({ length: 2000 }, (_, i) => (i % 2 ? encodeCredit(i, 0xfffffff0 + (i % 16)) : encodeFrame(FrameOp.End, 0x7fffffff - i)));
    frames.forEach((f, i) => {
      const d = decodeFrame(f);
      if (typeof d === "string") throw new Error(d);
      expect(d.stream).toBe(i % 2 ? i : 0x7fffffff - i);
      if (i % 2) expect(creditOf(d)).toBe(0xfffffff0 + (i % 16));
      else expect(d.op).toBe(FrameOp.End);
    });
    expect(new Set(frames.map((f) => f.buffer)).size).toBeGreaterThan(1);
  });

  it("rejects malformed frames with a reason", () => {
    expect(decodeFrame(new Uint8Array([0, 0]))).toMatch(/shorter than its header/);
    expect(decodeFrame(encodeFrame(9 as FrameOp, 1))).toMatch(/unknown frame op/);
    expect(decodeFrame(encodeFrame(FrameOp.Data, 0, new Uint8Array(1)))).toMatch(/stream 0/);
    expect(decodeFrame(encodeFrame(FrameOp.Data, 1, new Uint8Array(MAX_CHUNK + 1)))).toMatch(/exceeds/);
    expect(decodeFrame(encodeFrame(FrameOp.Credit, 1, new Uint8Array(3)))).toMatch(/4-byte/);
  });

  it("decodes a message's fragments however it was split, the SDK's header-then-payload without a copy", () => {
    const payload = new Uint8Array(1000).map((_, i) => i & 0xff);
    const whole = encodeFrame(FrameOp.Data, 0x01020304, payload);
    const splits = [[whole], [whole.subarray(0, 5), whole.subarray(5)], [whole.subarray(0, 2), whole.subarray(2)], [whole.subarray(0, 5), whole.subarray(5, 300), whole.subarray(300)], [whole.subarray(0, 7), whole.subarray(7)]];
    for (const parts of splits) {
      const f = decodeFrameParts(parts);
      expect(f, `split ${parts.map((p) => p.byteLength)}`).toMatchObject({ op: FrameOp.Data, stream: 0x01020304 });
      expect(Buffer.from((f as { payload: Uint8Array }).payload).equals(Buffer.from(payload))).toBe(true);
    }
    const sdk = [encodeFrame(FrameOp.Data, 3), payload];
    expect((decodeFrameParts(sdk) as { payload: Uint8Array }).payload).toBe(payload);
  });

  it("checks fragments as it checks a whole frame", () => {
    expect(decodeFrameParts([])).toMatch(/shorter than its header/);
    expect(decodeFrameParts([new Uint8Array([0, 0]), new Uint8Array([0])])).toMatch(/shorter than its header/);
    expect(decodeFrameParts([encodeFrame(FrameOp.Data, 1), new Uint8Array(MAX_CHUNK + 1)])).toMatch(/exceeds/);
    expect(decodeFrameParts([encodeFrame(FrameOp.End, 1), new Uint8Array(1)])).toMatch(/END frame with a payload/);
    expect(decodeFrameParts([encodeFrame(FrameOp.Credit, 1), new Uint8Array(4), new Uint8Array(1)])).toMatch(/4-byte/);
    expect(decodeFrameParts([encodeFrame(9 as FrameOp, 1), new Uint8Array(4)])).toMatch(/unknown frame op/);
    expect(decodeFrameParts([encodeFrame(FrameOp.Data, 0), new Uint8Array(4)])).toMatch(/stream 0/);
  });
});

describe("jsonDepth", () => {
  it("counts nesting outside strings only", () => {
    expect(jsonDepth('{"a":[1,{"b":"[[[[{{{"}]}')).toBe(3);
    expect(jsonDepth("[".repeat(1000) + "]".repeat(1000))).toBe(1000);
    expect(jsonDepth('"\\"[[["')).toBe(0);
    // An escaped backslash before a quote ends the string; an escaped quote does not.
    expect(jsonDepth('["a\\\\",[["x"]]]')).toBe(3);
    expect(jsonDepth('["a\\\\\\"[[",1]')).toBe(1);
    expect(jsonDepth('{"a":"' + "x".repeat(4 << 20) + '","b":[[1]]}')).toBe(3);
  });

  it("matches the depth of generated documents whose strings hold brackets, quotes and backslashes", () => {
    for (let i = 0; i < 2000; i++) {
      const build = (d: number): unknown => (d === 0 ? "s\\\"[{" + i : i % 2 ? [build(d - 1), '"]'] : { k: build(d - 1), "\\": "{" });
      const depth = i % 12;
      expect(jsonDepth(JSON.stringify(build(depth)))).toBe(depth);
    }
  });
});

describe("OpenRPC document", () => {
  it("describes every method with its params and errors", () => {
    const doc = buildOpenRpc();
    expect(doc.methods.map((m) => m.name).sort()).toEqual(Object.keys(METHODS).sort());
    const spawn = doc.methods.find((m) => m.name === "process.spawn")!;
    expect(spawn.params.find((p) => p.name === "cmd")).toMatchObject({ required: true });
    expect(spawn.errors.map((e) => e.message)).toContain("SpawnFailed");
  });
});
