import { constants, statSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { dirname, join } from "node:path";

/** Whether a uid other than root and the owner could reach `path` (every directory o+x, the file o+r). */
function reachableByOthers(path: string): boolean {
  try {
    if (!(statSync(path).mode & constants.S_IROTH)) return false;
    for (let dir = dirname(path); ; dir = dirname(dir)) {
      if (!(statSync(dir).mode & constants.S_IXOTH)) return false;
      if (dir === "/") return true;
    }
  } catch {
    return false;
  }
}

/**
 * In root mode bwrap runs as the sandbox's uid and must be able to resolve every path it
 * binds, so the node binary, the native supervisor and the storage mounts must sit where any
 * uid can traverse. The state dir becomes 0711 (traversable, not listable; its secrets stay
 * 0600), the supervisor is copied into it, and so is node if its own location is private.
 */
export interface SandboxFiles {
  nodePath: string;
  supervisorPath: string;
  preloadPath: string;
  preloadImplPath: string;
  /** The Deno binary (null: sandboxes get none) and the REPL drivers (runtimes/files.ts). */
  denoPath: string | null;
  denoReplPath: string;
  pythonReplPath: string;
}

export async function prepareSandboxFiles(stateDir: string, files: SandboxFiles, rootMode: boolean): Promise<SandboxFiles> {
  if (!rootMode) return files;
  await fsp.chmod(stateDir, 0o711);
  for (let dir = dirname(stateDir); ; dir = dirname(dir)) {
    if (!(statSync(dir).mode & constants.S_IXOTH)) {
      throw new Error(`the state dir ${stateDir} sits below ${dir}, which sandbox uids cannot traverse: run \`chmod o+x ${dir}\` or choose another --state-dir`);
    }
    if (dir === "/") break;
  }
  const lib = join(stateDir, "lib");
  await fsp.mkdir(lib, { recursive: true, mode: 0o711 });
  await fsp.chmod(lib, 0o711);
  const copy = async (src: string, name: string, mode: number) => {
    const dst = join(lib, name);
    await fsp.copyFile(src, `${dst}.tmp`);
    await fsp.chmod(`${dst}.tmp`, mode);
    await fsp.rename(`${dst}.tmp`, dst);
    return dst;
  };
  const supervisorPath = await copy(files.supervisorPath, "sbx-supervisor", 0o755);
  const preloadPath = await copy(files.preloadPath, "node-proxy.cjs", 0o644);
  const preloadImplPath = await copy(files.preloadImplPath, "node-proxy-impl.cjs", 0o644);
  const denoReplPath = await copy(files.denoReplPath, "deno-repl.js", 0o644);
  const pythonReplPath = await copy(files.pythonReplPath, "python-repl.py", 0o644);
  // Large binaries are copied only when their own place is private, and only when they changed.
  const reachable = async (src: string, name: string) => {
    if (reachableByOthers(src)) return src;
    const dst = join(lib, name);
    const from = await fsp.stat(src);
    const to = await fsp.stat(dst).catch(() => null);
    if (!to || to.size !== from.size || to.mtimeMs < from.mtimeMs) await copy(src, name, 0o755);
    return dst;
  };
  const nodePath = await reachable(files.nodePath, "node");
  const denoPath = files.denoPath && (await reachable(files.denoPath, "deno"));
  return { nodePath, supervisorPath, preloadPath, preloadImplPath, denoPath, denoReplPath, pythonReplPath };
}
