import { SandboxError } from "@sbx/client";
import { UsageError } from "./cli/args.js";
import { createCommand, cpCommand, execCommand, killCommand, logsCommand, lsCommand, netCommand, runCommand, usageCommand } from "./cli/client-commands.js";
import { DAEMON_HELP, daemonCommand } from "./cli/daemon.js";
import { checkHost, formatChecks } from "./doctor.js";
import { SBX_VERSION } from "./version.js";

const HELP = `sbx: run untrusted code in sandboxes on this machine

${DAEMON_HELP}
sbx run [--allow-net HOST]... [--secret NAME=ENVVAR@HOST[,HOST]]... [--memory 1GiB] [--cpus 1]
        [--disk 10GiB] [--timeout 5m] [--env K=V]... [--label K=V]... [--upload LOCAL:REMOTE]... -- CMD [ARGS...]
  Runs CMD in a fresh sandbox with this terminal's stdio; exits with its exit code.
sbx create [same options as run]        Prints the new sandbox's id (default --timeout 30m).
sbx exec ID -- CMD [ARGS...]            Runs CMD in a running sandbox.
sbx ls [--json] [--label K=V]...        Lists this token's sandboxes.
sbx kill ID [ID...]                     Destroys sandboxes.
sbx cp SRC DEST                         Copies files or trees; one side is ID:/path.
sbx usage ID [--json]                   CPU, memory, disk and wall time used (also shortly after it ended).
sbx net ID [--allow HOST]...            Replaces what a running sandbox may reach (no --allow: nothing).
sbx logs ID --net [--json]              Recent egress decisions: host, port, allowed or why not.
sbx doctor                              Checks that this host can isolate sandboxes.

sbx --version                           Prints this CLI's version.

Client commands take --url and --token (default SBX_URL, SBX_TOKEN, the token file).`;

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  daemon: daemonCommand,
  run: runCommand,
  create: createCommand,
  exec: execCommand,
  ls: lsCommand,
  kill: killCommand,
  cp: cpCommand,
  usage: usageCommand,
  net: netCommand,
  logs: logsCommand,
  doctor: async () => {
    const rootMode = process.getuid?.() === 0;
    const checks = checkHost({ trialUid: rootMode ? 200000 : null, rootMode });
    process.stdout.write(formatChecks(checks) + "\n");
    return checks.every((c) => c.ok) ? 0 : 1;
  },
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
    if (err instanceof UsageError) {
      process.stderr.write(`sbx ${name}: ${err.message}\n`);
      return 2;
    }
    if (err instanceof SandboxError) {
      process.stderr.write(`sbx ${name}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

main(process.argv.slice(2)).then(
  // Exit explicitly: a stdin still being forwarded must not keep the CLI alive (stdio pipes are synchronous on Linux).
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`sbx: ${err?.stack ?? err}\n`);
    process.exitCode = 1;
  },
);
