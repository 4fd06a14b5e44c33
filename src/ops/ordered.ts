/**
 * Bounded, order-preserving concurrency: start work for items in order with at most `limit`
 * unfinished, and consume results strictly in input order. This is how the pipelines use both
 * cores while the bytes they write stay independent of scheduling.
 */

/** Map `source` through `fn` with up to `limit` calls in flight; yields results in source order. */
export async function* mapOrdered<T, R>(
  source: AsyncIterable<T> | Iterable<T>,
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): AsyncGenerator<R> {
  const queue: Promise<R>[] = [];
  let index = 0;
  try {
    for await (const item of source) {
      const p = fn(item, index++);
      // Attach a no-op handler now so a rejection waiting in the queue is not "unhandled";
      // it is still rethrown when its turn comes.
      p.catch(() => undefined);
      queue.push(p);
      if (queue.length >= limit) yield await queue.shift()!;
    }
    while (queue.length > 0) yield await queue.shift()!;
  } finally {
    // On early exit, let in-flight work settle so nothing writes after we return.
    await Promise.allSettled(queue);
  }
}
