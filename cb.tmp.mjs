import { readFileSync } from 'node:fs';
const buf = readFileSync('/root/.cache/bootfs/fixtures/debian-rootfs/debian-rootfs.stream');
const t0 = performance.now();
const { chunkBatches } = await import('./dist/src/chunker/fastcdc.js');
console.log('load', (performance.now() - t0).toFixed(0));
async function* src(sz) { for (let i = 0; i < buf.length; i += sz) yield buf.subarray(i, i + sz); }
for (let r = 0; r < 3; r++) {
  let t = performance.now(); let n = 0;
  for await (const b of chunkBatches(src(65536))) n += b.ends.length;
  console.log('chunkBatches', n, (performance.now() - t).toFixed(0), 'ms');
}
