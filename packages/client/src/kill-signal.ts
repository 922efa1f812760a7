/**
 * `KillController` and `KillSignal`, as `@deno/sandbox` has them: like AbortController and
 * AbortSignal, but a kill carries a signal name that reaches every command run with the
 * signal, and a signal that ended a command (SIGTERM, SIGKILL, SIGABRT, SIGQUIT, SIGINT)
 * marks it aborted, so later commands built with it never start.
 */
import type { SignalName } from "@sbx/protocol";

/** Called with the signal's name each time the controller kills. */
export type KillSignalListener = (signal: SignalName) => void;

/** The exit code a command reports when one of these ended it (128 + the signal's number). */
const ABORT_CODES: Partial<Record<SignalName, number>> = { SIGTERM: 143, SIGKILL: 137, SIGABRT: 134, SIGQUIT: 131, SIGINT: 130 };
const CONSTRUCT = Symbol("KillSignal");

interface State {
  abortedCode: number | undefined;
  listeners: KillSignalListener[];
}

function send(state: State, signal: SignalName): void {
  state.abortedCode = ABORT_CODES[signal] ?? state.abortedCode;
  for (const listener of [...state.listeners]) listener(signal);
}

/**
 * Similar to `AbortSignal`, but for signals to processes. Aborted once its controller sent
 * SIGTERM, SIGKILL, SIGABRT, SIGQUIT or SIGINT. Made by a {@link KillController}.
 */
export class KillSignal {
  readonly #state: State;

  /** @internal */
  constructor(token: symbol, state: State) {
    if (token !== CONSTRUCT) throw new Error("Constructing instances of KillSignal is not permitted. Use KillController instead.");
    this.#state = state;
  }

  /** Whether a signal that ends a command was sent. */
  get aborted(): boolean {
    return this.#state.abortedCode !== undefined;
  }

  /** The exit code a command started after the abort reports (it never runs). */
  get abortedExitCode(): number | undefined {
    return this.#state.abortedCode;
  }

  /** Sends every signal this one gets on to `child` too. */
  linkChild(child: KillSignal): { unsubscribe(): void } {
    const listener: KillSignalListener = (signal) => send(child.#state, signal);
    this.addListener(listener);
    return { unsubscribe: () => this.removeListener(listener) };
  }

  addListener(listener: KillSignalListener): void {
    this.#state.listeners.push(listener);
  }

  /** Removes a listener (do, for signals that live long, or they pile up). */
  removeListener(listener: KillSignalListener): void {
    const i = this.#state.listeners.indexOf(listener);
    if (i >= 0) this.#state.listeners.splice(i, 1);
  }
}

/**
 * Sends signals to the commands run with its signal.
 *
 * @example
 * const controller = new KillController();
 * const run = sandbox.sh`sleep 60`.signal(controller.signal).noThrow();
 * setTimeout(() => controller.kill(), 100);
 * (await run).status.code; // 143
 */
export class KillController {
  readonly #state: State = { abortedCode: undefined, listeners: [] };
  readonly #signal = new KillSignal(CONSTRUCT, this.#state);

  get signal(): KillSignal {
    return this.#signal;
  }

  /** Sends `signal` (default SIGTERM) to every command running with this controller's signal. */
  kill(signal: SignalName = "SIGTERM"): void {
    send(this.#state, signal);
  }
}

/** The KillSignal of each AbortSignal given to `sh().signal()`: one listener per AbortSignal, however many commands use it. */
const adapted = new WeakMap<AbortSignal, KillSignal>();

/** A KillSignal that SIGTERMs when `abort` fires (one listener on `abort`, removed when it fires). */
export function killSignalOf(abort: AbortSignal): KillSignal {
  const known = adapted.get(abort);
  if (known) return known;
  const controller = new KillController();
  if (abort.aborted) controller.kill("SIGTERM");
  else abort.addEventListener("abort", () => controller.kill("SIGTERM"), { once: true });
  adapted.set(abort, controller.signal);
  return controller.signal;
}
