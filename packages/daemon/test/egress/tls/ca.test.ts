import { execFileSync } from "node:child_process";
import { X509Certificate, createHash, createPrivateKey } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, createServer, type ConnectionOptions, type SecureContext } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CertificateAuthority } from "../../../src/egress/tls/ca.js";
import { issueCertificate, newKeyPair } from "../../../src/egress/tls/x509.js";

const DAY = 86_400_000;
const root = mkdtempSync(join(tmpdir(), "sbx-ca-test-"));
let dirs = 0;
const freshDir = () => join(root, `ca-${++dirs}`);
afterAll(() => rmSync(root, { recursive: true, force: true }));

const mode = (path: string) => statSync(path).mode & 0o777;
const snapshot = (dir: string) => Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f), "utf8")]));

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a rejection");
}

interface Handshake {
  peer?: X509Certificate;
  chain?: Buffer[];
  alpn?: string | false | null;
  protocol?: string | null;
  error?: NodeJS.ErrnoException;
}

/** One TLS handshake against a local server whose certificate comes from `serve(servername)`. */
async function handshake(serve: (servername: string) => SecureContext, client: ConnectionOptions): Promise<Handshake> {
  const server = createServer({ SNICallback: (name, cb) => cb(null, serve(name)), ALPNProtocols: ["http/1.1"] }, (s) => s.end());
  server.on("tlsClientError", () => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    return await new Promise<Handshake>((resolve) => {
      const socket = connect({ host: "127.0.0.1", port: (server.address() as AddressInfo).port, ...client }, () => {
        const chain: Buffer[] = [];
        for (let c = socket.getPeerCertificate(true); c?.raw && !chain.some((r) => r.equals(c.raw)); c = c.issuerCertificate) chain.push(c.raw);
        resolve({ peer: socket.getPeerX509Certificate(), chain, alpn: socket.alpnProtocol, protocol: socket.getProtocol() });
        socket.destroy();
      });
      socket.on("error", (error) => resolve({ error }));
    });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

function openssl(...args: string[]): { ok: boolean; out: string } {
  try {
    return { ok: true, out: execFileSync("openssl", args, { stdio: ["ignore", "pipe", "pipe"] }).toString() };
  } catch (err) {
    const e = err as { stdout?: Buffer; stderr?: Buffer };
    return { ok: false, out: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

/** Writes a CA made outside loadOrCreate, as an older daemon (or a test) would leave it. */
function writeCa(dir: string, commonName: string, notAfter: Date): string {
  const pair = newKeyPair();
  const pem = issueCertificate({ commonName, publicKey: pair.publicKey, signingKey: pair.key, notBefore: new Date(Date.now() - 400 * DAY), notAfter, ca: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "ca.key"), pair.key.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
  writeFileSync(join(dir, "ca.pem"), pem);
  return pem;
}

describe("CertificateAuthority.loadOrCreate on first use", () => {
  it("creates the directory 0700, ca.key 0600 and ca.pem, leaving no temporary files", async () => {
    const dir = join(freshDir(), "nested", "egress");
    const ca = await CertificateAuthority.loadOrCreate(dir);
    expect(mode(dir)).toBe(0o700);
    expect(readdirSync(dir).sort()).toEqual(["ca.key", "ca.pem"]);
    expect(mode(join(dir, "ca.key"))).toBe(0o600);
    expect(mode(join(dir, "ca.pem")) & 0o022).toBe(0);
    expect(readFileSync(join(dir, "ca.pem"), "utf8")).toBe(ca.certPem);
  });

  it("tightens an existing directory to 0700", async () => {
    const dir = freshDir();
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    await CertificateAuthority.loadOrCreate(dir);
    expect(mode(dir)).toBe(0o700);
  });

  it("writes a P-256 PKCS#8 key that ca.pem belongs to", async () => {
    const dir = freshDir();
    const ca = await CertificateAuthority.loadOrCreate(dir);
    const pem = readFileSync(join(dir, "ca.key"), "utf8");
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const key = createPrivateKey(pem);
    expect(key.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(new X509Certificate(ca.certPem).checkPrivateKey(key)).toBe(true);
  });

  it("makes a distinct CA for each directory", async () => {
    const [a, b] = await Promise.all([CertificateAuthority.loadOrCreate(freshDir()), CertificateAuthority.loadOrCreate(freshDir())]);
    expect(a.certPem).not.toBe(b.certPem);
    expect(new X509Certificate(a.certPem).subject).not.toBe(new X509Certificate(b.certPem).subject);
  });
});

describe("the CA certificate", () => {
  const dir = freshDir();
  let ca: CertificateAuthority;
  beforeAll(async () => {
    ca = await CertificateAuthority.loadOrCreate(dir);
  });

  it("is a self-signed CA named after its key, valid from a day ago for ten years", async () => {
    const cert = new X509Certificate(ca.certPem);
    const spki = cert.publicKey.export({ type: "spki", format: "der" });
    const id = createHash("sha256").update(spki).digest("hex").slice(0, 12);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toBe(`O=sbx\nCN=sbx egress CA ${id}`);
    expect(cert.issuer).toBe(cert.subject);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.checkIssued(cert)).toBe(true);
    const from = new Date(cert.validFrom).getTime();
    const to = new Date(cert.validTo).getTime();
    expect(Math.abs(from - (Date.now() - DAY))).toBeLessThan(60_000);
    expect(Math.abs(to - (Date.now() + 3650 * DAY))).toBeLessThan(60_000);
    expect(Number.parseInt(cert.serialNumber.slice(0, 1), 16)).toBeLessThan(8);
  });

  it("shows CA:TRUE with path length 0 and certificate signing only, to openssl", async () => {
    const { ok, out } = openssl("x509", "-noout", "-text", "-in", join(dir, "ca.pem"));
    expect(ok).toBe(true);
    expect(out).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(out).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(out).toContain("X509v3 Subject Key Identifier");
    expect(out).toContain("ecdsa-with-SHA256");
    expect(out).toContain("Version: 3 (0x2)");
  });

  it("passes openssl's strict X.509 checks as a trust anchor", async () => {
    const pem = join(dir, "ca.pem");
    expect(openssl("verify", "-x509_strict", "-CAfile", pem, pem)).toEqual({ ok: true, out: `${pem}: OK\n` });
  });
});

describe("CertificateAuthority.loadOrCreate on an existing directory", () => {
  it("reloads the same CA, leaving the files as they were", async () => {
    const dir = freshDir();
    const first = await CertificateAuthority.loadOrCreate(dir);
    const before = snapshot(dir);
    const second = await CertificateAuthority.loadOrCreate(dir);
    expect(second.certPem).toBe(first.certPem);
    expect(snapshot(dir)).toEqual(before);
  });

  it("issues leaves from the reloaded CA that a client trusting the first certificate accepts", async () => {
    const dir = freshDir();
    const first = await CertificateAuthority.loadOrCreate(dir);
    const second = await CertificateAuthority.loadOrCreate(dir);
    const result = await handshake((name) => second.contextFor(name), { servername: "api.example.com", ca: first.certPem });
    expect(result.error).toBeUndefined();
    expect(result.peer!.checkIssued(new X509Certificate(first.certPem))).toBe(true);
  });

  it("restores ca.key to 0600 and the directory to 0700", async () => {
    const dir = freshDir();
    await CertificateAuthority.loadOrCreate(dir);
    chmodSync(join(dir, "ca.key"), 0o644);
    chmodSync(dir, 0o755);
    await CertificateAuthority.loadOrCreate(dir);
    expect(mode(join(dir, "ca.key"))).toBe(0o600);
    expect(mode(dir)).toBe(0o700);
  });

  it("keeps a CA it did not name itself while it has over a month left, issuing leaves under its name", async () => {
    const dir = freshDir();
    const pem = writeCa(dir, "Team proxy CA", new Date(Date.now() + 40 * DAY));
    const ca = await CertificateAuthority.loadOrCreate(dir);
    expect(ca.certPem).toBe(new X509Certificate(pem).toString());
    const result = await handshake((name) => ca.contextFor(name), { servername: "api.example.com", ca: pem });
    expect(result.error).toBeUndefined();
    expect(result.peer!.issuer).toBe("O=sbx\nCN=Team proxy CA");
  });

  it.each([
    ["within a month of its end", 10 * DAY],
    ["expired", -5 * DAY],
  ])("replaces a CA %s with a fresh ten-year one", async (_what, left) => {
    const dir = freshDir();
    const old = writeCa(dir, "sbx egress CA old", new Date(Date.now() + left));
    const oldKey = readFileSync(join(dir, "ca.key"), "utf8");
    const ca = await CertificateAuthority.loadOrCreate(dir);
    expect(ca.certPem).not.toBe(old);
    expect(readFileSync(join(dir, "ca.pem"), "utf8")).toBe(ca.certPem);
    const key = readFileSync(join(dir, "ca.key"), "utf8");
    expect(key).not.toBe(oldKey);
    expect(new X509Certificate(ca.certPem).checkPrivateKey(createPrivateKey(key))).toBe(true);
    expect(new Date(new X509Certificate(ca.certPem).validTo).getTime()).toBeGreaterThan(Date.now() + 3600 * DAY);
    expect(mode(join(dir, "ca.key"))).toBe(0o600);
  });

  /** A CA in `dir` whose renewal was cut short: `step` says how far the two renames got. */
  async function interrupted(step: "before the renames" | "between the renames"): Promise<{ dir: string; next: string }> {
    const dir = freshDir();
    await CertificateAuthority.loadOrCreate(dir);
    const other = freshDir();
    const next = (await CertificateAuthority.loadOrCreate(other)).certPem;
    writeFileSync(join(dir, step === "before the renames" ? "ca.key.new" : "ca.key"), readFileSync(join(other, "ca.key")));
    writeFileSync(join(dir, "ca.pem.new"), next);
    return { dir, next };
  }

  it.each(["before the renames", "between the renames"] as const)("finishes a new CA whose writing a crash cut short %s", async (step) => {
    const { dir, next } = await interrupted(step);
    expect((await CertificateAuthority.loadOrCreate(dir)).certPem).toBe(next);
    expect(readdirSync(dir).sort()).toEqual(["ca.key", "ca.pem"]);
    expect(mode(join(dir, "ca.key"))).toBe(0o600);
  });

  it("never moves a certificate into place that does not belong to the key", async () => {
    const { dir } = await interrupted("between the renames");
    writeFileSync(join(dir, "ca.pem.new"), readFileSync(join(dir, "ca.pem")));
    await expect(CertificateAuthority.loadOrCreate(dir)).rejects.toThrow(/ca\.pem does not belong to ca\.key/);
    expect(readdirSync(dir)).toContain("ca.pem.new");
  });
});

describe("CertificateAuthority.loadOrCreate refuses a CA it cannot use, naming the directory and touching nothing", () => {
  async function refused(corrupt: (dir: string) => void, reason: RegExp): Promise<void> {
    const dir = freshDir();
    await CertificateAuthority.loadOrCreate(dir);
    corrupt(dir);
    const before = snapshot(dir);
    const err = await rejection(CertificateAuthority.loadOrCreate(dir));
    expect(err.message).toContain(dir);
    expect(err.message).toMatch(reason);
    expect(snapshot(dir)).toEqual(before);
  }

  it("a key that is not a key", () => refused((dir) => writeFileSync(join(dir, "ca.key"), "not a key\n"), /cannot be read/));

  it("an empty key file", () => refused((dir) => writeFileSync(join(dir, "ca.key"), ""), /cannot be read/));

  it("a truncated key", () =>
    refused((dir) => {
      const pem = readFileSync(join(dir, "ca.key"), "utf8");
      writeFileSync(join(dir, "ca.key"), pem.slice(0, pem.length / 2));
    }, /cannot be read/));

  it("a certificate that is not a certificate", () => refused((dir) => writeFileSync(join(dir, "ca.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), /cannot be read/));

  it("a certificate and key that do not belong together", async () => {
    const other = freshDir();
    await CertificateAuthority.loadOrCreate(other);
    await refused((dir) => writeFileSync(join(dir, "ca.key"), readFileSync(join(other, "ca.key"))), /ca\.pem does not belong to ca\.key/);
  });

  it("a key without its certificate", () => refused((dir) => rmSync(join(dir, "ca.pem")), /incomplete: .*ca\.pem is missing/));

  it("a certificate without its key", () => refused((dir) => rmSync(join(dir, "ca.key")), /incomplete: .*ca\.key is missing/));
});

describe("CertificateAuthority.loadOrCreate with leftover files", () => {
  it("writes ca.key 0600 even over a stale world-readable ca.key.new", async () => {
    const dir = freshDir();
    mkdirSync(dir);
    writeFileSync(join(dir, "ca.key.new"), "stale", { mode: 0o644 });
    chmodSync(join(dir, "ca.key.new"), 0o644);
    await CertificateAuthority.loadOrCreate(dir);
    expect(mode(join(dir, "ca.key"))).toBe(0o600);
  });
});

describe("contextFor", () => {
  let ca: CertificateAuthority;
  let other: CertificateAuthority;
  beforeAll(async () => {
    [ca, other] = await Promise.all([CertificateAuthority.loadOrCreate(freshDir()), CertificateAuthority.loadOrCreate(freshDir())]);
  });

  it("caches one context per host", async () => {
    const a = ca.contextFor("cache-a.example.com");
    expect(ca.contextFor("cache-a.example.com")).toBe(a);
    expect(ca.contextFor("cache-b.example.com")).not.toBe(a);
  });

  it("keeps at most 1024 leaves, dropping the least recently used", async () => {
    const ca = await CertificateAuthority.loadOrCreate(freshDir());
    const first = ca.contextFor("h0.example.com");
    const second = ca.contextFor("h1.example.com");
    for (let i = 2; i < 1024; i++) ca.contextFor(`h${i}.example.com`);
    expect(ca.contextFor("h0.example.com")).toBe(first);
    ca.contextFor("h1024.example.com");
    expect(ca.contextFor("h0.example.com")).toBe(first);
    expect(ca.contextFor("h1.example.com")).not.toBe(second);
  });

  it.each([
    ["a plain name", "api.example.com"],
    ["a punycode name", "xn--bcher-kva.example"],
    ["a name with an underscore", "my_host.internal"],
    ["a single label", "localhost"],
    ["a 253-character name", ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(53), "example"].join(".")],
  ])("gives %s a leaf that a client trusting only the CA accepts for that name", async (_what, host) => {
    const caCert = new X509Certificate(ca.certPem);
    const { peer, error } = await handshake((name) => ca.contextFor(name), { servername: host, ca: ca.certPem });
    expect(error).toBeUndefined();
    expect(peer!.subject).toBe(`O=sbx\nCN=${host}`);
    expect(peer!.subjectAltName).toBe(`DNS:${host}`);
    expect(peer!.checkHost(host)).toBe(host);
    expect(peer!.issuer).toBe(caCert.subject);
    expect(peer!.checkIssued(caCert)).toBe(true);
    expect(peer!.verify(caCert.publicKey)).toBe(true);
  });

  it("gives a leaf for a month that is no CA and serves TLS servers only", async () => {
    const { peer } = await handshake((name) => ca.contextFor(name), { servername: "leaf-props.example.com", ca: ca.certPem });
    expect(peer!.ca).toBe(false);
    expect(peer!.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]);
    expect(peer!.checkHost("other.example.com")).toBeUndefined();
    expect(peer!.checkHost("sub.leaf-props.example.com")).toBeUndefined();
    expect(Math.abs(new Date(peer!.validFrom).getTime() - (Date.now() - DAY))).toBeLessThan(60_000);
    expect(Math.abs(new Date(peer!.validTo).getTime() - (Date.now() + 30 * DAY))).toBeLessThan(60_000);
    expect(peer!.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
  });

  it("sends the CA certificate after the leaf", async () => {
    const { chain } = await handshake((name) => ca.contextFor(name), { servername: "chain.example.com", ca: ca.certPem });
    expect(chain).toHaveLength(2);
    expect(chain![1]!.equals(new X509Certificate(ca.certPem).raw)).toBe(true);
  });

  it("is refused by a client that asked for another name", async () => {
    const { error } = await handshake(() => ca.contextFor("api.example.com"), { servername: "other.example.com", ca: ca.certPem });
    expect(error?.code).toBe("ERR_TLS_CERT_ALTNAME_INVALID");
  });

  it("is refused for the apex or a subdomain of its name", async () => {
    for (const servername of ["example.com", "x.api.example.com"]) {
      const { error } = await handshake(() => ca.contextFor("api.example.com"), { servername, ca: ca.certPem });
      expect(error?.code).toBe("ERR_TLS_CERT_ALTNAME_INVALID");
    }
  });

  it("is refused by a client trusting another sbx CA or only the public roots", async () => {
    for (const trust of [{ ca: other.certPem }, {}]) {
      const { error } = await handshake((name) => ca.contextFor(name), { servername: "api.example.com", ...trust });
      expect(error?.code).toMatch(/^(SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)$/);
    }
  });

  it("negotiates ALPN http/1.1 over TLS 1.2 and 1.3", async () => {
    for (const maxVersion of ["TLSv1.2", "TLSv1.3"] as const) {
      const result = await handshake((name) => ca.contextFor(name), { servername: "alpn.example.com", ca: ca.certPem, ALPNProtocols: ["h2", "http/1.1"], maxVersion });
      expect(result.error).toBeUndefined();
      expect(result.alpn).toBe("http/1.1");
      expect(result.protocol).toBe(maxVersion);
    }
  });
});

describe("leaves checked by openssl", () => {
  const dir = freshDir();
  const leafPath = join(dir, "leaf.pem");
  const caPath = join(dir, "ca.pem");
  beforeAll(async () => {
    const ca = await CertificateAuthority.loadOrCreate(dir);
    const { peer } = await handshake((name) => ca.contextFor(name), { servername: "api.example.com", ca: ca.certPem });
    writeFileSync(leafPath, peer!.toString());
  });

  it("shows the DNS name, CA:FALSE and serverAuth", async () => {
    const { ok, out } = openssl("x509", "-noout", "-text", "-in", leafPath);
    expect(ok).toBe(true);
    expect(out).toMatch(/X509v3 Subject Alternative Name:\s+DNS:api\.example\.com\n/);
    expect(out).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(out).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
    expect(out).toMatch(/X509v3 Extended Key Usage:\s+TLS Web Server Authentication\n/);
    expect(out).toContain("X509v3 Authority Key Identifier");
  });

  it("verifies against the CA strictly, as a TLS server certificate for its name", async () => {
    expect(openssl("verify", "-x509_strict", "-purpose", "sslserver", "-verify_hostname", "api.example.com", "-CAfile", caPath, leafPath)).toEqual({ ok: true, out: `${leafPath}: OK\n` });
  });

  it("fails verification for another name or against another CA", async () => {
    expect(openssl("verify", "-verify_hostname", "other.example.com", "-CAfile", caPath, leafPath).ok).toBe(false);
    const otherDir = freshDir();
    await CertificateAuthority.loadOrCreate(otherDir);
    expect(openssl("verify", "-CAfile", join(otherDir, "ca.pem"), leafPath).ok).toBe(false);
  });

  it("has an authority key identifier equal to the CA's subject key identifier", async () => {
    const skid = /Subject Key Identifier:\s+([0-9A-F:]+)/.exec(openssl("x509", "-noout", "-text", "-in", caPath).out)?.[1];
    const akid = /Authority Key Identifier:\s+(?:keyid:)?([0-9A-F:]+)/.exec(openssl("x509", "-noout", "-text", "-in", leafPath).out)?.[1];
    expect(skid).toMatch(/^([0-9A-F]{2}:){19}[0-9A-F]{2}$/);
    expect(akid).toBe(skid);
  });
});
