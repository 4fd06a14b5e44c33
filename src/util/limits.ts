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

/** `items` mapped through `fn`, at most `limit` at a time; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** How the remote stores retry one operation (each store documents its defaults). */
export interface RetryOptions {
  /** One try, in ms. */
  timeoutMs?: number;
  /** One operation across all tries and back-offs, in ms. */
  deadlineMs?: number;
  /** Tries per operation, the first included. */
  tries?: number;
  /** First back-off in ms, doubled per retry, with ±50 % jitter. */
  backoffMs?: number;
  /** Longest single back-off in ms (mounts cap it so a store that comes back is noticed soon). */
  maxBackoffMs?: number;
}

/** The wait before try `attempt` (1 = the first retry): doubling from `backoffMs`, capped, ±50 % jitter. */
export function backoffDelay(attempt: number, backoffMs: number, maxBackoffMs: number): number {
  return Math.min(maxBackoffMs, backoffMs * 2 ** (attempt - 1)) * (0.5 + Math.random());
}
