/**
 * `sbx shell ID [-- CMD [ARGS...]]`: a real terminal into a running sandbox. The command (default
 * bash) runs on a pty inside; this terminal goes raw so every key (Ctrl-C, arrows, Tab) reaches
 * it, its size follows this window (SIGWINCH -> resize), and the exit status is the command's.
 */
import { Readable, Writable } from "node:stream";
import { Sandbox } from "@sbx/client";
import { optionsThenCommand, parse, UsageError } from "./args.js";

const USAGE = "sbx shell ID [-- CMD [ARGS...]]";

export async function shellCommand(args: string[], connect: (values: { url?: string; token?: string }) => Promise<{ url?: string; token?: string }>): Promise<number> {
  const options = { url: { type: "string" }, token: { type: "string" } } as const;
  // The command is optional here (bash), so without a -- the words are all this command's own.
  const { values, positionals, command } = args.includes("--") ? optionsThenCommand(args, options, USAGE, 1) : { ...parse(args, options), command: [] as string[] };
  if (positionals.length !== 1) throw new UsageError(`usage: ${USAGE}`);
  const sb = await Sandbox.connect(positionals[0]!, await connect(values as { url?: string; token?: string }));
  const stdin = process.stdin;
  const tty = stdin.isTTY === true && process.stdout.isTTY === true;
  const size = () => ({ cols: process.stdout.columns || 80, rows: process.stdout.rows || 24 });
  try {
    const [cmd = "bash", ...rest] = command;
    const child = await sb.spawn(cmd, { args: rest, pty: true, ...size(), stdin: "piped", env: { TERM: process.env.TERM || "xterm-256color" } });
    const onResize = () => void child.resize(size().cols, size().rows).catch(() => {});
    if (tty) {
      stdin.setRawMode(true);
      process.stdout.on("resize", onResize);
    }
    const out = child.stdout!.pipeTo(Writable.toWeb(process.stdout) as WritableStream<Uint8Array>, { preventClose: true }).catch(() => {});
    (Readable.toWeb(stdin) as ReadableStream<Uint8Array>).pipeTo(child.stdin!).catch(() => {});
    try {
      const status = await child.status;
      await out;
      return status.code;
    } finally {
      if (tty) {
        process.stdout.off("resize", onResize);
        stdin.setRawMode(false);
      }
      stdin.destroy();
    }
  } finally {
    await sb.close();
  }
}
