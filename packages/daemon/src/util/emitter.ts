/** A listener's registration; disposing it (or leaving a `using` block) removes the listener. */
export type Registration = Disposable;

/**
 * One kind of event and its listeners, as vscode-jsonrpc's `Emitter`: `on` returns a disposable,
 * so whoever adds a listener holds what removes it. A listener that throws does not stop the others.
 */
export class Emitter<T> {
  private readonly listeners = new Set<(value: T) => void>();

  constructor(private readonly onListenerError: (err: unknown) => void = () => {}) {}

  on(listener: (value: T) => void): Registration {
    // Wrapped, so the same function added twice is two registrations.
    const entry = (value: T) => listener(value);
    this.listeners.add(entry);
    return { [Symbol.dispose]: () => void this.listeners.delete(entry) };
  }

  fire(value: T): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(value);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  }

  get size(): number {
    return this.listeners.size;
  }

  clear(): void {
    this.listeners.clear();
  }
}
