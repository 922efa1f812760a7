/**
 * Where a new sandbox goes: a pure decision over what daemons report (daemon.info). A host is
 * out if it drains, is at its maxSandboxes, or has less memory available now than the
 * sandbox's cap, or fewer CPUs than its quota; among the rest the least loaded wins. Load is
 * the sum of the fractions taken of each resource (sandbox slots, memory promised and in use,
 * disk, CPU promised) counting the new sandbox, so hosts that look alike host-wide are told
 * apart by what their own sandboxes hold.
 */
import type { ParamsOf, ResultOf } from "@sbx/protocol";

/** What a daemon reports about itself and its host (`daemon.info`). */
export type DaemonInfo = ResultOf<"daemon.info">;

/** What a create asks for, with the protocol's defaults (API.md: 1280 MiB, 10 GiB, 1 core). */
export interface Request {
  memoryBytes: number;
  diskBytes: number;
  cpus: number;
}

const MIB = 1024 * 1024;
const UNITS: Record<string, number> = { "": 1, B: 1, K: 1e3, KB: 1e3, M: 1e6, MB: 1e6, G: 1e9, GB: 1e9, T: 1e12, TB: 1e12, KI: 1024, KIB: 1024, MI: MIB, MIB, GI: 1024 * MIB, GIB: 1024 * MIB, TI: 1024 ** 4, TIB: 1024 ** 4 };

/** Bytes of a validated ByteSize ("512MiB", "1G", 1048576). */
export function bytesOf(size: number | string): number {
  if (typeof size === "number") return size;
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B?|B)?$/.exec(size);
  if (!m) return NaN;
  return Math.floor(Number(m[1]) * (UNITS[(m[2] ?? "").toUpperCase()] ?? NaN));
}

/** The sizes a create asks for, its omitted ones filled with the protocol's defaults. */
export function requestOf(p: ParamsOf<"sandbox.create">): Request {
  return {
    memoryBytes: p.memory === undefined ? 1280 * MIB : bytesOf(p.memory),
    diskBytes: p.disk === undefined ? 10 * 1024 * MIB : bytesOf(p.disk),
    cpus: p.cpus ?? 1,
  };
}

/**
 * The load a host would have with the sandbox on it, or why it has no room. `placing` counts
 * creates this gateway has sent the host and not yet seen answered (not in its figures yet).
 *
 * @example assess(info, { memoryBytes: 1 << 30, diskBytes: 1 << 30, cpus: 1 }, 0) // { load: 1.42 } or { refused: "draining" }
 */
export function assess(info: DaemonInfo, req: Request, placing: number): { load: number } | { refused: string } {
  const { sandboxes, memory, disk, cpus } = info.capacity;
  if (info.draining) return { refused: "draining" };
  const live = sandboxes.live + placing;
  if (live >= sandboxes.max) return { refused: `${live} of at most ${sandboxes.max} sandboxes` };
  if (req.memoryBytes > memory.availableBytes) return { refused: `${Math.floor(memory.availableBytes / MIB)} MiB of memory available, ${Math.ceil(req.memoryBytes / MIB)} MiB asked` };
  if (req.cpus > cpus.count) return { refused: `${cpus.count} CPUs, ${req.cpus} asked` };
  const share = (used: number, total: number) => (total > 0 ? used / total : 1);
  const load =
    share(live + 1, sandboxes.max) +
    share(memory.committedBytes + placing * req.memoryBytes + req.memoryBytes, memory.totalBytes) +
    share(memory.totalBytes - memory.availableBytes, memory.totalBytes) +
    share(disk.totalBytes - disk.freeBytes, disk.totalBytes) +
    // Disk caps are sparse promises (a daemon lets them add up to 10× its free space by default): they weigh a tenth.
    share(disk.committedBytes + (placing + 1) * req.diskBytes, disk.totalBytes) / 10 +
    share(cpus.committed + (placing + 1) * req.cpus, cpus.count);
  return { load };
}
