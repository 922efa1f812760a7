import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ResourceLimitError, Sandbox } from "@sbx/client";
import { sandboxHostPids } from "../helpers/daemon.js";
import { useDaemon } from "../helpers/fixtures.js";

/**
 * SECURITY.md "Exhausting the host": live sandboxes per token are bounded (maxSandboxesPerToken),
 * so one token cannot launch sandboxes until the host gives out. A refused create launches
 * nothing, and the bound is per token: another tenant is not held to it.
 */

const OTHER = `other-tenant-${randomBytes(24).toString("base64url")}`;
// No warm pool: every sandbox (and nothing else) has a cgroup and processes of its own.
const daemon = useDaemon({ config: { maxSandboxesPerToken: 2, tokens: [OTHER] }, args: ["--warm-pool", "0"] });

/** The sandbox cgroups of this daemon in the memory hierarchy (sbx-<12 hex of sha256(stateDir)>/<id>). */
function sandboxCgroups(): string[] {
  const base = `/sys/fs/cgroup/memory/sbx-${createHash("sha256").update(daemon.stateDir).digest("hex").slice(0, 12)}`;
  return existsSync(base) ? readdirSync(base, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort() : [];
}
const hostPids = () => sandboxHostPids(daemon.uids!).sort((a, b) => a - b);

describe("maxSandboxesPerToken", () => {
  it("refuses a token's third sandbox with ResourceLimitError, launching nothing; a kill frees a place; another token is not affected", async () => {
    const a = await Sandbox.create(daemon.opts);
    const b = await Sandbox.create(daemon.opts);
    const listed = async () => (await Sandbox.list(daemon.opts)).map((s) => s.id).sort();
    expect(await listed()).toEqual([a.id, b.id].sort());
    expect(sandboxCgroups()).toEqual([a.id, b.id].sort());
    const pidsBefore = hostPids();
    expect(pidsBefore.length).toBeGreaterThan(0);

    const third = await Sandbox.create(daemon.opts).catch((e: unknown) => e);
    expect(third).toBeInstanceOf(ResourceLimitError);
    expect((third as ResourceLimitError).code).toBe("RESOURCE_LIMIT");
    expect((third as ResourceLimitError).rpcCode).toBe(-32005);
    expect((third as Error).message).toBe("this token already has 2 sandboxes, the most the daemon allows (maxSandboxesPerToken)");
    // Nothing was launched for it: still the two sandboxes, their cgroups and their processes only.
    expect(await listed()).toEqual([a.id, b.id].sort());
    expect(sandboxCgroups()).toEqual([a.id, b.id].sort());
    expect(hostPids()).toEqual(pidsBefore);

    // Another tenant has a bound of its own: two sandboxes while the first token is at its bound.
    const theirs = [await Sandbox.create({ url: daemon.url, token: OTHER }), await Sandbox.create({ url: daemon.url, token: OTHER })];
    await expect(Sandbox.create({ url: daemon.url, token: OTHER })).rejects.toBeInstanceOf(ResourceLimitError);
    expect((await Sandbox.list(daemon.opts)).length).toBe(2);

    // Killing one frees its place.
    await a.kill();
    const c = await Sandbox.create(daemon.opts);
    expect(await listed()).toEqual([b.id, c.id].sort());
    expect(await (await c.spawn("true")).status).toMatchObject({ success: true });
    await expect(Sandbox.create(daemon.opts)).rejects.toBeInstanceOf(ResourceLimitError);
    await Promise.all([b.kill(), c.kill(), ...theirs.map((s) => s.kill())]);
  });
});
