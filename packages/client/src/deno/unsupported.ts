/**
 * `@deno/sandbox` classes for features sbx does not have yet (VS Code in the browser): the names
 * exist so code importing them loads, and every use fails with a `NotSupportedError` saying so.
 * Constructing one directly fails as Deno's does.
 */
import { NotSupportedError } from "../errors.js";

/** Not supported: sbx cannot expose VS Code from a sandbox. */
export class VsCode {
  /** @internal */
  constructor() {
    throw new Error("Can not construct VSCode instances directly, use 'sandbox.vscode()'");
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
