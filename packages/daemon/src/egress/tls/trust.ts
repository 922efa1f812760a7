/**
 * The two sides of trust around TLS interception: what the proxy trusts when it verifies a
 * secret host's real certificate (the system store plus the operator's extra CAs), and what
 * every sandbox trusts (the host's bundle plus the daemon's CA, bound in read-only).
 */
import { closeSync, openSync, readFileSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { createSecureContext, rootCertificates, type SecureContext } from "node:tls";
import { trustStoreJks } from "./jks.js";

/** Where distributions keep the system CA bundle; the first that exists is the system store. */
export const SYSTEM_BUNDLES = [
  "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine, Arch
  "/etc/pki/tls/certs/ca-bundle.crt", // Fedora, RHEL
  "/etc/ssl/ca-bundle.pem", // openSUSE
  "/etc/ssl/cert.pem",
];

/** Inside the sandbox: the full bundle, and a file with only the daemon's CA (for NODE_EXTRA_CA_CERTS). */
export const SANDBOX_BUNDLE = "/.sbx/ca-bundle.pem";
export const SANDBOX_CA = "/.sbx/ca.pem";
/** The bundle again as a Java trust store (JKS), for JAVA_TOOL_OPTIONS. */
export const JAVA_TRUST_STORE = "/.sbx/java-cacerts.jks";

/** The variables that point each tool at the sandbox's bundle, in every sandbox. */
export const TRUST_ENV: Readonly<Record<string, string>> = {
  SSL_CERT_FILE: SANDBOX_BUNDLE,
  REQUESTS_CA_BUNDLE: SANDBOX_BUNDLE,
  CURL_CA_BUNDLE: SANDBOX_BUNDLE,
  GIT_SSL_CAINFO: SANDBOX_BUNDLE,
  PIP_CERT: SANDBOX_BUNDLE,
  DENO_CERT: SANDBOX_BUNDLE,
};

/**
 * Node's variable, only in sandboxes that hold secrets (the only ones that can ever be shown a
 * certificate from the daemon's CA): with it set, Node builds its whole root store as it starts,
 * ~21 ms on every start even for this one-certificate file (~40 ms for the whole bundle). It
 * names the CA alone, so Node adds just that to its own roots.
 */
export const SECRETS_TRUST_ENV: Readonly<Record<string, string>> = { NODE_EXTRA_CA_CERTS: SANDBOX_CA };

function systemBundle(): { path: string; pem: string } | null {
  for (const path of SYSTEM_BUNDLES) {
    try {
      return { path, pem: readFileSync(path, "utf8") };
    } catch {
      // Try the next place.
    }
  }
  return null;
}

/** The PEM certificates in `text`; throws naming `source` if there are none or one cannot be parsed. */
function certificatesIn(text: string, source: string): string[] {
  const pems = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (pems.length === 0) throw new Error(`${source} holds no PEM certificate`);
  for (const [i, pem] of pems.entries()) {
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw new Error(`${source}: certificate ${i + 1} cannot be read (${(err as Error).message})`);
    }
  }
  return pems;
}

/** Every PEM certificate in `text` that parses, in order. */
function readableCertificates(text: string): string[] {
  return (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).filter((pem) => {
    try {
      new X509Certificate(pem);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * The context the proxy verifies upstream certificates with: the system bundle (Node's own
 * Mozilla roots where the host has none) plus every file in `extraCaCerts`. Built once.
 */
export function upstreamTrust(extraCaCerts: readonly string[]): SecureContext {
  const system = systemBundle();
  const ca = system ? certificatesIn(system.pem, system.path) : [...rootCertificates];
  ca.push(...readCaFiles(extraCaCerts, "extra CA file"));
  return createSecureContext({ ca, minVersion: "TLSv1.2" });
}

/** Every certificate in `files`; throws naming a file that cannot be read or holds none. */
function readCaFiles(files: readonly string[], what: string): string[] {
  return files.flatMap((file) => {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw new Error(`${what} ${file} cannot be read: ${(err as Error).message}`);
    }
    return certificatesIn(text, `${what} ${file}`);
  });
}

/** The trust files every sandbox binds, held open by the daemon. */
export interface SandboxTrustFiles {
  bundleFd: number;
  /** The bundle again: bwrap consumes each fd it binds, and the bundle is bound at two paths. */
  systemBundleFd: number;
  caFd: number;
  /** The bundle as a JKS trust store for Java. */
  javaStoreFd: number;
  close(): void;
}

/**
 * Writes the sandbox's bundle (host bundle + `sandboxCaCerts` + `caPem`) and the CA-only file under `dir`
 * (readable by sandbox uids, like the supervisor) and opens both.
 */
export async function writeSandboxTrust(dir: string, caPem: string, sandboxCaCerts: readonly string[] = []): Promise<SandboxTrustFiles> {
  // The operator's own CAs (a re-signing gateway, an internal CA) join the host's bundle.
  const extra = readCaFiles(sandboxCaCerts, "sandbox CA file").map((pem) => `${pem}\n`).join("");
  await fsp.mkdir(dir, { recursive: true, mode: 0o711 });
  const system = systemBundle();
  const write = async (name: string, text: string | Buffer) => {
    const path = join(dir, name);
    await fsp.writeFile(`${path}.tmp`, text, { mode: 0o644 });
    await fsp.chmod(`${path}.tmp`, 0o644);
    await fsp.rename(`${path}.tmp`, path);
    return openSync(path, "r");
  };
  const bundle = `${system ? `${system.pem.trimEnd()}\n` : rootCertificates.join("\n")}\n${extra}${caPem}`;
  const bundleFd = await write("ca-bundle.pem", bundle);
  const systemBundleFd = openSync(join(dir, "ca-bundle.pem"), "r");
  const caFd = await write("sbx-ca.pem", caPem);
  // Certificates the system bundle holds that Node cannot read are left out of Java's copy, as Node's own context would.
  const javaStoreFd = await write("java-cacerts.jks", trustStoreJks(readableCertificates(bundle)));
  const all = [bundleFd, systemBundleFd, caFd, javaStoreFd];
  return { bundleFd, systemBundleFd, caFd, javaStoreFd, close: () => all.forEach((fd) => closeSync(fd)) };
}
