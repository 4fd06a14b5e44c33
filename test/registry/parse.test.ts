// Registry client pieces without a network: references, docker:// refs, auth files,
// WWW-Authenticate challenges, token answers, options.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotFoundError, UsageError } from '../../src/errors.js';
import { formatImageRef, parseImageRef } from '../../src/oci/index.js';
import { challengeScopes, parseTokenResponse, parseWwwAuthenticate, scopeKey } from '../../src/registry/auth.js';
import { credentialsFromFile, defaultAuthFiles, findCredentials, normalizeAuthKey, parseCreds } from '../../src/registry/credentials.js';
import { parseTlsVerify, resolveRegistryOptions } from '../../src/registry/options.js';
import { isLoopback, parseRegistryReference, parseRepoLocation } from '../../src/registry/reference.js';

const D = `sha256:${'ab'.repeat(32)}`;

describe('registry references', () => {
  it.each([
    ['127.0.0.1:5000/app', { registry: '127.0.0.1:5000', repository: 'app' }],
    ['localhost:5000/team/app:v1', { registry: 'localhost:5000', repository: 'team/app', tag: 'v1' }],
    ['localhost/app', { registry: 'localhost', repository: 'app' }],
    ['registry.example.com/a/b/c@' + D, { registry: 'registry.example.com', repository: 'a/b/c', digest: D }],
    ['host.example:443/x:t@' + D, { registry: 'host.example:443', repository: 'x', tag: 't', digest: D }],
    ['[::1]:5000/app:1', { registry: '[::1]:5000', repository: 'app', tag: '1' }],
    ['alpine', { registry: 'docker.io', repository: 'library/alpine' }],
    ['alpine:3.20', { registry: 'docker.io', repository: 'library/alpine', tag: '3.20' }],
    ['me/app', { registry: 'docker.io', repository: 'me/app' }],
    ['index.docker.io/library/debian:12', { registry: 'docker.io', repository: 'library/debian', tag: '12' }],
    ['a.b/x__y/p-q.r_s', { registry: 'a.b', repository: 'x__y/p-q.r_s' }],
  ])('%s', (text, want) => {
    expect(parseRegistryReference(text)).toEqual(want);
  });

  it.each([
    ['', /not a registry reference/],
    ['host:5000/App', /repository 'App' is not valid/],
    ['host:5000/a//b', /not valid/],
    ['host:5000/a:-bad', /not a valid tag/],
    ['host:5000/a@sha256:short', /not a sha256 digest/],
    [`host:5000/a@sha512:${'a'.repeat(128)}`, /sha512 is not supported/],
    ['host:99999/a', /not a valid registry/],
    ['-bad.host/a', /not a valid registry/],
    ['host:5000/a b', /not a registry reference/],
  ])('refuses %j', (text, msg) => {
    expect(() => parseRegistryReference(text)).toThrow(UsageError);
    expect(() => parseRegistryReference(text)).toThrow(msg);
  });

  it('repository locations take no tag', () => {
    expect(parseRepoLocation('h:1/a/b')).toEqual({ registry: 'h:1', repository: 'a/b' });
    expect(() => parseRepoLocation('h:1/a:t')).toThrow(/no tag or digest/);
  });

  it('knows loopback hosts', () => {
    for (const h of ['localhost', 'localhost:5000', '127.0.0.1:1', '127.8.9.10', '[::1]:5000']) expect(isLoopback(h)).toBe(true);
    for (const h of ['example.com', '10.0.0.1:5000', '128.0.0.1', 'localhost.example']) expect(isLoopback(h)).toBe(false);
  });
});

describe('docker:// image references', () => {
  it.each([
    ['docker://127.0.0.1:5000/app', { transport: 'docker', path: '127.0.0.1:5000/app', tag: 'latest' }],
    ['docker://127.0.0.1:5000/team/app:v1', { transport: 'docker', path: '127.0.0.1:5000/team/app', tag: 'v1' }],
    [`docker://h.example/app@${D}`, { transport: 'docker', path: 'h.example/app', digest: D }],
    [`docker://h.example/app:v2@${D}`, { transport: 'docker', path: 'h.example/app', tag: 'v2', digest: D }],
    ['docker://alpine', { transport: 'docker', path: 'docker.io/library/alpine', tag: 'latest' }],
  ])('%s', (text, want) => {
    expect(parseImageRef(text)).toEqual(want);
    expect(parseImageRef(formatImageRef(want as never))).toEqual(want);
  });

  it('refuses docker: without //, and bad names', () => {
    expect(() => parseImageRef('docker:alpine')).toThrow(/docker:\/\/HOST/);
    expect(() => parseImageRef('docker://h:5000/UP')).toThrow(UsageError);
  });

  it('formatImageRef inverts parseImageRef', () => {
    const component = fc.stringMatching(/^[a-z0-9]{1,6}([._-][a-z0-9]{1,6}){0,2}$/);
    const host = fc.constantFrom('127.0.0.1:5000', 'localhost', 'reg.example:8443', 'docker.io');
    const tag = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}$/);
    const digest = fc.stringMatching(/^[0-9a-f]{64}$/).map((h) => `sha256:${h}`);
    fc.assert(
      fc.property(host, fc.array(component, { minLength: 2, maxLength: 3 }), fc.option(tag, { nil: undefined }), fc.option(digest, { nil: undefined }), (h, parts, t, d) => {
        const text = `docker://${h}/${parts.join('/')}${t ? `:${t}` : ''}${d ? `@${d}` : ''}`;
        const ref = parseImageRef(text);
        expect(parseImageRef(formatImageRef(ref))).toEqual(ref);
      }),
    );
  });
});

describe('credentials', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'bootfs-creds-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));
  const auth = (u: string, p: string) => Buffer.from(`${u}:${p}`).toString('base64');

  it('parses --creds', () => {
    expect(parseCreds('alice:s:e:c')).toEqual({ username: 'alice', password: 's:e:c', source: '--creds' });
    expect(() => parseCreds('alice')).toThrow(/USER:PASSWORD/);
    expect(() => parseCreds(':x')).toThrow(UsageError);
  });

  it('normalises auths keys', () => {
    expect(normalizeAuthKey('https://index.docker.io/v1/')).toBe('docker.io');
    expect(normalizeAuthKey('registry-1.docker.io')).toBe('docker.io');
    expect(normalizeAuthKey('http://Reg.Example:5000/')).toBe('reg.example:5000');
    expect(normalizeAuthKey('reg.example/team/app')).toBe('reg.example/team/app');
  });

  it('picks the most specific entry, then the first file that has one', async () => {
    const containers = path.join(dir, 'auth.json');
    const docker = path.join(dir, 'config.json');
    await writeFile(containers, JSON.stringify({ auths: { 'reg.example:5000': { auth: auth('host', 'h') }, 'reg.example:5000/team': { auth: auth('team', 't') } } }));
    await writeFile(docker, JSON.stringify({ auths: { 'https://other.example/v1/': { auth: auth('docker', 'd') }, 'reg.example:5000': { auth: auth('never', 'n') } } }));
    const files = [path.join(dir, 'missing.json'), containers, docker];
    expect(await findCredentials({ registry: 'reg.example:5000', repository: 'team/app' }, { authFiles: files })).toEqual({ username: 'team', password: 't', source: containers });
    expect(await findCredentials({ registry: 'reg.example:5000', repository: 'other/app' }, { authFiles: files })).toMatchObject({ username: 'host' });
    expect(await findCredentials({ registry: 'other.example', repository: 'x' }, { authFiles: files })).toMatchObject({ username: 'docker', source: docker });
    expect(await findCredentials({ registry: 'none.example', repository: 'x' }, { authFiles: files })).toBeUndefined();
    expect(await findCredentials({ registry: 'reg.example:5000', repository: 'x' }, { authFiles: files, creds: 'flag:f' })).toMatchObject({ username: 'flag', source: '--creds' });
  });

  it('refuses a broken file with a message naming it', async () => {
    const bad = path.join(dir, 'bad.json');
    await writeFile(bad, '{"auths": ');
    await expect(credentialsFromFile(bad, { registry: 'x', repository: 'y' })).rejects.toThrow(new RegExp(`${bad} is not valid JSON`));
    const badAuth = path.join(dir, 'bad-auth.json');
    await writeFile(badAuth, JSON.stringify({ auths: { x: { auth: Buffer.from('nocolon').toString('base64') } } }));
    await expect(credentialsFromFile(badAuth, { registry: 'x', repository: 'y' })).rejects.toThrow(/not base64 of user:password/);
  });

  it('default files: REGISTRY_AUTH_FILE or XDG_RUNTIME_DIR and ~/.config, then DOCKER_CONFIG or ~/.docker', () => {
    expect(defaultAuthFiles({ HOME: '/h', XDG_RUNTIME_DIR: '/run/user/1' })).toEqual(['/run/user/1/containers/auth.json', '/h/.config/containers/auth.json', '/h/.docker/config.json']);
    expect(defaultAuthFiles({ HOME: '/h', REGISTRY_AUTH_FILE: '/a.json', DOCKER_CONFIG: '/d' })).toEqual(['/a.json', '/d/config.json']);
  });
});

describe('challenges and tokens', () => {
  it('parses WWW-Authenticate', () => {
    expect(parseWwwAuthenticate('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' } },
    ]);
    expect(parseWwwAuthenticate(['Basic realm="x \\"y\\""', 'Bearer realm=https://t/x, error="insufficient_scope"'])).toEqual([
      { scheme: 'basic', params: { realm: 'x "y"' } },
      { scheme: 'bearer', params: { realm: 'https://t/x', error: 'insufficient_scope' } },
    ]);
    expect(parseWwwAuthenticate('Bearer realm="a", Basic realm="b"').map((c) => c.scheme)).toEqual(['bearer', 'basic']);
    expect(parseWwwAuthenticate(undefined)).toEqual([]);
    expect(parseWwwAuthenticate('Negotiate abc123==')).toEqual([{ scheme: 'negotiate', params: {} }]);
    expect(challengeScopes({ scheme: 'bearer', params: { scope: 'repository:a:pull repository:b:pull' } })).toEqual(['repository:a:pull', 'repository:b:pull']);
    expect(scopeKey(['b', 'a', 'b'])).toBe('a b');
  });

  it('never throws on hostile headers', () => {
    fc.assert(fc.property(fc.string(), (s) => void parseWwwAuthenticate(s)));
  });

  it('reads token answers', () => {
    expect(parseTokenResponse({ token: 't', expires_in: 300 }, 0)).toEqual({ token: 't', expiresAt: 290_000 });
    expect(parseTokenResponse({ access_token: 'a' }, 0)).toEqual({ token: 'a', expiresAt: 50_000 });
    expect(parseTokenResponse({ token: '' }, 0)).toBeUndefined();
    expect(parseTokenResponse({ token: 'a\nb' }, 0)).toBeUndefined();
    expect(parseTokenResponse(null)).toBeUndefined();
  });
});

describe('options', () => {
  it('parses --tls-verify', () => {
    expect(parseTlsVerify('false')).toBe(false);
    expect(parseTlsVerify('TRUE')).toBe(true);
    expect(() => parseTlsVerify('maybe')).toThrow(/true or false/);
  });

  it('validates with messages naming the field', () => {
    expect(() => resolveRegistryOptions({ tries: 0 })).toThrow(/tries must be a positive integer/);
    expect(() => resolveRegistryOptions({ caFile: '/nonexistent/ca.pem' })).toThrow(NotFoundError);
    expect(resolveRegistryOptions({})).toMatchObject({ tlsVerify: true, tries: 4, deadlineMs: 120_000 });
  });
});
