/**
 * `Client`, as `@deno/sandbox` has it: resource namespaces over one set of connection options.
 * sbx has sandboxes, volumes and snapshots (`client.sandboxes`, `client.volumes`,
 * `client.snapshots`), and root images built from Debian's packages (`client.images`, sbx's
 * own: Deno has no image builder); the Deno Deploy namespaces (apps, revisions, timelines, layers) exist and
 * reject with a `NotSupportedError`.
 */
import { withoutDenoOptions, type DenoIgnoredOptions } from "../deno-options.js";
import { Sandbox, type SandboxOptions } from "../sandbox.js";
import type { ConnectOptions, SandboxInfo } from "../types.js";
import { unsupportedNamespace, type UnsupportedNamespace } from "./unsupported.js";
import { Images, Snapshots, Volumes } from "../volumes.js";

/** A sandbox as `client.sandboxes.list` reports it (Deno's `SandboxMetadata`). */
export interface SandboxMetadata extends SandboxInfo {
  /** When it stopped; null while it runs (sbx lists running sandboxes). */
  stoppedAt: Date | null;
  /** Always "local": the daemon's own host. */
  region: string;
}

/** `client.sandboxes`. */
export interface Sandboxes {
  /** `Sandbox.create` with the client's connection options. */
  create(options?: SandboxOptions): Promise<Sandbox>;
  /** `Sandbox.connect` with the client's connection options. */
  connect(id: string, options?: ConnectOptions): Promise<Sandbox>;
  /** This token's sandboxes, optionally only those carrying all the given labels. */
  list(options?: { labels?: Record<string, string> }): Promise<SandboxMetadata[]>;
}

/**
 * Manages resources on an sbx daemon, as Deno's `Client` does on Deno Deploy.
 *
 * @example
 * const client = new Client();
 * for (const sb of await client.sandboxes.list({ labels: { job: "grading" } })) console.log(sb.id, sb.status);
 */
export class Client {
  readonly #connect: ConnectOptions;
  readonly sandboxes: Sandboxes;
  /** Volumes (see `Volume`). */
  readonly volumes: Volumes;
  /** Snapshots (see `Snapshot`). */
  readonly snapshots: Snapshots;
  /** Root images built from Debian's packages (sbx's own, beyond @deno/sandbox; see `Images`). */
  readonly images: Images;

  constructor(options: ConnectOptions & DenoIgnoredOptions = {}) {
    this.#connect = withoutDenoOptions(options, "new Client()");
    const connect = this.#connect;
    this.sandboxes = {
      create: (opts = {}) => Sandbox.create({ ...connect, ...opts }),
      connect: (id, opts = {}) => Sandbox.connect(id, { ...connect, ...opts }),
      list: async (opts = {}) => (await Sandbox.list({ ...connect, ...opts })).map((s) => ({ ...s, stoppedAt: null, region: "local" })),
    };
    this.volumes = new Volumes(connect);
    this.snapshots = new Snapshots(connect);
    this.images = new Images(connect);
  }

  get apps(): UnsupportedNamespace {
    return unsupportedNamespace("apps", "sbx runs sandboxes, not Deno Deploy apps");
  }

  get revisions(): UnsupportedNamespace {
    return unsupportedNamespace("revisions", "sbx runs sandboxes, not Deno Deploy apps");
  }

  get timelines(): UnsupportedNamespace {
    return unsupportedNamespace("timelines", "sbx runs sandboxes, not Deno Deploy apps");
  }

  get layers(): UnsupportedNamespace {
    return unsupportedNamespace("layers", "sbx runs sandboxes, not Deno Deploy apps");
  }
}
