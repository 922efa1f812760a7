/**
 * An agent's loop with state: it works in a Python session and a Deno REPL that remember what
 * earlier steps did, starts a web server in the sandbox, checks it from inside, and hands out a
 * URL to it. Run with `npx tsx agent-runtimes.ts` (SBX_URL/SBX_TOKEN or a local daemon).
 */
import { Sandbox } from "@sbx/client";

// Killed at the end (its REPLs and server with it); a session sandbox besides, should the script fail first.
await using sb = await Sandbox.create({ labels: { example: "agent-runtimes" } });

// Step 1 and 2 of a data task: the session keeps `rows` between the agent's tool calls.
const py = await sb.python.repl();
await py.exec("import statistics\nrows = [3, 1, 4, 1, 5, 9, 2, 6]");
const step = await py.exec("print('rows:', len(rows))\nstatistics.median(rows)");
console.log(`python said ${JSON.stringify(step.stdout)} and returned ${step.value}`);
const oops = await py.exec("rows[100]");
console.log(`a failing step comes back as data: ${oops.error?.type}: ${oops.error?.message.split(": ").slice(1).join(": ")}`);

// The Deno REPL keeps its functions too; a call passes JSON arguments in.
const deno = await sb.deno.repl({ stdout: "null" });
await deno.eval("const greet = (name: string) => `hello, ${name}`;");
console.log(await deno.call("greet", "agent"));

// A server the agent wrote, started, reached privately, then shared at an authenticated URL.
await sb.fs.writeTextFile("server.ts", `Deno.serve({ port: 8000, onListen() {} }, (req) => new Response("served " + new URL(req.url).pathname));\n`);
const server = await sb.deno.run({ entrypoint: "server.ts", stdout: "null", stderr: "null" });
console.log(`server listening: ${await server.httpReady}`);
console.log(`from the SDK: ${await (await sb.fetch("http://localhost:8000/private")).text()}`);
const url = await sb.exposeHttp({ port: 8000 });
console.log(`exposed at ${url.replace(/\/[A-Za-z0-9_-]{32}\/$/, "/<token>/")}`);
console.log(`through the URL: ${await (await fetch(`${url}public`)).text()}`);
console.log(`without the token: ${(await fetch(new URL(url).origin + "/public")).status}`);
await sb.kill();
