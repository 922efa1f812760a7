/**
 * The supervisor is out of reach of the code it runs (SECURITY.md): it is pid 1 of the
 * sandbox's pid namespace, so processes inside can deliver it only signals it handles (it
 * handles none: SIGCHLD is blocked and read from a signalfd, and exits are learnt from
 * waitpid, never from a sender's siginfo), and it is not dumpable, so its memory, fds and
 * environment are closed to them. Its children are dumpable again after exec.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { useSandbox } from "../helpers/fixtures.js";
import { runBash } from "../helpers/bash.js";

// A test that brings the sandbox down fails by itself; the next one gets a new sandbox.
const { daemon, sb } = useSandbox({ replaceDead: true });

/** The sandbox still runs commands, reads and writes files, and pid 1 is the same supervisor. */
async function stillServing(startTime: string): Promise<void> {
  expect(await sb.sh`cat /proc/1/comm`.text()).toBe("supervisor\n");
  expect(await sb.sh`echo alive`.text()).toBe("alive\n");
  await sb.fs.writeTextFile("probe.txt", "still here");
  expect(await sb.fs.readTextFile("probe.txt")).toBe("still here");
  expect(await pid1StartTime()).toBe(startTime);
}

/** Field 22 of /proc/1/stat: a restarted pid 1 would have another. */
async function pid1StartTime(): Promise<string> {
  const stat = await sb.sh`cat /proc/1/stat`.text();
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!;
}

it("the supervisor is pid 1 of the sandbox's pid namespace", async () => {
  expect((await sb.sh`tr '\\0' ' ' < /proc/1/cmdline`.text()).trimEnd()).toBe("/.sbx/supervisor --seccomp-fd 6 --ptys 64");
  // No bwrap init runs inside: the supervisor is the reaper of every orphan too.
  const ps = (await sb.sh`ps -e -o pid=,comm=`.text()).trimEnd().split("\n").map((l) => l.trim());
  expect(ps[0]).toBe("1 supervisor");
  expect(ps.filter((l) => / (bwrap|node)$/.test(l))).toEqual([]);
});

describe("signals from inside do not reach the supervisor", () => {
  it.each([["USR1"], ["TERM"], ["INT"], ["HUP"], ["KILL"], ["STOP"], ["SEGV"], ["RTMIN+2"]])("kill -%s 1 changes nothing", async (sig) => {
    const started = await pid1StartTime();
    const r = await runBash(sb, `kill -${sig} 1; echo "kill: $?"; sleep 0.2; grep '^State:' /proc/1/status`);
    // The kernel drops them silently for a pid namespace's init without a handler: not stopped, not gone.
    expect(r.out).toMatch(/^kill: 0\nState:\s+[SR] \((sleeping|running)\)\n$/);
    await stillServing(started);
  });

  it("SIGUSR1 opens no debugger: nothing listens inside but the egress bridge", async () => {
    const started = await pid1StartTime();
    await sb.sh`kill -USR1 1`;
    // /proc/net/tcp: listening sockets are state 0A; 0C38 is port 3128 on 127.0.0.1.
    const listening = (await sb.sh`awk '$4 == "0A" { print $2 }' /proc/net/tcp /proc/net/tcp6`.text()).split("\n").filter(Boolean);
    expect(listening).toEqual(["0100007F:0C38"]);
    await stillServing(started);
  });

  it("a forged SIGCHLD (even with a sender's siginfo naming a running child) reports no exit", async () => {
    const started = await pid1StartTime();
    const victim = await sb.spawn("sleep", { args: ["60"], stdout: "null", stderr: "null" });
    let exited = false;
    victim.status.then(() => (exited = true));
    const forge = String.raw`
import ctypes, os, signal, struct
libc = ctypes.CDLL(None, use_errno=True)
for _ in range(200):
    os.kill(1, signal.SIGCHLD)
# rt_sigqueueinfo with si_code CLD_EXITED and si_pid of the victim: the kernel refuses a
# positive si_code from user space; SI_QUEUE (-1) with the same pid goes through.
for code in (1, -1):
    info = struct.pack("iii", signal.SIGCHLD, 0, code) + struct.pack("ii", int(os.environ["VICTIM"]), 1000) + bytes(128 - 20)
    r = libc.syscall(129, 1, signal.SIGCHLD, info)  # rt_sigqueueinfo
    print(code, r, ctypes.get_errno() if r < 0 else 0)
`;
    const r = await runBash(sb, `VICTIM=${victim.pid} python3 -c '${forge}'`);
    expect(r.out).toBe("1 -1 1\n-1 0 0\n");
    await new Promise((res) => setTimeout(res, 300));
    expect(exited).toBe(false);
    expect(await sb.sh`kill -0 ${String(victim.pid)} && echo running`.text()).toBe("running\n");
    // Real exits are still reported, with what really happened.
    await victim.kill("SIGTERM");
    expect(await victim.status).toEqual({ success: false, code: 143, signal: "SIGTERM", oom: false });
    await stillServing(started);
  });
});

describe("the supervisor's memory, fds and environment are closed", () => {
  const PROBE = String.raw`
import ctypes, errno, os
out = []
def attempt(label, fn):
    try:
        fn(); out.append(label + "=ok")
    except OSError as e:
        out.append(label + "=" + errno.errorcode[e.errno])
def read_mem():
    with open("/proc/1/mem", "rb") as f:
        f.seek(0x400000); f.read(16)
def write_mem():
    with open("/proc/1/mem", "r+b") as f:
        f.seek(0x400000); f.write(b"\x90")
attempt("mem-read", read_mem)
attempt("mem-write", write_mem)
attempt("fd0", lambda: os.open("/proc/1/fd/0", os.O_RDONLY))
attempt("fd1", lambda: os.open("/proc/1/fd/1", os.O_WRONLY))
attempt("fd-list", lambda: os.listdir("/proc/1/fd"))
attempt("environ", lambda: open("/proc/1/environ", "rb").read())
attempt("maps", lambda: open("/proc/1/maps").read())
attempt("root", lambda: os.listdir("/proc/1/root/"))
libc = ctypes.CDLL(None, use_errno=True)
r = libc.ptrace(16, 1, 0, 0)
out.append("ptrace=" + (errno.errorcode[ctypes.get_errno()] if r < 0 else "attached"))
print(" ".join(out))`;

  it("/proc/1/mem, /proc/1/fd/*, /proc/1/environ and ptrace are all refused", async () => {
    const started = await pid1StartTime();
    expect(await sb.sh`python3 -c ${PROBE}`.text()).toBe(
      "mem-read=EACCES mem-write=EACCES fd0=EACCES fd1=EACCES fd-list=EACCES environ=EACCES maps=EACCES root=EACCES ptrace=EPERM\n",
    );
    await stillServing(started);
  });

  it("the supervisor runs with no capability, no_new_privs and the seccomp filter; its children are dumpable after exec", async () => {
    const status = await sb.sh`grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/1/status`.text();
    const fields = Object.fromEntries(status.trimEnd().split("\n").map((l) => l.split(/:\s+/) as [string, string]));
    expect(fields).toEqual({
      CapInh: "0000000000000000",
      CapPrm: "0000000000000000",
      CapEff: "0000000000000000",
      CapBnd: "0000000000000000",
      CapAmb: "0000000000000000",
      NoNewPrivs: "1",
      Seccomp: "2",
    });
    // PR_GET_DUMPABLE is 3: a child is dumpable again (so ps, /proc/self and debuggers of its own work).
    expect(await sb.sh`python3 -c 'import ctypes; print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))'`.text()).toBe("1\n");
    expect(await sb.sh`cat /proc/self/environ | tr '\\0' '\\n' | grep -c '^HOME='`.text()).toBe("1\n");
  });

  it("it holds nothing it inherited: seen from the host, its fds are the channel and its own few", async () => {
    const bwrap = Number(new RegExp(`sandbox ${sb.id} started.*bwrap pid (\\d+)`).exec(daemon.logs())![1]);
    const supervisor = Number(readFileSync(`/proc/${bwrap}/task/${bwrap}/children`, "utf8").trim());
    // (The proc file's path is the sandbox's own /proc seen from outside it: only its end is stable.)
    const fds = readdirSync(`/proc/${supervisor}/fd`).map((fd) =>
      readlinkSync(`/proc/${supervisor}/fd/${fd}`).replace(/\d+/g, "N").replace(/^.*\/oom_score_adj$/, "oom_score_adj"),
    );
    // stdin, stdout, stderr (the daemon's socket pairs), its handle on its own oom_score_adj,
    // the event loop, the SIGCHLD signalfd and the egress bridge's listening socket.
    expect(fds.sort()).toEqual(
      ["oom_score_adj", "anon_inode:[eventpoll]", "anon_inode:[signalfd]", "socket:[N]", "socket:[N]", "socket:[N]", "socket:[N]"].sort(),
    );
  });

  it("user processes are the OOM killer's first choice; the supervisor keeps its own score", async () => {
    const [mine, supervisor] = (await sb.sh`cat /proc/self/oom_score_adj /proc/1/oom_score_adj`.text()).split("\n").map(Number);
    expect(mine).toBe(1000);
    expect(supervisor).toBeLessThan(1000);
  });
});
