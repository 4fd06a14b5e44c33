// A child process for test/store/cache-dir.test.ts, run as `node --import tsx cache-dir-runner.mjs JSON`.
//
//   {"mode":"race","dir":D,"log":F,"n":N,"fetchMs":50}
//     build chunks 0..N-1 (plainOf below), print "ready", wait for a line on stdin, then getOrFetch
//     all N at once (each after a random delay up to jitterMs, if given); each fetch appends "<hex> <pid>\n" to F and sleeps fetchMs. Checks every result,
//     prints the counters as JSON and exits.
//   {"mode":"hang","dir":D,"n":I}
//     getOrFetch chunk I with a fetch that never resolves; prints "locked" once it holds the lock.
//     The parent kills it with SIGKILL.
import { appendFileSync } from 'node:fs';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeChunk, idToHex } from '../../src/chunk.ts';
import { CacheDir } from '../../src/store/cache-dir.ts';

/** Chunk i's plain bytes; the test computes the same. */
export function plainOf(i) {
  return Buffer.from(`cache-dir chunk ${i} `.repeat(100 + i));
}

const cfg = JSON.parse(process.argv[2]);
const cache = await CacheDir.open(cfg.dir, { lockStaleMs: cfg.lockStaleMs ?? 1000, heartbeatMs: cfg.heartbeatMs ?? 100 });

if (cfg.mode === 'race') {
  const chunks = Array.from({ length: cfg.n }, (_, i) => ({ plain: plainOf(i), ...encodeChunk(plainOf(i)) }));
  process.stdout.write('ready\n');
  await once(process.stdin, 'data');
  const results = await Promise.all(
    chunks.map(async (c) => {
      if (cfg.jitterMs) await sleep(Math.random() * cfg.jitterMs);
      return cache.getOrFetch(c.id, c.plain.length, async () => {
        appendFileSync(cfg.log, `${idToHex(c.id)} ${process.pid}\n`);
        await sleep(cfg.fetchMs);
        return { stored: c.stored, plain: c.plain };
      });
    }),
  );
  results.forEach((r, i) => {
    if (!r.equals(chunks[i].plain)) throw new Error(`chunk ${i}: wrong bytes`);
  });
  await cache.close();
  process.stdout.write(JSON.stringify(cache.counters) + '\n');
  process.stdin.destroy();
} else if (cfg.mode === 'hang') {
  const c = encodeChunk(plainOf(cfg.n));
  setInterval(() => undefined, 1000); // stay alive: a pending promise alone does not
  void cache.getOrFetch(c.id, undefined, () => {
    process.stdout.write('locked\n');
    return new Promise(() => undefined);
  });
} else {
  throw new Error(`unknown mode ${cfg.mode}`);
}
