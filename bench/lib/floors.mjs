// The floors: bwrap with the daemon's own argv started directly, and a local child_process.spawn.
import { spawn } from "node:child_process";
import { chmodSync, chownSync, closeSync, mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import { now } from "./env.mjs";
import { FLOOR_DIRS, withCommand } from "./capture.mjs";
import { waitNoSandboxProcs } from "./proc.mjs";

function floorDir(uid, dest, mode) {
  const dir = join(FLOOR_DIRS, String(uid), dest.replace(/\//g, "_"));
  mkdirSync(dir, { recursive: true });
  chmodSync(FLOOR_DIRS, 0o755);
  chmodSync(join(FLOOR_DIRS, String(uid)), 0o755);
  chownSync(dir, uid, uid);
  chmodSync(dir, mode);
  return dir;
}

/**
 * bwrap with the captured argv as host uid `uid`, with the fd table launcher.ts gives it (stdin
 * and stdout are the supervisor's channel): through node's uid option, or behind
 * `capture.prefix` (which drops to it).
 */
export function spawnRawBwrap(capture, uid) {
  const stdio = ["pipe", "pipe", "pipe"];
  const opened = [];
  const feeds = [];
  for (const { fd, source } of capture.fds) {
    while (stdio.length <= fd) stdio.push("ignore");
    if (source.kind === "data") {
      stdio[fd] = "pipe";
      feeds.push([fd, source.data]);
    } else {
      const path = source.kind === "file" ? source.path : floorDir(uid, source.dest, source.mode);
      const h = openSync(path, "r");
      opened.push(h);
      stdio[fd] = h;
    }
  }
  try {
    const child = capture.prefix
      ? spawn(capture.prefix[0], [...capture.prefix.slice(1), capture.bwrap, ...capture.args], { stdio, env: {} })
      : spawn(capture.bwrap, capture.args, { stdio, uid, gid: uid, env: {} });
    // a bwrap that dies early resets its pipes: that must not take the bench down
    for (const stream of child.stdio) stream?.on?.("error", () => {});
    for (const [fd, data] of feeds) child.stdio[fd].end(data);
    return child;
  } finally {
    for (const h of opened) closeSync(h);
  }
}

/** bwrap + supervisor until the supervisor's first byte (its "ready" frame) arrives. */
export async function rawSupervisorStart(capture, uid) {
  const t0 = now();
  const child = spawnRawBwrap(capture, uid);
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  const exited = new Promise((r) => child.once("exit", r));
  await Promise.race([
    new Promise((r) => child.stdout.once("data", r)),
    exited.then(() => { throw new Error(`raw bwrap exited before the supervisor spoke: ${err}`); }),
  ]);
  const t = now() - t0;
  child.kill("SIGKILL");
  await exited;
  await waitNoSandboxProcs(uid);
  return t;
}

/** bwrap with the same argv running `command` (default /usr/bin/true), until it has exited. */
export async function rawBwrapTrue(capture, uid, command = ["/usr/bin/true"]) {
  return (await rawBwrapRun(capture, uid, command)).t;
}

/** The same, also returning what the command wrote to stdout. */
export async function rawBwrapRun(capture, uid, command, { wait = true } = {}) {
  const t0 = now();
  const child = spawnRawBwrap(withCommand(capture, command), uid);
  let err = "";
  let out = "";
  child.stderr.on("data", (d) => (err += d));
  child.stdout.on("data", (d) => (out += d));
  const closed = new Promise((r) => child.once("close", r));
  const [code] = await new Promise((r) => child.once("exit", (...a) => r(a)));
  const t = now() - t0;
  await closed;
  if (code !== 0) throw new Error(`raw bwrap ${command.join(" ").slice(0, 80)} exited ${code}: ${err}`);
  if (wait) await waitNoSandboxProcs(uid);
  return { t, out };
}

/** `uids.length` bare bwrap launches of `/usr/bin/true` (same argv) at once: the wall time until all have exited. */
export async function rawBwrapParallel(capture, uids) {
  const t0 = now();
  await Promise.all(uids.map((uid) => rawBwrapRun(capture, uid, ["/usr/bin/true"], { wait: false })));
  const t = now() - t0;
  for (const uid of uids) await waitNoSandboxProcs(uid);
  return t;
}

export function localTrue(stdio) {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const child = spawn("/bin/true", [], { stdio });
    child.once("error", reject);
    child.once("exit", () => resolve(now() - t0));
  });
}
