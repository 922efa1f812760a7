/**
 * Untrusted code cannot reach the daemon's channel to the supervisor: the supervisor is pid 1
 * and not dumpable, so /proc/1/fd cannot even be listed, let alone reopened, and ptrace of it
 * is refused (by seccomp and by the kernel's dumpable check).
 */
import { expect, it } from "vitest";
import { useSandbox } from "../helpers/fixtures.js";

const { sb } = useSandbox();

it("the supervisor's channel cannot be reopened or its memory touched from inside", async () => {
  const probe = String.raw`
import ctypes, errno, os
out = []
for fd in (0, 1):
    try:
        os.open("/proc/1/fd/%d" % fd, os.O_WRONLY); out.append("opened")
    except OSError as e:
        out.append(errno.errorcode[e.errno])
libc = ctypes.CDLL(None, use_errno=True)
r = libc.ptrace(16, 1, 0, 0)  # PTRACE_ATTACH to the supervisor
out.append(errno.errorcode[ctypes.get_errno()] if r < 0 else "attached")
print(" ".join(out))`;
  expect((await sb.sh`cat /proc/1/cmdline | tr '\\0' ' '`.text()).trim()).toBe("/.sbx/supervisor --seccomp-fd 6 --ptys 64");
  expect(await sb.sh`python3 -c ${probe}`.text()).toBe("EACCES EACCES EPERM\n");
});
