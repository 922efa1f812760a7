/**
 * sbx from Deno 2: the same SDK through an `npm:` import.
 *   deno run -A examples/deno.ts
 */
import { Sandbox } from "npm:@sbx/client";

await using sb = await Sandbox.create({ timeout: "2m" });
console.log(await sb.sh`echo hello from ${"Deno"} $((6 * 7))`.text());
await sb.fs.writeTextFile("note.txt", "written from Deno");
console.log(await sb.fs.readTextFile("note.txt"));
