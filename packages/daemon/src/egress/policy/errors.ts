/**
 * Errors of the egress policy. The parsers throw {@link Malformed} with a reason only;
 * the public entry points rewrap it with the text it was about, so every message names
 * the offending input.
 */

/** A reason a piece of text is malformed, before the caller says which text it was. */
export class Malformed extends Error {
  override readonly name = "Malformed";
}

/**
 * An `allowNet` entry that cannot be used. `create` answers it as `InvalidParams`
 * (the SDKs' `InvalidOptionError`) with this message, which names the entry.
 */
export class AllowNetError extends Error {
  override readonly name = "AllowNetError";
  readonly code = "INVALID_ALLOW_NET";
  constructor(
    /** The entry exactly as the user wrote it. */
    readonly entry: string,
    /** Why it was refused, phrased to follow the entry ("contains a NUL byte"). */
    readonly reason: string,
    /** Its position in the list, when it came from one. */
    readonly index?: number,
  ) {
    super(`allowNet entry ${JSON.stringify(entry)} ${reason}`);
  }
}

/** A CONNECT target or absolute-URI that is not a usable authority; the proxy answers 400. */
export class TargetError extends Error {
  override readonly name = "TargetError";
  readonly code = "BAD_TARGET";
  constructor(
    /** The target exactly as the request carried it. */
    readonly target: string,
    readonly reason: string,
  ) {
    super(`target ${JSON.stringify(target)} ${reason}`);
  }
}

/** An `egress.resolve` pin (config file or `--resolve`) that cannot be used; the daemon refuses to start. */
export class ResolveMapError extends Error {
  override readonly name = "ResolveMapError";
  readonly code = "INVALID_RESOLVE";
  constructor(
    /** The pin's key (or the whole flag) as written. */
    readonly key: string,
    readonly reason: string,
  ) {
    super(`egress.resolve ${JSON.stringify(key)} ${reason}`);
  }
}

/** Runs `parse`, turning a {@link Malformed} into the caller's own error. */
export function rewrap<T>(parse: () => T, wrap: (reason: string) => Error): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof Malformed) throw wrap(err.message);
    throw err;
  }
}
