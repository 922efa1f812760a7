import type { MethodName } from "@sbx/protocol";

/**
 * How the gateway forwards each method. The table is typed over every method of the
 * protocol, so a method added there does not compile here until someone decides its route.
 *
 * - `sandbox`: to the host named in the sandbox id found in the param `field`;
 * - `create`: to a host chosen by placement;
 * - `list`: to every host, results merged;
 * - `volume`: volumes and snapshots (session/volumes.ts): `byRef` to the host holding the one
 *   named (by id, or by slug asked of every host), `new` where placement (or the snapshot made
 *   from) puts it, `list` from every host, merged and paged;
 * - `local`: answered by the gateway itself;
 * - `host`: a per-host operator method, refused (call it on the daemon).
 */
export type Route =
  | { kind: "sandbox"; field: "sandbox" | "id" }
  | { kind: "create" }
  | { kind: "list" }
  | { kind: "volume"; how: "byRef" | "new" | "list" }
  | { kind: "local" }
  | { kind: "host" };

const bySandbox: Route = { kind: "sandbox", field: "sandbox" };
const byId: Route = { kind: "sandbox", field: "id" };
const byRef: Route = { kind: "volume", how: "byRef" };
const made: Route = { kind: "volume", how: "new" };
const listed: Route = { kind: "volume", how: "list" };

export const ROUTES: { readonly [M in MethodName]: Route } = {
  "sandbox.create": { kind: "create" },
  "sandbox.connect": byId,
  "sandbox.list": { kind: "list" },
  "sandbox.kill": byId,
  "sandbox.extendTimeout": byId,
  "sandbox.usage": byId,
  "sandbox.setAllowNet": byId,
  "sandbox.egressLog": byId,
  "sandbox.watchNetwork": byId,
  "sandbox.snapshot": byId,
  "process.spawn": bySandbox,
  "process.kill": bySandbox,
  "process.resize": bySandbox,
  "process.ports": bySandbox,
  "process.list": bySandbox,
  "process.attach": bySandbox,
  // The URL names the host the sandbox runs on (its exposure listens there), not the gateway.
  "net.exposeHttp": bySandbox,
  "net.connect": bySandbox,
  "repl.start": bySandbox,
  "repl.eval": bySandbox,
  "repl.call": bySandbox,
  "repl.close": bySandbox,
  "fs.readFile": bySandbox,
  "fs.writeFile": bySandbox,
  "fs.stat": bySandbox,
  "fs.lstat": bySandbox,
  "fs.readDir": bySandbox,
  "fs.mkdir": bySandbox,
  "fs.remove": bySandbox,
  "fs.rename": bySandbox,
  "fs.copyFile": bySandbox,
  "fs.chmod": bySandbox,
  "fs.symlink": bySandbox,
  "fs.readLink": bySandbox,
  "fs.realPath": bySandbox,
  "fs.makeTempDir": bySandbox,
  "fs.upload": bySandbox,
  "fs.download": bySandbox,
  "fs.makeTempFile": bySandbox,
  "fs.link": bySandbox,
  "fs.truncate": bySandbox,
  "fs.umask": bySandbox,
  "fs.utime": bySandbox,
  "fs.chown": bySandbox,
  "fs.open": bySandbox,
  "fs.fileRead": bySandbox,
  "fs.fileWrite": bySandbox,
  "fs.fileSeek": bySandbox,
  "fs.fileStat": bySandbox,
  "fs.fileTruncate": bySandbox,
  "fs.fileSync": bySandbox,
  "fs.fileUtime": bySandbox,
  "fs.fileLock": bySandbox,
  "fs.fileUnlock": bySandbox,
  "fs.fileClose": bySandbox,
  "env.get": bySandbox,
  "env.set": bySandbox,
  "env.delete": bySandbox,
  "env.toObject": bySandbox,
  "volume.create": made,
  "volume.get": byRef,
  "volume.list": listed,
  "volume.delete": byRef,
  "volume.resize": byRef,
  "volume.snapshot": byRef,
  "snapshot.get": byRef,
  "snapshot.list": listed,
  "snapshot.delete": byRef,
  "image.build": made,
  "daemon.info": { kind: "host" },
  "daemon.drain": { kind: "host" },
  "rpc.discover": { kind: "local" },
};
