import type { Sandbox } from "@sbx/client";

/**
 * `sb`, made to be killed when an `await using` block ends. Disposing a Sandbox only closes its
 * handle (as Deno's does): a timed sandbox lives on, and a session one for its grace period,
 * which would count against caps and drains in later tests of the same daemon.
 *
 *     await using sb = killAtEnd(await Sandbox.create(opts));
 */
export function killAtEnd(sb: Sandbox): Sandbox {
  return Object.defineProperty(sb, Symbol.asyncDispose, { value: () => sb.kill(), configurable: true });
}
