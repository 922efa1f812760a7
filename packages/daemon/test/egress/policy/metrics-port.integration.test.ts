import { networkInterfaces } from "node:os";
import { describe, expect, it } from "vitest";
import { Sandbox } from "@sbx/client";
import { useDaemon } from "../../helpers/fixtures.js";
import { killAtEnd } from "../../helpers/kill-at-end.js";

/**
 * The daemon's /metrics (config metricsListen) carries no token and names every tenant with its
 * usage. A tenant may allow IP literals, loopback included, in its sandbox's allowNet: without a
 * defence, a sandbox allowed `127.0.0.1:<metrics port>` (or the host's own address, where
 * metrics listen on every address, as a fleet's pods do) reads other tenants' figures.
 */
const daemon = useDaemon({ args: ["--metrics", "0.0.0.0:0", "--warm-pool", "0"] });

describe("the daemon's metrics endpoint", () => {
  it("is out of sandboxes' reach at every address it answers on, even where allowNet names it", async () => {
    const port = Number(/metrics on http:\/\/0\.0\.0\.0:(\d+)\/metrics/.exec(daemon.logs())![1]);
    const own = Object.values(networkInterfaces()).flat().find((a) => a && a.family === "IPv4" && !a.internal)!.address;
    // The host side does answer there (so a refusal below is the proxy's, not a closed port).
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(200);
    const targets = [`127.0.0.1:${port}`, `${own}:${port}`];
    await using sb = killAtEnd(await Sandbox.create({ url: daemon.url, token: daemon.token, allowNet: targets }));
    for (const target of targets) {
      // Loopback is in the sandbox's NO_PROXY (its own loopback): sent to the proxy explicitly.
      const out = await sb.sh`env -u NO_PROXY -u no_proxy curl -s -o /dev/null -w '%{http_code}' --max-time 10 --proxy http://127.0.0.1:3128 http://${target}/metrics`.noThrow().text();
      expect(out.trim(), target).toBe("403");
    }
    const log = await sb.egressLog();
    const refusals = log.filter((e) => !e.allowed && e.port === port);
    expect(refusals.length).toBeGreaterThanOrEqual(2);
    for (const r of refusals) expect(r.reason).toMatch(/is the sbx daemon's metrics endpoint, which sandboxes can never reach/);
  });
});
