import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { AllowList } from "../../src/egress/allowlist.js";
import { EgressJournal } from "../../src/egress/journal.js";
import type { DecideOptions } from "../../src/egress/policy.js";
import { EgressProxy } from "../../src/egress/proxy.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A proxy whose decisions throw (a name map that fails on every lookup), and what it reported. */
async function brokenProxy() {
  const dir = mkdtempSync(join(tmpdir(), "sbx-proxy-safety-"));
  dirs.push(dir);
  const failing = {
    lookup(): never {
      throw new TypeError("the name map failed");
    },
  };
  const proxy = new EgressProxy(AllowList.parse(["x.example.com"]), new EgressJournal(), { pins: failing } as unknown as DecideOptions);
  const reported: string[] = [];
  proxy.onInternalError = (m) => reported.push(m);
  await proxy.listen(join(dir, "proxy.sock"));
  return { proxy, reported, path: join(dir, "proxy.sock") };
}

/** Sends `request` and resolves with whatever comes back before the proxy closes the connection. */
function exchange(path: string, request: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(path, () => s.write(request));
    let got = "";
    s.on("data", (d) => (got += d));
    s.on("close", () => resolve(got));
    s.on("error", () => {});
  });
}

describe("a failure inside the proxy's own handling", () => {
  it("closes that connection and is reported, and the proxy (and the daemon) carry on", async () => {
    const { proxy, reported, path } = await brokenProxy();
    try {
      expect(await exchange(path, "CONNECT x.example.com:443 HTTP/1.1\r\nHost: x.example.com:443\r\n\r\n")).toBe("");
      expect(await exchange(path, "GET http://x.example.com/ HTTP/1.1\r\nHost: x.example.com\r\n\r\n")).toBe("");
      expect(reported).toHaveLength(2);
      expect(reported).toEqual(["TypeError: the name map failed", "TypeError: the name map failed"]);
      // Still listening: a request it can refuse on its own is refused as usual.
      expect(await exchange(path, "CONNECT elsewhere.example.com:443 HTTP/1.1\r\n\r\n")).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    } finally {
      proxy.close();
    }
  });
});
