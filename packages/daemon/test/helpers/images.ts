import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { InUseError, Sandbox, type Client } from "@sbx/client";

/**
 * Root file systems for tests of sandboxes booted from an image (`root`): a small merged-/usr
 * tree made in a volume from the host's own programs (volumes/mini-root.sh; with `python`, the
 * host's python3 and its standard library too), and a snapshot of it.
 */
const MINI_ROOT = readFileSync(new URL("../volumes/mini-root.sh", import.meta.url), "utf8");

export const slug = (stem: string) => `${stem}-${randomBytes(3).toString("hex")}`;

/** Retries `fn` while what it needs is still held by a sandbox that is ending (InUseError). */
export async function untilFree<T>(fn: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof InUseError) || i > 100) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** A new volume holding the minimal root (its files root's, the home the user's), and a snapshot of it (`${volume}-s`). */
export async function makeRoot(client: Client, opts: { url: string; token: string }, stem: string, { python = false } = {}): Promise<{ volume: string; snapshot: string }> {
  const volume = slug(stem);
  await client.volumes.create({ slug: volume, capacity: python ? "512MiB" : "256MiB" });
  const sb = await Sandbox.create({ ...opts, volumes: { "/data": volume } });
  try {
    const made = await (await sb.spawn("bash", { args: ["-c", MINI_ROOT], env: python ? { WITH_PYTHON: "1" } : {}, stdout: "piped", stderr: "piped" })).output();
    if (!made.status.success) throw new Error(`making the root failed: ${made.stderrText}`);
  } finally {
    await sb.kill();
  }
  // As a distribution's files are: root's (booted as a root, the volume keeps owners as they are on disk).
  await untilFree(async () => {
    await using sb = await Sandbox.create({ ...opts, root: volume });
    await sb.sh`chown -R 0:0 / 2>/dev/null; chown -R 1000:1000 /home/sandbox`.sudo().noThrow();
    await sb.kill();
  });
  const snapshot = `${volume}-s`;
  await untilFree(() => client.volumes.snapshot(volume, { slug: snapshot }));
  return { volume, snapshot };
}

/**
 * CapPrm/CapEff/CapBnd of uid 0 in a sandbox booted from an image, written out rather than
 * imported (launcher.ts and setup.c's ROOT_CAPS): CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID
 * KILL SETGID SETUID NET_BIND_SERVICE SYS_CHROOT AUDIT_WRITE.
 */
export const ROOT_CAPS_HEX = [0, 1, 2, 3, 4, 5, 6, 7, 10, 18, 29].reduce((bits, cap) => bits | (1n << BigInt(cap)), 0n).toString(16).padStart(16, "0");

/** Why `image.build` cannot run on this host (tests that need it skip, saying so), or null. */
export async function whyNoImageBuild(): Promise<string | null> {
  if (!["/usr/bin/mmdebstrap", "/usr/local/bin/mmdebstrap"].some((p) => existsSync(p))) return "mmdebstrap is missing (scripts/install.sh installs it)";
  const reached = await fetch("http://deb.debian.org/debian/dists/bookworm/Release", { method: "HEAD", signal: AbortSignal.timeout(10_000) }).then((r) => r.ok, () => false);
  return reached ? null : "the Debian mirror deb.debian.org is unreachable from this host";
}
