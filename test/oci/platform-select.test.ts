// Image indexes and manifest lists, written by hand: selection by platform, nesting, tags.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotFoundError, UsageError } from '../../src/errors.js';
import { formatPlatform, hostPlatform, openImage, parseImageRef, parsePlatform } from '../../src/oci/index.js';
import { cleanup, tmpDir } from '../helpers/tools.js';
import { digestOf, Layout, layerTar, rejection, tagged, withPlatform } from './fixtures.js';

afterAll(cleanup);

const host = hostPlatform();
// The platform that is not the host's, of the two in the index.
const other = host.architecture === 'arm64' ? parsePlatform('linux/amd64') : parsePlatform('linux/arm64');

describe('image index with two platforms', () => {
  let dir = '';
  const digests: Record<string, string> = {};
  const diffIds: Record<string, string> = {};

  beforeAll(async () => {
    dir = await tmpDir('bootfs-idx-');
    const lay = await Layout.create(dir);
    const amd = await lay.image({ layers: [{ tar: layerTar({ 'arch.txt': 'amd64\n' }), compression: 'gzip' }], architecture: 'amd64', config: { Cmd: ['amd'] } });
    const arm = await lay.image({ layers: [{ tar: layerTar({ 'arch.txt': 'arm64\n' }), compression: 'zstd' }], architecture: 'arm64', variant: 'v8', config: { Cmd: ['arm'] } });
    digests.amd64 = amd.manifest.digest;
    digests.arm64 = arm.manifest.digest;
    diffIds.amd64 = amd.diffIds[0]!;
    diffIds.arm64 = arm.diffIds[0]!;
    const index = await lay.index([withPlatform(amd.manifest, 'linux', 'amd64'), withPlatform(arm.manifest, 'linux', 'arm64', 'v8')]);
    // A second tag points at a Docker manifest list with the same two manifests (nested one level).
    const list = await lay.index(
      [withPlatform({ ...amd.manifest }, 'linux', 'amd64'), withPlatform({ ...arm.manifest }, 'linux', 'arm64')],
      'application/vnd.docker.distribution.manifest.list.v2+json',
    );
    const outer = await lay.index([list]);
    await lay.writeIndexJson([tagged(index, 'multi'), tagged(outer, 'nested')]);
  });

  it('picks the host platform by default', async () => {
    const arch = host.architecture;
    if (arch !== 'amd64' && arch !== 'arm64') {
      // Neither platform of the index runs here: the default must then refuse, not guess.
      await expect(openImage(parseImageRef(`oci:${dir}:multi`))).rejects.toBeInstanceOf(NotFoundError);
      return;
    }
    const img = await openImage(parseImageRef(`oci:${dir}:multi`));
    expect(img.manifestDigest).toBe(digests[arch]);
    expect(img.platform.architecture).toBe(arch);
    expect(img.config.source?.architecture).toBe(arch);
    expect((await digestOf(img.openLayer(0))).digest).toBe(diffIds[arch]);
  });

  it('--platform picks the other one', async () => {
    const img = await openImage(parseImageRef(`oci:${dir}:multi`), { platform: other });
    expect(img.manifestDigest).toBe(digests[other.architecture]);
    expect(img.config.cmd).toEqual([other.architecture === 'arm64' ? 'arm' : 'amd']);
    expect((await digestOf(img.openLayer(0))).digest).toBe(diffIds[other.architecture]);
  });

  it('arm64 matches arm64/v8 in either direction; v9 does not', async () => {
    expect((await openImage(parseImageRef(`oci:${dir}:multi`), { platform: parsePlatform('linux/arm64') })).manifestDigest).toBe(digests.arm64);
    expect((await openImage(parseImageRef(`oci:${dir}:nested`), { platform: parsePlatform('linux/arm64/v8') })).manifestDigest).toBe(digests.arm64);
    const err = await rejection(openImage(parseImageRef(`oci:${dir}:multi`), { platform: parsePlatform('linux/arm64/v9') }));
    expect(err).toBeInstanceOf(NotFoundError);
  });

  it('an unknown platform errors, listing both', async () => {
    const err = await rejection(openImage(parseImageRef(`oci:${dir}:multi`), { platform: parsePlatform('linux/s390x') }));
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).exitCode).toBe(2);
    expect(err.message).toContain('linux/s390x');
    expect(err.message).toContain('linux/amd64');
    expect(err.message).toContain('linux/arm64/v8');
  });

  it('descends into nested indexes and Docker manifest lists', async () => {
    const img = await openImage(parseImageRef(`oci:${dir}:nested`), { platform: other });
    expect(img.manifestDigest).toBe(digests[other.architecture]);
  });

  it('selects by digest, also of a manifest listed only inside an index', async () => {
    const img = await openImage(parseImageRef(`oci:${dir}@${digests.arm64}`));
    expect(img.manifestDigest).toBe(digests.arm64);
    expect(img.platform).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    // An explicit platform must agree with a single-platform image.
    const err = await rejection(openImage(parseImageRef(`oci:${dir}@${digests.arm64}`), { platform: parsePlatform('linux/amd64') }));
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toMatch(/linux\/arm64\/v8, not linux\/amd64/);
  });

  it('several tagged images and no tag: a usage error listing the tags', async () => {
    const err = await rejection(openImage(parseImageRef(`oci:${dir}`)));
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toMatch(/available tags: multi, nested/);
  });

  it('a tag that does not exist: not found, listing the tags', async () => {
    const err = await rejection(openImage(parseImageRef(`oci:${dir}:nope`)));
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toBe(`tag nope not found in oci:${dir}; available tags: multi, nested`);
  });
});

describe('index.json entries that are platform variants of one image', () => {
  it('selects among untagged entries with platforms (as some exporters write them)', async () => {
    const dir = await tmpDir('bootfs-idx-');
    const lay = await Layout.create(dir);
    const a = await lay.image({ layers: [{ tar: layerTar({ a: 'a' }), compression: 'none' }], architecture: 'amd64' });
    const b = await lay.image({ layers: [{ tar: layerTar({ b: 'b' }), compression: 'none' }], architecture: 'arm64' });
    await lay.writeIndexJson([withPlatform(a.manifest, 'linux', 'amd64'), withPlatform(b.manifest, 'linux', 'arm64')]);
    const img = await openImage(parseImageRef(`oci:${dir}`), { platform: parsePlatform('linux/arm64') });
    expect(img.manifestDigest).toBe(b.manifest.digest);
    expect(formatPlatform(img.platform)).toBe('linux/arm64');
  });
});
