/**
 * Where registry credentials come from, first match wins:
 *
 * 1. `--creds USER:PASS` (the `creds` option);
 * 2. containers' auth.json (what `skopeo login` / `podman login` write): `$REGISTRY_AUTH_FILE` when
 *    set, else `$XDG_RUNTIME_DIR/containers/auth.json`, then `~/.config/containers/auth.json`;
 * 3. docker's `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`).
 *
 * In a file, the `auths` entry for the most specific key wins: `host/ns/repo`, then `host/ns`, then
 * `host` (keys may carry a scheme and docker's `/v1/` suffix; `index.docker.io` and
 * `registry-1.docker.io` mean docker.io). An entry holds `auth`, base64 of `user:password`.
 * Credential helpers (`credsStore`, `credHelpers`) and identity tokens are not run or used.
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { errnoCode, IoError, UsageError } from '../errors.js';
import { DOCKER_HUB, type RepoLocation } from './reference.js';

/** A user name and password, and where they came from (for messages; never the password). */
export interface Credentials {
  username: string;
  password: string;
  /** `--creds` or the file they were read from. */
  source: string;
}

/** Where to look. */
export interface CredentialOptions {
  /** `user:password` (the --creds flag). */
  creds?: string;
  /** Auth files to search instead of the defaults (in this order; same format as auth.json). */
  authFiles?: readonly string[];
  /** Environment for the default file locations (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** Parse `user:password`; UsageError naming the flag otherwise. */
export function parseCreds(text: string, source = '--creds'): Credentials {
  const colon = text.indexOf(':');
  if (colon <= 0) throw new UsageError(`${source} must be USER:PASSWORD`);
  return { username: text.slice(0, colon), password: text.slice(colon + 1), source };
}

/** The default auth files, in search order. */
export function defaultAuthFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  const home = env.HOME || os.homedir();
  const files: string[] = [];
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
  else {
    if (env.XDG_RUNTIME_DIR) files.push(path.join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
    files.push(path.join(home, '.config', 'containers', 'auth.json'));
  }
  files.push(path.join(env.DOCKER_CONFIG || path.join(home, '.docker'), 'config.json'));
  return files;
}

/** An auths key as `host[/path]`: no scheme, no trailing slash or docker's `/v1`, Docker Hub as docker.io. */
export function normalizeAuthKey(key: string): string {
  let k = key.trim().replace(/^[a-z]+:\/\//i, '').replace(/\/+$/, '');
  k = k.replace(/\/v[12]$/, '');
  const slash = k.indexOf('/');
  const host = (slash < 0 ? k : k.slice(0, slash)).toLowerCase();
  const rest = slash < 0 ? '' : k.slice(slash);
  return `${host === 'index.docker.io' || host === 'registry-1.docker.io' ? DOCKER_HUB : host}${rest}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The credentials of one auths entry, or undefined when it holds none bootfs can use. */
function entryCredentials(entry: unknown, file: string, key: string): Credentials | undefined {
  if (!isObject(entry)) return undefined;
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const plain = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = plain.indexOf(':');
    if (colon <= 0) throw new UsageError(`${file}: auths["${key}"].auth is not base64 of user:password`);
    return { username: plain.slice(0, colon), password: plain.slice(colon + 1), source: file };
  }
  if (typeof entry.username === 'string' && typeof entry.password === 'string' && entry.username !== '') {
    return { username: entry.username, password: entry.password, source: file };
  }
  return undefined;
}

/** Credentials for `loc` in one auth file; undefined when the file is absent or has no entry. */
export async function credentialsFromFile(file: string, loc: RepoLocation): Promise<Credentials | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new IoError(`cannot read registry auth file ${file}: ${(err as Error).message}`, err);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`registry auth file ${file} is not valid JSON (${(err as Error).message}); fix or remove it`);
  }
  const auths = isObject(doc) ? doc.auths : undefined;
  if (!isObject(auths)) return undefined;
  const byKey = new Map<string, { key: string; entry: unknown }>();
  for (const [key, entry] of Object.entries(auths)) byKey.set(normalizeAuthKey(key), { key, entry });
  const parts = loc.repository.split('/');
  for (let n = parts.length; n >= 0; n--) {
    const want = n === 0 ? loc.registry : `${loc.registry}/${parts.slice(0, n).join('/')}`;
    const hit = byKey.get(want);
    if (hit) {
      const c = entryCredentials(hit.entry, file, hit.key);
      if (c) return c;
    }
  }
  return undefined;
}

/** The credentials for `loc` (see the file comment for the order), or undefined: anonymous. */
export async function findCredentials(loc: RepoLocation, opts: CredentialOptions = {}): Promise<Credentials | undefined> {
  if (opts.creds !== undefined) return parseCreds(opts.creds);
  for (const file of opts.authFiles ?? defaultAuthFiles(opts.env)) {
    const c = await credentialsFromFile(file, loc);
    if (c) return c;
  }
  return undefined;
}
