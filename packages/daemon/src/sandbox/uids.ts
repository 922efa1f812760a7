/**
 * Host uids for sandboxes when the daemon runs as root: each live sandbox gets its own, so
 * per-user kernel limits and file ownership never mix sandboxes with each other or the host.
 */
export class UidPool {
  private readonly free: number[] = [];
  private next: number;

  constructor(private readonly base: number, private readonly size: number) {
    this.next = base;
  }

  take(): number {
    const uid = this.free.pop() ?? (this.next < this.base + this.size ? this.next++ : undefined);
    if (uid === undefined) throw new Error(`all ${this.size} sandbox uids are in use`);
    return uid;
  }

  release(uid: number): void {
    if (uid >= this.base && uid < this.base + this.size && !this.free.includes(uid)) this.free.push(uid);
  }
}
