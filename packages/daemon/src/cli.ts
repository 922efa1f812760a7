import { DEFAULT_URL } from "@sbx/protocol";
import { connectFor, createCommand, execCommand, killCommand, logsCommand, lsCommand, netCommand, runCommand, usageCommand } from "./cli/client-commands.js";
import { cpCommand } from "./cli/cp.js";
import { shellCommand } from "./cli/shell.js";
import { describeFailure } from "./cli/errors.js";
import { DAEMON_HELP, daemonCommand } from "./cli/daemon.js";
import { doctorCommand } from "./cli/doctor-daemon.js";
import { imageCommand, snapshotCommand, VOLUME_HELP, volumeCommand } from "./cli/volumes.js";
import { SBX_VERSION } from "./version.js";

const HELP = `sbx: run untrusted code in sandboxes on this machine

${DAEMON_HELP}
sbx run [--allow-net HOST]... [--secret NAME=ENVVAR@HOST[,HOST]]... [--memory 1GiB] [--cpus 1]
        [--disk 10GiB] [--timeout 5m] [--env K=V]... [--label K=V]... [--upload LOCAL:REMOTE]...
        [--volume /PATH=VOLUME]... -- CMD [ARGS...]
  Runs CMD in a fresh sandbox with this terminal's stdio; exits with its exit code.
  Sizes: 512MiB, 1.5G, 2GB (case-insensitive; K/M/G/T and KiB.. are 1024-based, KB/MB/GB/TB 1000-based).
  Durations: 90s, 5m, 2h, 1h30m.
sbx create [same options as run]        Prints the new sandbox's id, after any --upload (default --timeout 30m; not "session").
sbx exec ID -- CMD [ARGS...]            Runs CMD in a running sandbox.
sbx shell ID [-- CMD [ARGS...]]         An interactive terminal (default bash) in a running sandbox: raw mode,
                                        follows this window's size; exits with the command's status.
sbx ls [--json] [--label K=V]...        Lists this token's sandboxes.
sbx kill ID [ID...]                     Destroys sandboxes.
sbx cp [--max-bytes SIZE] SRC DEST      Copies files or trees; one side is ID:/path; into DEST when it is a directory.
                                        A download writes at most SIZE (default 10GiB; sizes as the sandbox declares them).
sbx usage ID [--json]                   CPU, memory, disk and wall time used (also shortly after it ended).
sbx usage --tenant NAME|--all [--since 30d|DATE] [--until DATE] [--format table|csv|json] [--state-dir DIR]
                                        What tenants used, from the state dir's ledger (on the daemon's host).
sbx net ID [--allow HOST]...            Replaces what a running sandbox may reach (no --allow: nothing).
sbx logs ID [--net] [--json]            Recent egress decisions: host, port, allowed or why not.
${VOLUME_HELP}
sbx doctor [--url URL] [--token T] [--host-only]
                                        Checks that this host can isolate sandboxes, then (when a daemon answers
                                        at --url, SBX_URL or the default URL) that it works end to end.

sbx --version                           Prints this CLI's version.

Client commands take --url and --token (default SBX_URL, SBX_TOKEN, the token file). With neither
--url nor SBX_URL, run, create and ls start a daemon at ws://127.0.0.1:7070 when none runs (and say so).
SBX_DEBUG=1 prints the stack of an unexpected error.`;

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  daemon: daemonCommand,
  run: runCommand,
  create: createCommand,
  exec: execCommand,
  shell: (args) => shellCommand(args, (values) => connectFor(values, "existing")),
  ls: lsCommand,
  kill: killCommand,
  cp: cpCommand,
  usage: usageCommand,
  net: netCommand,
  logs: logsCommand,
  doctor: doctorCommand,
  volume: volumeCommand,
  snapshot: snapshotCommand,
  image: imageCommand,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "--version" || name === "-V" || name === "version") {
    process.stdout.write(`sbx ${SBX_VERSION}\n`);
    return 0;
  }
  if (!name || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(HELP + "\n");
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`sbx: unknown command '${name}'\n\n${HELP}\n`);
    return 2;
  }
  // `sbx run --help` and the like (before any `--`, after which the words are the command's).
  const own = rest.includes("--") ? rest.slice(0, rest.indexOf("--")) : rest;
  if (own.includes("--help") || own.includes("-h")) {
    process.stdout.write(HELP + "\n");
    return 0;
  }
  try {
    return await command(rest);
  } catch (err) {
    const { line, code } = describeFailure(err, name, urlOf(own));
    process.stderr.write(`sbx ${name}: ${line}\n`);
    if (process.env.SBX_DEBUG === "1" && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    return code;
  }
}

/** The daemon URL a client command talks to, for its error messages. */
function urlOf(args: string[]): string {
  const i = args.findIndex((a) => a === "--url" || a.startsWith("--url="));
  if (i >= 0) return args[i]!.startsWith("--url=") ? args[i]!.slice(6) : (args[i + 1] ?? DEFAULT_URL);
  return process.env.SBX_URL ?? DEFAULT_URL;
}

main(process.argv.slice(2)).then(
  // Exit explicitly: a stdin still being forwarded must not keep the CLI alive (stdio pipes are synchronous on Linux).
  (code) => process.exit(code),
  (err) => {
    // Only a failure outside any command gets here (main catches theirs): still one line.
    process.stderr.write(`sbx: ${err instanceof Error ? err.message : String(err)}\n`);
    if (process.env.SBX_DEBUG === "1" && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    process.exit(1);
  },
);
