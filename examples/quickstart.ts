/**
 * sbx quick start: a sandbox, a process with streaming output, files in and out.
 * Run with `pnpm quickstart` (starts a local daemon if none is running).
 */
import { mkdtemp, readFile, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Sandbox } from "@sbx/client";

await using sb = await Sandbox.create({ timeout: "5m", labels: { example: "quickstart" } });
console.log(`created ${sb.id}`);

// A one-liner: every ${} is shell-escaped.
const who = (await sb.sh`echo "$(id -un) on $(hostname), kernel $(uname -r)"`.text()).trimEnd(); // stdout exactly: trim its newline
console.log(who);

// Code an agent wrote, run with live output.
await sb.fs.writeTextFile("fib.py", "import sys\na, b = 0, 1\nfor _ in range(int(sys.argv[1])):\n    print(a, flush=True)\n    a, b = b, a + b\n");
const child = await sb.spawn("python3", { args: ["fib.py", "10"] });
const lines: string[] = [];
for await (const chunk of child.stdout!.pipeThrough(new TextDecoderStream())) lines.push(...chunk.trim().split("\n"));
console.log(`fib: ${lines.join(" ")} (exit ${(await child.status).code})`);

// Whole directory trees move as tar streams, symlinks and all.
const local = await mkdtemp(join(tmpdir(), "sbx-quickstart-"));
await mkdir(join(local, "project"));
await writeFile(join(local, "project", "data.csv"), "x,y\n1,2\n3,4\n");
await sb.fs.upload(join(local, "project"), "/home/user/project");
const sum = (await sb.sh`cd project && python3 -c ${"import csv; print(sum(int(r['y']) for r in csv.DictReader(open('data.csv'))))"} | tee total.txt`.text()).trimEnd();
console.log(`sum of y computed in the sandbox: ${sum}`);
await sb.fs.download("/home/user/project", join(local, "result"));
console.log(`downloaded total.txt: ${(await readFile(join(local, "result", "total.txt"), "utf8")).trim()}`);

// Failures are typed errors carrying the exit status.
const res = await sb.sh`cat /etc/shadow`.noThrow();
console.log(`reading /etc/shadow inside: exit ${res.status.code} (${res.stderrText?.trim()})`);
// Leaving the scope only closes the connection (as in @deno/sandbox): a timed sandbox would live on until its timeout.
await sb.kill();
console.log("done: the sandbox is destroyed");
