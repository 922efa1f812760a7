import { Client, type Snapshot, type Volume } from "@sbx/client";
import { parse, UsageError } from "./args.js";
import { ensureLocalDaemon } from "./local-daemon.js";

export const VOLUME_HELP = `sbx volume create SLUG --capacity 1GiB [--from SNAPSHOT]
                                        Makes a volume (an ext4 file system of that size; root-mode daemons).
sbx volume ls [--search S] [--json]     Lists this token's volumes: size, use, which sandbox has it.
sbx volume get ID|SLUG [--json]         One volume.
sbx volume resize ID|SLUG CAPACITY      Grows or shrinks it (not while mounted).
sbx volume snapshot ID|SLUG SNAPSHOT-SLUG
                                        Takes a read-only snapshot (not while mounted).
sbx volume rm ID|SLUG...                Deletes volumes and their data (not while mounted).
sbx snapshot ls [--search S] [--json] | get ID|SLUG [--json] | rm ID|SLUG...
  Mount with run/create --volume /data=SLUG (a snapshot mounts read-only).
sbx image build --slug NAME [--packages python3,git] [--suite bookworm|trixie] [--capacity 4GiB] [--json]
                                        Builds a root image from Debian's packages (mmdebstrap on the
                                        daemon host, ~15-60 s): a read-only snapshot with isBootable.
sbx image ls [--search S] [--json]      Lists this token's root images (delete one with sbx snapshot rm).`;

const CONNECT = { url: { type: "string" }, token: { type: "string" } } as const;
const MIB = 2 ** 20;

async function clientFor(values: { url?: string; token?: string }): Promise<Client> {
  if (values.url !== undefined && !/^wss?:\/\/[^/]/.test(values.url)) throw new UsageError(`--url must be a ws:// or wss:// URL, got '${values.url}'`);
  await ensureLocalDaemon(values, "existing");
  return new Client({ ...(values.url ? { url: values.url } : {}), ...(values.token ? { token: values.token } : {}) });
}

const mib = (bytes: number) => `${(bytes / MIB).toFixed(1)} MiB`;

function volumeJson(v: Volume) {
  const { id, slug, region, capacity, estimatedAllocatedSize, estimatedFlattenedSize, isBootable, baseSnapshot, mountedBy, createdAt } = v;
  return { id, slug, region, capacity, estimatedAllocatedSize, estimatedFlattenedSize, isBootable, baseSnapshot, mountedBy, createdAt };
}

function snapshotJson(s: Snapshot) {
  const { id, slug, region, allocatedSize, flattenedSize, isBootable, build, volume, usedBy, createdAt } = s;
  return { id, slug, region, allocatedSize, flattenedSize, isBootable, build, volume, usedBy, createdAt };
}

function table(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) process.stdout.write(r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd() + "\n");
}

const volumeRow = (v: Volume) => [v.id, v.slug, mib(v.capacity), mib(v.estimatedFlattenedSize), mib(v.estimatedAllocatedSize), v.mountedBy ?? "-"];
const snapshotRow = (s: Snapshot) => [s.id, s.slug, s.volume?.slug ?? "-", mib(s.flattenedSize), mib(s.allocatedSize), s.usedBy.join(",") || "-"];
const VOLUME_HEAD = ["ID", "SLUG", "CAPACITY", "USED", "ON DISK", "MOUNTED BY"];
const SNAPSHOT_HEAD = ["ID", "SLUG", "OF VOLUME", "USED", "ON DISK", "MOUNTED BY"];

/** `sbx volume ...` */
export async function volumeCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parse(rest, { ...CONNECT, capacity: { type: "string" }, from: { type: "string" }, search: { type: "string" }, json: { type: "boolean" } });
  const usage = () => new UsageError(`usage:\n${VOLUME_HELP}`);
  switch (sub) {
    case "create": {
      if (positionals.length !== 1 || !values.capacity) throw usage();
      const capacity = /^\d+$/.test(values.capacity) ? Number(values.capacity) : values.capacity;
      const v = await (await clientFor(values)).volumes.create({ slug: positionals[0]!, capacity, ...(values.from ? { from: values.from } : {}) });
      process.stdout.write(values.json ? `${JSON.stringify(volumeJson(v), null, 2)}\n` : `${v.id}\n`);
      return 0;
    }
    case "ls": {
      const client = await clientFor(values);
      const all: Volume[] = [];
      for await (const v of await client.volumes.list(values.search ? { search: values.search } : {})) all.push(v);
      if (values.json) process.stdout.write(`${JSON.stringify(all.map(volumeJson), null, 2)}\n`);
      else table([VOLUME_HEAD, ...all.map(volumeRow)]);
      return 0;
    }
    case "get": {
      if (positionals.length !== 1) throw usage();
      const v = await (await clientFor(values)).volumes.get(positionals[0]!);
      if (!v) throw new UsageError(`no volume '${positionals[0]}'`);
      if (values.json) process.stdout.write(`${JSON.stringify(volumeJson(v), null, 2)}\n`);
      else table([VOLUME_HEAD, volumeRow(v)]);
      return 0;
    }
    case "resize": {
      if (positionals.length !== 2) throw usage();
      const capacity = /^\d+$/.test(positionals[1]!) ? Number(positionals[1]) : positionals[1]!;
      const v = await (await clientFor(values)).volumes.resize(positionals[0]!, capacity);
      process.stdout.write(`${v.slug}: ${v.capacity} bytes\n`);
      return 0;
    }
    case "snapshot": {
      if (positionals.length !== 2) throw usage();
      const s = await (await clientFor(values)).volumes.snapshot(positionals[0]!, { slug: positionals[1]! });
      process.stdout.write(`${s.id}\n`);
      return 0;
    }
    case "rm": {
      if (positionals.length === 0) throw usage();
      const client = await clientFor(values);
      for (const ref of positionals) await client.volumes.delete(ref);
      return 0;
    }
    default:
      throw usage();
  }
}

/** `sbx snapshot ...` */
export async function snapshotCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parse(rest, { ...CONNECT, search: { type: "string" }, json: { type: "boolean" } });
  const usage = () => new UsageError(`usage:\n${VOLUME_HELP}`);
  switch (sub) {
    case "ls": {
      const client = await clientFor(values);
      const all: Snapshot[] = [];
      for await (const s of await client.snapshots.list(values.search ? { search: values.search } : {})) all.push(s);
      if (values.json) process.stdout.write(`${JSON.stringify(all.map(snapshotJson), null, 2)}\n`);
      else table([SNAPSHOT_HEAD, ...all.map(snapshotRow)]);
      return 0;
    }
    case "get": {
      if (positionals.length !== 1) throw usage();
      const s = await (await clientFor(values)).snapshots.get(positionals[0]!);
      if (!s) throw new UsageError(`no snapshot '${positionals[0]}'`);
      if (values.json) process.stdout.write(`${JSON.stringify(snapshotJson(s), null, 2)}\n`);
      else table([SNAPSHOT_HEAD, snapshotRow(s)]);
      return 0;
    }
    case "rm": {
      if (positionals.length === 0) throw usage();
      const client = await clientFor(values);
      for (const ref of positionals) await client.snapshots.delete(ref);
      return 0;
    }
    default:
      throw usage();
  }
}

const IMAGE_HEAD = ["ID", "SLUG", "SUITE", "PACKAGES", "USED", "ON DISK", "MOUNTED BY"];
const imageRow = (s: Snapshot) => [s.id, s.slug, s.build?.suite ?? "-", s.build?.packages.join(",") || "-", mib(s.flattenedSize), mib(s.allocatedSize), s.usedBy.join(",") || "-"];

/** `sbx image ...` */
export async function imageCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parse(rest, {
    ...CONNECT, slug: { type: "string" }, packages: { type: "string" }, suite: { type: "string" }, capacity: { type: "string" }, search: { type: "string" }, json: { type: "boolean" },
  });
  const usage = () => new UsageError(`usage:\n${VOLUME_HELP}`);
  switch (sub) {
    case "build": {
      if (positionals.length !== 0 || !values.slug) throw usage();
      const packages = values.packages === undefined ? [] : values.packages.split(",").map((p: string) => p.trim()).filter((p: string) => p !== "");
      if (values.suite !== undefined && values.suite !== "bookworm" && values.suite !== "trixie") throw new UsageError(`--suite must be bookworm or trixie, got '${values.suite}'`);
      const capacity = values.capacity === undefined ? undefined : /^\d+$/.test(values.capacity) ? Number(values.capacity) : values.capacity;
      const client = await clientFor(values);
      const what = `Debian ${values.suite ?? "bookworm"} minbase${packages.length ? ` + ${packages.join(", ")}` : ""}`;
      process.stderr.write(`building ${values.slug}: ${what} (this takes ~15-60 s)\n`);
      const started = performance.now();
      const s = await client.images.build({
        slug: values.slug,
        ...(packages.length ? { packages } : {}),
        ...(values.suite ? { suite: values.suite as "bookworm" | "trixie" } : {}),
        ...(capacity !== undefined ? { capacity } : {}),
        onProgress: (line) => process.stderr.write(`  ${line}\n`),
      });
      process.stderr.write(`built ${s.slug} in ${((performance.now() - started) / 1000).toFixed(1)} s: ${mib(s.flattenedSize)} in use\n`);
      process.stdout.write(values.json ? `${JSON.stringify(snapshotJson(s), null, 2)}\n` : `${s.id}\n`);
      return 0;
    }
    case "ls":
    case "list": {
      if (positionals.length !== 0) throw usage();
      const all = await (await clientFor(values)).images.list(values.search ? { search: values.search } : {});
      if (values.json) process.stdout.write(`${JSON.stringify(all.map(snapshotJson), null, 2)}\n`);
      else table([IMAGE_HEAD, ...all.map(imageRow)]);
      return 0;
    }
    default:
      throw usage();
  }
}

/** `--volume PATH=VOLUME` of run and create. */
export function volumesOf(list: string[] | undefined): Record<string, string> | undefined {
  if (!list?.length) return undefined;
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.lastIndexOf("=");
    if (eq <= 0 || eq === item.length - 1) throw new UsageError(`--volume expects PATH=VOLUME (an absolute path inside, then a volume or snapshot id or slug), got '${item}'`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}
