#!/usr/bin/env node
// Diagnostic for the stream path: CPU seconds each party spends moving N MiB (BENCH_MIB, default
// 1024) through stdout, upload and download: this process (the client), the daemon, and the
// sandbox (its cgroup: supervisor + the process). Prints one line per transfer; writes nothing.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { MiB, Sandbox, now } from "./lib/env.mjs";
import { startDaemon } from "./lib/daemon.mjs";
import { sdkDownload, sdkStdout, sdkUpload } from "./lib/sdk.mjs";
import { startWsPeer } from "./lib/ws.mjs";

const TICK = 100; // USER_HZ
const procCpu = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) / TICK;
};
const cgCpu = (dir) => Number(readFileSync(join(dir, "cpuacct.usage"), "utf8")) / 1e9;

const bytes = Number(process.env.BENCH_MIB ?? 1024) * MiB;
const d = await startDaemon({ warmPool: 0 });
try {
  const sb = await Sandbox.create(d.opts);
  const base = join("/sys/fs/cgroup/cpuacct", d.cgroupName);
  const cg = join(base, readdirSync(base, { withFileTypes: true }).find((e) => e.isDirectory()).name);
  const only = process.env.BENCH_ONLY; // stdout, upload or download: just that one (for profiling)
  const run = async (name, fn) => {
    if (only && name !== only && !(only === "download" && name === "upload")) return;
    const c0 = process.cpuUsage(), d0 = procCpu(d.proc.pid), s0 = cgCpu(cg), t0 = now();
    await fn();
    const wall = (now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    const client = (c.user + c.system) / 1e6, daemon = procCpu(d.proc.pid) - d0, sandbox = cgCpu(cg) - s0;
    console.log(`${name.padEnd(8)} ${(bytes / 1e6 / wall).toFixed(0).padStart(5)} MB/s wall ${wall.toFixed(2)} s; cpu s: client ${client.toFixed(2)} daemon ${daemon.toFixed(2)} sandbox ${sandbox.toFixed(2)}`);
  };
  // The floor: raw ws loopback, 64 KiB frames (ws-peer.mjs is the server; "daemon" is its CPU here).
  const peer = await startWsPeer();
  const floor = async (name, fn) => {
    const c0 = process.cpuUsage(), p0 = procCpu(peer.pid), t0 = now();
    await fn();
    const wall = (now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    console.log(`${name.padEnd(8)} ${(bytes / 1e6 / wall).toFixed(0).padStart(5)} MB/s wall ${wall.toFixed(2)} s; cpu s: client ${((c.user + c.system) / 1e6).toFixed(2)} server ${(procCpu(peer.pid) - p0).toFixed(2)}`);
  };
  await sdkStdout(sb, 64 * MiB);
  for (let i = 0; i < 2; i++) {
    if (!only) await floor("ws down", () => peer.download(bytes, 64 * 1024));
    if (!only) await floor("ws up", () => peer.upload(bytes, 64 * 1024));
    await run("stdout", () => sdkStdout(sb, bytes));
    await run("upload", () => sdkUpload(sb, "/home/user/cpu.bin", bytes));
    await run("download", () => sdkDownload(sb, "/home/user/cpu.bin", bytes));
  }
  await sb.kill();
  await peer.stop();
} finally {
  await d.stop();
}
