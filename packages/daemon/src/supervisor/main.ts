/**
 * The supervisor: the first process inside every sandbox. It runs as the sandbox user and
 * performs the daemon's spawns and file operations there, so every process shares the
 * sandbox's namespaces and the kernel confines every path. It talks to the daemon over
 * its stdin/stdout with the channel framing; nothing else of the host is reachable.
 */
import type { ChildProcess } from "node:child_process";
import { closeSync, readdirSync, readFileSync } from "node:fs";
import { ChannelOp, FrameReader, MAX_CHANNEL_FRAME, type ChannelFrame } from "../channel/framing.js";
import type { SupervisorCall } from "../channel/messages.js";
import { CallError, fsError } from "./errors.js";
import { download, fsOps, readFile, upload, writeFile } from "./fs.js";
import { InStream, Link, OutStream } from "./link.js";
import { killProcess, startProcess } from "./spawn.js";
import { startEgressBridge } from "./bridge.js";

closeInheritedFds();

const link = new Link(process.stdout);
const inStreams = new Map<number, InStream>();
const outStreams = new Map<number, OutStream>();
const children = new Map<number, ChildProcess>();

/**
 * Whatever the daemon's own parent left open without close-on-exec reaches us through bwrap;
 * close it so no user process inherits a host pipe or socket. Node's own fds are all
 * close-on-exec, so this closes only inherited ones.
 */
function closeInheritedFds(): void {
  const O_CLOEXEC = 0o2000000;
  for (const name of readdirSync("/proc/self/fd")) {
    const fd = Number(name);
    if (fd <= 2) continue;
    try {
      const flags = parseInt(/^flags:\s+([0-7]+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"))![1]!, 8);
      if (!(flags & O_CLOEXEC)) closeSync(fd);
    } catch {
      // already closed (the directory fd readdirSync used, or a race): nothing to do
    }
  }
}

function openIn(id: number | null | undefined): InStream | null {
  if (!id) return null;
  const s = new InStream(link, id);
  inStreams.set(id, s);
  s.whenEnded().then(
    () => inStreams.delete(id),
    () => inStreams.delete(id),
  );
  return s;
}

function openOut(id: number | null | undefined): OutStream | null {
  if (!id) return null;
  const s = new OutStream(link, id, () => outStreams.delete(id));
  outStreams.set(id, s);
  return s;
}

async function perform(call: SupervisorCall): Promise<unknown> {
  const p = call.p as Record<string, any>;
  switch (call.m) {
    case "process.spawn": {
      const child = await startProcess({
        cmd: p.cmd,
        args: p.args,
        cwd: p.cwd,
        env: p.env,
        stdin: openIn(p.stdin),
        stdout: openOut(p.stdout),
        stderr: openOut(p.stderr),
      });
      const pid = child.pid!;
      children.set(pid, child);
      child.once("exit", (code, signal) => {
        children.delete(pid);
        link.message({ t: "exit", pid, code, signal });
      });
      return { pid };
    }
    case "process.kill":
      killProcess(children, p.pid, p.signal ?? "SIGTERM");
      return null;
    case "fs.readFile":
      return await readFile(p.path, openOut(p.stream)!);
    case "fs.writeFile":
      return await writeFile(p, openIn(p.stream)!);
    case "fs.upload":
      return await upload(p.path, openIn(p.stream)!);
    case "fs.download":
      return await download(p.path, openOut(p.stream)!);
    default: {
      const op = (fsOps as Record<string, (p: Record<string, any>) => Promise<unknown>>)[call.m];
      if (!op) throw new CallError("InvalidParams", `the supervisor does not implement ${call.m}`);
      return await op(p);
    }
  }
}

function onCall(call: SupervisorCall): void {
  perform(call).then(
    (v) => link.message({ t: "reply", id: call.id, ok: true, v: v ?? null }),
    (err) => {
      const e = fsError(err);
      link.message({ t: "reply", id: call.id, ok: false, code: e.code, message: e.message.slice(0, 8000), ...(e.errno ? { errno: e.errno } : {}) });
    },
  );
}

function onFrame(frame: ChannelFrame): void {
  switch (frame.op) {
    case ChannelOp.Msg:
      onCall(JSON.parse(frame.payload.toString("utf8")) as SupervisorCall);
      break;
    case ChannelOp.Data:
      inStreams.get(frame.id)?.onData(frame.payload);
      break;
    case ChannelOp.End:
      inStreams.get(frame.id)?.onEnd();
      break;
    case ChannelOp.Credit:
      outStreams.get(frame.id)?.onCredit(frame.payload.readUInt32BE(0));
      break;
    case ChannelOp.Abort:
      inStreams.get(frame.id)?.onAbort(frame.payload.toString("utf8"));
      outStreams.get(frame.id)?.onAbort();
      break;
  }
}

const reader = new FrameReader(MAX_CHANNEL_FRAME);
process.stdin.on("data", (data: Buffer) => {
  for (const frame of reader.push(data)) onFrame(frame);
});
// The daemon went away: nothing inside may outlive it.
process.stdin.on("end", () => process.exit(0));
process.stdout.on("error", () => process.exit(0));
process.on("uncaughtException", (err) => {
  process.stderr.write(`supervisor: ${err.stack ?? err}\n`);
});
startEgressBridge(() => link.message({ t: "ready", pid: process.pid }));
