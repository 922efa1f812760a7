/**
 * Which connection holds each file a sandbox opened with fs.open. The supervisor knows only
 * handle numbers; a handle belongs to the connection that opened it, every other connection
 * (of this sandbox or another) is told it is not open, and a connection that goes away has
 * its handles closed, so nothing it opened outlives it.
 */
import type { Client } from "./sandbox.js";

export class FileHandles {
  readonly #owners = new Map<number, Client>();

  /** `client` opened `handle`; false if the number is already held (a misbehaving supervisor). */
  opened(handle: number, client: Client): boolean {
    if (this.#owners.has(handle)) return false;
    this.#owners.set(handle, client);
    return true;
  }

  owns(handle: number, client: Client): boolean {
    return this.#owners.get(handle) === client;
  }

  closed(handle: number): void {
    this.#owners.delete(handle);
  }

  /** Forgets and returns every handle `client` held. */
  release(client: Client): number[] {
    const held = [...this.#owners].filter(([, c]) => c === client).map(([h]) => h);
    for (const h of held) this.#owners.delete(h);
    return held;
  }
}
