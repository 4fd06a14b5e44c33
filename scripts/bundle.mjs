// Bundle the CLI and its chunk worker into dist/cli/ (after tsc has type-checked and built dist/).
//
// Why: a short bootfs run spent ~20 ms of its start resolving and loading ~100 ES modules one file
// at a time (hyperfine: `bootfs extract` of a one-chunk index 160 -> 138 ms). The bundle keeps
// every package external (zstd-napi is native, fastcdc-wasm loads its .wasm beside itself) and
// splits at dynamic imports, so commands still load only what they use. The worker is an entry
// of its own in the same directory, where the pool looks for it (`./worker.js`).
import { build } from 'esbuild';
import { readFile, rm } from 'node:fs/promises';

// commander is bundled in: loaded as a CommonJS package through the ES module loader it cost
// ~23 ms of every start, bundled ~14 ms. Every other package stays external.
const { dependencies } = JSON.parse(await readFile('package.json', 'utf8'));
const external = Object.keys(dependencies).filter((name) => name !== 'commander');

const outdir = 'dist/cli';
await rm(outdir, { recursive: true, force: true });
await build({
  entryPoints: ['src/cli/bin.ts', 'src/pool/worker.ts'],
  outdir,
  entryNames: '[name]',
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20.19',
  external,
  // commander's CommonJS require() calls (node:events, node:child_process, …) need a require.
  banner: { js: "import { createRequire as __bootfsCreateRequire } from 'node:module'; const require = __bootfsCreateRequire(import.meta.url);" },
  sourcemap: 'linked',
  logLevel: 'warning',
});
