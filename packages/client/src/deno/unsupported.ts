/**
 * `@deno/sandbox` classes for features sbx does not have yet (VS Code in the browser, volumes,
 * snapshots): the names exist so code importing them loads, and every use fails with a
 * `NotSupportedError` saying so. Constructing one directly fails as Deno's does.
 */
import { NotSupportedError } from "../errors.js";

/** Not supported: sbx cannot expose VS Code from a sandbox. */
export class VsCode {
  /** @internal */
  constructor() {
    throw new Error("Can not construct VSCode instances directly, use 'sandbox.vscode()'");
  }
}

const volumes = (what: string) => new NotSupportedError(`${what}: volumes and snapshots are not supported by sbx yet`);

/** Not supported yet: a persistent volume. */
export class Volume {
  /** @internal */
  constructor() {
    throw new TypeError("Can not construct Volume, use 'Volume.create' instead.");
  }

  static async create(_options?: unknown): Promise<Volume> {
    throw volumes("Volume.create");
  }

  static async get(_idOrSlug: string, _options?: unknown): Promise<Volume | null> {
    throw volumes("Volume.get");
  }
}

/** Not supported yet: a read-only snapshot of a volume. */
export class Snapshot {
  /** @internal */
  constructor() {
    throw new TypeError("Can not construct Snapshot, use 'Snapshot.create' instead.");
  }

  static async create(_idOrSlug: string, _options?: unknown): Promise<Snapshot> {
    throw volumes("Snapshot.create");
  }

  static async get(_idOrSlug: string, _options?: unknown): Promise<Snapshot | null> {
    throw volumes("Snapshot.get");
  }
}

/** A namespace of Deno's `Client` that sbx lacks: every method rejects with a `NotSupportedError` naming it. */
export interface UnsupportedNamespace {
  create(...args: unknown[]): Promise<never>;
  get(...args: unknown[]): Promise<never>;
  list(...args: unknown[]): Promise<never>;
  update(...args: unknown[]): Promise<never>;
  delete(...args: unknown[]): Promise<never>;
  /** Any other method of Deno's namespace rejects the same way. */
  [method: string]: ((...args: unknown[]) => Promise<never>) | undefined;
}

export function unsupportedNamespace(name: string, why: string): UnsupportedNamespace {
  const reject = (method: string) => async (): Promise<never> => {
    throw new NotSupportedError(`client.${name}.${method}: ${why}`);
  };
  // "then" stays undefined, so that awaiting the namespace itself is harmless.
  return new Proxy({} as UnsupportedNamespace, { get: (_t, method) => (typeof method === "string" && method !== "then" ? reject(method) : undefined) });
}
