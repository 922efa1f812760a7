import { spawn, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { findCgroup2Mount } from "../../src/cgroups/dynmods.js";
import { requires } from "../helpers/fixtures.js";

/**
 * sbx-launch (native/launch.c), which the daemon runs as root to start every sandbox's bwrap:
 * whatever fails, the program after `--` never runs (exit 125), and what it does run has
 * exactly the uid, groups, rlimits, affinity and oom_score_adj asked for.
 */
const LAUNCH = fileURLToPath(new URL("../../dist/sbx-launch", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "sbx-launch-test-"));
const marker = join(dir, "ran");
const asRoot = process.getuid?.() === 0;

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs sbx-launch with `args` then `-- /bin/sh -c <script>`; the script's stdout, and whether it ran at all. */
function launch(args: string[], script = `touch ${marker}; cat /proc/self/status /proc/self/limits /proc/self/oom_score_adj`) {
  rmSync(marker, { force: true });
  const r = spawnSync(LAUNCH, [...args, "--", "/bin/sh", "-c", script], { encoding: "utf8", env: {} });
  let ran = true;
  try {
    readFileSync(marker);
  } catch {
    ran = false;
  }
  return { code: r.status, out: r.stdout, err: r.stderr, ran };
}

/** Malformed or incomplete --root-view/--root-overlay/--root-fd: each refused with its reason. */
function rootViewRefusals(): Array<[string, string[], RegExp]> {
  const ns = ["--nofile", "64", "--userns", "500000:65536:9", "--uid", "501000"];
  return [
    ["--root-view without --root-fd", [...ns, "--root-view", "ro:/a:/b"], /--root-view and --root-fd go together/],
    ["--root-fd without --root-view", [...ns, "--root-fd", "8"], /--root-view and --root-fd go together/],
    ["--root-overlay without --root-view", [...ns, "--root-overlay", "/a:/b:/c", "--root-fd", "8"], /--root-view and --root-fd go together/],
    ["--root-view without --userns (the view is idmapped by the sandbox's namespace)", ["--nofile", "64", "--root-view", "ro:/a:/b", "--root-fd", "8", "--uid", "501000"], /--root-view needs --userns/],
    ["a --root-view mode other than ro or rw", [...ns, "--root-view", "rx:/a:/b", "--root-fd", "8"], /--root-view: expected ro\|rw:\/SOURCE:\/TARGET/],
    ["a relative --root-view path", [...ns, "--root-view", "ro:a:/b", "--root-fd", "8"], /'a' is not an absolute path/],
    ["a --root-view path holding ',' (overlay options are split at it)", [...ns, "--root-view", "ro:/a:/b,c", "--root-fd", "8"], /'\/b,c' is not an absolute path without ','/],
    ["a --root-view of three paths", [...ns, "--root-view", "ro:/a:/b:/c", "--root-fd", "8"], /--root-view: expected 2 paths/],
    ["a --root-overlay of two paths", [...ns, "--root-view", "ro:/a:/b", "--root-overlay", "/u:/w", "--root-fd", "8"], /--root-overlay: expected 3 paths/],
    ["a --root-fd among stdio", [...ns, "--root-view", "ro:/a:/b", "--root-fd", "2"], /--root-fd: not among stdio/],
    ["a --root-fd on the --userns fd", [...ns, "--root-view", "ro:/a:/b", "--root-fd", "9"], /--root-fd and the --userns fd must differ/],
  ];
}

describe("sbx-launch refuses before it runs anything", () => {
  const cases: Array<[string, string[], RegExp]> = [
    ["an unknown option", ["--nofile", "64", "--setuid", "5"], /unknown option '--setuid'/],
    ["no --nofile", ["--oom-score-adj", "500"], /--nofile is required/],
    ["a number that is not one", ["--nofile", "64x"], /--nofile: not a number/],
    ["a negative number", ["--nofile", "-1"], /--nofile: not a number/],
    ["uid 0", ["--nofile", "64", "--uid", "0"], /--uid: never 0/],
    ["an oom_score_adj out of range", ["--nofile", "64", "--oom-score-adj", "1001"], /--oom-score-adj: not a number up to 1000/],
    ["a bad CPU list", ["--nofile", "64", "--cpus", "0-"], /--cpus: bad CPU list/],
    ["a reversed CPU range", ["--nofile", "64", "--cpus", "3-1"], /--cpus: bad CPU list/],
    ["a cgroup it cannot join", ["--cgroup-procs", join(dir, "no-such-cgroup", "cgroup.procs"), "--nofile", "64"], /cannot open .*no-such-cgroup/],
    ["an option whose value is missing (it takes the next argument, which is no number)", ["--nofile"], /--nofile: not a number/],
    ["a malformed --userns", ["--nofile", "64", "--userns", "500000:65536", "--uid", "501000"], /--userns: expected BASE:COUNT:FD/],
    ["a --userns block starting at uid 0", ["--nofile", "64", "--userns", "0:65536:9", "--uid", "1000"], /--userns: expected BASE:COUNT:FD/],
    ["a --userns block past 32 bits", ["--nofile", "64", "--userns", "4294967000:65536:9", "--uid", "1000000"], /--userns: expected BASE:COUNT:FD/],
    ["a --userns fd among stdio", ["--nofile", "64", "--userns", "500000:65536:2", "--uid", "501000"], /--userns: expected BASE:COUNT:FD/],
    ["a uid outside the --userns block", ["--nofile", "64", "--userns", "500000:65536:9", "--uid", "400000"], /the uid 400000 must be inside the block it owns/],
    ...rootViewRefusals(),
  ];
  for (const [what, args, message] of cases) {
    it(what, () => {
      const r = launch(args);
      expect([r.code, r.ran]).toEqual([125, false]);
      expect(r.err).toMatch(message);
    });
  }

  it("an option last, with nothing after it", () => {
    const r = spawnSync(LAUNCH, ["--nofile"], { encoding: "utf8", env: {} });
    expect(r.status).toBe(125);
    expect(r.stderr).toMatch(/--nofile: a value must follow/);
  });

  it("a relative program path", () => {
    const r = spawnSync(LAUNCH, ["--nofile", "64", "--", "sh", "-c", "true"], { encoding: "utf8", env: {} });
    expect(r.status).toBe(125);
    expect(r.stderr).toMatch(/usage/);
  });
});

describe("sbx-launch as root", () => {
  requires(asRoot, "sbx-launch drops to another uid and makes user namespaces with maps: the tests must run as root (pnpm test does)");
  it("drops to the uid with no supplementary groups and sets rlimits, core 0, oom_score_adj and affinity", () => {
    const uid = 299_998;
    const r = launch(["--oom-score-adj", "500", "--nofile", "321", "--nproc", "77", "--cpus", "0", "--uid", String(uid)], "cat /proc/self/status /proc/self/limits /proc/self/oom_score_adj");
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const field = (name: string) => new RegExp(`^${name}:[ \\t]*(.*)$`, "m").exec(r.out)![1]!.trim().split(/\s+/);
    expect(field("Uid")).toEqual(Array(4).fill(String(uid)));
    expect(field("Gid")).toEqual(Array(4).fill(String(uid)));
    expect(field("Groups")).toEqual([""]);
    expect(field("CapEff")).toEqual(["0000000000000000"]);
    expect(field("Cpus_allowed_list")).toEqual(["0"]);
    const limit = (name: string) => new RegExp(`^${name}\\s+(\\S+)\\s+(\\S+)`, "m").exec(r.out)!.slice(1, 3);
    expect(limit("Max open files")).toEqual(["321", "321"]);
    expect(limit("Max processes")).toEqual(["77", "77"]);
    expect(limit("Max core file size")).toEqual(["0", "0"]);
    expect(r.out.trim().split("\n").pop()).toBe("500");
  });

  it("--userns: leaves on the fd a user namespace mapping the block, owned by the uid, with no room for nested ones", () => {
    const base = 500_000;
    const script = `readlink /proc/self/fd/9; nsenter --user=/proc/self/fd/9 --preserve-credentials sh -c 'cat /proc/self/uid_map /proc/self/gid_map /proc/sys/user/max_user_namespaces; id -u'`;
    const r = launch(["--nofile", "64", "--userns", `${base}:65536:9`, "--uid", String(base + 1000)], script);
    expect(r.err).toBe("");
    const lines = r.out.trim().split("\n").map((l) => l.trim().split(/\s+/).join(" "));
    expect(lines[0]).toMatch(/^user:\[\d+\]$/);
    expect(lines.slice(1)).toEqual([`0 ${base} 65536`, `0 ${base} 65536`, "0", "1000"]);
  });

  it("--userns: the fd reaches the program even when the namespace opens on that very number (the lowest free one)", () => {
    // With 0-2 open, the namespace's pipes take 3-6 and it opens on 4 once they are closed: dup2(4, 4) would leave it close-on-exec.
    const base = 500_000;
    const r = launch(["--nofile", "64", "--userns", `${base}:65536:4`, "--uid", String(base + 1000)], "readlink /proc/self/fd/4");
    expect(r.err).toBe("");
    expect(r.out.trim()).toMatch(/^user:\[\d+\]$/);
  });

  it("joins every cgroup.procs file it is given (writes 0: itself) before it runs the program", () => {
    // A plain file stands in for cgroup.procs: what matters is that "0" is written to each, in order, first.
    const files = [join(dir, "a.procs"), join(dir, "b.procs")];
    for (const f of files) writeFileSync(f, "");
    const r = launch([...files.flatMap((f) => ["--cgroup-procs", f]), "--nofile", "64"], `touch ${marker}; cat ${files.join(" ")}`);
    expect([r.code, r.ran, r.out]).toEqual([0, true, "00"]);
  });
});

/**
 * --root-view: a sandbox booted from an image gets its view of the image mounted by sbx-launch,
 * idmapped by the user namespace it makes for the sandbox, and the root left on --root-fd.
 */
describe("sbx-launch --root-view", () => {
  requires(asRoot, "mounting needs root: the tests must run as root (pnpm test does)");
  const base = 600_000;
  const at = (name: string) => join(dir, "view", name);
  const ns = ["--nofile", "64", "--userns", `${base}:65536:10`];
  /** The mount at `path` in this process's mountinfo: its per-mount options and file system type, or null. */
  const mountAt = (path: string) => {
    for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
      const f = line.split(" ");
      if (f[4] === path) return { options: f[5]!.split(","), type: f[f.indexOf("-") + 1] };
    }
    return null;
  };
  const unmount = () => {
    for (const p of [at("merged"), at("target")]) if (mountAt(p)) spawnSync("umount", [p]);
  };

  beforeAll(() => {
    // An ext4 image as the daemon's volumes are: a file owned by root (0), a home owned by the user (1000).
    mkdirSync(at("src"), { recursive: true });
    for (const d of ["target", "upper", "work", "merged"]) mkdirSync(at(d));
    const run = (cmd: string, args: string[]) => expect(spawnSync(cmd, args, { encoding: "utf8" }).status).toBe(0);
    run("truncate", ["-s", "16M", at("img")]);
    run("mkfs.ext4", ["-q", "-F", at("img")]);
    run("mount", ["-o", "loop", at("img"), at("src")]);
    writeFileSync(at("src/root-file"), "root's\n");
    mkdirSync(at("src/home"));
    chownSync(at("src/home"), 1000, 1000);
  });
  afterAll(() => {
    unmount();
    spawnSync("umount", [at("src")]);
  });

  it("a snapshot's: read-only, idmapped into the block, an overlay over it as the root on the fd", () => {
    const script = `readlink /proc/self/fd/9; stat -c '%u %g %n' /proc/self/fd/9/root-file /proc/self/fd/9/home`;
    const r = launch([...ns, "--root-view", `ro:${at("src")}:${at("target")}`, "--root-overlay", `${at("upper")}:${at("work")}:${at("merged")}`, "--root-fd", "9", "--uid", String(base + 1000)], script);
    try {
      expect(r.err).toBe("");
      expect(r.out.trim().split("\n")).toEqual([at("merged"), `${base} ${base} /proc/self/fd/9/root-file`, `${base + 1000} ${base + 1000} /proc/self/fd/9/home`]);
      const lower = mountAt(at("target"))!;
      expect(lower.options).toEqual(expect.arrayContaining(["ro", "nosuid", "nodev", "idmapped"]));
      const merged = mountAt(at("merged"))!;
      expect(merged.type).toBe("overlay");
      expect(merged.options).toEqual(expect.arrayContaining(["nosuid", "nodev"]));
    } finally {
      unmount();
    }
  });

  it("a volume's: read-write and idmapped, the view itself the root; the user's writes land as 1000 on disk", () => {
    const script = `readlink /proc/self/fd/9; echo hi > /proc/self/fd/9/home/w && stat -c '%u' /proc/self/fd/9/home/w; (echo no > /proc/self/fd/9/x) 2>/dev/null || echo refused`;
    const r = launch([...ns, "--root-view", `rw:${at("src")}:${at("target")}`, "--root-fd", "9", "--uid", String(base + 1000)], script);
    try {
      expect(r.err).toBe("");
      // the sandbox's host uid writes in its home; the image's root directory stays root's (base+0), closed to it
      expect(r.out.trim().split("\n")).toEqual([at("target"), String(base + 1000), "refused"]);
      expect(statSync(at("src/home/w")).uid).toBe(1000);
      expect(mountAt(at("target"))!.options).toEqual(expect.arrayContaining(["rw", "nosuid", "nodev", "idmapped"]));
      expect(mountAt(at("merged"))).toBeNull();
    } finally {
      unmount();
    }
  });

  it("a view that cannot be mounted ends it before the program runs, leaving nothing mounted", () => {
    const missing = launch([...ns, "--root-view", `ro:${at("no-such")}:${at("target")}`, "--root-fd", "9", "--uid", String(base + 1000)]);
    expect([missing.code, missing.ran]).toEqual([125, false]);
    expect(missing.err).toMatch(/cannot mount the root's view: open_tree .*no-such/);
    // the overlay's layers missing: the idmapped view it had mounted goes again
    const noLayers = launch([...ns, "--root-view", `ro:${at("src")}:${at("target")}`, "--root-overlay", `${at("no-upper")}:${at("work")}:${at("merged")}`, "--root-fd", "9", "--uid", String(base + 1000)]);
    expect([noLayers.code, noLayers.ran]).toEqual([125, false]);
    expect(noLayers.err).toMatch(/cannot mount the root's view: mounting the overlay at/);
    expect([mountAt(at("target")), mountAt(at("merged"))]).toEqual([null, null]);
  });
});

/**
 * --cgroup-dir (cgroup v2): the launch's child is born in the cgroup (clone3 CLONE_INTO_CGROUP),
 * so no migration waits on the kernel's threadgroup lock; sbx-launch stays as its waiter. This
 * host's controllers are cgroup v1, but its unified (cgroup2) hierarchy takes processes the same
 * way, so these run there.
 */
describe("sbx-launch --cgroup-dir", () => {
  const v2 = findCgroup2Mount(readFileSync("/proc/self/mountinfo", "utf8"));
  requires(asRoot && !!v2, "needs root and a cgroup2 mount (a v2 or hybrid host) to make a cgroup to be born in");
  const cgroup = v2 ? join(v2.mountPoint, `sbx-launch-test-${process.pid}`) : "";
  beforeAll(() => {
    if (asRoot && v2) mkdirSync(cgroup, { recursive: true });
  });
  afterAll(() => {
    if (asRoot && v2) rmdirSync(cgroup);
  });
  const relative = () => cgroup.slice(v2!.mountPoint.length);

  it("runs the program born in the cgroup, as the uid, and ends with its exit status", () => {
    const r = launch(["--cgroup-dir", cgroup, "--nofile", "64", "--uid", "299997"], "grep '^0::' /proc/self/cgroup; id -u; exit 7");
    expect(r.err).toBe("");
    expect([r.code, r.out]).toEqual([7, `0::${relative()}\n299997\n`]);
  });

  it("ends with the signal that ended the program, and passes SIGTERM on to it", async () => {
    const killed = spawnSync(LAUNCH, ["--cgroup-dir", cgroup, "--nofile", "64", "--", "/bin/sh", "-c", "kill -USR1 $$"], { encoding: "utf8", env: {} });
    expect([killed.status, killed.signal]).toEqual([null, "SIGUSR1"]);
    const waiter = spawn(LAUNCH, ["--cgroup-dir", cgroup, "--nofile", "64", "--", "/bin/sh", "-c", "trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.05; done"], { env: {} });
    let out = "";
    waiter.stdout!.on("data", (d) => (out += d));
    await vi.waitFor(() => expect(out).toBe("ready\n"));
    const ended = new Promise<[number | null, string | null]>((resolve) => waiter.once("exit", (code, signal) => resolve([code, signal])));
    waiter.kill("SIGTERM");
    expect(await ended).toEqual([3, null]);
    expect(out).toBe("ready\ngot TERM\n");
  });

  it("holds no fds, and takes the program with it when it is SIGKILLed (the daemon's kill)", async () => {
    const waiter = spawn(LAUNCH, ["--cgroup-dir", cgroup, "--nofile", "64", "--uid", "299996", "--", "/bin/sh", "-c", "echo $$; exec sleep 600"], { env: {} });
    let out = "";
    waiter.stdout!.on("data", (d) => (out += d));
    await vi.waitFor(() => expect(out).toMatch(/^\d+\n$/));
    const child = Number(out);
    expect(readdirSync(`/proc/${waiter.pid}/fd`)).toEqual([]);
    expect(readFileSync(`/proc/${child}/status`, "utf8")).toMatch(new RegExp(`^PPid:\\s+${waiter.pid}$`, "m"));
    // The program's stdout ends with the program, not with the waiter: the waiter has no copy.
    const closed = new Promise((resolve) => waiter.stdout!.once("close", resolve));
    waiter.kill("SIGKILL");
    await closed;
    await vi.waitFor(() => expect(existsSync(`/proc/${child}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${child}/status`, "utf8"))).toBe(false));
  });

  it("refuses a cgroup it cannot open, two of them, and --cgroup-procs beside it, running nothing", () => {
    for (const [args, message] of [
      [["--cgroup-dir", join(cgroup, "missing")], /cannot open the cgroup .*missing/],
      [["--cgroup-dir", cgroup, "--cgroup-dir", cgroup], /--cgroup-dir: only one/],
      [["--cgroup-dir", cgroup, "--cgroup-procs", join(cgroup, "cgroup.procs")], /--cgroup-dir and --cgroup-procs: one or the other/],
    ] as Array<[string[], RegExp]>) {
      const r = launch([...args, "--nofile", "64"]);
      expect([r.code, r.ran]).toEqual([125, false]);
      expect(r.err).toMatch(message);
    }
  });
});
