// Property tests: the parsers of hostile input fail only with ImageFormatError, never crash.
import { open, writeFile } from 'node:fs/promises';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { ImageFormatError } from '../../src/oci/errors.js';
import { documentKind, parseConfig, parseIndex, parseManifest } from '../../src/oci/schema.js';
import { indexTar } from '../../src/oci/tar-index.js';
import { TarSource } from '../../src/oci/source.js';
import { cleanup, tmpDir } from '../helpers/tools.js';
import { tarBytes } from './fixtures.js';

afterAll(cleanup);

function onlyImageErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof ImageFormatError)) throw err;
  }
}

describe('schema parsers', () => {
  it('any JSON value gives a result or an ImageFormatError', () => {
    const digest = fc.constantFrom(`sha256:${'a'.repeat(64)}`, 'sha256:../x', `sha512:${'b'.repeat(128)}`, 7, null);
    const desc = fc.record(
      { mediaType: fc.constantFrom('application/vnd.oci.image.layer.v1.tar', 'application/vnd.oci.image.config.v1+json', 3), digest, size: fc.oneof(fc.nat(), fc.constant(-1), fc.constant(1.5), fc.string()), platform: fc.anything() },
      { requiredKeys: [] },
    );
    const doc = fc.oneof(
      fc.anything(),
      fc.record({ schemaVersion: fc.constantFrom(2, 1, '2'), mediaType: fc.string(), manifests: fc.array(desc), config: desc, layers: fc.array(desc) }, { requiredKeys: [] }),
      fc.record({ os: fc.anything(), architecture: fc.anything(), config: fc.anything(), rootfs: fc.record({ type: fc.anything(), diff_ids: fc.array(digest) }, { requiredKeys: [] }) }, { requiredKeys: [] }),
    );
    fc.assert(
      fc.property(doc, (v) => {
        onlyImageErrors(() => documentKind(v, undefined, 'x'));
        onlyImageErrors(() => parseIndex(v, 'application/vnd.oci.image.index.v1+json', 'x'));
        onlyImageErrors(() => parseManifest(v, 'application/vnd.oci.image.manifest.v1+json', 'x'));
        onlyImageErrors(() => parseConfig(v, 'x'));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('tar index', () => {
  it('damaged archives are indexed or refused with ImageFormatError', async () => {
    const dir = await tmpDir('bootfs-fuzz-');
    const base = tarBytes([
      { name: 'index.json', data: '{"schemaVersion":2}' },
      { name: 'blobs/', type: 'dir' },
      { name: 'blobs/x', data: 'x'.repeat(1500) },
      { name: 'link', type: 'symlink', target: 'blobs/x' },
    ]);
    const file = path.join(dir, 'f.tar');
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), fc.nat(base.length), async (edits, cut) => {
        const b = Buffer.from(base);
        for (const [i, v] of edits) b[i] = v;
        await writeFile(file, b.subarray(0, Math.max(cut, 512)));
        const fh = await open(file, 'r');
        try {
          await indexTar(fh, 'fuzz');
        } catch (err) {
          expect(err).toBeInstanceOf(ImageFormatError);
        } finally {
          await fh.close();
        }
        try {
          const src = await TarSource.open(file, 'fuzz');
          for (const n of ['index.json', 'blobs/x', 'link']) await src.locate(n);
        } catch (err) {
          expect(err).toBeInstanceOf(ImageFormatError);
        }
      }),
      { numRuns: 300 },
    );
  });
});
