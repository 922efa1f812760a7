/**
 * sbx from Deno 2: the same SDK through an `npm:` import.
 *   deno run -A examples/deno.ts
 */
import { Sandbox } from "npm:@sbx/client";

await using sb = await Sandbox.create({ timeout: "2m" });
// text() is stdout exactly, its trailing newline included (as in @deno/sandbox).
console.log((await sb.sh`echo hello from ${"Deno"} $((6 * 7))`.text()).trimEnd());
await sb.fs.writeTextFile("note.txt", "written from Deno");
console.log(await sb.fs.readTextFile("note.txt"));
await sb.kill(); // leaving the scope only closes the connection; this sandbox has a timeout
