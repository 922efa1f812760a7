/**
 * A sandbox's secrets as the egress proxy sees them: each real value lives here (daemon
 * memory) and nowhere else; the sandbox holds only `SBX_SECRET_<32 random base62 chars>`
 * (~190 bits). This module decides, for one request, whether each placeholder it carries may
 * become its value (request headers, and bodies where the secret opts in, on intercepted TLS
 * to the secret's own hosts) or must block the request (anywhere else the proxy can see),
 * and scrubs values back out of responses. It never puts a value in an error or a reason.
 */
import { customAlphabet } from "nanoid";
import { Transform, type TransformCallback } from "node:stream";
import { AllowList } from "../policy/allowlist.js";
import { AllowNetError } from "../policy/errors.js";
import { hostPort } from "../policy/host.js";

export const PLACEHOLDER_PREFIX = "SBX_SECRET_";
const PLACEHOLDER_ID = customAlphabet("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", 32);
/** Every placeholder has this length, so a stream needs to hold back fewer bytes than this. */
export const PLACEHOLDER_LENGTH = PLACEHOLDER_PREFIX.length + 32;
/** Shorter values could not be told from ordinary text when responses are scrubbed. */
export const MIN_VALUE_LENGTH = 8;

/** What `create` accepts for one secret (the protocol's SecretSpec). */
export interface SecretInput {
  hosts: string[];
  value: string;
  body?: boolean;
}

/** A secret in daemon memory. */
export interface Secret {
  readonly name: string;
  readonly placeholder: string;
  readonly value: string;
  readonly hosts: AllowList;
  readonly body: boolean;
}

/** A create-time problem with one secret; answered as InvalidParams naming the secret (never its value). */
export class SecretSpecError extends Error {
  override readonly name = "SecretSpecError";
  constructor(
    readonly secret: string,
    readonly field: "hosts" | "value" | "name",
    reason: string,
  ) {
    super(`secrets.${secret}.${field} ${reason}`);
  }
}

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
    const secrets: Secret[] = [];
    for (const [name, spec] of Object.entries(specs)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(name)) throw new SecretSpecError(name.slice(0, 128), "name", "must be letters, digits and _ (an environment variable name)");
      const value = spec.value;
      if (typeof value !== "string" || value.length < MIN_VALUE_LENGTH) {
        throw new SecretSpecError(name, "value", `must be at least ${MIN_VALUE_LENGTH} characters (shorter values cannot be told apart from ordinary text when responses are scrubbed)`);
      }
      if (!/^[\x21-\x7e]+$/.test(value)) throw new SecretSpecError(name, "value", "must be printable ASCII without spaces (it is sent in HTTP headers; control characters and non-ASCII are refused)");
      const escaped = /["\\<>&']/.exec(value);
      if (escaped) {
        throw new SecretSpecError(name, "value", `must not contain ${JSON.stringify(escaped[0])}: JSON, HTML and URL encoders rewrite " \\ < > & ', which would hide the value from response scrubbing`);
      }
      if (value.includes(PLACEHOLDER_PREFIX)) throw new SecretSpecError(name, "value", `must not contain ${PLACEHOLDER_PREFIX}`);
      let hosts: AllowList;
      try {
        hosts = AllowList.parse(spec.hosts);
      } catch (err) {
        throw new SecretSpecError(name, "hosts", err instanceof AllowNetError ? `entry ${JSON.stringify(err.entry)} ${err.reason}` : String(err));
      }
      const literal = hosts.entries.find((e) => e.kind !== "name" && e.kind !== "wildcard");
      if (literal) throw new SecretSpecError(name, "hosts", `entry ${JSON.stringify(literal.text)} is an IP address; a secret is bound to host names, which its intercepted TLS certificate names`);
      if (hosts.entries.length === 0) throw new SecretSpecError(name, "hosts", "must name at least one host");
      secrets.push({ name, placeholder: PLACEHOLDER_PREFIX + PLACEHOLDER_ID(), value, hosts, body: spec.body === true });
    }
    return new SecretSet(secrets);
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

/**
 * The forms a value can take in a response: itself; as JSON writes it with `/` escaped and as
 * a URL percent-encodes it (values hold no other character an encoder rewrites); and its base64
 * encoding in standard and URL-safe alphabets at each of the three alignments it can have inside
 * a longer encoded text (e.g. an echoed `Authorization: Basic` of `user:value`). Only the
 * characters that depend on the value alone are matched; forms shorter than the minimum are
 * left out.
 */
export function valueForms(value: string): string[] {
  const bytes = Buffer.from(value, "latin1");
  const percent = encodeURIComponent(value);
  const forms = new Set<string>([value, value.replace(/\//g, "\\/"), percent, percent.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase())]);
  for (let k = 0; k < 3; k++) {
    const encoded = Buffer.concat([Buffer.alloc(k), bytes]).toString("base64");
    const core = encoded.slice(Math.ceil((4 * k) / 3), Math.floor(((k + bytes.length) * 8) / 6));
    if (core.length < MIN_VALUE_LENGTH) continue;
    forms.add(core);
    forms.add(core.replace(/\+/g, "-").replace(/\//g, "_"));
  }
  return [...forms];
}

/**
 * Replaces every occurrence of any pattern in a byte stream, chunk-boundary safe: the tail of a
 * chunk is held back only while it could still be the start of a pattern (so a stream of events
 * that happen not to end in one is passed on at once, not a chunk late). `replacement(i)` gives
 * the bytes for pattern `i`, or throws to end the stream with that error; bytes before a match
 * are only passed on once the match has been decided.
 */
export class StreamReplacer extends Transform {
  private carry: Buffer = Buffer.alloc(0);
  private readonly matcher: Replacer;

  constructor(patterns: readonly Buffer[], replacement: (index: number) => Buffer) {
    super();
    this.matcher = new Replacer(patterns, replacement);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      const buf = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
      this.carry = Buffer.from(buf.subarray(this.matcher.replace(buf, false, (b) => this.push(b))));
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      this.matcher.replace(this.carry, true, (b) => this.push(b));
      this.carry = Buffer.alloc(0);
      done();
    } catch (err) {
      done(err as Error);
    }
  }
}

/** The matching behind {@link StreamReplacer}, also used whole on a buffer already complete. */
export class Replacer {
  /** The longest prefix all patterns share (placeholders: SBX_SECRET_): searched first, so a clean chunk costs one scan. */
  private readonly prefix: Buffer;

  constructor(
    private readonly patterns: readonly Buffer[],
    private readonly replacement: (index: number) => Buffer,
  ) {
    this.prefix = commonPrefix(patterns);
  }

  /** `buf` with every match replaced. */
  replaceAll(buf: Buffer): Buffer {
    const out: Buffer[] = [];
    this.replace(buf, true, (b) => out.push(b));
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  /**
   * Emits `buf` with its complete matches replaced, up to where a pattern could still be
   * starting (all of it when `final`). A match is taken only if no longer-pending pattern
   * starts before it. Returns where it stopped.
   */
  replace(buf: Buffer, final: boolean, emit: (bytes: Buffer) => void): number {
    let pos = 0;
    let held = final ? buf.length : this.pendingFrom(buf, 0);
    for (;;) {
      // Only a match that ran past the held tail can change where that tail starts.
      if (pos > held) held = this.pendingFrom(buf, pos);
      const m = this.nextMatch(buf, pos, held);
      if (!m) {
        if (held > pos) emit(buf.subarray(pos, held));
        return held;
      }
      const replacement = this.replacement(m.index);
      if (m.start > pos) emit(buf.subarray(pos, m.start));
      emit(replacement);
      pos = m.start + this.patterns[m.index]!.length;
    }
  }

  /**
   * The earliest position from `from` whose rest of `buf` is a proper prefix of some pattern;
   * buf.length if none. Per pattern, only the places its first byte occurs are compared.
   */
  private pendingFrom(buf: Buffer, from: number): number {
    let best = buf.length;
    for (const p of this.patterns) {
      const first = Math.max(from, buf.length - p.length + 1);
      for (let i = buf.indexOf(p[0]!, first); i !== -1 && i < best; i = buf.indexOf(p[0]!, i + 1)) {
        if (buf.compare(p, 0, buf.length - i, i, buf.length) === 0) {
          best = i;
          break;
        }
      }
    }
    return best;
  }

  private nextMatch(buf: Buffer, from: number, cutoff: number): { start: number; index: number } | null {
    if (this.patterns.length === 0) return null;
    if (this.prefix.length === 0) {
      // No shared prefix: the earliest start of any pattern wins, the longest at a tie.
      let best: { start: number; index: number } | null = null;
      this.patterns.forEach((p, i) => {
        const at = buf.indexOf(p, from);
        if (at === -1 || at >= cutoff) return;
        if (!best || at < best.start || (at === best.start && p.length > this.patterns[best.index]!.length)) best = { start: at, index: i };
      });
      return best;
    }
    for (let at = buf.indexOf(this.prefix, from); at !== -1 && at < cutoff; at = buf.indexOf(this.prefix, at + 1)) {
      let best = -1;
      for (let i = 0; i < this.patterns.length; i++) {
        const p = this.patterns[i]!;
        if (at + p.length <= buf.length && buf.compare(p, 0, p.length, at, at + p.length) === 0 && (best === -1 || p.length > this.patterns[best]!.length)) best = i;
      }
      if (best !== -1) return { start: at, index: best };
    }
    return null;
  }
}

function commonPrefix(patterns: readonly Buffer[]): Buffer {
  if (patterns.length === 0) return Buffer.alloc(0);
  let n = Math.min(...patterns.map((p) => p.length));
  for (const p of patterns) {
    let i = 0;
    while (i < n && p[i] === patterns[0]![i]) i++;
    n = i;
  }
  return Buffer.from(patterns[0]!.subarray(0, n));
}
