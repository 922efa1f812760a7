import { availableParallelism } from "node:os";
import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Sandbox } from "@sbx/client";
import { useDaemon, requires } from "../helpers/fixtures.js";

/**
 * A sandbox sees as many CPUs as its quota rounded up (issue 16 item 4), so tools that size
 * themselves by the CPU count do not oversubscribe it: `nproc` and Node read the affinity,
 * Python's os.cpu_count() reads /sys/devices/system/cpu/online. In root mode a cpuset holds
 * the set where the host has the controller (this host: cgroup v1 with a cpuset hierarchy), so
 * a process inside cannot widen it.
 */

const HOST_CPUS = availableParallelism();
const CPUSET = existsSync("/sys/fs/cgroup/cpuset/cpuset.cpus") || (existsSync("/sys/fs/cgroup/cgroup.controllers") && /\bcpuset\b/.test(readFileSync("/sys/fs/cgroup/cgroup.controllers", "utf8")));
const daemon = useDaemon({ args: ["--warm-pool", "0"] });

const counts = (sb: Sandbox) => sb.sh`nproc; python3 -c "import os; print(os.cpu_count(), len(os.sched_getaffinity(0)))"; /.sbx/node -p "require('os').availableParallelism()"`.text().then((s) => s.trim());

describe("the CPUs a sandbox sees", () => {
  requires(HOST_CPUS >= 2, "this host has one CPU: spreading and quotas rounded up need two");
  it("match its quota rounded up, for nproc, Python and Node", async () => {
    await using half = await Sandbox.create({ ...daemon.opts, cpus: 0.5 });
    await using one = await Sandbox.create({ ...daemon.opts, cpus: 1 });
    await using all = await Sandbox.create({ ...daemon.opts, cpus: HOST_CPUS });
    expect(await counts(half)).toBe("1\n1 1\n1");
    expect(await counts(one)).toBe("1\n1 1\n1");
    expect(await counts(all)).toBe(`${HOST_CPUS}\n${HOST_CPUS} ${HOST_CPUS}\n${HOST_CPUS}`);
  });

  it("are spread: two one-CPU sandboxes run on different CPUs", async () => {
    await using a = await Sandbox.create({ ...daemon.opts, cpus: 1 });
    await using b = await Sandbox.create({ ...daemon.opts, cpus: 1 });
    const cpu = (sb: Sandbox) => sb.sh`grep Cpus_allowed_list /proc/self/status`.text();
    expect(await cpu(a)).not.toBe(await cpu(b));
  });

  it("cannot be widened from inside where a cpuset holds them (root mode)", async (ctx) => {
    if (!CPUSET) return ctx.skip("no cpuset controller on this host (cgroup v1 cpuset or v2 with cpuset enabled)");
    await using sb = await Sandbox.create({ ...daemon.opts, cpus: 1 });
    const out = await sb.sh`taskset -pc 0-${HOST_CPUS - 1} $$ >/dev/null 2>&1; nproc`.noThrow().text();
    expect(out.trim()).toBe("1");
  });
});
