import type { MethodName } from "@sbx/protocol";

/**
 * How the gateway forwards each method. The table is typed over every method of the
 * protocol, so a method added there does not compile here until someone decides its route.
 *
 * - `sandbox`: to the host named in the sandbox id found in the param `field`;
 * - `create`: to a host chosen by placement;
 * - `list`: to every host, results merged;
 * - `local`: answered by the gateway itself;
 * - `host`: a per-host operator method, refused (call it on the daemon);
 * - `refused`: not served through a gateway yet (Unsupported, saying why).
 */
export type Route = { kind: "sandbox"; field: "sandbox" | "id" } | { kind: "create" } | { kind: "list" } | { kind: "local" } | { kind: "host" } | { kind: "refused"; why: string };

const bySandbox: Route = { kind: "sandbox", field: "sandbox" };
const byId: Route = { kind: "sandbox", field: "id" };
/** Volumes, snapshots and root images (image.build makes snapshots) live on one daemon host, and their ids do not name it. */
const volumes: Route = { kind: "refused", why: "volumes and snapshots live on one daemon host and the gateway does not route them yet: call that daemon directly" };

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
  "volume.create": volumes,
  "volume.get": volumes,
  "volume.list": volumes,
  "volume.delete": volumes,
  "volume.resize": volumes,
  "volume.snapshot": volumes,
  "snapshot.get": volumes,
  "snapshot.list": volumes,
  "snapshot.delete": volumes,
  "image.build": volumes,
  "daemon.info": { kind: "host" },
  "daemon.drain": { kind: "host" },
  "rpc.discover": { kind: "local" },
};
