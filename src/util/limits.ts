/** Small helpers for the remote stores: option checks and bounded concurrency. */
import { UsageError } from '../errors.js';

/** `value` (or `dflt`) as a positive safe integer; UsageError naming the store kind and option otherwise. */
export function positiveInt(kind: string, name: string, value: number | undefined, dflt: number): number {
  const v = value ?? dflt;
  if (!Number.isSafeInteger(v) || v < 1) throw new UsageError(`${kind} store option ${name} must be a positive integer, got ${v}`);
  return v;
}

/** A counting semaphore: at most `limit` holders; waiters are served first come, first served. */
export class Semaphore {
  private active = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  /** Wait for a slot. */
  async acquire(): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** Give a slot back (to the next waiter, if any). */
  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.active--;
  }
}
