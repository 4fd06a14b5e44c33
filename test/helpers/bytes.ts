/** Test data shared by the unit tests. */

/**
 * `n` deterministic pseudo-random bytes: a linear congruential generator started at `start`, its
 * top byte per step. The same `start` always gives the same bytes; different ones differ.
 */
export function lcgBytes(n: number, start = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = start;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}
