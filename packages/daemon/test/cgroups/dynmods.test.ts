import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { applyConfigFile, defaultConfig } from "../../src/config.js";
import { startDaemon } from "../helpers/daemon.js";
import { requires } from "../helpers/fixtures.js";
import { dynmodsState, enableFavorDynmods, findCgroup2Mount } from "../../src/cgroups/dynmods.js";

/**
 * favordynmods: the cgroup2 remount the daemon does at start. A cgroup2 remount sets exactly the
 * options it is given, so these tests pin that every option the mount had goes into it, and that
 * a remount which lost one (nsdelegate is a security boundary) is undone. The mount itself is
 * faked here; the daemon's real start on this host is checked at the end.
 */
const line = (mountPoint: string, fs: string, superOptions: string) => `35 24 0:30 / ${mountPoint} rw,nosuid,nodev,noexec,relatime shared:9 - ${fs} ${fs} ${superOptions}`;
const V2 = [line("/proc", "proc", "rw"), line("/sys/fs/cgroup", "cgroup2", "rw,nsdelegate,memory_recursiveprot")].join("\n");
const V1 = [line("/sys/fs/cgroup/memory", "cgroup", "rw,memory"), line("/sys/fs/cgroup/pids", "cgroup", "rw,pids")].join("\n");

/** A fake mount table the fake `mount` rewrites: `apply` decides what the kernel keeps of a remount's options. */
function fakeHost(initial: string, apply: (options: string[]) => string[] = (o) => o) {
  let table = initial;
  const calls: string[][] = [];
  const run = async (args: string[]) => {
    calls.push(args);
    const [flag, opts, target] = args;
    expect(flag).toBe("-o");
    const options = opts!.split(",");
    expect(options[0]).toBe("remount");
    table = table.split("\n").map((l) => (l.includes(` ${target} `) && l.includes(" - cgroup2 ") ? line(target!, "cgroup2", ["rw", ...apply(options.slice(1))].join(",")) : l)).join("\n");
  };
  return { run, read: () => table, calls };
}

describe("the cgroup2 mount", () => {
  it("is found with its own options, rw aside, and an escaped mount point", () => {
    expect(findCgroup2Mount(V2)).toEqual({ mountPoint: "/sys/fs/cgroup", options: ["nsdelegate", "memory_recursiveprot"] });
    expect(findCgroup2Mount(line("/run/my\\040cgroup", "cgroup2", "rw"))).toEqual({ mountPoint: "/run/my cgroup", options: [] });
  });

  it("is absent on a pure v1 host, and the state says how to get fast joins there", () => {
    expect(findCgroup2Mount(V1)).toBeNull();
    expect(dynmodsState(V1)).toEqual({ on: false, detail: expect.stringContaining("cgroup_favordynmods=true") });
  });

  it("reports favordynmods on or off", () => {
    expect(dynmodsState(V2).on).toBe(false);
    expect(dynmodsState(line("/sys/fs/cgroup", "cgroup2", "rw,nsdelegate,favordynmods")).on).toBe(true);
  });
});

describe("turning favordynmods on", () => {
  it("remounts once with every option the mount had, plus favordynmods", async () => {
    const host = fakeHost(V2);
    const state = await enableFavorDynmods(host.run, host.read);
    expect(host.calls).toEqual([["-o", "remount,nsdelegate,memory_recursiveprot,favordynmods", "/sys/fs/cgroup"]]);
    expect(state.on).toBe(true);
    expect(findCgroup2Mount(host.read())!.options).toEqual(["nsdelegate", "memory_recursiveprot", "favordynmods"]);
  });

  it("leaves a mount that has it alone, and a pure v1 host too", async () => {
    for (const table of [line("/sys/fs/cgroup", "cgroup2", "rw,favordynmods"), V1]) {
      const host = fakeHost(table);
      await enableFavorDynmods(host.run, host.read);
      expect(host.calls).toEqual([]);
    }
  });

  it("puts back an option the remount lost, and reports favordynmods off", async () => {
    // A mount(8) that passed only the new option would clear nsdelegate.
    let first = true;
    const host = fakeHost(V2, (o) => (first ? ((first = false), o.filter((x) => x !== "nsdelegate")) : o));
    const state = await enableFavorDynmods(host.run, host.read);
    expect(state).toEqual({ on: false, detail: expect.stringContaining("dropped nsdelegate (restored)") });
    expect(host.calls.at(-1)).toEqual(["-o", "remount,nsdelegate,memory_recursiveprot", "/sys/fs/cgroup"]);
    expect(findCgroup2Mount(host.read())!.options).toEqual(["nsdelegate", "memory_recursiveprot"]);
  });

  it("fails loudly, naming the option, when a lost option cannot be put back", async () => {
    const host = fakeHost(V2, (o) => o.filter((x) => x !== "nsdelegate"));
    await expect(enableFavorDynmods(host.run, host.read)).rejects.toThrow(/dropped nsdelegate and it could not be restored/);
  });

  it("says so when the kernel ignores the option (a daemon in a container's cgroup namespace)", async () => {
    const host = fakeHost(V2, (o) => o.filter((x) => x !== "favordynmods"));
    expect(await enableFavorDynmods(host.run, host.read)).toEqual({ on: false, detail: expect.stringContaining("set it on the host") });
  });

  it("reports a refused remount with mount's own reason, and changes nothing", async () => {
    const host = fakeHost(V2);
    const refused = async () => {
      throw new Error("Command failed: mount -o remount,...\nmount: /sys/fs/cgroup: permission denied.");
    };
    expect(await enableFavorDynmods(refused, host.read)).toEqual({ on: false, detail: expect.stringContaining("mount: /sys/fs/cgroup: permission denied.") });
    expect(host.read()).toBe(V2);
  });
});

describe("on this host", () => {
  const mount = findCgroup2Mount(readFileSync("/proc/self/mountinfo", "utf8"));
  requires(!!mount && process.getuid?.() === 0, "needs root and a cgroup2 mount (a v2 or hybrid host)");
  it("the real remount keeps every option and leaves favordynmods on (root, a cgroup2 mount)", async () => {
    const state = await enableFavorDynmods();
    const after = findCgroup2Mount(readFileSync("/proc/self/mountinfo", "utf8"))!;
    expect(after.options).toEqual(expect.arrayContaining([...mount!.options, "favordynmods"]));
    expect(state.on).toBe(true);
  });

  it("a daemon says at start what a cgroup join costs, and leaves the host alone with cgroupFavorDynmods: false", async () => {
    await using daemon = await startDaemon({ config: { cgroupFavorDynmods: false, warmPool: 0, storageStock: 0 } });
    const said = /cgroup joins: (.*)/.exec(daemon.stdout() + daemon.logs())?.[1];
    expect(said).toMatch(/^favordynmods is on \(.*\): a sandbox joins its cgroup without waiting .*\(config cgroupFavorDynmods: false\)$/);
  });
});

describe("config cgroupFavorDynmods", () => {
  const dir = mkdtempSync(join(tmpdir(), "sbx-dynmods-config-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const read = (value: unknown) => {
    const path = join(dir, "config.json");
    writeFileSync(path, JSON.stringify({ cgroupFavorDynmods: value }));
    const config = defaultConfig({});
    applyConfigFile(config, path);
    return config.cgroupFavorDynmods;
  };

  it("is on unless set false, and refuses anything but a boolean by name", () => {
    expect(defaultConfig({}).cgroupFavorDynmods).toBe(true);
    expect(read(false)).toBe(false);
    expect(() => read("no")).toThrow("config.cgroupFavorDynmods: must be true or false");
  });
});
