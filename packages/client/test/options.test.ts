import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { LIMIT_DEFAULTS } from "@sbx/protocol";

// The option types come from the protocol (the compiler checks them); the defaults written in their documentation must match the protocol's.
describe("Sandbox.create options", () => {
  const source = readFileSync(new URL("../src/sandbox.ts", import.meta.url), "utf8");

  it("documents the protocol's default limits", () => {
    expect(source).toContain(`default ${LIMIT_DEFAULTS.memory}.`);
    expect(source).toContain(`CPU quota in cores; default ${LIMIT_DEFAULTS.cpus}.`);
    expect(source).toContain(`default ${LIMIT_DEFAULTS.disk}.`);
  });
});
