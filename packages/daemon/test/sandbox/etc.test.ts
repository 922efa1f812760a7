import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cachedLinkedEtcPaths, linkedEtcPaths } from "../../src/sandbox/etc.js";
import { requires } from "../helpers/fixtures.js";

// Needs root: it makes its own entries under the host's /etc for links to lead to.
const ROOT = process.getuid?.() === 0;
const tag = `sbx-etc-test-${process.pid}`;
let usr: string;

beforeAll(() => {
  if (!ROOT) return;
  usr = mkdtempSync(join(tmpdir(), "sbx-usr-"));
  // A package's config dir, all world-readable: bound whole.
  mkdirSync(`/etc/${tag}-open/sub`, { recursive: true });
  writeFileSync(`/etc/${tag}-open/sub/a.conf`, "a\n");
  // One with a private file beside the linked one: only the linked file is bound.
  mkdirSync(`/etc/${tag}-mixed`, { recursive: true });
  writeFileSync(`/etc/${tag}-mixed/public.conf`, "p\n");
  writeFileSync(`/etc/${tag}-mixed/private.key`, "k\n");
  chmodSync(`/etc/${tag}-mixed/private.key`, 0o600);
  symlinkSync(`/etc/${tag}-open/sub/a.conf`, join(usr, "abs-link"));
  symlinkSync(`../../../../../../../../etc/${tag}-mixed/public.conf`, join(usr, "relative-link"));
  symlinkSync(`/etc/${tag}-mixed/private.key`, join(usr, "private-link"));
  symlinkSync("/etc/shadow", join(usr, "shadow-link"));
  symlinkSync("/etc/ssh/ssh_host_ed25519_key", join(usr, "hostkey-link"));
  symlinkSync(`/etc/${tag}-missing/x`, join(usr, "dangling-link"));
  symlinkSync("/etc/ssl/certs", join(usr, "shared-link")); // already bound as /etc/ssl
});
afterAll(() => {
  if (!ROOT) return;
  rmSync(usr, { recursive: true, force: true });
  for (const d of ["open", "mixed"]) rmSync(`/etc/${tag}-${d}`, { recursive: true, force: true });
});

describe("/etc paths that links lead to", () => {
  requires(ROOT, "the test makes entries under /usr and /etc: it must run as root (pnpm test does)");
  it("binds a readable entry whole, only the readable linked files of a mixed one, and never credentials or host keys", async () => {
    expect(await linkedEtcPaths([usr])).toEqual([`/etc/${tag}-mixed/public.conf`, `/etc/${tag}-open`]);
  });

  it("is cached until what it depends on changes, and a cached entry is checked again on use", async () => {
    const cache = join(usr, "..", `${tag}-cache.json`);
    try {
      expect(await cachedLinkedEtcPaths(cache, [usr])).toEqual([`/etc/${tag}-mixed/public.conf`, `/etc/${tag}-open`]);
      // A cache someone tampered with cannot add what the rules keep out.
      const { key } = JSON.parse(readFileSync(cache, "utf8"));
      writeFileSync(cache, JSON.stringify({ key, binds: [`/etc/${tag}-open`, "/etc/shadow", "/etc/ssh", "/usr/bin"] }));
      expect(await cachedLinkedEtcPaths(cache, [usr])).toEqual([`/etc/${tag}-open`]);
    } finally {
      rmSync(cache, { force: true });
    }
  });
});
