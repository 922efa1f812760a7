/**
 * Just enough DER to issue the proxy's certificates: a self-signed CA and leaf certificates
 * for named hosts, all ECDSA P-256 with SHA-256. Keys, signatures and parsing come from
 * node:crypto; this file only lays out the TBSCertificate (RFC 5280 §4.1). A general X.509
 * library (@peculiar/x509) needs a global reflect-metadata polyfill and ~5 MB of
 * dependencies for the ~100 lines below.
 */
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from "node:crypto";

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), length(body.length), body]);
}

const seq = (...c: Buffer[]) => tlv(0x30, ...c);
const set = (...c: Buffer[]) => tlv(0x31, ...c);
const explicit = (n: number, ...c: Buffer[]) => tlv(0xa0 + n, ...c);
const octets = (b: Buffer) => tlv(0x04, b);
const bits = (b: Buffer) => tlv(0x03, Buffer.from([0]), b);
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, "utf8"));
const TRUE = tlv(0x01, Buffer.from([0xff]));

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split(".").map(Number);
  const out = [a! * 40 + b!];
  for (const n of rest) {
    const groups: number[] = [];
    for (let v = n; ; v = Math.floor(v / 128)) {
      groups.unshift((v & 0x7f) | (groups.length ? 0x80 : 0));
      if (v < 128) break;
    }
    out.push(...groups);
  }
  return tlv(0x06, Buffer.from(out));
}

/** A positive INTEGER from unsigned big-endian bytes. */
function integer(bytes: Buffer): Buffer {
  let b = bytes;
  while (b.length > 1 && b[0] === 0 && b[1]! < 0x80) b = b.subarray(1);
  return tlv(0x02, b[0]! >= 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
}

/** UTCTime through 2049, GeneralizedTime after (RFC 5280 §4.1.2.5). */
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, "").slice(0, 14) + "Z";
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2))) : tlv(0x18, Buffer.from(iso));
}

const ECDSA_SHA256 = seq(oid("1.2.840.10045.4.3.2"));
const name = (cn: string, org = "sbx") => seq(set(seq(oid("2.5.4.10"), utf8(org))), set(seq(oid("2.5.4.3"), utf8(cn))));
const extension = (id: string, critical: boolean, value: Buffer) => seq(oid(id), ...(critical ? [TRUE] : []), octets(value));

/** Key identifier: SHA-1 of the subjectPublicKey bits (RFC 5280 §4.2.1.2, method 1); a P-256 point is the SPKI's last 65 bytes. */
function keyId(publicKey: KeyObject): Buffer {
  const spki = publicKey.export({ type: "spki", format: "der" });
  return createHash("sha1").update(spki.subarray(spki.length - 65)).digest();
}

export interface IssueOptions {
  /** The subject's common name; a leaf also gets it as its only DNS subjectAltName. */
  commonName: string;
  publicKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  /** The key that signs: the issuer's, or the subject's own for a self-signed CA. */
  signingKey: KeyObject;
  /** The issuer's name and public key; absent for a self-signed CA. */
  issuer?: { commonName: string; publicKey: KeyObject };
  ca: boolean;
}

/** Issues one certificate and returns it as PEM. */
export function issueCertificate(opts: IssueOptions): string {
  const issuerName = opts.issuer?.commonName ?? opts.commonName;
  const extensions = opts.ca
    ? [
        extension("2.5.29.19", true, seq(TRUE, tlv(0x02, Buffer.from([0])))), // basicConstraints CA, pathLen 0
        extension("2.5.29.15", true, bits(Buffer.from([0x06]))), // keyUsage keyCertSign | cRLSign
        extension("2.5.29.14", false, octets(keyId(opts.publicKey))),
      ]
    : [
        extension("2.5.29.19", true, seq()),
        extension("2.5.29.15", true, bits(Buffer.from([0x80]))), // digitalSignature
        extension("2.5.29.37", false, seq(oid("1.3.6.1.5.5.7.3.1"))), // extKeyUsage serverAuth
        extension("2.5.29.17", false, seq(tlv(0x82, Buffer.from(opts.commonName, "ascii")))), // subjectAltName dNSName
        extension("2.5.29.35", false, seq(tlv(0x80, keyId((opts.issuer ?? opts).publicKey)))), // authorityKeyIdentifier
      ];
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  const tbs = seq(
    explicit(0, tlv(0x02, Buffer.from([2]))), // v3
    integer(serial),
    ECDSA_SHA256,
    name(issuerName),
    seq(time(opts.notBefore), time(opts.notAfter)),
    name(opts.commonName),
    opts.publicKey.export({ type: "spki", format: "der" }),
    explicit(3, seq(...extensions)),
  );
  const signature = sign("sha256", tbs, opts.signingKey);
  const der = seq(tbs, ECDSA_SHA256, bits(signature));
  return new X509Certificate(der).toString();
}

/** A fresh P-256 key pair. */
export function newKeyPair(): { key: KeyObject; publicKey: KeyObject } {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { key: privateKey, publicKey: createPublicKey(privateKey) };
}
