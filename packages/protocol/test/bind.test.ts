import { describe, expect, it } from "vitest";
import { ROUTES } from "../../gateway/src/session/routes.js";
import {
  BIND_ERROR_CODE, ErrorCodes, isSandboxId, METHODS, SANDBOX_PARAM, SandboxId, bindingAfterCreate, bindingOnCall, bindingProblem, buildOpenRpc, parseBind,
  type Binding, type MethodName,
} from "../src/index.js";

const ID = "sbx_x6Gm2K0cZ4bQ9pLrT8vW1yEd";
const PREFIXED = "sbx_n1_x6Gm2K0cZ4bQ9pLrT8vW1yEd";
const OTHER = "sbx_AAAAAAAAAAAAAAAAAAAAAAAA";
const methods = Object.keys(METHODS) as MethodName[];
/** Params naming `id` in the method's sandbox param (the rest does not matter to the binding). */
const naming = (m: MethodName, id: string) => (SANDBOX_PARAM[m] ? { [SANDBOX_PARAM[m]!]: id } : {});

describe("parseBind", () => {
  it.each([
    ["/", { kind: "none" }],
    ["/?other=1", { kind: "none" }],
    ["/?bind=new", { kind: "new", creating: false }],
    [`/?bind=${ID}`, { kind: "sandbox", id: ID, via: "id" }],
    [`/some/path?x=1&bind=${PREFIXED}`, { kind: "sandbox", id: PREFIXED, via: "id" }],
    [`ws://h:1/?bind=${ID}#frag`, { kind: "sandbox", id: ID, via: "id" }],
    [`/?bind=sbx%5F${ID.slice(4)}`, { kind: "sandbox", id: ID, via: "id" }],
  ] as const)("%s", (target, expected) => {
    expect(parseBind(target)).toEqual(expected);
  });

  it("takes a parsed query too", () => {
    expect(parseBind(new URL(`ws://h/?bind=${ID}`).searchParams)).toEqual({ kind: "sandbox", id: ID, via: "id" });
  });

  it.each([
    ["/?bind=", 'bind="" in the URL: must be a sandbox id'],
    ["/?bind", 'bind="" in the URL: must be a sandbox id'],
    ["/?bind=NEW", 'bind="NEW" in the URL: must be a sandbox id'],
    ["/?bind=sbx_short", 'bind="sbx_short" in the URL'],
    [`/?bind=${ID}-`, `bind="${ID}-" in the URL`],
    [`/?bind=sbx_UPPER_${ID.slice(4)}`, "in the URL: must be a sandbox id"],
    [`/?bind=sbx_${"a".repeat(125)}`, "at most 128 characters"],
    ["/?bind=all", 'bind="all" in the URL: must be a sandbox id (sbx_ and at least 20 letters and digits, at most 128 characters) or "new"'],
    [`/?bind=new&bind=${ID}`, 'bind is given 2 times in the URL: give it once, as a sandbox id or "new"'],
    ["/?bind=new&bind=new", "bind is given 2 times"],
  ])("refuses %s", (target, problem) => {
    const r = parseBind(target);
    expect(r).toHaveProperty("problem");
    expect((r as { problem: string }).problem).toContain(problem);
  });

  it("shortens a long value in its message", () => {
    const { problem } = parseBind(`/?bind=${"x".repeat(5000)}`) as { problem: string };
    expect(problem.length).toBeLessThan(250);
  });
});

it("isSandboxId takes ids with and without a host prefix, nothing else", () => {
  expect([ID, PREFIXED, OTHER].map(isSandboxId)).toEqual([true, true, true]);
  expect(["", "new", "sbx_short", `${ID}!`, `sbx_${"a".repeat(125)}`, `SBX_${ID.slice(4)}`, `sbx_n1__${ID.slice(4)}`].map(isSandboxId)).toEqual(Array(7).fill(false));
});

describe("SANDBOX_PARAM", () => {
  it("names, for each method, the param holding a sandbox id, and every such param", () => {
    for (const m of methods) {
      const props = (METHODS[m].params as { properties?: Record<string, unknown> }).properties ?? {};
      const sandboxProps = Object.keys(props).filter((k) => JSON.stringify(props[k]) === JSON.stringify(SandboxId));
      expect([m, sandboxProps]).toEqual([m, SANDBOX_PARAM[m] ? [SANDBOX_PARAM[m]] : []]);
    }
  });

  it("agrees with the gateway's routes: a method names a sandbox here exactly where the gateway routes it by that param", () => {
    for (const m of methods) {
      const route = ROUTES[m];
      expect([m, route.kind === "sandbox" ? route.field : null]).toEqual([m, SANDBOX_PARAM[m]]);
    }
  });
});

describe("bindingProblem", () => {
  const bound: Binding = { kind: "sandbox", id: ID, via: "id" };

  it("lets everything through without bind", () => {
    for (const m of methods) expect(bindingProblem({ kind: "none" }, m, naming(m, OTHER))).toBeNull();
  });

  it("bound: a call naming the bound sandbox runs, for every method that names one", () => {
    for (const m of methods) if (SANDBOX_PARAM[m]) expect([m, bindingProblem(bound, m, naming(m, ID))]).toEqual([m, null]);
    expect(bindingProblem(bound, "rpc.discover", {})).toBeNull();
  });

  it("bound: a call naming another sandbox is refused, naming both and the way out", () => {
    expect(bindingProblem(bound, "fs.stat", { sandbox: OTHER, path: "." })).toBe(
      `this connection is bound to sandbox ${ID} (bind=${ID} in its URL): fs.stat names ${OTHER}; open a connection without bind for other sandboxes`,
    );
    for (const m of methods) if (SANDBOX_PARAM[m]) expect(bindingProblem(bound, m, naming(m, OTHER))).toContain(`${m} names ${OTHER}`);
  });

  it("bound: every method about no one sandbox is refused, and a second create", () => {
    for (const m of methods) {
      if (SANDBOX_PARAM[m] || m === "rpc.discover") continue;
      expect(bindingProblem(bound, m, {})).toMatch(new RegExp(`^this connection is bound to sandbox ${ID} \\(bind=${ID} in its URL\\): `));
    }
    expect(bindingProblem(bound, "sandbox.list", {})).toBe(`this connection is bound to sandbox ${ID} (bind=${ID} in its URL): sandbox.list is not about that one sandbox; call it on a connection without bind`);
    expect(bindingProblem(bound, "volume.list", {})).toContain("volume.list is not about that one sandbox");
    expect(bindingProblem(bound, "sandbox.create", {})).toBe(
      `this connection is bound to sandbox ${ID} (bind=${ID} in its URL): it makes no other sandbox; call sandbox.create on a connection without bind (or with bind=new)`,
    );
  });

  it("bind=new: only create and rpc.discover until a create succeeds, one create at a time, then bound to the new sandbox", () => {
    let b: Binding = { kind: "new", creating: false };
    expect(bindingProblem(b, "sandbox.create", {})).toBeNull();
    expect(bindingProblem(b, "rpc.discover", {})).toBeNull();
    for (const m of methods) {
      if (m === "sandbox.create" || m === "rpc.discover") continue;
      expect(bindingProblem(b, m, naming(m, ID))).toBe(
        `this connection has bind=new in its URL: it accepts only sandbox.create (and rpc.discover) until it has made its sandbox; call ${m} after that create, or on a connection without bind`,
      );
    }
    b = bindingOnCall(b, "sandbox.create");
    expect(b).toEqual({ kind: "new", creating: true });
    expect(bindingProblem(b, "sandbox.create", {})).toMatch(/^this connection has bind=new in its URL and its sandbox\.create is still running: it makes one sandbox/);
    expect(bindingProblem(b, "fs.stat", { sandbox: ID, path: "." })).toMatch(/still running: wait for its answer .* before calling fs\.stat/);
    expect(bindingProblem(b, "rpc.discover", {})).toBeNull();
    // A failed create leaves it free to try again.
    expect(bindingAfterCreate(b, null)).toEqual({ kind: "new", creating: false });
    b = bindingAfterCreate(b, ID);
    expect(b).toEqual({ kind: "sandbox", id: ID, via: "new" });
    expect(bindingProblem(b, "fs.stat", { sandbox: ID, path: "." })).toBeNull();
    expect(bindingProblem(b, "sandbox.create", {})).toBe(
      `this connection is bound to sandbox ${ID} (it made it, with bind=new in its URL): it makes no other sandbox; call sandbox.create on a connection without bind (or with bind=new)`,
    );
    expect(bindingProblem(b, "sandbox.kill", { id: OTHER })).toContain(`sandbox.kill names ${OTHER}`);
  });

  it("leaves other bindings alone on calls and creates", () => {
    const none: Binding = { kind: "none" };
    expect(bindingOnCall(none, "sandbox.create")).toBe(none);
    expect(bindingAfterCreate(none, ID)).toBe(none);
    expect(bindingOnCall(bound, "sandbox.create")).toBe(bound);
    expect(bindingAfterCreate(bound, OTHER)).toBe(bound);
    expect(bindingOnCall({ kind: "new", creating: false }, "rpc.discover")).toEqual({ kind: "new", creating: false });
  });

  it("is answered with Forbidden, and the OpenRPC document describes it", () => {
    expect(BIND_ERROR_CODE).toBe(ErrorCodes.Forbidden);
    const doc = buildOpenRpc();
    expect(doc["x-bind"].errorCode).toBe(ErrorCodes.Forbidden);
    expect(doc["x-bind"].sandboxParams["fs.stat"]).toBe("sandbox");
    expect(doc["x-bind"].sandboxParams["sandbox.kill"]).toBe("id");
    expect(doc["x-bind"].sandboxParams).not.toHaveProperty("sandbox.list");
  });
});
