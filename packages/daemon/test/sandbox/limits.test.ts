import { availableParallelism } from "node:os";
import { describe, expect, it } from "vitest";
import { LIMIT_DEFAULTS, parseBytes } from "@sbx/protocol";
import { limitsOf, rootlessWarnings, sameLimits } from "../../src/sandbox/limits.js";

describe("sandbox limits", () => {
  it("fills in the protocol's defaults", () => {
    expect(limitsOf({})).toEqual({ memoryBytes: parseBytes(LIMIT_DEFAULTS.memory), cpus: LIMIT_DEFAULTS.cpus, diskBytes: parseBytes(LIMIT_DEFAULTS.disk) });
  });

  it("parses sizes and names the parameter that is out of range", () => {
    expect(limitsOf({ memory: "256MiB", cpus: 0.5, disk: 1 << 20 })).toEqual({ memoryBytes: 256 << 20, cpus: 0.5, diskBytes: 1 << 20 });
    expect(() => limitsOf({ memory: "64MiB" })).toThrow(/memory.*between 128MiB/);
    expect(() => limitsOf({ cpus: 0.001 })).toThrow(/cpus.*at least 0.01/);
    expect(() => limitsOf({ cpus: availableParallelism() + 1 })).toThrow(/cpus.*at most this host's/);
    expect(() => limitsOf({ disk: 1000 })).toThrow(/disk.*at least 1MiB/);
  });

  it("compares every field", () => {
    const a = limitsOf({});
    expect(sameLimits(a, { ...a })).toBe(true);
    for (const field of Object.keys(a) as (keyof typeof a)[]) expect(sameLimits(a, { ...a, [field]: a[field] * 2 })).toBe(false);
  });

  it("warns a rootless caller about exactly the limits it asked for", () => {
    expect(rootlessWarnings({})).toEqual([]);
    const warnings = rootlessWarnings({ memory: "1GiB", disk: "2GiB" });
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/^memory: not enforced: .*"1GiB"/);
    expect(warnings[1]).toMatch(/^disk: approximate: .*"2GiB"/);
  });
});
