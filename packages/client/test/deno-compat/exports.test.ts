/**
 * The parts of `@deno/sandbox` 0.13.2 that need no sandbox: its runtime exports, its error
 * family (names, fields, messages, and `instanceof` across both families), the classes user
 * code may not construct, KillController, and sh's escaping.
 */
import { describe, expect, it } from "vitest";
import * as sbx from "../../src/index.js";
import {
  ApiError, AuthError, ConnectionClosedError, ConnectionError, ConnectionEstablishmentError, FsFile, InvalidMemoryError, InvalidOptionError,
  InvalidTimeoutError, InvalidTokenError, KillController, KillSignal, MissingTokenError, NetworkError, RpcError, SandboxCommandError,
  SandboxError, SandboxKillError, SandboxSdkError, SeekMode, ChildProcess, Sandbox, Snapshot, Volume, VsCode, Client, NotSupportedError,
} from "../../src/index.js";
import { killSignalOf } from "../../src/kill-signal.js";
import { shellEscape } from "../../src/sh.js";

// Deno's 24 runtime exports (esm/mod.js). DenoProcess and DenoRepl come with `sandbox.deno` (the runtimes issue).
const DENO_EXPORTS = [
  "Sandbox", "VsCode", "KillController", "KillSignal", "ChildProcess", "FsFile", "SeekMode", "ApiError", "ConnectionClosedError",
  "ConnectionEstablishmentError", "InvalidMemoryError", "InvalidTimeoutError", "InvalidTokenError", "MissingTokenError", "NetworkError",
  "RpcError", "SandboxCommandError", "SandboxKillError", "SandboxSdkError", "Volume", "Snapshot", "Client",
];

describe("exports", () => {
  it.each(DENO_EXPORTS)("exports %s as a class (or enum) under Deno's name", (name) => {
    const value = (sbx as Record<string, unknown>)[name];
    expect(value, name).toBeDefined();
    expect(["function", "object"]).toContain(typeof value);
  });

  it("SeekMode is Deno's enum, with the reverse mapping", () => {
    expect([SeekMode.Start, SeekMode.Current, SeekMode.End]).toEqual([0, 1, 2]);
    expect(SeekMode[0]).toBe("Start");
  });
});

describe("errors", () => {
  it("every SDK error is a SandboxSdkError, and sbx's tree lies inside Deno's", () => {
    for (const err of [
      new ConnectionClosedError(1006),
      new ConnectionEstablishmentError(502, "BAD_GATEWAY", "no"),
      new NetworkError("down"),
      new InvalidMemoryError("bad"),
      new InvalidTimeoutError("bad"),
      new InvalidTokenError("bad"),
      new MissingTokenError("none"),
      new RpcError("x", -32000),
      new SandboxKillError(500, "boom"),
      new SandboxCommandError("Command failed with exit code 1", 1),
    ]) {
      expect(err, err.name).toBeInstanceOf(SandboxSdkError);
      expect(err, err.name).toBeInstanceOf(SandboxError);
      expect(err).toBeInstanceOf(Error);
    }
    expect(new ConnectionClosedError()).toBeInstanceOf(ConnectionError);
    expect(new NetworkError("x")).toBeInstanceOf(ConnectionError);
    expect(new InvalidTokenError("x")).toBeInstanceOf(AuthError);
    expect(new MissingTokenError("x")).toBeInstanceOf(AuthError);
    expect(new InvalidMemoryError("x")).toBeInstanceOf(InvalidOptionError);
    expect(new InvalidTimeoutError("x")).toBeInstanceOf(InvalidOptionError);
    // As Deno's: ApiError (name "ClientError") is not an SDK error.
    const api = new ApiError(404, "NOT_FOUND", "gone", "t1");
    expect(api).not.toBeInstanceOf(SandboxSdkError);
    expect(api).toMatchObject({ name: "ClientError", status: 404, code: "NOT_FOUND", traceId: "t1", message: "gone (Trace ID: t1)" });
  });

  it("names and messages as Deno's", () => {
    expect(new SandboxSdkError("x").name).toBe("Error");
    expect(new InvalidMemoryError("m").name).toBe("InvalidMemoryError");
    expect(new ConnectionClosedError(1006, "gone").message).toBe("Connection closed (code: 1006, reason: gone)");
    expect(new ConnectionClosedError().message).toBe("Connection to the sandbox was already closed");
    expect(new ConnectionClosedError(1000)).toMatchObject({ closeCode: 1000, reason: undefined, code: "CONNECTION_CLOSED" });
    expect(new ConnectionEstablishmentError(403, "FORBIDDEN", "denied", "abc")).toMatchObject({
      message: "denied (status: 403, code: FORBIDDEN, traceId: abc)", status: 403, code: "FORBIDDEN", traceId: "abc",
    });
    expect(new SandboxKillError(500, "boom")).toMatchObject({ message: "Failed to kill sandbox: 500 boom", status: 500, response: "boom" });
    const cmd = new SandboxCommandError("Command failed with exit code 42", 42);
    expect(cmd).toMatchObject({ name: "SandboxCommandError", code: 42, status: { success: false, code: 42, signal: null, oom: false } });
  });

  it("a failed file or process call carries its errno as code, as Deno's errors do", () => {
    const err = new RpcError("ENOENT: no such file or directory, stat '/nope'", -32004, { errno: "ENOENT" });
    expect(err).toMatchObject({ code: "ENOENT", errno: "ENOENT", rpcCode: -32004 });
    expect(new RpcError("other", -32000).code).toBe("RPC_ERROR");
  });
});

describe("classes user code may not construct", () => {
  it.each([
    ["Sandbox", () => new (Sandbox as any)(), TypeError, "Can not call 'Sandbox' constructor directly. Use 'Sandbox.create()' instead."],
    ["ChildProcess", () => new (ChildProcess as any)(), TypeError, "Can not construct ChildProcess, use 'sandbox.spawn()'."],
    ["FsFile", () => new (FsFile as any)(), TypeError, "Can not construct FsFile, use 'sandbox.fs.open()' or 'sandbox.fs.create()'."],
    ["KillSignal", () => new (KillSignal as any)(), Error, "Constructing instances of KillSignal is not permitted. Use KillController instead."],
    ["VsCode", () => new (VsCode as any)(), Error, "Can not construct VSCode instances directly, use 'sandbox.vscode()'"],
    ["Volume", () => new (Volume as any)(), TypeError, "Can not construct Volume, use 'Volume.create' instead."],
    ["Snapshot", () => new (Snapshot as any)(), TypeError, "Can not construct Snapshot, use 'Snapshot.create' instead."],
  ] as const)("%s", (_name, make, cls, message) => {
    expect(make).toThrow(cls);
    expect(make).toThrow(message);
  });

  it("Volume and Snapshot are made by the daemon, not by user code, as Deno's (their calls: packages/daemon/test/volumes)", () => {
    expect(() => new (Volume as unknown as new (...a: unknown[]) => unknown)(Symbol("x"), {})).toThrow("Can not construct Volume, use 'Volume.create' instead.");
    expect(() => new (Snapshot as unknown as new (...a: unknown[]) => unknown)(Symbol("x"), {})).toThrow("Can not construct Snapshot, use 'Snapshot.create' instead.");
    const client = new Client({ url: "ws://127.0.0.1:1", token: "t" });
    expect(typeof client.volumes.create).toBe("function");
    expect(typeof client.snapshots.list).toBe("function");
    expect(typeof Sandbox.create).toBe("function");
  });
});

describe("KillController", () => {
  it("sends signals to listeners and marks the signal aborted for signals that end commands, as Deno's", () => {
    const c = new KillController();
    const got: string[] = [];
    const listener = (s: string) => got.push(s);
    c.signal.addListener(listener);
    c.kill("SIGUSR1");
    expect(c.signal.aborted).toBe(false);
    c.kill();
    expect(c.signal.aborted).toBe(true);
    expect(c.signal.abortedExitCode).toBe(143);
    c.signal.removeListener(listener);
    c.kill("SIGKILL");
    expect(got).toEqual(["SIGUSR1", "SIGTERM"]);
    expect(c.signal.abortedExitCode).toBe(137);
  });

  it("an AbortSignal given to many commands gets one listener (one KillSignal), which SIGTERMs on abort", () => {
    const ac = new AbortController();
    const k = killSignalOf(ac.signal);
    expect(killSignalOf(ac.signal)).toBe(k);
    expect(k.aborted).toBe(false);
    ac.abort();
    expect(k.abortedExitCode).toBe(143);
    expect(killSignalOf(AbortSignal.abort()).abortedExitCode).toBe(143);
  });

  it("linkChild forwards to a child signal until unsubscribed", () => {
    const parent = new KillController();
    const child = new KillController();
    const sub = parent.signal.linkChild(child.signal);
    parent.kill("SIGINT");
    expect(child.signal.abortedExitCode).toBe(130);
    sub.unsubscribe();
    parent.kill("SIGKILL");
    expect(child.signal.abortedExitCode).toBe(130);
  });
});

describe("sh escaping", () => {
  it("null and undefined are the empty word; objects are refused with Deno's message", () => {
    expect(shellEscape(null)).toBe("''");
    expect(shellEscape(undefined)).toBe("''");
    expect(shellEscape(42)).toBe("42");
    expect(shellEscape(10n)).toBe("10");
    expect(() => shellEscape({ a: 1 })).toThrow("Cannot use objects as shell arguments");
    expect(() => shellEscape(new Date())).toThrow("Cannot use objects as shell arguments");
  });
});
