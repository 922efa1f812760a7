import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RpcError, Sandbox } from "@sbx/client";
import { CLI, removeStateDir, sandboxHostPids, startDaemon, waitForListening } from "../helpers/daemon.js";
import { useSandbox } from "../helpers/fixtures.js";
import { runBash, waitFor } from "../helpers/bash.js";

/**
 * Each test here proves one defence of SECURITY.md "Escaping the sandbox" from both sides:
 * what the code inside observes, and (where it matters) what the host sees of it.
 */

const { daemon, sb } = useSandbox();

const run = (box: Sandbox, script: string) => runBash(box, script);

function readProc(pid: number, file: string): string | null {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return null;
  }
}

/** Host pids whose argv contains `marker` as one whole argument. */
function hostPidsWithArg(marker: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = readProc(Number(entry), "cmdline");
    if (cmdline && cmdline.split("\0").includes(marker)) out.push(Number(entry));
  }
  return out;
}

/** A live (not zombie) process. */
function alive(pid: number): boolean {
  const stat = readProc(pid, "stat");
  if (stat === null) return false;
  return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
}

/** Every host process descending from `root`. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readProc(Number(entry), "stat");
    if (!stat) continue;
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid)!.push(Number(entry));
  }
  const out: number[] = [];
  const stack = [...(children.get(root) ?? [])];
  while (stack.length) {
    const pid = stack.pop()!;
    out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** The four uids (real, effective, saved, fs) of a host process. */
function uidsOf(pid: number): number[] {
  const status = readProc(pid, "status");
  if (!status) throw new Error(`process ${pid} is gone`);
  return /^Uid:\s+(.*)$/m.exec(status)![1]!.trim().split(/\s+/).map(Number);
}

const uniq = () => `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

/** Starts `sleep <unique seconds>` inside and finds its host pid by that argument. */
async function sleeper(box: Sandbox) {
  const marker = `${800000 + Math.floor(Math.random() * 100000)}.${process.pid}${Math.floor(Math.random() * 1000)}`;
  const child = await box.spawn("sleep", { args: [marker], stdout: "null", stderr: "null" });
  const [hostPid] = await waitFor(`the host pid of 'sleep ${marker}'`, () => {
    const pids = hostPidsWithArg(marker);
    return pids.length === 1 ? pids : null;
  });
  return { child, marker, hostPid: hostPid! };
}

describe("no capability, no host root", () => {
  it("has no effective (or any other) capability inside", async () => {
    const r = await run(sb, "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' /proc/self/status");
    expect(r.code).toBe(0);
    const caps = Object.fromEntries(r.out.trim().split("\n").map((l) => l.split(/:\s+/)));
    expect(caps.CapEff).toBe("0000000000000000");
    expect(caps.CapPrm).toBe("0000000000000000");
    expect(caps.CapBnd).toBe("0000000000000000");
    expect(caps.CapAmb).toBe("0000000000000000");
  });

  it("cannot create a nested user namespace (unshare -Ur fails)", async () => {
    const r = await run(sb, "unshare -Ur true");
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/^unshare: unshare failed: (No space left on device|Operation not permitted)$/m);
    // Nor by any other route to a new user namespace.
    const CLONE_NEWUSER = 0x10000000;
    const py = await run(sb, `python3 -c 'import ctypes; libc = ctypes.CDLL(None, use_errno=True); print(libc.unshare(${CLONE_NEWUSER}), ctypes.get_errno())'`);
    expect(py.out).toMatch(/^-1 (28|1)\n$/); // ENOSPC (--disable-userns) or EPERM (seccomp)
  });

  it("runs every sandbox process on the host as an unprivileged uid of the daemon's own range (from 200000)", async () => {
    const { child, hostPid } = await sleeper(sb);
    const [first, last] = daemon.uids!;
    expect(first).toBeGreaterThanOrEqual(200000);
    try {
      const uids = uidsOf(hostPid);
      expect(uids).toHaveLength(4);
      for (const uid of uids) {
        expect(uid).toBeGreaterThanOrEqual(first);
        expect(uid).toBeLessThanOrEqual(last);
      }
      expect(sandboxHostPids(daemon.uids!)).toContain(hostPid);
      expect(/^CapEff:\s+(\w+)$/m.exec(readProc(hostPid, "status")!)![1]).toBe("0000000000000000");
      // Nothing that runs a sandbox (bwrap, its init, the supervisor, user processes) is host root. The
      // daemon's other children — its mount reaper, and while the warm pool refills the root-side launch
      // steps (mkfs, mount, sbx-launch before it drops to the sandbox uid) — run no sandbox code.
      const all = descendants(daemon.proc.pid!);
      const bwraps = all.filter((pid) => readProc(pid, "comm")?.trim() === "bwrap");
      const tree = [...new Set(bwraps.flatMap((pid) => [pid, ...descendants(pid)]))];
      expect(tree).toContain(hostPid);
      // A process that exited since the listing (the warm pool's throwaway spawn, say) has nothing left to check.
      for (const pid of tree.filter((p) => readProc(p, "status") !== null)) {
        const uid = uidsOf(pid)[1]!;
        expect(uid, `host pid ${pid} (${readProc(pid, "comm")?.trim()}) runs as uid ${uid}`).toBeGreaterThanOrEqual(daemon.uids![0]);
      }
    } finally {
      await child.kill("SIGKILL");
    }
  });

  it("files created inside are owned on the host by the sandbox's unprivileged uid", async () => {
    const name = `owned-${uniq()}`;
    expect((await run(sb, `echo secret-content > /home/user/${name}; mkdir /tmp/${name}`)).code).toBe(0);
    const { child, hostPid } = await sleeper(sb);
    try {
      const hostUid = uidsOf(hostPid)[1]!;
      const file = `/proc/${hostPid}/root/home/user/${name}`;
      expect(readFileSync(file, "utf8")).toBe("secret-content\n"); // the very file created inside
      const st = statSync(file);
      expect(st.uid).toBe(hostUid);
      expect(st.uid).toBeGreaterThanOrEqual(daemon.uids![0]);
      expect(st.gid).toBeGreaterThanOrEqual(daemon.uids![0]);
      const dir = statSync(`/proc/${hostPid}/root/tmp/${name}`);
      expect(dir.uid).toBe(hostUid);
    } finally {
      await child.kill("SIGKILL");
    }
  });

  it("cannot write host-root-owned paths (/usr/bin, /etc, /)", async () => {
    const name = `x-${uniq()}`;
    for (const path of [`/usr/bin/${name}`, `/etc/${name}`, `/${name}`, `/usr/lib/${name}`]) {
      const r = await run(sb, `echo pwned > ${path}`);
      expect(r.code, path).toBe(1);
      expect(r.err, path).toMatch(/(Read-only file system|Permission denied)/);
      expect(existsSync(path), `host ${path}`).toBe(false);
    }
    // Existing host files cannot be changed either.
    const bash = await run(sb, "echo >> /usr/bin/bash; touch /etc/passwd");
    expect(bash.err).toMatch(/\/usr\/bin\/bash: (Read-only file system|Permission denied)/);
    expect(bash.err).toMatch(/touch: cannot touch '\/etc\/passwd': (Read-only file system|Permission denied)/);
    // The file API goes through the same kernel checks.
    const viaApi = await sb.fs.writeTextFile(`/usr/bin/${name}`, "pwned").catch((e: unknown) => e);
    expect(viaApi).toBeInstanceOf(RpcError);
    expect(["EROFS", "EACCES"]).toContain((viaApi as RpcError).errno);
    expect(existsSync(`/usr/bin/${name}`)).toBe(false);
  });
});

describe("no host secrets visible", () => {
  it("cannot read the daemon's token; the state dir does not exist inside", async () => {
    const token = `${daemon.stateDir}/token`;
    const r = await run(sb, `cat ${token}`);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`cat: ${token}: No such file or directory\n`);
    expect((await run(sb, `test -e ${daemon.stateDir}`)).code).toBe(1);
    // Nor is the token anywhere in the environment or the init's command line.
    const env = await run(sb, "env; cat /proc/1/environ /proc/self/environ | tr '\\0' '\\n'; tr '\\0' ' ' < /proc/1/cmdline");
    expect(env.out).not.toContain(daemon.token);
    expect(env.out).not.toContain(daemon.stateDir);
    const viaApi = await sb.fs.readTextFile(token).catch((e: unknown) => e);
    expect((viaApi as RpcError).errno).toBe("ENOENT");
  });

  it("host /root is invisible", async () => {
    const r = await run(sb, "ls /root");
    expect(r.code).toBe(2);
    expect(r.err).toBe("ls: cannot access '/root': No such file or directory\n");
  });

  it("/home holds only the sandbox user's home, under its name and its former name", async () => {
    expect(readdirSync("/home").filter((n) => n !== "user" && n !== "sandbox").length).toBeGreaterThan(0); // the host has others
    const r = await run(sb, "ls -A /home; stat -c '%d:%i %U' /home/sandbox /home/user");
    const [a, b, home, alias] = r.out.split("\n");
    expect([a, b]).toEqual(["sandbox", "user"]);
    expect(alias).toBe(home); // the same directory, owned by the sandbox user
    expect(home).toMatch(/ user$/);
    // Neither name can be taken away from inside.
    expect((await run(sb, "umount /home/user || rmdir /home/user || mv /home/user /home/x || mv /home/sandbox /home/x")).code).not.toBe(0);
  });

  it("/var has nothing of the host", async () => {
    const inside = (await run(sb, "ls -A /var")).out.split("\n").filter(Boolean);
    const host = readdirSync("/var");
    expect(host).toEqual(expect.arrayContaining(["lib", "run", "log"]));
    // Only the sandbox's own /var/tmp (a link to its private /tmp) may share a name with the host's.
    expect(inside.filter((n) => host.includes(n) && n !== "tmp")).toEqual([]);
    const r = await run(sb, "for p in /var/lib /var/run /var/log /var/cache /var/lib/dpkg /var/run/docker.sock; do test -e $p && echo $p; done; readlink /var/tmp");
    expect(r.out).toBe("/tmp\n");
  });

  it("/run and host sockets (docker, dbus, systemd) are absent", async () => {
    const r = await run(
      sb,
      "for p in /run /run/dbus/system_bus_socket /run/systemd /run/user /run/docker.sock /var/run/docker.sock /var/run/dbus /run/postgresql; do test -e $p && echo $p; done; true",
    );
    expect(r.out).toBe("");
    // No unix socket of the host is reachable anywhere outside /proc and the read-only /usr: the one
    // socket is the sandbox's own egress proxy, its only (policed) way out.
    const sockets = await run(sb, "find / \\( -path /proc -o -path /usr \\) -prune -o -type s -print 2>/dev/null; true");
    expect(sockets.out).toBe("/.sbx/run/proxy.sock\n");
  });

  it("host /etc/shadow, /etc/machine-id and other host identity files are absent", async () => {
    expect(existsSync("/etc/shadow")).toBe(true);
    const r = await run(sb, "for p in /etc/shadow /etc/gshadow /etc/machine-id /etc/ssh /etc/sudoers /etc/hostname /etc/resolv.conf; do test -e $p && echo $p; done; true");
    expect(r.out).toBe("");
    // /etc/passwd is the sandbox's own, not the host's.
    const passwd = (await run(sb, "cat /etc/passwd")).out;
    expect(passwd).not.toBe(readFileSync("/etc/passwd", "utf8"));
    expect(passwd.split("\n").filter(Boolean).map((l) => l.split(":")[0])).toEqual(["root", "user", "nobody"]);
  });
});

describe("own namespaces", () => {
  it("sees no host process: a handful of pids, pid 1 is the supervisor, the daemon is not there", async () => {
    const r = await run(sb, "ls /proc | grep -E '^[0-9]+$'; echo ---; cat /proc/1/comm; echo ---; ps -e -o pid= -o comm=");
    const [pidsPart, comm, ps] = r.out.split("---\n");
    const pids = pidsPart!.split("\n").filter(Boolean).map(Number);
    expect(pids.length).toBeGreaterThanOrEqual(2);
    expect(pids.length).toBeLessThanOrEqual(6);
    expect(pids).toContain(1);
    expect(pids).not.toContain(daemon.proc.pid);
    expect(pids.every((p) => p < 100)).toBe(true);
    expect(comm!.trim()).toBe("supervisor");
    const psLines = ps!.trim().split("\n").map((l) => l.trim().split(/\s+/));
    expect(psLines.length).toBeLessThanOrEqual(6);
    expect(psLines.map((l) => l[1])).not.toContain("vitest");
    expect(psLines.map((l) => Number(l[0]))).not.toContain(daemon.proc.pid);
    // The daemon's host pid cannot be signalled from inside either.
    const kill = await run(sb, `kill -0 ${daemon.proc.pid}`);
    expect(kill.code).toBe(1);
    expect(kill.err).toMatch(/No such process/);
    // The host sees far more processes than that.
    expect(readdirSync("/proc").filter((e) => /^\d+$/.test(e)).length).toBeGreaterThan(pids.length);
  });

  it("has its own hostname 'sbx'", async () => {
    expect(hostname()).not.toBe("sbx");
    expect((await run(sb, "hostname; cat /proc/sys/kernel/hostname")).out).toBe("sbx\nsbx\n");
  });

  it("has no network interface but lo", async () => {
    const r = await run(sb, "cat /proc/net/dev");
    const ifaces = r.out.split("\n").slice(2).filter(Boolean).map((l) => l.split(":")[0]!.trim());
    expect(ifaces).toEqual(["lo"]);
  });

  it("cannot open a raw, ICMP or packet socket (no CAP_NET_RAW, no ping group), while UDP still opens", async () => {
    const script = [
      "import errno, socket",
      "for name, family, kind, proto in [",
      "  ('raw', socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),",
      "  ('raw6', socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6),",
      "  ('raw-tcp', socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP),",
      "  ('icmp', socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP),",
      "  ('icmp6', socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6),",
      "  ('packet', socket.AF_PACKET, socket.SOCK_RAW, 0x0300),",
      "  ('packet-dgram', socket.AF_PACKET, socket.SOCK_DGRAM, 0x0300),",
      "  ('udp', socket.AF_INET, socket.SOCK_DGRAM, 0),",
      "]:",
      "  try:",
      "    socket.socket(family, kind, proto).close()",
      "    print(name, 'opened')",
      "  except OSError as e:",
      "    print(name, errno.errorcode[e.errno])",
    ].join("\n");
    const out = await (await sb.spawn("python3", { args: ["-c", script] })).output();
    expect(out.stderrText).toBe("");
    expect(out.stdoutText).toBe(
      ["raw EPERM", "raw6 EPERM", "raw-tcp EPERM", "icmp EACCES", "icmp6 EACCES", "packet EPERM", "packet-dgram EPERM", "udp opened", ""].join("\n"),
    );
  });

  it("cannot reach the daemon's port on 127.0.0.1", async () => {
    const port = new URL(daemon.url).port;
    const curl = await run(sb, `curl -sS --max-time 3 http://127.0.0.1:${port}/`);
    expect(curl.code).toBe(7); // couldn't connect (the host's daemon would answer 426)
    expect(curl.err).toMatch(/Failed to connect to 127\.0\.0\.1 port \d+/);
    const tcp = await run(sb, `exec 3<>/dev/tcp/127.0.0.1/${port}`);
    expect(tcp.code).toBe(1);
    expect(tcp.err).toMatch(/Connection refused|Network is unreachable/);
    // Sanity: from the host the same port answers.
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(426);
  });
});

describe("no leaked file descriptors", () => {
  /** The fds of a directly spawned `ls -l /proc/self/fd`, minus ls's own directory fd. */
  async function fdsOf(box: Sandbox): Promise<Map<number, string>> {
    const out = await (await box.spawn("ls", { args: ["-l", "/proc/self/fd"] })).output();
    expect(out.status.code).toBe(0);
    const fds = new Map<number, string>();
    for (const line of out.stdoutText!.split("\n")) {
      const m = /\s(\d+) -> (.*)$/.exec(line);
      if (m && !/^\/proc\/\d+\/fd$/.test(m[2]!)) fds.set(Number(m[1]), m[2]!);
    }
    return fds;
  }

  it("a spawned process holds only 0, 1 and 2", async () => {
    const fds = await fdsOf(sb);
    expect([...fds.entries()].map(([fd, target]) => `${fd} -> ${target}`).filter((l) => !/^[012] -> /.test(l))).toEqual([]);
    expect([...fds.keys()].sort()).toEqual([0, 1, 2]);
  });

  it("even when the daemon itself inherited a stray fd from whoever started it", async () => {
    // A daemon started by a careless parent (a shell wrapper, a CI runner, a service manager)
    // inherits extra fds without close-on-exec. None of them may reach sandboxed code.
    const stateDir = mkdtempSync(join(tmpdir(), "sbx-test-"));
    const STRAY = 40;
    const stdio: Array<"ignore" | "pipe"> = ["ignore", "pipe", "pipe"];
    for (let fd = 3; fd < STRAY; fd++) stdio.push("ignore");
    stdio.push("pipe");
    const env = { ...process.env };
    delete env.SBX_TOKEN;
    delete env.SBX_URL;
    const proc = spawn(process.execPath, [CLI, "daemon", "--listen", "127.0.0.1:0", "--state-dir", stateDir, "--session-grace", "1s"], { stdio, env });
    let box: Sandbox | undefined;
    try {
      const url = await waitForListening(proc);
      expect(readdirSync(`/proc/${proc.pid}/fd`)).toContain(String(STRAY)); // the daemon does hold it
      box = await Sandbox.create({ url, token: readFileSync(join(stateDir, "token"), "utf8").trim() });
      const fds = await fdsOf(box);
      expect([...fds.entries()].map(([fd, target]) => `${fd} -> ${target}`).filter((l) => !/^[012] -> /.test(l))).toEqual([]);
    } finally {
      await box?.kill().catch(() => {});
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await exited;
      await removeStateDir(stateDir);
    }
  });
});

describe("sandboxes are isolated from each other", () => {
  it("one cannot see, signal or read the files of another", async () => {
    const other = await Sandbox.create({ ...daemon.opts });
    try {
      const secret = `secret-${uniq()}`;
      expect((await run(other, `printf "other's data" | tee /home/user/${secret} > /tmp/${secret}`)).code).toBe(0);
      const { child, marker, hostPid } = await sleeper(other);
      try {
        const innerPid = child.pid;
        // Different host uids, so even a shared kernel object would not be theirs to touch.
        const { child: mine, hostPid: myHostPid } = await sleeper(sb);
        expect(uidsOf(myHostPid)[1]).not.toBe(uidsOf(hostPid)[1]);
        await mine.kill("SIGKILL");

        const ps = await run(sb, "ps -e -o args=");
        expect(ps.out).not.toContain(marker);
        // "[8]00123..." matches the marker but not grep's own argv.
        const look = await run(sb, `grep -l -- '[${marker[0]}]${marker.slice(1).replace(".", "\\.")}' /proc/[0-9]*/cmdline 2>/dev/null; true`);
        expect(look.out).toBe("");
        const kill = await run(sb, `kill -0 ${hostPid}; echo rc=$?; kill -KILL ${hostPid}; echo rc=$?`);
        expect(kill.out).toBe("rc=1\nrc=1\n");
        expect(kill.err).toMatch(/No such process/);
        expect(alive(hostPid)).toBe(true);
        const read = await run(sb, `cat /home/user/${secret}; cat /tmp/${secret}; cat /proc/${hostPid}/root/home/user/${secret}`);
        expect(read.code).toBe(1);
        expect(read.out).toBe("");
        expect(read.err.match(/No such file or directory/g)).toHaveLength(3);
        // The other one's process is untouched and still its own.
        const still = await (await other.spawn("bash", { args: ["-c", `kill -0 ${innerPid} && cat /home/user/${secret}`] })).output();
        expect(still.stdoutText).toBe("other's data");
      } finally {
        await child.kill("SIGKILL").catch(() => {});
      }
    } finally {
      await other.kill();
    }
  });
});

describe("killing the daemon", () => {
  it("SIGKILL leaves no sandbox process alive; a restart reclaims the leftovers", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "sbx-test-"));
    try {
      // No warm pool: the records below must be exactly the two sandboxes made here.
      const first = await startDaemon({ stateDir, args: ["--warm-pool", "0"] });
      const a = await Sandbox.create({ ...first.opts, timeout: "5m" });
      const b = await Sandbox.create({ ...first.opts });
      const sleepA = await sleeper(a);
      const sleepB = await sleeper(b);
      const tree = descendants(first.proc.pid!);
      expect(tree).toEqual(expect.arrayContaining([sleepA.hostPid, sleepB.hostPid]));
      const bwraps = tree.filter((p) => readProc(p, "comm")?.trim() === "bwrap");
      expect(bwraps.length).toBeGreaterThanOrEqual(2);
      expect(readdirSync(join(stateDir, "sandboxes")).sort()).toEqual([`${a.id}.json`, `${b.id}.json`].sort());

      await first.stop("SIGKILL");
      const started = Date.now();
      await waitFor("every sandbox process to die", () => tree.every((p) => !alive(p)), 2000).catch(() => {});
      const survivors = tree.filter(alive).map((p) => `${p} ${readProc(p, "cmdline")?.replace(/\0/g, " ").slice(0, 80)}`);
      expect(survivors).toEqual([]);
      expect(Date.now() - started).toBeLessThan(2000);
      expect(hostPidsWithArg(sleepA.marker)).toEqual([]);
      expect(hostPidsWithArg(sleepB.marker)).toEqual([]);
      await a.close().catch(() => {});
      await b.close().catch(() => {});

      // The records are still there for the next daemon to find.
      expect(readdirSync(join(stateDir, "sandboxes")).length).toBe(2);
      const second = await startDaemon({ stateDir });
      try {
        expect(second.logs()).toMatch(/reclaimed 2 leftover sandbox records/);
        expect(readdirSync(join(stateDir, "sandboxes"))).toEqual([]);
        expect(await Sandbox.list({ ...second.opts })).toEqual([]);
        expect(readFileSync(join(stateDir, "daemon.pid"), "utf8").trim()).toBe(String(second.proc.pid));
        // And it works.
        const c = await Sandbox.create({ ...second.opts });
        expect(await c.sh`echo ok`.text()).toBe("ok\n");
        await c.kill();
      } finally {
        await second.stop();
      }
    } finally {
      await removeStateDir(stateDir);
    }
  });
});
