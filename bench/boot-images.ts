/**
 * The images of the boot benchmark, built once per run before any timing:
 *
 *   app       the Debian rootfs fixture with python3 (one layer, the fixture's tar) plus a layer of
 *             --payload incompressible bytes the app never reads; cmd = python3 printing a line.
 *             Built as an OCI layout with umoci.
 *   app-boot  `bootfs convert` of app onto the base fixture: chunks into a store directory (served
 *             by `bootfs serve` behind the link), the boot image as an oci-archive.
 *   base      the base fixture itself (Debian + Node), which every boot image starts with.
 *
 * All three are pushed to the registry behind the link before the link is shaped. Then the app's
 * read set is measured: the index mounted with `bootfs mount --readahead 0` over a fresh cache dir,
 * the kernel's readahead for the mount set to what the app gets in the container, the app's
 * command run in a chroot of the mount; the cache dir then holds exactly the chunks it touched.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CHUNK_ID_BYTES } from '../src/chunk.js';
import { BootfsIndex } from '../src/index/bootfs-reader.js';
import { InputUnavailable } from './common.js';
import { type ConvertSummary, parseConvertSummary } from './convert-shared.js';
import { readFixtureEnv, writeRandomFile } from './inputs.js';
import { isMounted, type MountStatsFile, readStatsFile } from './mount-proc.js';
import { runChecked, runProcess } from './proc.js';
import { CHUNK_SIZE } from './tools.js';

/** What the app prints and then exits: its first (and only) output line. */
export const APP_LINE = 'hello from python';
/** The app's command (the image's Cmd). flush: the line leaves at once, not at exit. */
export const APP_CMD = ['python3', '-c', `print("${APP_LINE}", flush=True)`] as const;
export const APP_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Where the payload sits in the image (a directory the Debian rootfs does not have). */
export const PAYLOAD_PATH = 'opt/bootfs-payload/data.bin';

/** Absolute paths (or PATH names) of everything the benchmark runs. */
export interface BootTools {
  node: string;
  bootfsBin: string;
  podman: string;
  umoci: string;
  skopeo: string;
  registry: string;
  containersConf: string;
}

/** An OCI/docker manifest's layer as the registry holds it. */
export interface LayerInfo {
  digest: string;
  size: number;
  mediaType: string;
}

/** One image in the registry. */
export interface PushedImage {
  ref: string;
  layers: LayerInfo[];
  /** Σ layer sizes: what a pull with nothing present transfers (plus manifest and config). */
  layerBytes: number;
  pushSeconds: number;
}

/** Everything the timed rounds need. */
export interface PreparedImages {
  original: PushedImage & { layout: string; payloadBytes: number; rootfsTarBytes: number; payloadTarBytes: number; buildSeconds: number };
  boot: PushedImage & { archive: string; index: string; convert: ConvertSummary; convertSeconds: number; sharedWithBase: number; ownLayerBytes: number };
  base: PushedImage & { source: string };
  /** Layers the original shares with the base (0 expected: a different rootfs build). */
  originalSharedWithBase: number;
  store: string;
  rootfsDir: string;
}

/** The app's read set, measured in a chroot of a `bootfs mount` of its index. */
export interface ReadSet {
  stdout: string;
  /** File bytes the mount returned to reads (FUSE bytesServed): what the app read, kernel readahead included. */
  readBytes: number;
  reads: number;
  /** Distinct chunks those reads touched (with --readahead 0: exactly the chunks fetched into the fresh cache). */
  touchedChunks: number;
  /** Σ uncompressed sizes of the touched chunks: the read set rounded up to whole chunks. */
  touchedPlainBytes: number;
  /** Σ stored (zstd) sizes of the touched chunks: what fetching exactly them moves. */
  touchedStoredBytes: number;
  /** Regular-file bytes of the image (the index's data stream). */
  imageDataBytes: number;
  /** readBytes ÷ imageDataBytes. */
  readFraction: number;
  /** touchedPlainBytes ÷ imageDataBytes. */
  touchedFraction: number;
  mountReadySeconds: number;
  /** The kernel's readahead for the mount while the app ran: what bootfs mount set, and what it was set to. */
  kernelReadaheadKb: { mount: number | null; measured: number };
  stats: MountStatsFile;
}

/**
 * The kernel's readahead (KiB) the read set is measured with by default: the kernel's own for a
 * FUSE mount. `bootfs mount` raises it to 4 MiB through /sys/class/bdi, but the boot stub cannot
 * (podman mounts /sys read-only in the container), so the app in a boot image reads with this.
 */
export const CONTAINER_READAHEAD_KB = 128;

const since = (t: bigint): number => Number(process.hrtime.bigint() - t) / 1e9;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The two fixtures: the rootfs with python3 (v2) and the base image. InputUnavailable when either is. */
export async function locateFixtures(repoRoot: string): Promise<{ rootfsDir: string; rootfsTar: string; baseRef: string }> {
  const rootfs = await readFixtureEnv(repoRoot, ['--v2']);
  if (!rootfs.ok) throw new InputUnavailable(`rootfs v2: ${rootfs.reason}`);
  const { ROOTFS_DIR: rootfsDir, ROOTFS_TAR: rootfsTar } = rootfs.env;
  if (!rootfsDir || !rootfsTar) throw new InputUnavailable(`${rootfs.script} --v2 --print-env printed no ROOTFS_DIR/ROOTFS_TAR`);
  if (!(await stat(path.join(rootfsDir, 'usr/bin/python3')).catch(() => null))) throw new InputUnavailable(`the rootfs fixture ${rootfsDir} has no usr/bin/python3`);
  const script = path.join(repoRoot, 'scripts', 'fixtures', 'base-image');
  const r = await runProcess('bash', [script, '--print-env']);
  const baseRef = /^BASE_IMAGE_REF=(.*)$/m.exec(r.stdout)?.[1]?.replace(/^'(.*)'$/, '$1');
  if (r.code !== 0 || !baseRef) throw new InputUnavailable(`${script} --print-env failed (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return { rootfsDir, rootfsTar, baseRef };
}

/** Build the app layout, convert it, push all three images to `registry` (host:port). */
export async function prepareImages(o: {
  tools: BootTools;
  workDir: string;
  payloadBytes: number;
  registry: string;
  storeUrl: string;
  fixtures: { rootfsDir: string; rootfsTar: string; baseRef: string };
}): Promise<PreparedImages> {
  const dir = path.join(o.workDir, 'images');
  const layout = path.join(dir, 'app-layout');
  const store = path.join(o.workDir, 'store');
  await mkdir(dir, { recursive: true });
  const { umoci, skopeo } = o.tools;

  // The app image: the rootfs tar as is, then the payload layer.
  let t = process.hrtime.bigint();
  await runChecked(umoci, ['init', '--layout', layout]);
  await runChecked(umoci, ['new', '--image', `${layout}:app`]);
  await runChecked(umoci, ['raw', 'add-layer', '--image', `${layout}:app`, '--history.created_by', 'scripts/fixtures/debian-rootfs --v2', o.fixtures.rootfsTar]);
  const payloadSrc = path.join(dir, 'payload-src');
  const payloadFile = path.join(payloadSrc, PAYLOAD_PATH);
  await mkdir(path.dirname(payloadFile), { recursive: true });
  process.stderr.write(`writing ${(o.payloadBytes / 1e6).toFixed(0)} MB of incompressible payload to ${payloadFile}\n`);
  await writeRandomFile(payloadFile, o.payloadBytes);
  const payloadTar = path.join(dir, 'payload.tar');
  // Only the new directory and the file: /opt itself keeps the rootfs's metadata.
  await runChecked('tar', ['--numeric-owner', '--owner=0', '--group=0', '--mtime=@0', '--no-recursion', '-C', payloadSrc, '-cf', payloadTar, path.dirname(PAYLOAD_PATH), PAYLOAD_PATH]);
  const payloadTarBytes = (await stat(payloadTar)).size;
  await rm(payloadSrc, { recursive: true, force: true });
  process.stderr.write(`umoci raw add-layer (payload, gzip)\n`);
  await runChecked(umoci, ['raw', 'add-layer', '--image', `${layout}:app`, '--history.created_by', `bench/boot.ts: ${o.payloadBytes} bytes of AES-CTR keystream`, payloadTar]);
  await rm(payloadTar, { force: true });
  await runChecked(umoci, ['config', '--image', `${layout}:app`, '--config.env', APP_PATH, ...APP_CMD.flatMap((c) => ['--config.cmd', c])]);
  await runChecked(umoci, ['gc', '--layout', layout]);
  const buildSeconds = since(t);

  // The boot image (and the index beside it, for the read-set measurement).
  const archive = path.join(dir, 'app-boot.tar');
  const index = path.join(dir, 'app.bootfs');
  const tmp = path.join(o.workDir, 'tmp');
  await mkdir(tmp, { recursive: true });
  process.stderr.write(`bootfs convert oci:${layout}:app oci-archive:${archive}:app-boot --store ${store} --image-store ${o.storeUrl} --base ${o.fixtures.baseRef}\n`);
  t = process.hrtime.bigint();
  const out = await runChecked(o.tools.node, [
    o.tools.bootfsBin, 'convert', `oci:${layout}:app`, `oci-archive:${archive}:app-boot`, '--store', store, '--image-store', o.storeUrl, '--base', o.fixtures.baseRef,
    '-o', index, '--chunk-size', CHUNK_SIZE, '--tmpdir', tmp, '--json', '--no-progress',
  ]);
  const convertSeconds = since(t);
  const convert = parseConvertSummary(out);

  // Push at full speed (the link is not shaped yet): pushing is not what is measured.
  const push = async (src: string, name: string): Promise<PushedImage> => {
    const ref = `${o.registry}/${name}`;
    process.stderr.write(`skopeo copy ${src} docker://${ref}\n`);
    const t0 = process.hrtime.bigint();
    await runChecked(skopeo, ['copy', '-q', '--dest-tls-verify=false', src, `docker://${ref}`]);
    const pushSeconds = since(t0);
    const layers = await registryLayers(skopeo, ref);
    return { ref, layers, layerBytes: layers.reduce((a, l) => a + l.size, 0), pushSeconds };
  };
  const original = await push(`oci:${layout}:app`, 'app:1');
  const boot = await push(`oci-archive:${archive}:app-boot`, 'app-boot:1');
  const base = await push(o.fixtures.baseRef, 'base:1');
  const baseDigests = new Set(base.layers.map((l) => l.digest));
  const sharedWithBase = boot.layers.filter((l) => baseDigests.has(l.digest)).length;
  return {
    original: { ...original, layout, payloadBytes: o.payloadBytes, rootfsTarBytes: (await stat(o.fixtures.rootfsTar)).size, payloadTarBytes, buildSeconds },
    boot: { ...boot, archive, index, convert, convertSeconds, sharedWithBase, ownLayerBytes: boot.layers.filter((l) => !baseDigests.has(l.digest)).reduce((a, l) => a + l.size, 0) },
    base: { ...base, source: o.fixtures.baseRef },
    originalSharedWithBase: original.layers.filter((l) => baseDigests.has(l.digest)).length,
    store,
    rootfsDir: o.fixtures.rootfsDir,
  };
}

/** The layers of `ref` as its manifest in the registry lists them (`skopeo inspect --raw`). */
async function registryLayers(skopeo: string, ref: string): Promise<LayerInfo[]> {
  const raw = JSON.parse(await runChecked(skopeo, ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`])) as { layers?: { digest: string; size: number; mediaType: string }[] };
  if (!Array.isArray(raw.layers) || raw.layers.length === 0) throw new Error(`the manifest of ${ref} lists no layers (a manifest list?)`);
  return raw.layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType }));
}

/**
 * Mount the app's index over a fresh cache dir with readahead off, run the app's command in a
 * chroot of the mount, stop the mount and add up what it touched.
 */
export async function measureReadSet(o: { tools: BootTools; workDir: string; index: string; store: string; sizes: ChunkSizeMap; name: string; readaheadKb: number | null }): Promise<ReadSet> {
  const base = path.join(o.workDir, o.name);
  const mnt = path.join(base, 'mnt');
  const cache = path.join(base, 'cache');
  const statsFile = path.join(base, 'stats.json');
  for (const d of [mnt, cache]) await mkdir(d, { recursive: true });
  const argv = [o.tools.bootfsBin, 'mount', o.index, mnt, '--store', o.store, '--cache', cache, '--readahead', '0', '--stats-file', statsFile];
  const started = process.hrtime.bigint();
  const child = spawn(o.tools.node, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString('utf8')).slice(-8192)));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let stdout = '';
  let mountReadySeconds = 0;
  let readaheadMount: number | null = null;
  let readaheadMeasured = 0;
  try {
    const deadline = Date.now() + 60_000;
    while (!(stderr.includes(' mounted at ') && isMounted(mnt))) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`bootfs mount exited (${child.exitCode ?? child.signalCode}) before it was ready: ${stderr.trim()}`);
      if (Date.now() > deadline) throw new Error(`bootfs mount of ${mnt} was not ready after 60 s: ${stderr.trim()}`);
      await sleep(5);
    }
    mountReadySeconds = since(started);
    const bdi = `/sys/class/bdi/${mountDevice(mnt)}/read_ahead_kb`;
    readaheadMount = Number((await readFile(bdi, 'utf8')).trim());
    if (o.readaheadKb !== null) await writeFile(bdi, String(o.readaheadKb));
    readaheadMeasured = Number((await readFile(bdi, 'utf8')).trim());
    // env -i: the image's environment, not this shell's; the same command the container runs.
    stdout = await runChecked('chroot', [mnt, '/usr/bin/env', '-i', APP_PATH, ...APP_CMD]);
  } finally {
    child.kill('SIGTERM');
    const code = await Promise.race([exited, sleep(20_000).then(() => 'timeout' as const)]);
    if (code === 'timeout' || isMounted(mnt)) {
      await runProcess('umount', ['-l', mnt]);
      child.kill('SIGKILL');
    }
  }
  const stats = await readStatsFile(statsFile);
  const touched = await cacheContents(cache, o.sizes);
  if (touched.unknown > 0) throw new Error(`the read-set cache holds ${touched.unknown} chunks the index does not list`);
  const imageDataBytes = o.sizes.dataBytes;
  return {
    stdout,
    readBytes: stats.bytesServed,
    reads: stats.reads,
    touchedChunks: touched.chunks,
    touchedPlainBytes: touched.plainBytes,
    touchedStoredBytes: touched.storedBytes,
    imageDataBytes,
    readFraction: stats.bytesServed / imageDataBytes,
    touchedFraction: touched.plainBytes / imageDataBytes,
    mountReadySeconds,
    kernelReadaheadKb: { mount: readaheadMount, measured: readaheadMeasured },
    stats,
  };
}

/** MAJOR:MINOR of the file system mounted at `mnt` (/proc/self/mountinfo field 3): its bdi's name. */
function mountDevice(mnt: string): string {
  const line = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[4] === mnt);
  const dev = line?.split(' ')[2];
  if (!dev) throw new Error(`${mnt} is not in /proc/self/mountinfo`);
  return dev;
}

/** Uncompressed size of every chunk of an index by hex ID, and the index's data bytes. */
export interface ChunkSizeMap {
  plain: Map<string, number>;
  dataBytes: number;
}

/** Read the chunk table of `index`. */
export async function loadChunkSizes(index: string): Promise<ChunkSizeMap> {
  const idx = await BootfsIndex.readFile(index);
  const plain = new Map<string, number>();
  const t = idx.table;
  for (let i = 0; i < t.count; i++) plain.set(t.ids.toString('hex', i * CHUNK_ID_BYTES, (i + 1) * CHUNK_ID_BYTES), t.ends[i]! - t.start(i));
  return { plain, dataBytes: idx.dataSize };
}

/** The chunk files in a cache (or store) directory: count, stored bytes, uncompressed bytes per the index. */
export interface CacheContents {
  chunks: number;
  storedBytes: number;
  plainBytes: number;
  /** Chunk files the index does not list (they add to chunks and storedBytes only). */
  unknown: number;
}

/** Walk `<dir>/<4hex>/<id>.cacnk`. */
export async function cacheContents(dir: string, sizes: ChunkSizeMap): Promise<CacheContents> {
  const out: CacheContents = { chunks: 0, storedBytes: 0, plainBytes: 0, unknown: 0 };
  for (const shard of await readdir(dir).catch(() => [] as string[])) {
    const sub = path.join(dir, shard);
    if (!(await stat(sub)).isDirectory()) continue;
    for (const name of await readdir(sub)) {
      if (!name.endsWith('.cacnk')) continue;
      out.chunks++;
      out.storedBytes += (await stat(path.join(sub, name))).size;
      const plain = sizes.plain.get(name.slice(0, -'.cacnk'.length));
      if (plain === undefined) out.unknown++;
      else out.plainBytes += plain;
    }
  }
  return out;
}

/** The fixture's python3 version (chroot), for the results. */
export async function fixturePython(rootfsDir: string): Promise<string> {
  const r = await runProcess('chroot', [rootfsDir, '/usr/bin/env', '-i', APP_PATH, 'python3', '--version']);
  return (r.stdout.trim() || r.stderr.trim()) || `unknown (exit ${r.code})`;
}
