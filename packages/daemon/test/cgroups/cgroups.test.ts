import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { launchArgv, type LaunchSpec } from "../../src/sandbox/launcher.js";

/**
 * Unit tests of the cgroup drivers against a FAKE cgroup file system in a temp dir. This host
 * is cgroup v1, so these are the only tests of the v2 driver here; the v1 driver is also
 * exercised for real by test/sandbox/limits.integration.test.ts.
 *
 * A plain directory is not cgroupfs: the kernel fills a new cgroup dir with its interface
 * files, lets rmdir remove a dir that still holds them (but not one with live tasks), and
 * rejects values it does not accept. `kernel` below imitates exactly that for paths under the
 * fake root, by wrapping mkdir/rmdir/writeFile of node:fs/promises (which the drivers use).
 */
const kernel = vi.hoisted(() => ({
  root: "",
  /** The interface files a new cgroup dir gets, by its path. */
  populate: (_dir: string): Record<string, string> => ({}),
  /** Pids the fake kernel treats as unkillable (rmdir stays EBUSY while they are listed). */
  stuck: new Set<number>(),
  rmdirCalls: [] as string[],
  /** Throws what the kernel would for writing `value` to `path` (set by the node:fs/promises mock below). */
  check: null as ((path: string, value: string) => void) | null,
}));

// The drivers write a live cgroup's caps (retune) with writeFileSync: the same refusals apply to those writes.
vi.mock("node:fs", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:fs")>();
  const writeFileSync = ((p: unknown, data: unknown, opts?: unknown) => {
    // (files the fake kernel or a test makes are written as they are)
    if (kernel.check && kernel.root !== "" && typeof p === "string" && p.startsWith(`${kernel.root}/`) && actual.existsSync(p)) kernel.check(p, String(data));
    return actual.writeFileSync(p as never, data as never, opts as never);
  }) as typeof actual.writeFileSync;
  return { ...actual, default: { ...actual, writeFileSync }, writeFileSync };
});

vi.mock("node:fs/promises", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:fs/promises")>();
  const fs = await import("node:fs");
  const inFake = (p: unknown) => kernel.root !== "" && typeof p === "string" && p.startsWith(`${kernel.root}/`);
  const err = (code: string, p: string) => Object.assign(new Error(`${code}: fake cgroupfs, '${p}'`), { code });
  const alive = (pid: number) => {
    if (kernel.stuck.has(pid)) return true;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
    } catch {
      return false;
    }
  };
  const mkdir = async (p: string, opts?: unknown) => {
    const made = await actual.mkdir(p, opts as never);
    // Like the kernel: a newly made cgroup dir already holds its interface files.
    const created = (opts as { recursive?: boolean } | undefined)?.recursive ? made : p;
    if (inFake(p) && created === p) for (const [name, value] of Object.entries(kernel.populate(p))) fs.writeFileSync(`${p}/${name}`, value);
    return made;
  };
  const rmdir = async (p: string) => {
    if (!inFake(p)) return actual.rmdir(p);
    kernel.rmdirCalls.push(p);
    if (!fs.existsSync(p)) throw err("ENOENT", p);
    const procs = `${p}/cgroup.procs`;
    if (fs.existsSync(procs)) {
      // Tasks that died leave the cgroup; a cgroup with live tasks or child cgroups is busy.
      const left = fs.readFileSync(procs, "utf8").split("\n").filter(Boolean).map(Number).filter(alive);
      fs.writeFileSync(procs, left.map((n) => `${n}\n`).join(""));
      if (left.length > 0) throw err("EBUSY", p);
      const entries = fs.readdirSync(p, { withFileTypes: true });
      if (entries.some((e) => e.isDirectory())) throw err("EBUSY", p);
      for (const e of entries) fs.unlinkSync(`${p}/${e.name}`);
    }
    return actual.rmdir(p);
  };
  kernel.check = (path: string, value: string) => {
    // The kernel refuses writes it does not accept with EINVAL; the file must exist (ENOENT otherwise, never created).
    if (path.endsWith("/cpu.max") && !/^(max|\d+) \d+$/.test(value)) throw err("EINVAL", path);
    if (path.endsWith("/cpu.max") && /^\d+ /.test(value) && Number(value.split(" ")[0]) < 1000) throw err("EINVAL", path);
    if (path.endsWith("/cpu.cfs_quota_us") && Number(value) !== -1 && Number(value) < 1000) throw err("EINVAL", path);
    if (!path.endsWith("/cgroup.subtree_control") && !fs.existsSync(path)) throw err("ENOENT", path);
    // v1 keeps memory + swap at or above memory alone: a write breaking that order is EINVAL.
    const dir = path.slice(0, path.lastIndexOf("/"));
    const current = (f: string) => (fs.existsSync(`${dir}/${f}`) ? Number(fs.readFileSync(`${dir}/${f}`, "utf8")) : null);
    const memsw = current("memory.memsw.limit_in_bytes");
    if (path.endsWith("/memory.limit_in_bytes") && memsw !== null && Number(value) > memsw) throw err("EINVAL", path);
    if (path.endsWith("/memory.memsw.limit_in_bytes") && Number(value) < current("memory.limit_in_bytes")!) throw err("EINVAL", path);
  };
  const writeFile = async (p: unknown, data: unknown, opts?: unknown) => {
    if (inFake(p)) kernel.check!(p as string, String(data));
    return actual.writeFile(p as never, data as never, opts as never);
  };
  return { ...actual, default: { ...actual, mkdir, rmdir, writeFile }, mkdir, rmdir, writeFile };
});

const { CgroupV1Driver, CgroupV2Driver, detectCgroups } = await import("../../src/cgroups/cgroups.js");

const MIB = 1024 * 1024;
const read = (...parts: string[]) => readFileSync(join(...parts), "utf8");
const put = (path: string, value: string) => writeFileSync(path, value);

let root = "";
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "sbx-fake-cgroup-"));
  kernel.root = root;
  kernel.stuck.clear();
  kernel.rmdirCalls.length = 0;
});
afterEach(() => {
  kernel.root = "";
  rmSync(root, { recursive: true, force: true });
});

/** A cgroup v2 root as the kernel shows it, with `controllers` available. */
function fakeV2(controllers = "cpuset cpu io memory hugetlb pids rdma misc", opts: { swap?: boolean; peak?: boolean } = {}) {
  put(join(root, "cgroup.controllers"), `${controllers}\n`);
  put(join(root, "cgroup.subtree_control"), "\n");
  put(join(root, "cgroup.procs"), "1\n");
  kernel.populate = () => ({
    "cgroup.procs": "",
    "cgroup.controllers": "",
    "cgroup.subtree_control": "",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "memory.max": "max\n",
    ...(opts.swap === false ? {} : { "memory.swap.max": "max\n" }),
    "memory.current": "0\n",
    ...(opts.peak === false ? {} : { "memory.peak": "0\n" }),
    "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
    "cpu.max": "max 100000\n",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
    "pids.max": "max\n",
    "pids.current": "0\n",
    ...(controllers.split(" ").includes("cpuset") ? { "cpuset.cpus": "\n" } : {}),
  });
}

const V1_FILES: Record<string, Record<string, string>> = {
  memory: {
    "memory.limit_in_bytes": "9223372036854771712\n",
    "memory.usage_in_bytes": "0\n",
    "memory.max_usage_in_bytes": "0\n",
    "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
  },
  cpu: { "cpu.cfs_period_us": "100000\n", "cpu.cfs_quota_us": "-1\n", "cpu.shares": "1024\n" },
  cpuacct: { "cpuacct.usage": "0\n", "cpuacct.stat": "user 0\nsystem 0\n" },
  pids: { "pids.max": "max\n", "pids.current": "0\n" },
  // A new v1 cpuset starts empty: nothing may join it until it has CPUs and memory nodes.
  cpuset: { "cpuset.cpus": "\n", "cpuset.mems": "\n" },
};

/**
 * A cgroup v1 mount: one hierarchy per controller, or cpu and cpuacct co-mounted as
 * "cpu,cpuacct" and reached through two symlinks (as most distributions do).
 */
function fakeV1(opts: { comount?: boolean; memsw?: boolean; without?: string; cpuset?: boolean } = {}) {
  const hierarchies: Record<string, string[]> = opts.comount
    ? { memory: ["memory"], "cpu,cpuacct": ["cpu", "cpuacct"], pids: ["pids"] }
    : { memory: ["memory"], cpu: ["cpu"], cpuacct: ["cpuacct"], pids: ["pids"] };
  if (opts.cpuset) hierarchies.cpuset = ["cpuset"];
  const owner = new Map<string, string[]>();
  for (const [dir, controllers] of Object.entries(hierarchies)) {
    if (controllers.includes(opts.without ?? "")) continue;
    mkdirSync(join(root, dir));
    put(join(root, dir, "cgroup.procs"), "1\n");
    if (dir === "cpuset") {
      put(join(root, dir, "cpuset.cpus"), "0-3\n");
      put(join(root, dir, "cpuset.mems"), "0\n");
    }
    owner.set(join(root, dir), controllers);
    if (opts.comount) for (const c of controllers) if (c !== dir) symlinkSync(dir, join(root, c));
  }
  kernel.populate = (dir) => {
    const hierarchy = [...owner.keys()].find((h) => dir.startsWith(`${h}/`));
    const files: Record<string, string> = { "cgroup.procs": "", tasks: "", notify_on_release: "0\n" };
    for (const c of owner.get(hierarchy!) ?? []) Object.assign(files, V1_FILES[c]);
    if (hierarchy?.endsWith("/memory") && opts.memsw !== false) files["memory.memsw.limit_in_bytes"] = "9223372036854771712\n";
    return files;
  };
}

const LIMITS = { memoryBytes: 256 * MIB, cpus: 0.5, pids: 64 };
/** A rootless-shaped launch (no uid, no oom score): only the cgroup options and --nofile precede "--". */
const LAUNCH_SPEC: LaunchSpec = {
  launcherPath: "/sbx/sbx-launch", bwrapPath: "/usr/bin/bwrap", egressDirFd: 3, hostUid: null, etc: { fd: 14, systemBundle: null }, tmpfsBytes: 1 << 20, cpuSet: null, cpusOnline: [0],
  storage: null, nodeFd: 4, supervisorFd: 5, preloadFd: 6, preloadImplFd: 7, runtimes: { denoFd: null, denoReplFd: 8, pythonReplFd: 9 },
  trustBundleFd: 10, trustSystemBundleFd: 11, trustCaFd: 12, javaStoreFd: 13, seccomp: Buffer.alloc(0), ptysPerSandbox: 1,
  cgroupProcs: [], cgroupDir: null, rlimits: { nofile: 64, nproc: null }, hostname: "h",
};

describe("CgroupV2Driver (fake cgroupfs: the v2 path this v1 host cannot run for real)", () => {
  it("enables the controllers down to the sandbox and writes memory, swap, cpu and pids limits", async () => {
    fakeV2();
    const driver = new CgroupV2Driver(root, "sbx-abc");
    expect(driver.version).toBe(2);
    expect(driver.baseDirs).toEqual([join(root, "sbx-abc")]);
    const cg = await driver.create("sbx_one", LIMITS);
    const dir = join(root, "sbx-abc", "sbx_one");
    expect(read(root, "cgroup.subtree_control")).toBe("+memory +cpu +pids");
    expect(read(root, "sbx-abc", "cgroup.subtree_control")).toBe("+memory +cpu +pids");
    expect(read(dir, "memory.max")).toBe(String(256 * MIB));
    expect(read(dir, "memory.swap.max")).toBe("0");
    expect(read(dir, "cpu.max")).toBe("50000 100000");
    expect(read(dir, "pids.max")).toBe("64");
    expect(cg.procsFiles).toEqual([join(dir, "cgroup.procs")]);
    expect(cg.bornIn).toBeNull();
  });

  it("with bornInCgroup (no favordynmods), has the launch start in the sandbox's dir instead of joining it", async () => {
    fakeV2();
    const cg = await new CgroupV2Driver(root, "sbx-abc", true).create("sbx_born", LIMITS);
    const dir = join(root, "sbx-abc", "sbx_born");
    expect([cg.procsFiles, cg.bornIn]).toEqual([[], dir]);
    const [launcher, ...args] = launchArgv({ ...LAUNCH_SPEC, cgroupProcs: cg.procsFiles, cgroupDir: cg.bornIn });
    expect([launcher, args.slice(0, args.indexOf("--"))]).toEqual([LAUNCH_SPEC.launcherPath, ["--cgroup-dir", dir, "--nofile", "64"]]);
  });

  it("turns fractional and multi-core cpus into a quota per 100 ms period", async () => {
    fakeV2();
    const driver = new CgroupV2Driver(root, "sbx-abc");
    const cases: Array<[number, string]> = [[1, "100000 100000"], [2, "200000 100000"], [1.5, "150000 100000"], [0.25, "25000 100000"], [0.0123, "1230 100000"]];
    for (const [i, [cpus, expected]] of cases.entries()) {
      await driver.create(`sbx_${i}`, { ...LIMITS, cpus });
      expect(read(root, "sbx-abc", `sbx_${i}`, "cpu.max")).toBe(expected);
    }
  });

  it("does not invent memory.swap.max where the kernel has no swap accounting", async () => {
    fakeV2(undefined, { swap: false });
    await new CgroupV2Driver(root, "sbx-abc").create("sbx_noswap", LIMITS);
    expect(existsSync(join(root, "sbx-abc", "sbx_noswap", "memory.swap.max"))).toBe(false);
    expect(read(root, "sbx-abc", "sbx_noswap", "memory.max")).toBe(String(256 * MIB));
  });

  it("stats() reads cpu.stat usage_usec as seconds, memory.current/peak and memory.events oom_kill", async () => {
    fakeV2();
    const cg = await new CgroupV2Driver(root, "sbx-abc").create("sbx_stats", LIMITS);
    const dir = join(root, "sbx-abc", "sbx_stats");
    expect(cg.stats()).toEqual({ cpuSeconds: 0, memoryBytes: 0, memoryPeakBytes: 0, oomKills: 0 });
    put(join(dir, "cpu.stat"), "usage_usec 1534250\nuser_usec 1000000\nsystem_usec 534250\nnr_periods 40\nnr_throttled 12\nthrottled_usec 9000000\n");
    put(join(dir, "memory.current"), "104857600\n");
    put(join(dir, "memory.peak"), "268435456\n");
    // oom counts the cgroup hitting its limit; oom_kill (not oom_group_kill) counts kills.
    put(join(dir, "memory.events"), "low 0\nhigh 0\nmax 9\noom 5\noom_kill 2\noom_group_kill 7\n");
    expect(cg.stats()).toEqual({ cpuSeconds: 1.53425, memoryBytes: 104857600, memoryPeakBytes: 268435456, oomKills: 2 });
  });

  it("without memory.peak (before Linux 5.19) reports the highest memory.current it sampled", async () => {
    fakeV2(undefined, { peak: false });
    const cg = await new CgroupV2Driver(root, "sbx-abc").create("sbx_nopeak", LIMITS);
    const current = join(root, "sbx-abc", "sbx_nopeak", "memory.current");
    put(current, "3000\n");
    expect(cg.stats()).toMatchObject({ memoryBytes: 3000, memoryPeakBytes: 3000 });
    put(current, "70000\n");
    expect(cg.stats()).toMatchObject({ memoryBytes: 70000, memoryPeakBytes: 70000 });
    put(current, "1000\n");
    expect(cg.stats()).toMatchObject({ memoryBytes: 1000, memoryPeakBytes: 70000 });
  });

  it("stats() of a cgroup that is gone is all zeros rather than an exception", async () => {
    fakeV2();
    const cg = await new CgroupV2Driver(root, "sbx-abc").create("sbx_gone", LIMITS);
    await cg.destroy();
    expect(cg.stats()).toEqual({ cpuSeconds: 0, memoryBytes: 0, memoryPeakBytes: 0, oomKills: 0 });
  });

  it("destroy() kills the tasks still inside and removes the dir once the kernel lets it", async () => {
    fakeV2();
    const cg = await new CgroupV2Driver(root, "sbx-abc").create("sbx_busy", LIMITS);
    const dir = join(root, "sbx-abc", "sbx_busy");
    const child = spawn("sleep", ["60"], { stdio: "ignore" });
    const exited = new Promise<NodeJS.Signals | null>((r) => child.once("exit", (_code, signal) => r(signal)));
    put(join(dir, "cgroup.procs"), `${child.pid}\n`);
    await cg.destroy();
    expect(await exited).toBe("SIGKILL");
    expect(existsSync(dir)).toBe(false);
    expect(kernel.rmdirCalls.filter((p) => p === dir).length).toBeGreaterThanOrEqual(1);
    // The base dir and its interface files stay for the next sandbox.
    expect(existsSync(join(root, "sbx-abc", "cgroup.procs"))).toBe(true);
    // A second destroy is a no-op.
    await expect(cg.destroy()).resolves.toBeUndefined();
  });

  it("destroy() gives up with a clear error when the cgroup stays busy", async () => {
    fakeV2();
    const cg = await new CgroupV2Driver(root, "sbx-abc").create("sbx_stuck", LIMITS);
    const dir = join(root, "sbx-abc", "sbx_stuck");
    // A pid that is not ours to kill (or no longer exists) which the fake kernel keeps listed.
    const pid = 2 ** 22 + 12345;
    kernel.stuck.add(pid);
    put(join(dir, "cgroup.procs"), `${pid}\n`);
    await expect(cg.destroy()).rejects.toThrow(`cgroup ${dir} stayed busy`);
    expect(kernel.rmdirCalls.filter((p) => p === dir).length).toBe(50);
    expect(existsSync(dir)).toBe(true);
  });

  it("retune() writes memory.max and cpu.max of the live cgroup", async () => {
    fakeV2();
    const cg = await new CgroupV2Driver(root, "sbx-abc").create("sbx_re", LIMITS);
    await cg.retune({ memoryBytes: 512 * MIB, cpus: 2 });
    expect([read(root, "sbx-abc", "sbx_re", "memory.max"), read(root, "sbx-abc", "sbx_re", "cpu.max")]).toEqual([String(512 * MIB), "200000 100000"]);
  });

  it("a limit the kernel rejects fails create() and leaves no cgroup behind", async () => {
    fakeV2();
    const driver = new CgroupV2Driver(root, "sbx-abc");
    // cpu.max refuses quotas under 1 ms per period.
    await expect(driver.create("sbx_tiny", { ...LIMITS, cpus: 0.001 })).rejects.toMatchObject({ code: "EINVAL" });
    expect(existsSync(join(root, "sbx-abc", "sbx_tiny"))).toBe(false);
  });

  it("reclaim() removes every sandbox cgroup a previous daemon left, and only those", async () => {
    fakeV2();
    const first = new CgroupV2Driver(root, "sbx-abc");
    await first.create("sbx_a", LIMITS);
    await first.create("sbx_b", LIMITS);
    const other = new CgroupV2Driver(root, "sbx-other");
    await other.create("sbx_c", LIMITS);
    const again = new CgroupV2Driver(root, "sbx-abc");
    expect(await again.reclaim()).toBe(2);
    const left = readdirSync(join(root, "sbx-abc"), { withFileTypes: true });
    expect(left.filter((e) => e.isDirectory()).map((e) => e.name)).toEqual([]);
    expect(left.map((e) => e.name)).toContain("cgroup.procs");
    expect(existsSync(join(root, "sbx-other", "sbx_c"))).toBe(true);
    expect(await again.reclaim()).toBe(0);
    // Reclaiming before any sandbox ever existed is fine too.
    expect(await new CgroupV2Driver(root, "sbx-never").reclaim()).toBe(0);
  });
});

describe("CgroupV1Driver (fake cgroupfs)", () => {
  it("makes one dir per hierarchy and writes memory (and memsw), cfs quota/period and pids.max", async () => {
    fakeV1();
    const driver = new CgroupV1Driver(root, "sbx-abc");
    expect(driver.version).toBe(1);
    expect(driver.baseDirs).toEqual(["memory", "cpu", "cpuacct", "pids"].map((c) => join(root, c, "sbx-abc")));
    const cg = await driver.create("sbx_one", LIMITS);
    const at = (c: string, f: string) => read(root, c, "sbx-abc", "sbx_one", f);
    expect(at("memory", "memory.limit_in_bytes")).toBe(String(256 * MIB));
    expect(at("memory", "memory.memsw.limit_in_bytes")).toBe(String(256 * MIB));
    expect(at("cpu", "cpu.cfs_period_us")).toBe("100000");
    expect(at("cpu", "cpu.cfs_quota_us")).toBe("50000");
    expect(at("pids", "pids.max")).toBe("64");
    expect(cg.procsFiles).toEqual(["memory", "cpu", "cpuacct", "pids"].map((c) => join(root, c, "sbx-abc", "sbx_one", "cgroup.procs")));
  });

  it("retune() raises and lowers the memory cap (memsw never below memory) and sets the CPU quota", async () => {
    fakeV1();
    const cg = await new CgroupV1Driver(root, "sbx-abc").create("sbx_re", LIMITS);
    const at = (c: string, f: string) => read(root, c, "sbx-abc", "sbx_re", f);
    await cg.retune({ memoryBytes: 2048 * MIB, cpus: 1.5 });
    expect([at("memory", "memory.limit_in_bytes"), at("memory", "memory.memsw.limit_in_bytes"), at("cpu", "cpu.cfs_quota_us")]).toEqual([String(2048 * MIB), String(2048 * MIB), "150000"]);
    await cg.retune({ memoryBytes: 128 * MIB, cpus: 0.25 });
    expect([at("memory", "memory.limit_in_bytes"), at("memory", "memory.memsw.limit_in_bytes"), at("cpu", "cpu.cfs_quota_us")]).toEqual([String(128 * MIB), String(128 * MIB), "25000"]);
    // A quota the kernel refuses is an error, as at create.
    await expect(cg.retune({ memoryBytes: 128 * MIB, cpus: 0.001 })).rejects.toMatchObject({ code: "EINVAL" });
  });

  it("resolves co-mounted cpu,cpuacct to one dir", async () => {
    fakeV1({ comount: true });
    const driver = new CgroupV1Driver(root, "sbx-abc");
    expect(driver.baseDirs).toEqual([join(root, "memory", "sbx-abc"), join(root, "cpu,cpuacct", "sbx-abc"), join(root, "pids", "sbx-abc")]);
    const cg = await driver.create("sbx_co", { ...LIMITS, cpus: 2 });
    expect(cg.procsFiles).toEqual(["memory", "cpu,cpuacct", "pids"].map((h) => join(root, h, "sbx-abc", "sbx_co", "cgroup.procs")));
    expect(read(root, "cpu,cpuacct", "sbx-abc", "sbx_co", "cpu.cfs_quota_us")).toBe("200000");
    put(join(root, "cpu,cpuacct", "sbx-abc", "sbx_co", "cpuacct.usage"), "750000000\n");
    expect(cg.stats().cpuSeconds).toBe(0.75);
    await cg.destroy();
    for (const h of ["memory", "cpu,cpuacct", "pids"]) expect(existsSync(join(root, h, "sbx-abc", "sbx_co"))).toBe(false);
  });

  it("skips memsw where swap is not accounted", async () => {
    fakeV1({ memsw: false });
    await new CgroupV1Driver(root, "sbx-abc").create("sbx_nosw", LIMITS);
    expect(existsSync(join(root, "memory", "sbx-abc", "sbx_nosw", "memory.memsw.limit_in_bytes"))).toBe(false);
    expect(read(root, "memory", "sbx-abc", "sbx_nosw", "memory.limit_in_bytes")).toBe(String(256 * MIB));
  });

  it("stats() reads cpuacct.usage ns as seconds, usage/max_usage bytes and oom_control oom_kill", async () => {
    fakeV1();
    const cg = await new CgroupV1Driver(root, "sbx-abc").create("sbx_stats", LIMITS);
    const dir = (c: string) => join(root, c, "sbx-abc", "sbx_stats");
    expect(cg.stats()).toEqual({ cpuSeconds: 0, memoryBytes: 0, memoryPeakBytes: 0, oomKills: 0 });
    put(join(dir("cpuacct"), "cpuacct.usage"), "2500000123\n");
    put(join(dir("memory"), "memory.usage_in_bytes"), "52428800\n");
    put(join(dir("memory"), "memory.max_usage_in_bytes"), "268435456\n");
    // oom_kill_disable must not be mistaken for oom_kill.
    put(join(dir("memory"), "memory.oom_control"), "oom_kill_disable 1\nunder_oom 0\noom_kill 3\n");
    expect(cg.stats()).toEqual({ cpuSeconds: 2.500000123, memoryBytes: 52428800, memoryPeakBytes: 268435456, oomKills: 3 });
  });

  it("destroy() removes the dir in every hierarchy", async () => {
    fakeV1();
    const cg = await new CgroupV1Driver(root, "sbx-abc").create("sbx_d", LIMITS);
    await cg.destroy();
    for (const c of ["memory", "cpu", "cpuacct", "pids"]) {
      expect(existsSync(join(root, c, "sbx-abc", "sbx_d"))).toBe(false);
      expect(existsSync(join(root, c, "sbx-abc"))).toBe(true);
    }
  });

  it("a rejected limit rolls back the dirs already made in every hierarchy", async () => {
    fakeV1();
    const driver = new CgroupV1Driver(root, "sbx-abc");
    await expect(driver.create("sbx_tiny", { ...LIMITS, cpus: 0.001 })).rejects.toMatchObject({ code: "EINVAL" });
    for (const c of ["memory", "cpu", "cpuacct", "pids"]) expect(existsSync(join(root, c, "sbx-abc", "sbx_tiny"))).toBe(false);
  });

  it("reclaim() empties every hierarchy and counts sandboxes, not hierarchies", async () => {
    fakeV1();
    const first = new CgroupV1Driver(root, "sbx-abc");
    await first.create("sbx_a", LIMITS);
    await first.create("sbx_b", LIMITS);
    await first.create("sbx_c", LIMITS);
    // One hierarchy lost a dir already (a half-finished teardown).
    rmSync(join(root, "pids", "sbx-abc", "sbx_c"), { recursive: true });
    expect(await new CgroupV1Driver(root, "sbx-abc").reclaim()).toBe(3);
    for (const c of ["memory", "cpu", "cpuacct", "pids"]) {
      const dirs = readdirSync(join(root, c, "sbx-abc"), { withFileTypes: true }).filter((e) => e.isDirectory());
      expect(dirs.map((e) => e.name)).toEqual([]);
    }
  });
});

describe("detectCgroups", () => {
  it("chooses v2 when cgroup.controllers exists and holds memory, cpu and pids", () => {
    fakeV2();
    const driver = detectCgroups(root, "sbx-0123456789ab");
    expect(driver).toBeInstanceOf(CgroupV2Driver);
    expect(typeof driver !== "string" && driver.baseDirs).toEqual([join(root, "sbx-0123456789ab")]);
  });

  it("names the v2 controllers that are missing (cpuset is not cpu)", () => {
    fakeV2("cpuset io memory hugetlb");
    expect(detectCgroups(root, "sbx-x")).toBe("cgroup v2 lacks the cpu, pids controller(s)");
  });

  it("chooses v1 when there is no cgroup.controllers and every hierarchy is mounted", () => {
    fakeV1();
    const driver = detectCgroups(root, "sbx-x");
    expect(driver).toBeInstanceOf(CgroupV1Driver);
    expect(typeof driver !== "string" && driver.version).toBe(1);
  });

  it("v1 with co-mounted cpu,cpuacct is complete", () => {
    fakeV1({ comount: true });
    expect(detectCgroups(root, "sbx-x")).toBeInstanceOf(CgroupV1Driver);
  });

  it("names the missing v1 hierarchies and where it looked", () => {
    fakeV1({ without: "pids" });
    expect(detectCgroups(root, "sbx-x")).toBe(`cgroup v1 lacks the pids hierarchy(ies) under ${root}`);
    rmSync(join(root, "memory"), { recursive: true });
    expect(detectCgroups(root, "sbx-x")).toBe(`cgroup v1 lacks the memory, pids hierarchy(ies) under ${root}`);
  });

  it("an empty (unmounted) root lacks everything", () => {
    expect(detectCgroups(root, "sbx-x")).toBe(`cgroup v1 lacks the memory, cpu, cpuacct, pids hierarchy(ies) under ${root}`);
  });
});

describe("CPU sets (fake cgroupfs)", () => {
  it("v2: enables cpuset down to a sandbox given a set and writes it; a sandbox without one leaves cpuset alone", async () => {
    fakeV2();
    const driver = new CgroupV2Driver(root, "sbx-abc");
    await driver.create("sbx_all", LIMITS);
    expect(read(root, "cgroup.subtree_control")).toBe("+memory +cpu +pids");
    await driver.create("sbx_set", { ...LIMITS, cpuSet: [1, 2, 3, 5] });
    expect(read(root, "cgroup.subtree_control")).toBe("+memory +cpu +pids +cpuset");
    expect(read(root, "sbx-abc", "cgroup.subtree_control")).toBe("+memory +cpu +pids +cpuset");
    expect(read(root, "sbx-abc", "sbx_set", "cpuset.cpus")).toBe("1-3,5");
  });

  it("v2 without the cpuset controller: the set is not written (the launch's affinity still applies)", async () => {
    fakeV2("cpu io memory pids");
    await new CgroupV2Driver(root, "sbx-abc").create("sbx_set", { ...LIMITS, cpuSet: [0] });
    expect(read(root, "cgroup.subtree_control")).toBe("+memory +cpu +pids");
    expect(existsSync(join(root, "sbx-abc", "sbx_set", "cpuset.cpus"))).toBe(false);
  });

  it("v1: a sandbox given a set joins a cpuset of its own, its memory nodes and the base's copied from the parent", async () => {
    fakeV1({ cpuset: true });
    const driver = new CgroupV1Driver(root, "sbx-abc");
    expect(driver.baseDirs).toContain(join(root, "cpuset", "sbx-abc"));
    const all = await driver.create("sbx_all", LIMITS);
    expect(all.procsFiles.some((f) => f.includes("/cpuset/"))).toBe(false);
    expect(read(root, "cpuset", "sbx-abc", "cpuset.cpus")).toBe("0-3");
    expect(read(root, "cpuset", "sbx-abc", "cpuset.mems")).toBe("0");
    const cg = await driver.create("sbx_set", { ...LIMITS, cpuSet: [2] });
    expect(read(root, "cpuset", "sbx-abc", "sbx_set", "cpuset.cpus")).toBe("2");
    expect(read(root, "cpuset", "sbx-abc", "sbx_set", "cpuset.mems")).toBe("0");
    expect(cg.procsFiles).toContain(join(root, "cpuset", "sbx-abc", "sbx_set", "cgroup.procs"));
    await cg.destroy();
    expect(existsSync(join(root, "cpuset", "sbx-abc", "sbx_set"))).toBe(false);
  });
});
