/**
 * Child process of the convert benchmark's index part: loads one bootfs index in a fresh Node
 * process (nothing JIT-compiled, no warm caches but the OS page cache) and prints one JSON line with
 * the timings and the memory the loaded index holds.
 *
 *   node --expose-gc dist/bench/index-load-child.js INDEX
 *
 * Timeline: import the reader (timed separately: module loading is not index loading), force GC and
 * take memoryUsage(), then read the file and BootfsIndex.decode it (the timed load), force GC again
 * and take memoryUsage(): the growth is what the decoded index keeps (its file Buffer, the chunk
 * table and the few objects around them). The index stays referenced until after the second sample.
 */
import { readFile } from 'node:fs/promises';

const file = process.argv[2];
const gc = (globalThis as { gc?: () => void }).gc;
if (file === undefined || gc === undefined) {
  process.stderr.write('usage: node --expose-gc index-load-child.js INDEX\n');
  process.exit(2);
}

/** Collect twice: the second pass frees what the first one's finalizers released. */
function collect(): void {
  gc!();
  gc!();
}

const t0 = performance.now();
const { BootfsIndex } = await import('../src/index/bootfs-reader.js');
const t1 = performance.now();
collect();
const before = process.memoryUsage();
const t2 = performance.now();
const bytes = await readFile(file);
const t3 = performance.now();
const index = BootfsIndex.decode(bytes, file);
const t4 = performance.now();
collect();
const after = process.memoryUsage();

const result = {
  importMs: t1 - t0,
  readMs: t3 - t2,
  decodeMs: t4 - t3,
  /** read + decode: what opening an index costs. */
  loadMs: t4 - t2,
  fileBytes: bytes.length,
  entries: index.entryCount,
  inodes: index.inodeCount,
  dataSize: index.dataSize,
  chunks: index.table.count,
  checksum: index.checksum,
  memoryBefore: before,
  memoryAfter: after,
  heapUsedGrowth: after.heapUsed - before.heapUsed,
  arrayBuffersGrowth: after.arrayBuffers - before.arrayBuffers,
  externalGrowth: after.external - before.external,
  rssGrowth: after.rss - before.rss,
};
process.stdout.write(`${JSON.stringify(result)}\n`);
