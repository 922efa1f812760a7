/**
 * A daemon (and a sandbox) shared by the tests of one file, started before the first and
 * stopped after the last, so that no file repeats the hooks or forgets the teardown.
 *
 *     const { daemon, sb } = useSandbox({ sandbox: { allowNet: ["api.example.test"] } });
 *     it("runs", async () => expect(await sb.sh`echo hi`.text()).toBe("hi\n"));
 *
 * `daemon` and `sb` are stand-ins that forward to the file's daemon and sandbox once the
 * hooks have started them (touching one while the file is collected throws), so the tests
 * read as if they held the objects themselves, and a sandbox replaced by `replaceDead` is
 * the one every later test reaches.
 *
 * Hooks rather than vitest's `test.extend` fixtures: in vitest 3 a file-scoped fixture is not
 * visible to beforeAll/afterAll hooks, is torn down only after the file's afterAll hooks, and
 * `it.each` tests do not get it; most files here set things up in hooks and reach the sandbox
 * from helpers of their own. With hooks the order is plain: a file's beforeAll registered
 * before `useDaemon` runs before the daemon starts, and (hooks run as a stack) its afterAll
 * registered before runs after the daemon stopped.
 */
import { afterAll, beforeAll, beforeEach } from "vitest";
import { Sandbox, type SandboxOptions } from "@sbx/client";
import { sandboxAlive } from "./bash.js";
import { startDaemon, type DaemonOptions, type TestDaemon } from "./daemon.js";

/** Options now, or computed when the hooks run (after the file's earlier beforeAll hooks). */
type Later<T> = T | (() => T | Promise<T>);
const resolve = <T>(value: Later<T>): T | Promise<T> => (typeof value === "function" ? (value as () => T | Promise<T>)() : value);

/** Each stand-in's getter, for isThere. */
const currents = new WeakMap<object, () => unknown>();

/**
 * An object that forwards every use to `current()`: methods are called on (bound to) the
 * current object, so a class's private fields and getters work as on the object itself.
 */
export function standIn<T extends object>(what: string, current: () => T | undefined): T {
  const target = (): T => current() ?? notYet(what);
  const proxy = new Proxy({} as T, {
    get(_, key) {
      const t = target();
      const value: unknown = Reflect.get(t, key, t);
      return typeof value === "function" ? value.bind(t) : value;
    },
    set: (_, key, value) => Reflect.set(target(), key, value),
    has: (_, key) => Reflect.has(target(), key),
    ownKeys: () => Reflect.ownKeys(target()),
    getOwnPropertyDescriptor(_, key) {
      const d = Reflect.getOwnPropertyDescriptor(target(), key);
      // The proxy's own target has none of these, so each must be reported configurable.
      return d && { ...d, configurable: true };
    },
    getPrototypeOf: () => Reflect.getPrototypeOf(target()),
  });
  currents.set(proxy, current);
  return proxy;
}

/** Whether a stand-in's object is there yet (its hooks have made it), for hooks that clean up after a failed start. */
export function isThere(standIn: object): boolean {
  const current = currents.get(standIn);
  if (!current) throw new Error("isThere takes a stand-in from useDaemon, useSandbox or standIn");
  return current() !== undefined;
}

function notYet(what: string): never {
  throw new Error(`the file's ${what} is not there (yet): use it in a test or in a hook registered after useDaemon/useSandbox, not while the file is collected`);
}

/** The file's daemon, started with `options`; its state dir is removed at the end. */
export function useDaemon(options: Later<DaemonOptions> = {}): TestDaemon {
  let daemon: TestDaemon | undefined;
  beforeAll(async () => {
    daemon = await startDaemon(await resolve(options));
  });
  afterAll(async () => {
    await daemon?.[Symbol.asyncDispose]();
  });
  return standIn("daemon", () => daemon);
}

export interface SandboxFixtureOptions {
  daemon?: Later<DaemonOptions>;
  /** What the sandbox is created with; the daemon's url and token are added. */
  sandbox?: Later<SandboxOptions>;
  /** Runs on the sandbox once it is created (and on each one that replaces it). */
  setup?: (sb: Sandbox) => Promise<unknown>;
  /** Before each test, a sandbox an earlier test brought down is replaced (that test fails by itself, the next ones need not). */
  replaceDead?: boolean;
}

/** The file's daemon and a sandbox on it, killed before the daemon stops. */
export function useSandbox(options: SandboxFixtureOptions = {}): { daemon: TestDaemon; sb: Sandbox } {
  const daemon = useDaemon(options.daemon);
  let sb: Sandbox | undefined;
  const create = async () => {
    sb = await Sandbox.create({ ...(await resolve(options.sandbox ?? {})), ...daemon.opts });
    await options.setup?.(sb);
  };
  beforeAll(create);
  if (options.replaceDead) {
    beforeEach(async () => {
      if (sb && !(await sandboxAlive(sb))) {
        await sb.close().catch(() => {});
        await create();
      }
    });
  }
  afterAll(async () => {
    await sb?.kill().catch(() => {});
  });
  return { daemon, sb: standIn("sandbox", () => sb) };
}

/**
 * Skips every test of the enclosing describe, saying `why`, unless `ok`: what the tests need that
 * this host lacks (CI installs all of it, so nothing is skipped there).
 */
export function requires(ok: boolean, why: string): void {
  beforeEach((ctx) => {
    if (!ok) ctx.skip(why);
  });
}
