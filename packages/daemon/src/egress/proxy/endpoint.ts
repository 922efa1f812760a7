import { closeSync, openSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { AllowList } from "../policy/allowlist.js";
import { EgressJournal } from "./journal.js";
import type { DecideOptions } from "../policy/policy.js";
import { EgressProxy, type InterceptTls } from "./proxy.js";
import type { EgressShared } from "./limits.js";

/** A sandbox's egress proxy, listening, with the directory fd bwrap binds in at /.sbx/run. */
export interface SandboxEgress {
  proxy: EgressProxy;
  journal: EgressJournal;
  socketDir: string;
  /** Open until bwrap has it; `releaseFd` closes it. */
  socketDirFd: number;
}

/**
 * Starts a sandbox's proxy (refusing everything until its allow-list is set) on a unix socket
 * only `uid` may connect to. The socket's directory goes in by fd, so no host path shows in
 * bwrap's argv (pid 1's cmdline inside).
 */
export async function startSandboxEgress(socketDir: string, uid: number | null, decide: DecideOptions, shared: EgressShared, tls: InterceptTls | null): Promise<SandboxEgress> {
  const journal = new EgressJournal();
  const proxy = new EgressProxy(AllowList.parse([]), journal, decide, shared.forSandbox(), tls);
  const socket = join(socketDir, "proxy.sock");
  try {
    await fsp.mkdir(socketDir, { recursive: true, mode: 0o700 });
    if (uid !== null) await fsp.chown(socketDir, uid, uid);
    await proxy.listen(socket);
    await fsp.chmod(socket, 0o600);
    if (uid !== null) await fsp.chown(socket, uid, uid);
    return { proxy, journal, socketDir, socketDirFd: openSync(socketDir, "r") };
  } catch (err) {
    proxy.close();
    throw err;
  }
}

export function releaseFd(egress: SandboxEgress): void {
  closeSync(egress.socketDirFd);
}

/** Stops the proxy and removes its socket. */
export async function stopSandboxEgress(egress: Pick<SandboxEgress, "proxy" | "socketDir">): Promise<void> {
  egress.proxy.close();
  await fsp.rm(egress.socketDir, { recursive: true, force: true });
}
