/**
 * The daemon's own certificate authority, which signs the leaf certificates the egress proxy
 * shows a sandbox when it intercepts TLS to a secret's host. The key is made on first start
 * and kept 0600 in the state dir; sandboxes trust only the certificate.
 */
import { createPrivateKey, createPublicKey, createHash, X509Certificate, type KeyObject } from "node:crypto";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { createSecureContext, type SecureContext } from "node:tls";
import { issueCertificate, newKeyPair } from "./x509.js";

const DAY = 86_400_000;
/** Leaves live a month and are reissued a day before they end; the CA lives ten years. */
const LEAF_LIFETIME = 30 * DAY;
const CA_LIFETIME = 3650 * DAY;
/** Enough distinct hosts for any sandbox set; the oldest leaf goes first beyond it. */
const LEAF_CACHE = 1024;

export class CertificateAuthority {
  private readonly leaves = new Map<string, { context: SecureContext; renewAt: number }>();
  /** One leaf key for every host: signing a leaf is then a single ECDSA signature (~0.3 ms). */
  private readonly leafKey = newKeyPair();
  private readonly leafKeyPem = this.leafKey.key.export({ type: "pkcs8", format: "pem" });

  private constructor(
    /** The CA certificate, PEM: what sandboxes trust. */
    readonly certPem: string,
    private readonly key: KeyObject,
    private readonly commonName: string,
  ) {}

  /**
   * Loads the CA from `dir` (ca.key 0600, ca.pem), creating both on first use or when the
   * certificate is within a month of its end. A key that cannot be read is an error naming
   * the file: the daemon never replaces a CA it cannot read without being told to.
   */
  static async loadOrCreate(dir: string): Promise<CertificateAuthority> {
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    await fsp.chmod(dir, 0o700);
    const keyPath = join(dir, "ca.key");
    const certPath = join(dir, "ca.pem");
    await finishInterruptedWrite(keyPath, certPath);
    const existing = await readIfPresent(keyPath, certPath);
    if (existing) {
      let key: KeyObject;
      let cert: X509Certificate;
      try {
        key = createPrivateKey(existing.key);
        cert = new X509Certificate(existing.cert);
      } catch (err) {
        throw new Error(`the egress CA in ${dir} cannot be read (${(err as Error).message}); move ca.key and ca.pem away to make a new one`);
      }
      if (!cert.checkPrivateKey(key)) throw new Error(`the egress CA in ${dir}: ca.pem does not belong to ca.key; move both away to make a new one`);
      await fsp.chmod(keyPath, 0o600);
      if (new Date(cert.validTo).getTime() - Date.now() > 30 * DAY) return new CertificateAuthority(cert.toString(), key, commonNameOf(cert));
    }
    const pair = newKeyPair();
    const commonName = `sbx egress CA ${createHash("sha256").update(pair.publicKey.export({ type: "spki", format: "der" })).digest("hex").slice(0, 12)}`;
    const now = Date.now();
    const certPem = issueCertificate({ commonName, publicKey: pair.publicKey, signingKey: pair.key, notBefore: new Date(now - DAY), notAfter: new Date(now + CA_LIFETIME), ca: true });
    // Written under temporary names and renamed (key first); a crash between the renames is finished on the next start.
    const keyPem = pair.key.export({ type: "pkcs8", format: "pem" }) as string;
    // A stale temporary file would keep its old mode: start each from nothing.
    await fsp.rm(`${keyPath}.new`, { force: true });
    await fsp.rm(`${certPath}.new`, { force: true });
    await fsp.writeFile(`${keyPath}.new`, keyPem, { mode: 0o600, flag: "wx" });
    await fsp.writeFile(`${certPath}.new`, certPem, { mode: 0o644, flag: "wx" });
    await fsp.rename(`${keyPath}.new`, keyPath);
    await fsp.rename(`${certPath}.new`, certPath);
    return new CertificateAuthority(certPem, pair.key, commonName);
  }

  /** A TLS context presenting a leaf for `host` (a canonical name), issued on first use and cached. */
  contextFor(host: string): SecureContext {
    const now = Date.now();
    const cached = this.leaves.get(host);
    if (cached && cached.renewAt > now) {
      this.leaves.delete(host);
      this.leaves.set(host, cached);
      return cached.context;
    }
    const cert = issueCertificate({
      commonName: host,
      publicKey: this.leafKey.publicKey,
      signingKey: this.key,
      issuer: { commonName: this.commonName, publicKey: createPublicKey(this.key) },
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + LEAF_LIFETIME),
      ca: false,
    });
    const context = createSecureContext({ key: this.leafKeyPem, cert: `${cert}${this.certPem}`, minVersion: "TLSv1.2" });
    this.leaves.set(host, { context, renewAt: now + LEAF_LIFETIME - 2 * DAY });
    if (this.leaves.size > LEAF_CACHE) this.leaves.delete(this.leaves.keys().next().value!);
    return context;
  }
}

/**
 * Completes a new CA whose writing a crash cut short: both temporary files written (key and
 * certificate renamed next), or the key already renamed and its certificate not yet. Only a
 * certificate that belongs to the key is ever moved into place.
 */
async function finishInterruptedWrite(keyPath: string, certPath: string): Promise<void> {
  const read = (path: string) => fsp.readFile(path, "utf8").catch(() => null);
  const [newKey, newCert] = [await read(`${keyPath}.new`), await read(`${certPath}.new`)];
  if (newCert === null) return;
  const key = newKey ?? (await read(keyPath));
  if (key === null) return;
  try {
    if (!new X509Certificate(newCert).checkPrivateKey(createPrivateKey(key))) return;
  } catch {
    return; // unreadable: left for loadOrCreate to report, never moved into place
  }
  if (newKey !== null) await fsp.rename(`${keyPath}.new`, keyPath);
  await fsp.rename(`${certPath}.new`, certPath);
}

/** Both files, or null if neither exists; one without the other is an error (never silently replaced). */
async function readIfPresent(keyPath: string, certPath: string): Promise<{ key: string; cert: string } | null> {
  const read = (path: string) =>
    fsp.readFile(path, "utf8").catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return null;
      throw err;
    });
  const [key, cert] = [await read(keyPath), await read(certPath)];
  if (key === null && cert === null) return null;
  if (key === null || cert === null) {
    throw new Error(`the egress CA is incomplete: ${key === null ? keyPath : certPath} is missing; move the other file away to make a new CA`);
  }
  return { key, cert };
}

function commonNameOf(cert: X509Certificate): string {
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1];
  if (!cn) throw new Error("the egress CA certificate has no common name");
  return cn;
}
