import { createHash, X509Certificate } from "node:crypto";

/** The password Java's own cacerts ships with; a trust store's password guards only its integrity check. */
export const JKS_PASSWORD = "changeit";

/** `DataOutputStream.writeUTF`: a 2-byte length, then the (ASCII-only here) bytes. */
function utf(s: string): Buffer {
  const bytes = Buffer.from(s, "utf8");
  const len = Buffer.alloc(2);
  len.writeUInt16BE(bytes.length);
  return Buffer.concat([len, bytes]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/**
 * A Java KeyStore (JKS, version 2) holding `pems` as trusted certificates: what `javax.net.ssl.
 * trustStore` reads with `trustStoreType=JKS` on every Java since 1.2. Written here because a
 * PKCS#12 trust store needs Oracle's trust attribute on each certificate (OpenSSL adds it only
 * from 3.2, `-jdktrust`), and making one with `keytool` would need a JVM at daemon start.
 *
 * Layout (sun.security.provider.JavaKeyStore): magic FEEDFEED, version 2, entry count; per entry
 * tag 2 (trusted certificate), alias, creation time, "X.509", DER length and bytes; then SHA-1 of
 * the password in UTF-16BE, "Mighty Aphrodite" and everything before it.
 */
export function trustStoreJks(pems: readonly string[], created = Date.now()): Buffer {
  const parts: Buffer[] = [u32(0xfeedfeed), u32(2), u32(pems.length)];
  const time = Buffer.alloc(8);
  time.writeBigUInt64BE(BigInt(created));
  pems.forEach((pem, i) => {
    const der = new X509Certificate(pem).raw;
    parts.push(u32(2), utf(`sbx-${i}`), time, utf("X.509"), u32(der.length), der);
  });
  const body = Buffer.concat(parts);
  const digest = createHash("sha1").update(Buffer.from(JKS_PASSWORD, "utf16le").swap16()).update("Mighty Aphrodite", "utf8").update(body).digest();
  return Buffer.concat([body, digest]);
}
