import { describe, expect, it } from "vitest";
import { Host } from "../src/fleet/host.js";
import { assess, bytesOf, requestOf, type DaemonInfo } from "../src/fleet/placement.js";
import { createLogger } from "../src/log.js";

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const info = (over: { live?: number; max?: number; committed?: number; available?: number; draining?: boolean; cpus?: number }): DaemonInfo => ({
  version: "0.1.0",
  mode: "root",
  idPrefix: "h0",
  draining: over.draining ?? false,
  capacity: {
    sandboxes: { live: over.live ?? 0, max: over.max ?? 100 },
    memory: { totalBytes: 24 * GiB, availableBytes: over.available ?? 20 * GiB, committedBytes: over.committed ?? 0 },
    disk: { totalBytes: 100 * GiB, freeBytes: 80 * GiB, committedBytes: 0 },
    cpus: { count: over.cpus ?? 8, committed: 0 },
  },
});
const req = requestOf({});

describe("requestOf", () => {
  it("takes the protocol's defaults and sizes", () => {
    expect(req).toEqual({ memoryBytes: 1280 * MiB, diskBytes: 10 * GiB, cpus: 1 });
    expect(requestOf({ memory: "512MiB", disk: "1G", cpus: 0.5 })).toEqual({ memoryBytes: 512 << 20, diskBytes: 1e9, cpus: 0.5 });
    expect(bytesOf(1234)).toBe(1234);
    expect(bytesOf("2 GiB")).toBe(2 * GiB);
  });
});

describe("assess", () => {
  it("refuses a draining host, a full one, one without the memory or the CPUs, saying why", () => {
    expect(assess(info({ draining: true }), req, 0)).toEqual({ refused: "draining" });
    expect(assess(info({ live: 9, max: 10 }), req, 1)).toEqual({ refused: "10 of at most 10 sandboxes" });
    expect(assess(info({ available: GiB }), req, 0)).toEqual({ refused: "1024 MiB of memory available, 1280 MiB asked" });
    expect(assess(info({ cpus: 2 }), { ...req, cpus: 4 }, 0)).toEqual({ refused: "2 CPUs, 4 asked" });
  });

  it("prefers the host whose own sandboxes hold less, other things equal", () => {
    const load = (i: DaemonInfo, placing = 0) => (assess(i, req, placing) as { load: number }).load;
    expect(load(info({ live: 1, committed: 1280 * MiB }))).toBeLessThan(load(info({ live: 2, committed: 2560 * MiB })));
    // Creates still in flight count as if they were there.
    expect(load(info({ live: 1, committed: 1280 * MiB }), 2)).toBeGreaterThan(load(info({ live: 2, committed: 2560 * MiB })));
    // Memory in use host-wide counts too.
    expect(load(info({ available: 10 * GiB }))).toBeGreaterThan(load(info({ available: 20 * GiB })));
  });
});

describe("which daemons get relayed connections", () => {
  const host = (features?: string[]) => {
    const h = new Host({ url: "ws://10.0.0.5:7070", name: "d5", ready: true }, "operator", { onUp: () => {}, onLost: () => {} }, createLogger(() => {}), 5000);
    h.info = features === undefined ? info({}) : { ...info({}), features };
    return h;
  };
  it("only one whose daemon.info says it holds bound connections itself: an older daemon, or one that does not say so, is refused (a relay routes nothing)", () => {
    expect(host(["bind"]).holdsBindings).toBe(true);
    expect(host(["something", "bind"]).holdsBindings).toBe(true);
    expect(host().holdsBindings).toBe(false);
    expect(host([]).holdsBindings).toBe(false);
    expect(host(["bindings"]).holdsBindings).toBe(false);
    const unknown = host(["bind"]);
    unknown.info = null; // not heard from yet
    expect(unknown.holdsBindings).toBe(false);
  });
});
