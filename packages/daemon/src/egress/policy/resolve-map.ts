/**
 * The operator's `egress.resolve` pins, like curl's `--resolve`: `"name:port" -> "addr:port"`
 * or `"name" -> "addr"`. A pin replaces DNS for that name; the address is the operator's
 * decision, so it skips the address-class checks (only the daemon's API stays refused).
 */
import { Malformed, ResolveMapError, rewrap } from "./errors.js";
import { canonicalHost, checkAuthorityText, parsePort, splitHostPort } from "./host.js";

/** Where a pinned name goes: the address, and the port if the pin names one. */
export interface Pin {
  readonly address: string;
  readonly port: number | null;
}

/** The pins of one daemon, keyed by canonical `name` or `name:port`. */
export class ResolveMap {
  private constructor(private readonly pins: ReadonlyMap<string, Pin>) {}

  /** No pins: every name goes through DNS. */
  static readonly empty = new ResolveMap(new Map());

  /**
   * Reads the config file's `egress.resolve` object. Throws {@link ResolveMapError} naming the key.
   *
   * @example ResolveMap.parse({ "api.openai.com:443": "127.0.0.1:8443", "example.test": "127.0.0.1" })
   */
  static parse(map: Readonly<Record<string, string>>): ResolveMap {
    const pins = new Map<string, Pin>();
    for (const [key, value] of Object.entries(map)) {
      const name = rewrap(() => pinKey(key), (reason) => new ResolveMapError(key, reason));
      const pin = rewrap(() => pinTarget(value), (reason) => new ResolveMapError(key, `maps to ${JSON.stringify(value)}, which ${reason}`));
      if (pins.has(name)) throw new ResolveMapError(key, `pins ${name} a second time`);
      pins.set(name, pin);
    }
    return new ResolveMap(pins);
  }

  /** Reads `--resolve NAME[:PORT]=ADDR[:PORT]` flags, in order. */
  static fromFlags(flags: readonly string[]): ResolveMap {
    const map: Record<string, string> = {};
    for (const flag of flags) {
      const eq = flag.indexOf("=");
      if (eq < 0) throw new ResolveMapError(flag, "is not NAME[:PORT]=ADDR[:PORT]");
      const key = flag.slice(0, eq);
      if (Object.hasOwn(map, key)) throw new ResolveMapError(key, "is given twice");
      map[key] = flag.slice(eq + 1);
    }
    return ResolveMap.parse(map);
  }

  /** These pins with `other`'s added on top (a name both pin takes `other`'s: flags over the config file). */
  merge(other: ResolveMap): ResolveMap {
    return new ResolveMap(new Map([...this.pins, ...other.pins]));
  }

  /**
   * The pin for a canonical name on a port, `name:port` before `name`; the port filled in from
   * the request if the pin has none (`portFromPin` says which).
   */
  lookup(name: string, port: number): { address: string; port: number; portFromPin: boolean } | undefined {
    const exact = this.pins.get(`${name}:${port}`);
    const pin = exact ?? this.pins.get(name);
    return pin && { address: pin.address, port: pin.port ?? port, portFromPin: exact !== undefined || pin.port !== null };
  }
}

function pinKey(key: string): string {
  checkAuthorityText(key);
  const split = splitHostPort(key);
  const host = canonicalHost(split.host);
  if (host.kind !== "name") throw new Malformed("pins an address; pins map host names");
  return split.port === null ? host.name : `${host.name}:${parsePort(split.port)}`;
}

function pinTarget(value: string): Pin {
  checkAuthorityText(value);
  const split = splitHostPort(value);
  const host = canonicalHost(split.host);
  if (host.kind === "name") throw new Malformed("is a name; a pin maps to an IP address");
  if (host.kind === "ipv4" && host.name !== split.host) throw new Malformed(`is not a canonical IPv4 address; write ${host.name}`);
  return { address: host.name, port: split.port === null ? null : parsePort(split.port) };
}
