import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { formatImageRef, formatPlatform, hostPlatform, parseImageRef, parsePlatform, platformMatches } from '../../src/oci/index.js';
import { platformRank } from '../../src/oci/platform.js';

const D = `sha256:${'ab'.repeat(32)}`;

describe('parseImageRef', () => {
  it.each([
    ['oci:/x', { transport: 'oci', path: '/x' }],
    ['oci:./lay:latest', { transport: 'oci', path: './lay', tag: 'latest' }],
    ['oci:/x:example.com/app:1.0', { transport: 'oci', path: '/x', tag: 'example.com/app:1.0' }],
    [`oci:/x@${D}`, { transport: 'oci', path: '/x', digest: D }],
    [`oci:/x:@${D}`, { transport: 'oci', path: '/x', digest: D }],
    [`oci:/x:v1@${D}`, { transport: 'oci', path: '/x', tag: 'v1', digest: D }],
    ['oci:/tmp/a@b:c', { transport: 'oci', path: '/tmp/a@b', tag: 'c' }],
    ['oci-archive:img.tar', { transport: 'oci-archive', path: 'img.tar' }],
    ['oci-archive:img.tar:v2', { transport: 'oci-archive', path: 'img.tar', tag: 'v2' }],
    ['docker-archive:d.tar', { transport: 'docker-archive', path: 'd.tar' }],
    ['docker-archive:d.tar:example/app:1.0', { transport: 'docker-archive', path: 'd.tar', tag: 'example/app:1.0' }],
    ['docker-archive:d.tar:localhost:5000/app', { transport: 'docker-archive', path: 'd.tar', tag: 'localhost:5000/app' }],
    ['dir:/root/fs', { transport: 'dir', path: '/root/fs' }],
    ['dir:/with:colon', { transport: 'dir', path: '/with:colon' }],
  ])('%s', (text, want) => {
    expect(parseImageRef(text)).toEqual(want);
  });

  it('reads registry references (docker://; more in test/registry/parse.test.ts)', () => {
    expect(parseImageRef('docker://alpine:3')).toEqual({ transport: 'docker', path: 'docker.io/library/alpine', tag: '3' });
    expect(() => parseImageRef('docker:alpine:3')).toThrow(UsageError);
  });

  it.each([
    ['/just/a/path', /not an image reference/],
    ['alpine:latest', /unknown transport 'alpine'/],
    ['containers-storage:alpine', /containers-storage/],
    ['docker-daemon:alpine:latest', /Docker daemon/],
    ['oci:', /directory is missing/],
    ['oci:/x:', /tag after ':' is empty/],
    ['oci:/x:bad tag', /not a valid tag/],
    [`oci:/x@sha512:${'a'.repeat(128)}`, /sha512 is not supported/],
    [`oci:/x@sha256:${'A'.repeat(64)}`, /not a sha256 digest/],
    [`docker-archive:d.tar@${D}`, /RepoTag/],
    ['dir:', /directory is missing/],
    ['oci:/x\n:y', /control characters/],
  ])('refuses %j', (text, msg) => {
    expect(() => parseImageRef(text)).toThrow(UsageError);
    expect(() => parseImageRef(text)).toThrow(msg);
  });

  it('a digest with ../ never parses as a digest', () => {
    // `@sha256:../../x` is not a digest, so it stays part of the path/tag and the tag is refused.
    expect(() => parseImageRef('oci:/x:@sha256:../../etc/passwd')).toThrow(UsageError);
  });

  it('formatImageRef inverts parseImageRef', () => {
    const segment = fc.stringMatching(/^[A-Za-z0-9._\-/]{1,20}$/);
    const tag = fc.stringMatching(/^[A-Za-z0-9]{1,8}([._-][A-Za-z0-9]{1,8}){0,2}$/);
    const digest = fc.stringMatching(/^[0-9a-f]{64}$/).map((h) => `sha256:${h}`);
    fc.assert(
      fc.property(fc.constantFrom('oci', 'oci-archive'), segment, fc.option(tag, { nil: undefined }), fc.option(digest, { nil: undefined }), (transport, p, t, d) => {
        const ref = { transport, path: p, ...(t ? { tag: t } : {}), ...(d ? { digest: d } : {}) } as const;
        const text = formatImageRef(ref);
        expect(parseImageRef(text)).toEqual(ref);
        expect(formatImageRef(parseImageRef(text))).toBe(text);
      }),
    );
  });

  it('formatImageRef refuses paths the syntax cannot express', () => {
    expect(() => formatImageRef({ transport: 'oci', path: '/a:b' })).toThrow(UsageError);
    expect(formatImageRef({ transport: 'dir', path: '/a:b' })).toBe('dir:/a:b');
  });
});

describe('platforms', () => {
  it('parses and normalises', () => {
    expect(parsePlatform('linux/amd64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(parsePlatform('linux/arm64/v8')).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(parsePlatform('Linux/AArch64')).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(parsePlatform('linux/x86_64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(parsePlatform('linux/arm/7')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(parsePlatform('linux/armhf')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    for (const bad of ['linux', 'linux/', '/amd64', 'linux/amd64/v1/x', 'linux/am d64', '']) {
      expect(() => parsePlatform(bad)).toThrow(UsageError);
    }
    expect(formatPlatform(parsePlatform('linux/arm64/v8'))).toBe('linux/arm64/v8');
  });

  it('knows the host', () => {
    const h = hostPlatform();
    expect(h.os).toBe('linux');
    if (process.arch === 'x64') expect(h).toEqual({ os: 'linux', architecture: 'amd64' });
    if (process.arch === 'arm64') expect(h).toEqual({ os: 'linux', architecture: 'arm64' });
  });

  it('matches like containerd', () => {
    const p = parsePlatform;
    expect(platformMatches(p('linux/amd64'), p('linux/amd64'))).toBe(true);
    expect(platformMatches(p('linux/amd64'), p('linux/arm64'))).toBe(false);
    expect(platformMatches(p('linux/amd64'), p('windows/amd64'))).toBe(false);
    // arm64 without a variant is arm64/v8
    expect(platformMatches(p('linux/arm64'), p('linux/arm64/v8'))).toBe(true);
    expect(platformMatches(p('linux/arm64/v8'), p('linux/arm64'))).toBe(true);
    expect(platformMatches(p('linux/arm64'), p('linux/arm64/v9'))).toBe(false);
    // a variant must match when both name one
    expect(platformMatches(p('linux/arm/v7'), p('linux/arm/v6'))).toBe(false);
    expect(platformMatches(p('linux/arm/v7'), p('linux/arm'))).toBe(true);
    expect(platformMatches(p('linux/arm'), p('linux/arm/v6'))).toBe(true);
    // exact variants rank first
    expect(platformRank(p('linux/arm/v7'), p('linux/arm/v7'))).toBeLessThan(platformRank(p('linux/arm/v7'), p('linux/arm'))!);
  });
});
