/**
 * What the code runtimes need inside every sandbox: the Deno binary from the `deno` npm package
 * (bound read-only at /.sbx/bin/deno, on PATH; nothing is downloaded at run time) and the REPL
 * drivers (beside the daemon's bundle, copied there by the build), bound read-only too.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Inside the sandbox. */
export const DENO_BIN_DIR = "/.sbx/bin";
export const DENO_PATH = `${DENO_BIN_DIR}/deno`;
export const DENO_REPL_DRIVER = "/.sbx/repl/deno.js";
export const PYTHON_REPL_DRIVER = "/.sbx/repl/python.py";

/** Deno's platform packages, by Node's platform and architecture. */
const DENO_TARGETS: Record<string, string> = { "linux-x64": "linux-x64-glibc", "linux-arm64": "linux-arm64-glibc" };

/**
 * The Deno binary of the `deno` npm package next to the daemon, or null (the sandboxes then have no
 * Deno and `sandbox.deno` says why). `configured` (config `deno`) wins: a path, or false for none.
 */
export function findDeno(configured: string | false | null, from: string = import.meta.url): string | null {
  if (configured === false) return null;
  if (configured) {
    if (!existsSync(configured)) throw new Error(`config.deno: ${configured} does not exist`);
    return configured;
  }
  const target = DENO_TARGETS[`${process.platform}-${process.arch}`];
  if (!target) return null;
  try {
    const pkg = createRequire(from).resolve("deno/package.json");
    const bin = join(dirname(createRequire(pkg).resolve(`@deno/${target}/package.json`)), "deno");
    return existsSync(bin) ? bin : null;
  } catch {
    return null;
  }
}

/** The REPL drivers: beside the bundle (dist/), or in the source tree when run from it. */
export function replDrivers(from: string = import.meta.url): { denoReplPath: string; pythonReplPath: string } {
  const find = (name: string) => {
    for (const rel of [`./${name}`, `./drivers/${name}`, `./runtimes/drivers/${name}`]) {
      const path = fileURLToPath(new URL(rel, from));
      if (existsSync(path)) return path;
    }
    throw new Error(`the REPL driver ${name} is missing beside ${fileURLToPath(from)}: build @sbx/daemon first`);
  };
  return { denoReplPath: find("deno-repl.js"), pythonReplPath: find("python-repl.py") };
}

/** The environment Deno gets in every sandbox: no update checks, no prompts; its cache under HOME. */
export const DENO_ENV: Readonly<Record<string, string>> = { DENO_NO_UPDATE_CHECK: "1", DENO_NO_PROMPT: "1" };
