/**
 * A sandbox's secrets as the egress proxy sees them: each real value lives here (daemon
 * memory) and nowhere else; the sandbox holds only `SBX_SECRET_<32 random base62 chars>`
 * (~190 bits). This module decides, for one request, whether each placeholder it carries may
 * become its value (request headers, and bodies where the secret opts in, on intercepted TLS
 * to the secret's own hosts) or must block the request (anywhere else the proxy can see),
 * and scrubs values back out of responses. It never puts a value in an error or a reason.
 */
import type { Transform } from "node:stream";
import { hostPort } from "../policy/host.js";
import { valueForms } from "./forms.js";
import { Replacer, StreamReplacer } from "./replacer.js";
import { compileSecrets, PLACEHOLDER_LENGTH, PLACEHOLDER_PREFIX, type Secret, type SecretInput } from "./spec.js";

export { MIN_VALUE_LENGTH, PLACEHOLDER_LENGTH, PLACEHOLDER_PREFIX, SecretSpecError, type Secret, type SecretInput } from "./spec.js";
export { valueForms } from "./forms.js";
export { Replacer, StreamReplacer } from "./replacer.js";

/** Why a request was blocked: names the secret and the host, never the value. */
export class SecretBlocked extends Error {
  override readonly name = "SecretBlocked";
  constructor(
    readonly secret: string,
    reason: string,
  ) {
    super(reason);
  }
}

/** Where a request is going, as far as substitution cares. */
export interface Destination {
  host: string;
  port: number;
  /** Plain HTTP (no substitution ever) or intercepted TLS. */
  scheme: "http" | "https";
}

export class SecretSet {
  private readonly byPlaceholder = new Map<string, Secret>();
  /** Every value and its base64 forms, each mapped to the placeholder that replaces it in responses. */
  private readonly scrubPatterns: Array<{ find: Buffer; replace: Buffer }> = [];
  private scrubReplacer: Replacer | undefined;

  private constructor(readonly secrets: readonly Secret[]) {
    for (const s of secrets) {
      this.byPlaceholder.set(s.placeholder, s);
      for (const form of valueForms(s.value)) this.scrubPatterns.push({ find: Buffer.from(form, "latin1"), replace: Buffer.from(s.placeholder, "latin1") });
    }
  }

  static readonly none = new SecretSet([]);

  /**
   * Checks and compiles `create`'s secrets, giving each a fresh placeholder. Throws
   * {@link SecretSpecError} naming the secret and what is wrong with it.
   */
  static create(specs: Record<string, SecretInput>): SecretSet {
    return new SecretSet(compileSecrets(specs));
  }

  get empty(): boolean {
    return this.secrets.length === 0;
  }

  /** The sandbox's environment: each secret's name holding its placeholder. */
  get env(): Record<string, string> {
    return Object.fromEntries(this.secrets.map((s) => [s.name, s.placeholder]));
  }

  /** The allowNet entries every secret's hosts add (a secret's hosts are always reachable). */
  get hostEntries(): string[] {
    return [...new Set(this.secrets.flatMap((s) => s.hosts.entries.map((e) => e.text)))];
  }

  /** Whether the proxy terminates TLS for this destination: only where some secret is bound. */
  intercepts(host: string, port: number): boolean {
    return this.secrets.some((s) => s.hosts.match(host, port).allowed);
  }

  /**
   * Whether some secret is bound to `host`, on whatever port: its responses may hold a value (the
   * upstream may echo or store what it was sent), so they must reach the scrubber whole.
   */
  boundTo(host: string): boolean {
    return this.secrets.some((s) => s.hosts.namesHost(host));
  }

  /** Placeholders of this sandbox found in `text` (unknown SBX_SECRET_ strings are only text). */
  find(text: string): Secret[] {
    const found: Secret[] = [];
    for (let i = text.indexOf(PLACEHOLDER_PREFIX); i !== -1; i = text.indexOf(PLACEHOLDER_PREFIX, i + 1)) {
      const s = this.byPlaceholder.get(text.slice(i, i + PLACEHOLDER_LENGTH));
      if (s && !found.includes(s)) found.push(s);
    }
    return found;
  }

  /**
   * The request line: a placeholder there blocks the request (also percent-encoded), since
   * URLs end up in logs, caches and referrers. Returns the blocking error or null.
   */
  checkUrl(url: string, to: Destination): SecretBlocked | null {
    const s = this.inUrl(url);
    if (!s) return null;
    return new SecretBlocked(s.name, `secret ${s.name} is in the URL of a request to ${show(to)}; secrets are never substituted in the request line (send it in a header)`);
  }

  /**
   * Rewrites raw request headers (name, value pairs) for `to`: placeholders become values
   * where allowed, anything else throws {@link SecretBlocked}. `Authorization: Basic` is
   * decoded, rewritten and encoded again.
   */
  rewriteHeaders(raw: readonly string[], to: Destination): string[] {
    const out: string[] = [];
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!;
      let value = raw[i + 1]!;
      const inName = this.find(name)[0];
      if (inName) throw new SecretBlocked(inName.name, `secret ${inName.name} is in a header name of a request to ${show(to)}; only header values are substituted`);
      const basic = /^(\s*basic\s+)([A-Za-z0-9+/=_-]+)(\s*)$/i.exec(value);
      if (name.toLowerCase() === "authorization" && basic) {
        const decoded = Buffer.from(basic[2]!, "base64").toString("latin1");
        const replaced = this.substitute(decoded, to, "header");
        if (replaced !== decoded) value = `${basic[1]}${Buffer.from(replaced, "latin1").toString("base64")}${basic[3]}`;
      }
      value = this.substitute(value, to, "header");
      out.push(name, value);
    }
    return out;
  }

  /** A plain-HTTP request whose URL or headers (`text`) carry any placeholder is blocked, whatever the host. */
  checkPlain(url: string, rawHeaders: readonly string[], to: Destination): SecretBlocked | null {
    const s = this.carried(url, rawHeaders);
    return s ? overPlainHttp(s, to) : null;
  }

  /**
   * The first of this sandbox's placeholders a request head carries anywhere: in its URL (also
   * percent-encoded), a header name or value, or `Authorization: Basic` credentials. Empty sets
   * answer at once.
   */
  carried(url: string, rawHeaders: readonly string[]): Secret | undefined {
    if (this.empty) return undefined;
    const inHeaders = rawHeaders.map((h) => {
      const basic = /^\s*basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(h);
      return basic ? `${h}\n${Buffer.from(basic[1]!, "base64").toString("latin1")}` : h;
    });
    return this.inUrl(url) ?? this.find(inHeaders.join("\n"))[0];
  }

  /** A placeholder in a URL, as written or percent-decoded (each %XX on its own, so one malformed escape hides nothing). */
  private inUrl(url: string): Secret | undefined {
    const decoded = url.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    return this.find(url)[0] ?? this.find(decoded)[0];
  }

  /** Whether a request body to `to` may carry placeholders that become values. */
  substitutesBody(to: Destination): boolean {
    return to.scheme === "https" && this.secrets.some((s) => s.body && s.hosts.match(to.host, to.port).allowed);
  }

  /** The value for a placeholder found in a request to `to`, or the reason it blocks the request. */
  valueFor(secret: Secret, to: Destination, where: "header" | "body"): string {
    if (to.scheme === "http") throw overPlainHttp(secret, to);
    if (!secret.hosts.match(to.host, to.port).allowed) {
      throw new SecretBlocked(secret.name, `secret ${secret.name} is not for ${show(to)}; it is bound to ${secret.hosts.entries.map((e) => e.text).join(", ")}`);
    }
    if (where === "body" && !secret.body) {
      throw new SecretBlocked(secret.name, `secret ${secret.name} is in the body of a request to ${show(to)}; it is substituted in bodies only when created with body: true`);
    }
    return secret.value;
  }

  private substitute(text: string, to: Destination, where: "header" | "body"): string {
    const found = this.find(text);
    let out = text;
    for (const s of found) out = out.split(s.placeholder).join(this.valueFor(s, to, where));
    return out;
  }

  /** Replaces every value (and each form of it) in complete bytes by its placeholder. */
  scrubBytes(bytes: Buffer): Buffer {
    return this.scrubPatterns.length === 0 ? bytes : this.scrubMatcher().replaceAll(bytes);
  }

  /** The same for text (a header value, an error message). */
  scrubText(text: string): string {
    return this.scrubPatterns.length === 0 ? text : this.scrubBytes(Buffer.from(text, "latin1")).toString("latin1");
  }

  /** A stream that replaces values (and each form of them) by placeholders, chunk-boundary safe. */
  scrubber(): Transform {
    return new StreamReplacer(...this.scrubArgs());
  }

  private scrubArgs(): [Buffer[], (index: number) => Buffer] {
    return [this.scrubPatterns.map((p) => p.find), (i) => this.scrubPatterns[i]!.replace];
  }

  private scrubMatcher(): Replacer {
    return (this.scrubReplacer ??= new Replacer(...this.scrubArgs()));
  }

  /**
   * A stream over a request body to `to`: placeholders become values where the secret opts
   * in, and any other placeholder ends the stream with {@link SecretBlocked} before a byte of
   * it is passed on.
   */
  bodyInspector(to: Destination): Transform {
    const list = this.secrets;
    return new StreamReplacer(
      list.map((s) => Buffer.from(s.placeholder, "latin1")),
      (i) => Buffer.from(this.valueFor(list[i]!, to, "body"), "latin1"),
    );
  }
}

function overPlainHttp(secret: Secret, to: Destination): SecretBlocked {
  return new SecretBlocked(secret.name, `secret ${secret.name} was sent over plain HTTP to ${show(to)}; secrets go only over HTTPS to their own hosts`);
}

function show(to: Pick<Destination, "host" | "port">): string {
  return hostPort(to.host, to.port);
}
