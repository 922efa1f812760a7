import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { applyConfigFile, defaultConfig } from "../../src/config.js";

const dir = mkdtempSync(join(tmpdir(), "sbx-fleet-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function configOf(file: object) {
  const path = join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, JSON.stringify(file));
  const config = defaultConfig({});
  applyConfigFile(config, path);
  return config;
}

describe("fleet config keys", () => {
  it("tokens and tokensFile together are tenants token-2, token-3, ... in the order given, none named twice", () => {
    writeFileSync(join(dir, "tenants"), "# the fleet's tenants\nfile-token-aaaaaaaaaaaa\n\nfile-token-bbbbbbbbbbbb\n");
    const config = configOf({ tokens: ["inline-token-cccccccccccc"], tokensFile: join(dir, "tenants"), tenants: [{ name: "grading", token: "grading-token-dddddddddd" }] });
    expect(config.tenants.map((t) => [t.name, t.token])).toEqual([
      ["token-2", "inline-token-cccccccccccc"],
      ["token-3", "file-token-aaaaaaaaaaaa"],
      ["token-4", "file-token-bbbbbbbbbbbb"],
      ["grading", "grading-token-dddddddddd"],
    ]);
  });

  it("reads idPrefix (hashing a node name) and maxSandboxes, refusing bad values by key", () => {
    const config = configOf({ idPrefix: "ip-10-0-1-23.ec2.internal", maxSandboxes: 20 });
    expect(config.idPrefix).toMatch(/^[a-z2-7]{10}$/);
    expect(config.maxSandboxes).toBe(20);
    expect(() => configOf({ maxSandboxes: 0 })).toThrow(/config\.maxSandboxes: must be an integer of at least 1/);
    expect(() => configOf({ tokensFile: join(dir, "missing") })).toThrow(/config\.tokensFile: cannot read .*missing/);
  });
});
