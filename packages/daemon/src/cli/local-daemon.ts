/**
 * The CLI's side of the embedded default. With no --url and no SBX_URL, client commands talk to
 * the local daemon at the default URL. The SDK would start one silently; a CLI user should know
 * that a long-lived process now runs, so the CLI starts it itself and says so on stderr. Commands
 * that act on an existing sandbox start nothing: a fresh daemon cannot hold the sandbox they name.
 */
import { createConnection } from "node:net";
import { DEFAULT_URL } from "@sbx/protocol";
import { startInBackground, stopHint } from "./daemon.js";
import { CliError } from "./errors.js";

function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port }, () => (socket.destroy(), resolve(true)));
    socket.on("error", () => resolve(false));
  });
}

/**
 * Makes sure a daemon answers at the default URL when the command will use it: `start` for
 * commands that can use a fresh one (run, create, ls), otherwise an error saying none runs.
 */
export async function ensureLocalDaemon(values: { url?: string }, mode: "start" | "existing"): Promise<void> {
  if (values.url || process.env.SBX_URL) return;
  const { hostname, port } = new URL(DEFAULT_URL);
  if (await listening(hostname, Number(port))) return;
  if (mode === "existing") {
    throw new CliError(`no sbx daemon runs at ${DEFAULT_URL}, so it has no sandboxes: start one with \`sbx daemon start\`, or point --url (or SBX_URL) at the daemon that has them`);
  }
  const started = await startInBackground(["--listen", `${hostname}:${port}`]);
  if (!started.ok) throw new CliError(`no sbx daemon ran at ${DEFAULT_URL} and starting one failed: ${started.message}`);
  if (started.already) {
    // A daemon holds the default state dir but listens elsewhere: say where rather than guess.
    throw new CliError(`the sbx daemon of ${started.stateDir} (pid ${started.pid}) listens at ${started.url ?? "an address it has not written yet"}, not ${DEFAULT_URL}: pass --url or set SBX_URL`);
  }
  process.stderr.write(`sbx: started an sbx daemon in the background (pid ${started.pid}, ${started.url}, log ${started.logPath}); it keeps running after this command: stop it with \`${stopHint(started.stateDir)}\`\n`);
}
