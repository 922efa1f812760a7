import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidOptionError, RpcError, Sandbox } from "@sbx/client";
import { ErrorCodes, STREAM_WINDOW } from "@sbx/protocol";
import { startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { RawClient } from "../helpers/raw.js";

let daemon: TestDaemon;
const text = (b: Uint8Array | null) => new TextDecoder().decode(b ?? new Uint8Array());
const TENANT2 = "a-second-tenant-token-of-16+-chars";

beforeAll(async () => {
  daemon = await startDaemon({ config: { tokens: [TENANT2] } });
});
afterAll(async () => {
  await daemon?.[Symbol.asyncDispose]();
});

/** Reads a stream until `n` bytes came. */
async function readBytes(stream: ReadableStream<Uint8Array>, n: number): Promise<string> {
  const reader = stream.getReader();
  let got = "";
  while (got.length < n) {
    const { value, done } = await reader.read();
    if (done) break;
    got += text(value);
  }
  reader.releaseLock();
  return got;
}

describe("reattach after a disconnect", () => {
  it("a build keeps running while its client is gone; a new connection lists it and resumes its output at an offset", async () => {
    const first = await Sandbox.create({ ...daemon.opts, timeout: "5m" });
    const id = first.id;
    // Prints 40 numbered lines, one every 25 ms, then exits 3.
    const p = await first.spawn("bash", { args: ["-c", "for i in $(seq 10 49); do echo line$i; sleep 0.025; done; echo done >&2; exit 3"] });
    const seen = await readBytes(p.stdout!, 7 * 5); // "line10\n" .. "line14\n"
    expect(seen).toBe("line10\nline11\nline12\nline13\nline14\n");
    await first.close(); // the connection drops (the sandbox is a timed one, so it stays)

    const again = await Sandbox.connect(id, daemon.opts);
    const [listed] = await again.processes();
    expect(listed).toMatchObject({ pid: p.pid, cmd: "bash", running: true });
    expect(listed!.status).toBeUndefined();
    expect(listed!.stdout!.start).toBe(0);
    const resumed = await again.attach(p.pid, { stdoutFrom: seen.length });
    expect(resumed.stdoutFrom).toBe(35);
    const out = await resumed.output();
    // Every line after the ones already read, once, in order; nothing lost while no one was attached.
    expect(out.stdoutText).toBe(Array.from({ length: 35 }, (_, i) => `line${i + 15}\n`).join(""));
    expect(out.stderrText).toBe("done\n");
    expect(out.status.code).toBe(3);
    const [after] = await again.processes();
    expect(after).toMatchObject({ running: false, status: { code: 3 }, stdout: { start: 0, end: 280 } });
    await again.kill();
  });

  it("attaching to a process that already ended gives its kept output and its status", async () => {
    const first = await Sandbox.create({ ...daemon.opts, timeout: "5m" });
    const p = await first.spawn("bash", { args: ["-c", "echo finished; exit 5"], stdout: "null", stderr: "null" });
    await p.status;
    const q = await first.spawn("bash", { args: ["-c", "printf 'abc'; exit 4"] });
    await q.status;
    await first.close();
    const again = await Sandbox.connect(first.id, daemon.opts);
    const r = await again.attach(q.pid, { stdoutFrom: 1 });
    // A process this quick may exit before its spawn is answered: its status is kept all the same.
    expect(await r.output()).toMatchObject({ stdoutText: "bc", stderrText: "", status: { code: 4 } });
    // stdout was not piped: nothing to attach to, and the error says so.
    await expect(again.attach(p.pid)).rejects.toThrow(/stdout not piped/);
    await again.kill();
  });

  it("only the last 1 MiB is kept: an older offset is refused naming the earliest kept", async () => {
    await using sb = await Sandbox.create({ ...daemon.opts, timeout: "5m" });
    const p = await sb.spawn("bash", { args: ["-c", "head -c 3000000 /dev/zero | tr '\\0' x; sleep 30"] });
    expect((await readBytes(p.stdout!, 3000000)).length).toBe(3000000);
    const listed = (await sb.processes()).find((x) => x.pid === p.pid)!;
    expect(listed.stdout).toEqual({ start: 3000000 - (1 << 20), end: 3000000 });
    const err = await sb.attach(p.pid, { stdoutFrom: 10 }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect((err as Error).message).toMatch(new RegExp(`bytes 10\\.\\.${3000000 - (1 << 20)} of stdout are no longer kept.*earliest now is offset ${3000000 - (1 << 20)}`));
    await expect(sb.attach(p.pid, { stdoutFrom: 3000001 })).rejects.toThrow(/past the end of stdout/);
    const tail = await sb.attach(p.pid, { stdoutFrom: 3000000 - 10 });
    expect(await readBytes(tail.stdout!, 10)).toBe("x".repeat(10));
    await tail.kill("SIGKILL");
  });

  it("with nobody attached an endless writer waits after one window, costing the daemon nothing; a reader lets it go on", async () => {
    const first = await Sandbox.create({ ...daemon.opts, timeout: "5m" });
    const p = await first.spawn("bash", { args: ["-c", "cat /dev/zero"] });
    await first.close();
    const again = await Sandbox.connect(first.id, daemon.opts);
    const at = async () => (await again.processes()).find((x) => x.pid === p.pid)!.stdout!.end;
    // Let what was in flight when the reader left arrive (cat fills a window in milliseconds), then watch: it no longer moves.
    await new Promise((r) => setTimeout(r, 1500));
    const before = await at();
    await new Promise((r) => setTimeout(r, 1000));
    const after = await at();
    // Stopped at the window (plus what was in flight), not drained endlessly.
    expect(after).toBe(before);
    // At most a window the first client was sent (unread) plus the stream's window nobody read (at most as wide).
    expect(after).toBeLessThanOrEqual(2 * STREAM_WINDOW);
    const resumed = await again.attach(p.pid);
    expect((await readBytes(resumed.stdout!, 3 << 20)).length).toBeGreaterThanOrEqual(3 << 20);
    expect(await at()).toBeGreaterThan(after);
    await resumed.kill("SIGKILL");
    await again.kill();
  });

  it("a second attach takes over from the first; another tenant cannot list or attach", async () => {
    await using sb = await Sandbox.create({ ...daemon.opts, timeout: "5m" });
    const p = await sb.spawn("bash", { args: ["-c", "echo one; sleep 30"] });
    await readBytes(p.stdout!, 4);
    const other = await Sandbox.connect(sb.id, daemon.opts);
    const second = await other.attach(p.pid, { stdoutFrom: 0 });
    expect(await readBytes(second.stdout!, 4)).toBe("one\n");
    // The first reader's stream ends with an error: it was let go.
    await expect(p.stdout!.getReader().read()).rejects.toThrow(/another client attached/);
    // Another tenant, on a connection bound to no sandbox (the SDK's Sandbox connections are bound to theirs).
    const theirs = await RawClient.open(daemon.url, TENANT2);
    expect((await theirs.call("process.list", { sandbox: sb.id })).error).toMatchObject({ code: ErrorCodes.SandboxNotFound, message: expect.stringMatching(/no running sandbox/) });
    expect((await theirs.call("process.attach", { sandbox: sb.id, pid: p.pid, stdout: 99, stderr: null })).error).toMatchObject({ code: ErrorCodes.SandboxNotFound, message: expect.stringMatching(/no running sandbox/) });
    theirs.close();
    await expect(other.attach(999999)).rejects.toBeInstanceOf(RpcError);
    await p.kill("SIGKILL");
    await other.close();
  });
});
