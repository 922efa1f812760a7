import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CertificateAuthority } from "../../../src/egress/tls/ca.js";
import { JKS_PASSWORD, trustStoreJks } from "../../../src/egress/tls/jks.js";

const keytool = (() => {
  try {
    execFileSync("sh", ["-c", "command -v keytool"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

describe("the Java trust store", () => {
  it("is a JKS file whose entries are the certificates given, in order, and whose digest checks out", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sbx-jks-"));
    try {
      const a = await CertificateAuthority.loadOrCreate(join(dir, "a"));
      const b = await CertificateAuthority.loadOrCreate(join(dir, "b"));
      const jks = trustStoreJks([a.certPem, b.certPem], 0);
      expect(jks.readUInt32BE(0)).toBe(0xfeedfeed);
      expect(jks.readUInt32BE(4)).toBe(2);
      expect(jks.readUInt32BE(8)).toBe(2);
      if (!keytool) return console.warn("jks.test: keytool is not installed; checked the layout only");
      writeFileSync(join(dir, "t.jks"), jks);
      // keytool refuses a store whose digest does not match the password ("Keystore was tampered with").
      const list = execFileSync("keytool", ["-list", "-v", "-keystore", join(dir, "t.jks"), "-storetype", "JKS", "-storepass", JKS_PASSWORD], { encoding: "utf8" });
      expect(list).toContain("Your keystore contains 2 entries");
      expect(list.match(/Entry type: trustedCertEntry/g)).toHaveLength(2);
      const wrong = (() => {
        try {
          execFileSync("keytool", ["-list", "-keystore", join(dir, "t.jks"), "-storetype", "JKS", "-storepass", "not-it"], { stdio: "pipe" });
          return "accepted";
        } catch (err) {
          return String((err as { stdout?: Buffer }).stdout ?? "") + String((err as { stderr?: Buffer }).stderr ?? "");
        }
      })();
      expect(wrong).toMatch(/password was incorrect|tampered/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
