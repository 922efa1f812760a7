/**
 * What `create` may bind as a secret, checked once: the name (an environment variable's), the
 * value (long enough, and in characters no encoder rewrites, so scrubbing always finds it) and
 * the hosts (names, which the intercepted certificate names). Each secret gets a fresh
 * placeholder. Errors name the secret and the field, never the value.
 */
import { customAlphabet } from "nanoid";
import { AllowList } from "../policy/allowlist.js";
import { AllowNetError } from "../policy/errors.js";

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

/** Checks and compiles `create`'s secrets. Throws {@link SecretSpecError} naming the secret and what is wrong with it. */
export function compileSecrets(specs: Record<string, SecretInput>): Secret[] {
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
  return secrets;
}
