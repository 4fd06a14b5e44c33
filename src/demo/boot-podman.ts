/**
 * The podman path of the boot demo: the sample app on top of the debootstrap rootfs as an OCI
 * image, converted into the store and into a boot image (base: the base-image fixture) that
 * fetches from the served store; `podman load`, `podman run` with /dev/fuse, a fresh cache volume.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, realpath, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CACHE_PATH } from '../boot/config.js';
import { writeBootImage } from '../boot/image.js';
import { convertImage } from '../converter/convert.js';
import { parseImageRef } from '../oci/ref.js';
import { openImage } from '../oci/open.js';
import { writeTarLayer } from '../oci/tar-write.js';
import { layerFromBlob, layerFromImage, writeImage } from '../oci/write.js';
import type { ChunkPool } from '../pool/chunk-pool.js';
import type { WriteStore } from '../store/types.js';
import type { BootRun } from './boot-fuse.js';
import { APP_DIR, type SampleApp } from './boot-sample.js';
import { runChecked, runChild } from './run-child.js';

/** The repository's root (holding scripts/fixtures), from this module's place in src/ or dist/src/; undefined when installed without it. */
function repoRoot(): string | undefined {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++, dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'scripts', 'fixtures', 'base-image'))) return dir;
  }
  return undefined;
}

const readText = async (file: string): Promise<string | undefined> => (await readFile(file, 'utf8').catch(() => undefined))?.replace(/\n+$/, '');

/**
 * The base-image fixture's reference when it is built and current, or why not. The check mirrors
 * the script's is_ready (same cache layout, version, node and rootfs build) and only then asks
 * the script for its reference: `--print-env` would build a missing or stale fixture, which takes
 * minutes and is not the demo's job.
 */
export async function findBaseImage(): Promise<{ ref: string } | { missing: string }> {
  const root = repoRoot();
  if (!root) return { missing: 'scripts/fixtures/base-image is not here (an installed package)' };
  const script = path.join(root, 'scripts', 'fixtures', 'base-image');
  const version = /^FIXTURE_VERSION=(\S+)$/m.exec(await readFile(script, 'utf8'))?.[1];
  const home = process.env.HOME;
  const cache = process.env.BOOTFS_CACHE_DIR || (home ? path.join(home, '.cache', 'bootfs') : undefined);
  if (!cache || !version) return { missing: 'cannot locate the fixture cache (set BOOTFS_CACHE_DIR)' };
  const unit = path.join(cache, 'fixtures', 'base-image');
  const notBuilt = { missing: `the base image fixture is not built (build it once: bash ${path.relative(process.cwd(), script) || script})` };
  if ((await readText(path.join(unit, '.complete'))) !== version || !existsSync(path.join(unit, 'oci', 'index.json'))) return notBuilt;
  const rootfsBuild = await readText(path.join(cache, 'fixtures', 'debian-rootfs', '.build-id'));
  if (rootfsBuild === undefined || (await readText(path.join(unit, '.base-build-id'))) !== rootfsBuild) return notBuilt;
  // node_id in the script: "PATH SIZE MTIME VERSION" of the node binary it copied.
  const nodeBin = process.env.BOOTFS_NODE || (await runChild('sh', ['-c', 'command -v node'], { timeoutMs: 10_000 })).stdout.trim();
  if (!nodeBin) return notBuilt;
  const node = await realpath(nodeBin).catch(() => undefined);
  if (!node) return notBuilt;
  const st = await stat(node);
  const nodeVersion = (await runChild(node, ['--version'], { timeoutMs: 10_000 })).stdout.trim();
  if ((await readText(path.join(unit, '.node-id'))) !== `${node} ${st.size} ${Math.floor(st.mtimeMs / 1000)} ${nodeVersion}`) return notBuilt;
  const env = await runChecked('bash', [script, '--print-env'], { timeoutMs: 30_000 });
  const ref = /^BASE_IMAGE_REF=(.*)$/m.exec(env.stdout)?.[1]?.replace(/^'(.*)'$/, '$1');
  return ref ? { ref } : { missing: `${script} --print-env printed no BASE_IMAGE_REF` };
}

export interface PodmanBootOptions {
  /** Work directory of this part (created). */
  work: string;
  store: WriteStore;
  pool: ChunkPool;
  app: SampleApp;
  baseRef: string;
  bootfsVersion: string;
  log: (line: string) => void;
  /** Start serving the store; returns its URL. */
  serve: () => Promise<string>;
}

const podmanEnv = (root: string | undefined): NodeJS.ProcessEnv => {
  // The repository's podman settings (runc, no rlimits: what this kind of host needs) unless the
  // user has their own.
  const conf = root ? path.join(root, 'test', 'podman', 'containers.conf') : undefined;
  return process.env.CONTAINERS_CONF || !conf || !existsSync(conf) ? process.env : { ...process.env, CONTAINERS_CONF: conf };
};

/** Build, convert, load and run the app under podman; the loaded image is removed afterwards. */
export async function podmanBoot(o: PodmanBootOptions): Promise<BootRun> {
  const { work, log, app } = o;
  await mkdir(work, { recursive: true });
  const env = podmanEnv(repoRoot());
  const base = await openImage(parseImageRef(o.baseRef));
  try {
    // Layer 0 of the base fixture is the debootstrap rootfs tar as is (scripts/fixtures/base-image);
    // its layer 1 (node, for the boot stub) is not part of the app.
    const rootfs = await layerFromImage(base, 0);
    // Uncompressed: the weights are random, gzip would spend seconds to save nothing.
    const appLayer = await writeTarLayer(
      path.join(work, 'app-layer.tar'),
      app.files.map((f) => ({ path: f.path, type: 'file' as const, mode: f.mode, content: f.content })),
      { gzip: false },
    );
    const layout = `oci:${path.join(work, 'app-image')}:app`;
    await writeImage(layout, {
      layers: [rootfs, layerFromBlob(appLayer)],
      config: {
        architecture: base.rawConfig.architecture,
        os: base.rawConfig.os,
        config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Entrypoint: ['/bin/sh', '-c'], Cmd: [app.command], WorkingDir: APP_DIR },
      },
    });
    await rm(appLayer.file, { force: true }); // copied into the layout
    log(`sample app image ${layout}: the Debian rootfs + ${APP_DIR} (config, 1 MiB app.bin, ${app.files[2]!.content.length >> 20} MiB weights.bin); cmd: sh -c '${app.command}'`);
    const converted = await convertImage(parseImageRef(layout), { store: o.store, pool: o.pool });
    log(`bootfs convert ${layout}: ${converted.counts.entries} entries, ${(converted.bytes / 1e6).toFixed(1)} MB of files in ${converted.chunks} chunks (${(converted.newStoredBytes / 1e6).toFixed(1)} MB stored)`);

    const url = await o.serve();
    const name = `bootfs-demo-${process.pid}`;
    const archive = path.join(work, 'boot-image.tar');
    await writeBootImage({
      dest: `oci-archive:${archive}:${name}`,
      base,
      index: converted.index,
      app: converted.config,
      stores: [url],
      cachePath: DEFAULT_CACHE_PATH,
      bootfsVersion: o.bootfsVersion,
      source: { reference: converted.reference, ...(converted.config.source?.manifestDigest ? { manifestDigest: converted.config.source.manifestDigest } : {}) },
    });
    const loaded = await runChecked('podman', ['load', '-i', archive], { env, timeoutMs: 120_000 });
    await rm(archive, { force: true }); // loaded; its store URL (an ephemeral port) is useless later
    const ref = /Loaded image(?:\(s\))?: *(\S+)/.exec(loaded.stdout)?.[1] ?? `localhost/${name}:latest`;
    log(`bootfs convert … oci-archive:boot-image.tar --base ${o.baseRef.replace(/^.*\//, '…/')} --image-store ${url}; podman load: ${ref}`);
    try {
      const cache = path.join(work, 'cache');
      await mkdir(cache, { recursive: true });
      // Host networking: the container reaches the store on 127.0.0.1.
      const args = ['run', '--rm', '--name', name, '--network', 'host', '--device', '/dev/fuse', '--cap-add', 'SYS_ADMIN', '-v', `${cache}:${DEFAULT_CACHE_PATH}`, ref];
      log(`podman run --device /dev/fuse --cap-add SYS_ADMIN -v <fresh cache>:${DEFAULT_CACHE_PATH} ${ref}`);
      const r = await runChecked('podman', args, { env, timeoutMs: 120_000 });
      return { imageBytes: converted.bytes, output: r.stdout, firstOutputMs: r.firstOutputMs ?? r.ms, bootMs: r.ms, how: 'podman run' };
    } finally {
      await runChild('podman', ['rm', '-f', '--ignore', name], { env, timeoutMs: 60_000 }).catch(() => undefined);
      await runChild('podman', ['rmi', '-f', ref], { env, timeoutMs: 60_000 }).catch(() => undefined);
    }
  } finally {
    await base.close();
  }
}
