// What the bench does through the SDK (@sbx/client): create, spawn, stream stdout, upload, download.
import { MiB, Sandbox, now } from "./env.mjs";

/** `Sandbox.create()` (with `options`: limits) then `spawn("true")` until its exit status: the sandbox and the times. */
export async function sdkColdStart(d, options = {}) {
  const t0 = now();
  const sb = await Sandbox.create({ ...d.opts, ...options });
  const t1 = now();
  const p = await sb.spawn("true");
  const status = await p.status;
  const t2 = now();
  if (!status.success) throw new Error(`true failed in a new sandbox: ${JSON.stringify(status)}`);
  return { sb, total: t2 - t0, create: t1 - t0, firstSpawn: t2 - t1 };
}

export async function sdkTrue(sb, stdio) {
  const t0 = now();
  const p = await sb.spawn("true", stdio === "null" ? { stdout: "null", stderr: "null" } : {});
  const status = await p.status;
  if (!status.success) throw new Error(`true failed: ${JSON.stringify(status)}`);
  return now() - t0;
}

async function drain(stream) {
  let n = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return n;
    n += value.byteLength;
  }
}

export async function sdkStdout(sb, bytes) {
  const t0 = now();
  const p = await sb.spawn("head", { args: ["-c", String(bytes), "/dev/zero"], stderr: "null" });
  const n = await drain(p.stdout);
  await p.status;
  const t = now() - t0;
  if (n !== bytes) throw new Error(`stdout carried ${n} of ${bytes} bytes`);
  return bytes / 1e6 / (t / 1000);
}

function generated(bytes) {
  const chunk = new Uint8Array(MiB).fill(97);
  let left = bytes;
  return new ReadableStream({
    pull(c) {
      if (left <= 0) return c.close();
      const n = Math.min(left, chunk.length);
      left -= n;
      c.enqueue(n === chunk.length ? chunk : chunk.subarray(0, n));
    },
  });
}

export async function sdkUpload(sb, path, bytes) {
  const t0 = now();
  await sb.fs.writeFile(path, generated(bytes));
  const t = now() - t0;
  const size = (await sb.fs.stat(path)).size;
  if (size !== bytes) throw new Error(`uploaded file has ${size} of ${bytes} bytes`);
  return bytes / 1e6 / (t / 1000);
}

/**
 * Reads the file through `fs.readFileStream`. A stream that aborts part way still gives a rate
 * over the bytes that did arrive, and says why it aborted.
 */
export async function sdkDownload(sb, path, bytes) {
  const t0 = now();
  const reader = (await sb.fs.readFileStream(path)).getReader();
  let n = 0;
  let error = null;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.byteLength;
    }
  } catch (err) {
    error = err.message;
  }
  const t = now() - t0;
  if (!error && n !== bytes) error = `ended after ${n} of ${bytes} bytes`;
  return { rate: n / 1e6 / (t / 1000), bytes: n, error };
}

/**
 * The storage's own pace, for comparison with an upload: `dd` inside the sandbox writes `bytes`
 * to a new file beside `path` (ending with fdatasync) and renames it over `path`, as fs.writeFile
 * does with what it receives. MB/s from spawn to exit status.
 */
export async function sandboxDd(sb, path, bytes) {
  const bs = 256 * 1024;
  if (bytes % bs) throw new Error(`sandboxDd writes whole ${bs}-byte blocks, not ${bytes} bytes`);
  const t0 = now();
  const p = await sb.spawn("sh", { args: ["-c", `dd if=/dev/zero of="$1.dd" bs=${bs} count=${bytes / bs} conv=fdatasync status=none && mv "$1.dd" "$1"`, "sh", path], stdout: "null" });
  const st = await p.status;
  const t = now() - t0;
  if (!st.success) throw new Error(`dd into ${path} failed: ${JSON.stringify(st)}`);
  return bytes / 1e6 / (t / 1000);
}

export function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no result after ${ms / 1000} s (hung)`)), ms))),
  ]);
}
