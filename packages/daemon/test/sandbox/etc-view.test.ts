import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyEtc, stampOf } from "../../src/sandbox/etc-copy.js";
import { EtcView } from "../../src/sandbox/etc-view.js";
import { requires } from "../helpers/fixtures.js";

// Needs root: it copies as the root daemon does, and checks what an unprivileged uid may do to the copy.
const ROOT = process.getuid?.() === 0;
const quiet = { info() {}, warn() {}, error() {} };
/** A uid nobody uses (what a sandbox's host uid is to the copy: not its owner, in no group of it). */
const STRANGER = 64_999;
let work: string;
let src: string;
/** Outside /etc along root-owned directories only (/run is root's, 0755). */
let trusted: string;

beforeAll(() => {
  if (!ROOT) return;
  work = mkdtempSync(join(tmpdir(), "sbx-etcview-"));
  chmodSync(work, 0o755);
  src = join(work, "etc");
  mkdirSync(src, { mode: 0o755 });
  const put = (rel: string, data: string, mode = 0o644) => {
    writeFileSync(join(src, rel), data);
    chmodSync(join(src, rel), mode);
  };
  put("conf", "conf\n");
  put("secret.conf", "secret\n", 0o600);
  put("tool", "#!/bin/sh\n", 0o755);
  mkdirSync(join(src, "dir/sub"), { recursive: true });
  put("dir/a", "a\n");
  put("dir/b-private", "b\n", 0o640);
  put("dir/sub/c", "c\n");
  symlinkSync("../conf", join(src, "dir/rel-link"));
  symlinkSync("/etc/shadow", join(src, "dir/shadow-link")); // resolved inside the sandbox, where there is none
  spawnSync("mkfifo", [join(src, "dir/fifo")]);
  mkdirSync(join(src, "closed"), { mode: 0o700 });
  put("closed/x", "x\n");
  mkdirSync(join(src, "ssl/private"), { recursive: true, mode: 0o755 });
  put("ssl/private/key.pem", "KEY\n");
  put("ssl/cert.pem", "CERT\n");
  put("shadow", "root:$6$...\n", 0o644);
  symlinkSync("/usr/share/zoneinfo/Etc/UTC", join(src, "localtime"));
  symlinkSync("shadow", join(src, "shadow-link"));
  symlinkSync("closed/x", join(src, "into-closed"));
  trusted = mkdtempSync("/run/sbx-etcview-");
  chmodSync(trusted, 0o755);
  writeFileSync(join(trusted, "resolv.conf"), "nameserver 192.0.2.1\n");
  symlinkSync(join(trusted, "resolv.conf"), join(src, "trusted-link"));
  // /tmp is everyone's: what a link through it leads to could be swapped for anything.
  const open = mkdtempSync(join(tmpdir(), "sbx-etcview-open-"));
  chmodSync(open, 0o777);
  writeFileSync(join(open, "f"), "swapped\n");
  chmodSync(join(open, "f"), 0o644);
  symlinkSync(join(open, "f"), join(src, "open-link"));
  mkdirSync(join(src, "mixed"));
  put("mixed/public.conf", "p\n");
  put("mixed/private.key", "k\n", 0o600);
});

afterAll(() => {
  if (!ROOT) return;
  rmSync(work, { recursive: true, force: true });
  rmSync(trusted, { recursive: true, force: true });
});

const NAMES = ["conf", "secret.conf", "tool", "dir", "closed", "ssl", "shadow", "localtime", "shadow-link", "into-closed", "trusted-link", "open-link", "missing"];

/** Whether host uid STRANGER may run `script` (sh) successfully. */
function strangerMay(script: string): boolean {
  return spawnSync("setpriv", [`--reuid=${STRANGER}`, `--regid=${STRANGER}`, "--clear-groups", "sh", "-c", script]).status === 0;
}

describe("the /etc copy", () => {
  requires(ROOT, "it copies as the root daemon does and checks a stranger uid against the copy: it must run as root (pnpm test does)");

  it("copies only what everyone may read, keeps links the sandbox resolves itself, and never follows one along a path others could change", async () => {
    const into = join(work, "copy1");
    mkdirSync(into);
    const copy = await copyEtc({ root: src, names: NAMES, linked: ["/etc/mixed/public.conf", "/etc/../shadow", "/etc/shadow"] }, into);
    const find = spawnSync("find", [".", "-printf", "%p %y %m %l\\n"], { cwd: into, encoding: "utf8" }).stdout.split("\n").filter(Boolean).map((l) => l.trimEnd()).sort();
    expect(find).toEqual([
      ". d 755",
      "./closed d 700", // its name, none of what is in it
      "./conf f 644",
      "./dir d 755",
      "./dir/a f 644",
      "./dir/rel-link l 777 ../conf",
      "./dir/shadow-link l 777 /etc/shadow",
      "./dir/sub d 755",
      "./dir/sub/c f 644",
      "./localtime l 777 /usr/share/zoneinfo/Etc/UTC",
      "./mixed d 755",
      "./mixed/public.conf f 644",
      "./ssl d 755",
      "./ssl/private d 755", // its name as the binds showed it, never what is in it (even readable)
      "./ssl/cert.pem f 644",
      "./tool f 755",
      "./trusted-link f 644",
    ].sort());
    expect(readFileSync(join(into, "trusted-link"), "utf8")).toBe("nameserver 192.0.2.1\n");
    expect(readFileSync(join(into, "dir/sub/c"), "utf8")).toBe("c\n");
    // Watched: the root for the names copied, every directory walked, the followed link's directory.
    expect(copy.watch.get(src)).toEqual(new Set([...NAMES, "mixed"]));
    expect(copy.watch.get(join(src, "dir"))).toBeNull();
    expect(copy.watch.get(trusted)).toEqual(new Set(["resolv.conf"]));
    expect(copy.bytes).toBeGreaterThan(0);
  });
});

describe("the copy's stamp", () => {
  requires(ROOT, "it copies as the root daemon does: it must run as root (pnpm test does)");

  it("moves when what was copied changes, not when something else appears in a directory a link only passes through (/run, /tmp)", async () => {
    const into = mkdtempSync(join(work, "stamp-"));
    const copy = await copyEtc({ root: src, names: NAMES, linked: [] }, into);
    expect(copy.visited.some((v) => v.path === "/run" && v.through)).toBe(true);
    expect(copy.visited.some((v) => v.path === tmpdir() && v.through)).toBe(true);
    // Neighbours come and go in the directories the links pass through: the same copy.
    for (const dir of ["/run", tmpdir(), trusted]) {
      const other = join(dir, `sbx-etcview-neighbour-${process.pid}`);
      writeFileSync(other, "x\n");
      rmSync(other);
    }
    expect(stampOf(copy.visited)).toBe(copy.stamp);
    // What a link leads to changes: another copy.
    const target = join(trusted, "resolv.conf");
    const before = readFileSync(target, "utf8");
    writeFileSync(target, "nameserver 192.0.2.2\n");
    try {
      expect(stampOf(copy.visited)).not.toBe(copy.stamp);
    } finally {
      writeFileSync(target, before);
      rmSync(into, { recursive: true, force: true });
    }
  });
});

describe("the /etc view's generations", () => {
  requires(ROOT, "it checks a stranger uid against the daemon's copy: it must run as root (pnpm test does)");

  it("a change on the host builds a new generation for later leases; a held one stays as it was until released, then goes", async () => {
    const dir = join(work, "state", "etc");
    const view = await EtcView.open(dir, { root: src, names: NAMES, linked: [] }, quiet);
    try {
      const first = await view.acquire();
      const read = (lease: { fd: number }, rel: string) => readFileSync(`/proc/self/fd/${lease.fd}/${rel}`, "utf8");
      expect(read(first, "conf")).toBe("conf\n");
      expect(first.systemBundle).toBe("/etc/ssl/cert.pem"); // the system bundle path the daemon binds its own over
      // The files each sandbox gets its own of are there, empty, for its binds to land on.
      for (const name of ["passwd", "group", "hosts"]) expect(read(first, name)).toBe("");
      const g1 = readlinkSync(`/proc/self/fd/${first.fd}`);
      // Counted from the generation held: a build repeats when a file it copied changed meanwhile, which timing alone can make look so.
      const at = view.generation;
      writeFileSync(join(src, "conf"), "changed\n"); // written in place: inotify's IN_MODIFY
      await until(() => view.generation > at && !first.current);
      expect(first.current).toBe(false);
      const second = await view.acquire();
      expect(read(second, "conf")).toBe("changed\n");
      expect(read(first, "conf")).toBe("conf\n");
      // A file appearing in a walked directory, and a name of the list appearing in the root.
      const before = view.generation;
      writeFileSync(join(src, "dir/sub/new"), "new\n");
      await until(() => view.generation > before);
      const third = view.generation;
      writeFileSync(join(src, "missing"), "here now\n");
      await until(() => view.generation > third);
      const fourth = await view.acquire();
      expect(read(fourth, "dir/sub/new")).toBe("new\n");
      expect(read(fourth, "missing")).toBe("here now\n");
      // Generations nobody holds are gone; the first stays while held.
      expect(existsSync(g1)).toBe(true);
      const g2 = readlinkSync(`/proc/self/fd/${second.fd}`);
      expect(existsSync(g2)).toBe(true);
      second.release();
      await until(() => !existsSync(g2));
      first.release();
      await until(() => !existsSync(g1));
      expect(spawnSync("ls", [dir], { encoding: "utf8" }).stdout.trim().split("\n")).toEqual([basename(readlinkSync(`/proc/self/fd/${fourth.fd}`))]);
      fourth.release();
    } finally {
      await view.close();
      writeFileSync(join(src, "conf"), "conf\n");
      rmSync(join(src, "dir/sub/new"), { force: true });
      rmSync(join(src, "missing"), { force: true });
    }
  });

  it("no uid but the daemon's can list the state dir's copies, change one or add to it", async () => {
    mkdirSync(join(work, "state2"), { mode: 0o755 });
    const dir = join(work, "state2", "etc");
    const view = await EtcView.open(dir, { root: src, names: NAMES, linked: [] }, quiet);
    try {
      const gen = readlinkSync(`/proc/self/fd/${(await view.acquire()).fd}`);
      expect(statSync(dir).mode & 0o777).toBe(0o711);
      expect(gen).toMatch(/\/g\d+-[0-9a-f]{16}$/);
      expect(statSync(gen).uid).toBe(0);
      expect(statSync(join(gen, "conf")).uid).toBe(0);
      // The state dir's etc/ cannot be listed (bwrap, as the sandbox's uid, passes through it by the generation's path).
      expect(strangerMay(`ls ${dir}`)).toBe(false);
      expect(strangerMay(`cat ${gen}/conf`)).toBe(true); // what everyone may read on the host anyway
      // The copy is root's and read-only to everyone else.
      expect(strangerMay(`echo x >> ${gen}/conf`)).toBe(false);
      expect(strangerMay(`touch ${gen}/new`)).toBe(false);
      expect(strangerMay(`rm -f ${gen}/conf`)).toBe(false);
      expect(strangerMay(`chmod 777 ${gen}/conf`)).toBe(false);
      expect(strangerMay(`mv ${gen}/dir ${gen}/moved`)).toBe(false);
      expect(strangerMay(`ln -s /etc/shadow ${gen}/dir/link`)).toBe(false);
      expect(readFileSync(join(gen, "conf"), "utf8")).toBe("conf\n");
      expect(lstatSync(join(gen, "new"), { throwIfNoEntry: false })).toBeUndefined();
    } finally {
      await view.close();
    }
  });

  it("a rebuild that fails fails every launch until one succeeds: no sandbox starts with a view the host has moved past", async () => {
    const dir = join(work, "state4", "etc");
    const view = await EtcView.open(dir, { root: src, names: ["dir"], linked: [], max: { entries: 20, bytes: 1 << 20 } }, quiet);
    try {
      (await view.acquire()).release();
      for (let i = 0; i < 30; i++) writeFileSync(join(src, "dir", `many-${i}`), "");
      await new Promise((r) => setTimeout(r, 300)); // the change is seen, and its rebuild fails, meanwhile
      await expect(view.acquire()).rejects.toThrow(/could not rebuild the \/etc view: the host's \/etc entries a sandbox sees hold more than 20 files/);
      expect(view.generation).toBe(1);
      for (let i = 0; i < 30; i++) rmSync(join(src, "dir", `many-${i}`));
      await until(() => view.generation > 1);
      const lease = await view.acquire();
      expect(readFileSync(`/proc/self/fd/${lease.fd}/dir/a`, "utf8")).toBe("a\n");
      lease.release();
    } finally {
      for (let i = 0; i < 30; i++) rmSync(join(src, "dir", `many-${i}`), { force: true });
      await view.close();
    }
  });

  it("a predecessor's generations are removed when a daemon opens the view", async () => {
    const dir = join(work, "state3", "etc");
    mkdirSync(join(dir, "g7"), { recursive: true });
    writeFileSync(join(dir, "g7", "left"), "");
    const view = await EtcView.open(dir, { root: src, names: ["conf"], linked: [] }, quiet);
    try {
      expect(spawnSync("ls", ["-A", dir], { encoding: "utf8" }).stdout.trim()).toMatch(/^g1-[0-9a-f]{16}$/);
    } finally {
      await view.close();
    }
    // Closed with no lease out: nothing is left.
    await until(() => spawnSync("ls", ["-A", dir], { encoding: "utf8" }).stdout.trim() === "");
  });
});

async function until(ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${ok}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
