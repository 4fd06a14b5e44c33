/**
 * The docker:// transport, writing (writeImage's registry destination). Order, so that nothing
 * half-pushed is ever tagged:
 *
 * 1. each layer the registry lacks (HEAD first) is mounted from the repository it came from when
 *    that is on the same registry, else uploaded — a few at a time, each verified while it streams
 *    (writeImage's checks) and again by the registry (digest);
 * 2. the config;
 * 3. the manifest under the tag, last — skipped when the tag already points at the same digest.
 *
 * A failure before step 3 leaves blobs without a tag: harmless, and reused by the next push.
 */
import { RegistryRepo } from '../registry/client.js';
import type { RegistryOptions } from '../registry/options.js';
import { parseRepoLocation } from '../registry/reference.js';
import type { BlobSource, UploadResult } from '../registry/types.js';
import { OCI_MANIFEST } from './media-types.js';
import type { ImageRef } from './ref.js';

/** Layer uploads in flight at once (as skopeo and docker push do a few in parallel). */
const PUSH_CONCURRENCY = 3;

/** One blob to push. */
export interface PushBlob {
  digest: string;
  size: number;
  source: BlobSource;
  /** `registry/repository` holding the same blob, for a cross-repository mount. */
  from?: string;
}

/** What pushImage pushes: the layers and config as blobs, then the manifest. */
export interface PushImage {
  blobs: PushBlob[];
  config: { digest: string; bytes: Buffer };
  manifest: { digest: string; bytes: Buffer; mediaType?: string };
}

/** What a push did. */
export interface PushStats {
  /** Blobs (layers and config) uploaded, mounted from another repository, or already there. */
  uploaded: number;
  mounted: number;
  existing: number;
  /** false when the tag already pointed at this manifest. */
  manifestPushed: boolean;
}

/**
 * A stream of the bytes `fill` writes to its sink, one piece at a time (the writer waits until the
 * reader took the last piece). An error `fill` throws, also after its last piece, ends the stream
 * with that error; a reader that stops early makes the next sink call throw.
 */
export async function* sinkToStream(fill: (sink: (b: Uint8Array) => Promise<void>) => Promise<void>): AsyncGenerator<Uint8Array, void, undefined> {
  const queue: Uint8Array[] = [];
  let done = false;
  let error: unknown;
  let stopped = false;
  let wakeReader: (() => void) | undefined;
  let wakeWriter: (() => void) | undefined;
  const notify = (): void => {
    const w = wakeReader;
    wakeReader = undefined;
    w?.();
  };
  const writer = fill(async (b) => {
    if (stopped) throw new Error('the reader stopped');
    queue.push(b);
    notify();
    await new Promise<void>((resolve) => (wakeWriter = resolve));
    if (stopped) throw new Error('the reader stopped');
  }).then(
    () => {
      done = true;
      notify();
    },
    (err: unknown) => {
      error = err;
      done = true;
      notify();
    },
  );
  try {
    for (;;) {
      const b = queue.shift();
      if (b !== undefined) {
        const w = wakeWriter;
        wakeWriter = undefined;
        w?.();
        yield b;
        continue;
      }
      if (done) {
        if (error !== undefined) throw error;
        return;
      }
      await new Promise<void>((resolve) => (wakeReader = resolve));
    }
  } finally {
    if (!done) {
      stopped = true;
      const w = wakeWriter;
      wakeWriter = undefined;
      w?.();
      await writer;
    }
  }
}

/**
 * `items` through `fn`, at most `limit` at a time. The first error aborts the signal the others
 * got (so their uploads stop) and is thrown once they have.
 */
async function forEachLimit<T>(items: readonly T[], limit: number, outer: AbortSignal | undefined, fn: (item: T, signal: AbortSignal) => Promise<void>): Promise<void> {
  const ctl = new AbortController();
  const signal = outer ? AbortSignal.any([outer, ctl.signal]) : ctl.signal;
  let next = 0;
  let first: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (first === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item, signal);
      } catch (err) {
        if (first === undefined) {
          first = { err };
          ctl.abort(err);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (first !== undefined) throw first.err;
}

/** Push an image to `docker://…:TAG` (see the file comment). */
export async function pushImage(ref: ImageRef, image: PushImage, opts: { registry?: RegistryOptions; signal?: AbortSignal } = {}): Promise<PushStats> {
  const repo = new RegistryRepo(ref.path, opts.registry ?? {});
  const stats: PushStats = { uploaded: 0, mounted: 0, existing: 0, manifestPushed: false };
  const count = (r: UploadResult): void => {
    if (r === 'uploaded') stats.uploaded++;
    else if (r === 'mounted') stats.mounted++;
    else stats.existing++;
  };
  const sig = opts.signal ? { signal: opts.signal } : {};
  try {
    await forEachLimit(image.blobs, PUSH_CONCURRENCY, opts.signal, async (b, signal) => {
      let mountFrom: string | undefined;
      if (b.from !== undefined) {
        const from = parseRepoLocation(b.from);
        if (from.registry === repo.registry && from.repository !== repo.repository) mountFrom = from.repository;
      }
      count(await repo.putBlob(b.digest, b.source, { ...(mountFrom ? { mountFrom } : {}), signal }));
    });
    opts.signal?.throwIfAborted();
    count(await repo.putBlob(image.config.digest, image.config.bytes, sig));
    const tag = ref.tag ?? 'latest';
    opts.signal?.throwIfAborted();
    if ((await repo.headManifest(tag)) !== image.manifest.digest) {
      await repo.putManifest(tag, image.manifest.mediaType ?? OCI_MANIFEST, image.manifest.bytes);
      stats.manifestPushed = true;
    }
    return stats;
  } finally {
    await repo.close();
  }
}
