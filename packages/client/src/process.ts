import type { SignalName } from "@sbx/protocol";
import { collectBytes } from "./bytes.js";
import { ErrorCodes } from "@sbx/protocol";
import { Connection } from "./connection.js";
import { RpcError } from "./errors.js";
import type { CommandOutput, ExitStatus } from "./types.js";

function collect(stream: ReadableStream<Uint8Array> | null): Promise<Uint8Array | null> {
  return stream ? collectBytes(stream) : Promise.resolve(null);
}

const decoder = new TextDecoder();

/**
 * A process running in a sandbox, from `sandbox.spawn`. Disposing it (`await using`) kills it
 * and waits for it to exit.
 */
export class ChildProcess implements AsyncDisposable {
  /** @internal */
  constructor(
    private readonly conn: Connection,
    private readonly sandbox: string,
    /** Process id inside the sandbox. */
    readonly pid: number,
    /** The process's stdin when spawned with `stdin: "piped"`; close it to send EOF. */
    readonly stdin: WritableStream<Uint8Array> | null,
    /** stdout when spawned with `stdout: "piped"` (the default). */
    readonly stdout: ReadableStream<Uint8Array> | null,
    /** stderr when spawned with `stderr: "piped"` (the default). */
    readonly stderr: ReadableStream<Uint8Array> | null,
    /** Resolves when the process exits. */
    readonly status: Promise<ExitStatus>,
  ) {
    if (!(conn instanceof Connection)) throw new TypeError("Can not construct ChildProcess, use 'sandbox.spawn()'.");
  }

  /**
   * Sends a signal (default SIGTERM); resolves once it is sent, not when the process exits
   * (await `status` for that). A process that already exited is no error.
   */
  async kill(signal: SignalName = "SIGTERM"): Promise<void> {
    try {
      await this.conn.request("process.kill", { sandbox: this.sandbox, pid: this.pid, signal });
    } catch (err) {
      if (!(err instanceof RpcError && err.rpcCode === ErrorCodes.ProcessNotFound)) throw err;
    }
  }

  /** Kills the process (SIGTERM) and waits for it to exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
    await this.status;
  }

  /** Waits for the process to exit and collects whatever stdout and stderr were piped. */
  async output(): Promise<CommandOutput> {
    const [stdout, stderr, status] = await Promise.all([collect(this.stdout), collect(this.stderr), this.status]);
    return {
      status,
      stdout,
      stderr,
      stdoutText: stdout && decoder.decode(stdout),
      stderrText: stderr && decoder.decode(stderr),
    };
  }
}
