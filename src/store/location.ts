/**
 * Store locations are URLs everywhere; this is the one place they are parsed. A location is a
 * directory path, a file:// URL, an http:// / https:// URL of a store served over HTTP, an
 * sftp://user@host:port/path URL, or an oci://host[:port]/repo[:tag] registry repository (see
 * docs/remote-stores.md). Other remote schemes are recognised so the error says what is missing.
 */
import { fileURLToPath } from 'node:url';
import { UsageError } from '../errors.js';
import { parseTlsVerify } from '../util/parse.js';
import type { HttpStoreOptions } from './http.js';
import { LocalStore } from './local.js';
import type { RegistryStoreOptions } from './registry.js';
import { parseRegistryStoreLocation } from './registry-location.js';
import type { SftpStoreOptions } from './sftp.js';
import type { WriteStore } from './types.js';

export type StoreLocation = { kind: 'local'; path: string } | { kind: 'http'; url: string } | { kind: 'sftp'; url: string } | { kind: 'oci'; url: string };

// ssh:// is casync's own protocol (casync-format.md §6): not spoken here; use sftp://.
const UNSUPPORTED = /^(ssh|docker):\/\//i;
const SFTP = /^sftp:\/\//i;
const OCI = /^oci:\/\//i;
const HTTP = /^https?:\/\//i;

/** Parse a store location: a path, file:///abs/path, or http(s)://host[:port]/path. */
export function parseStoreLocation(text: string): StoreLocation {
  if (text.trim() === '') throw new UsageError('store location is empty');
  if (text.startsWith('file:')) {
    try {
      return { kind: 'local', path: fileURLToPath(text) };
    } catch (err) {
      throw new UsageError(`store location '${text}' is not a valid file: URL (${(err as Error).message})`);
    }
  }
  if (HTTP.test(text)) {
    let u: URL;
    try {
      u = new URL(text);
    } catch {
      throw new UsageError(`store location '${text}' is not a valid URL`);
    }
    if (!u.hostname) throw new UsageError(`store location '${text}' has no host`);
    return { kind: 'http', url: u.href };
  }
  if (SFTP.test(text)) {
    let u: URL;
    try {
      u = new URL(text);
    } catch {
      throw new UsageError(`store location '${text}' is not a valid URL (sftp://[user@]host[:port]/path)`);
    }
    if (!u.hostname) throw new UsageError(`store location '${text}' has no host`);
    if (u.password) throw new UsageError(`store location '${text}': passwords are not supported; use a key (BOOTFS_SSH_KEY) or ssh-agent`);
    if (u.search || u.hash) throw new UsageError(`store location '${text}': an sftp:// URL takes no query or fragment`);
    return { kind: 'sftp', url: u.href };
  }
  if (OCI.test(text)) {
    parseRegistryStoreLocation(text);
    return { kind: 'oci', url: text };
  }
  const remote = UNSUPPORTED.exec(text);
  if (remote) {
    throw new UsageError(`store location '${text}': ${remote[1]!.toLowerCase()}:// stores are not supported by this version of bootfs yet; use a directory, an http(s)://, sftp:// or oci:// URL`);
  }
  return { kind: 'local', path: text };
}

export interface OpenStoreOptions {
  /** Make a missing local directory (for writers). Remote stores are never created. */
  create?: boolean;
  /** Bearer token for http(s) stores; defaults to the BOOTFS_STORE_TOKEN environment variable. */
  token?: string;
  /** Further HttpStore options (timeouts, retries, concurrency). */
  http?: HttpStoreOptions;
  /** Further SftpStore options; BOOTFS_SSH_* environment variables fill in the rest. */
  sftp?: SftpStoreOptions;
  /** Further RegistryStore options (registry credentials, TLS, segment sizes). */
  oci?: RegistryStoreOptions;
}

/** Open the store a location names: a LocalStore for paths and file:// URLs, an HttpStore for http(s), an SftpStore for sftp, a RegistryStore for oci. */
export async function openStore(text: string, opts: OpenStoreOptions = {}): Promise<WriteStore> {
  const loc = parseStoreLocation(text);
  if (loc.kind === 'local') return LocalStore.open(loc.path, { create: !!opts.create });
  // Remote backends load on demand: undici and ssh2 cost ~190 ms to import, which every local
  // make, extract and convert would otherwise pay.
  if (loc.kind === 'sftp') {
    const { SftpStore, sftpOptionsFromEnv } = await import('./sftp.js');
    return new SftpStore(loc.url, { ...sftpOptionsFromEnv(), ...opts.sftp });
  }
  if (loc.kind === 'oci') {
    const { RegistryStore } = await import('./registry.js');
    return new RegistryStore(loc.url, { ...opts.oci, registry: { ...registryOptionsFromEnv(process.env), ...opts.oci?.registry } });
  }
  const { HttpStore } = await import('./http.js');
  const token = opts.token ?? (process.env.BOOTFS_STORE_TOKEN || undefined);
  return new HttpStore(loc.url, { ...opts.http, ...(token !== undefined ? { token } : {}) });
}

/** Open a store that must be a local directory (maintenance commands); URLs get a clear error. */
export async function openLocalStore(text: string, opts: { create?: boolean } = {}): Promise<LocalStore> {
  const loc = parseStoreLocation(text);
  if (loc.kind !== 'local') throw new UsageError(`store location '${text}': this command works on local store directories only, not ${loc.kind} URLs`);
  return LocalStore.open(loc.path, { create: !!opts.create });
}

/**
 * Registry settings for oci:// stores from the environment: BOOTFS_REGISTRY_CREDS (user:password;
 * default: auth.json, then ~/.docker/config.json) and BOOTFS_REGISTRY_TLS_VERIFY=false (local
 * registries with self-signed certificates or plain http). The boot stub reads them too, and does
 * not pass BOOTFS_* variables on to the app.
 */
export function registryOptionsFromEnv(env: NodeJS.ProcessEnv): { creds?: string; tlsVerify?: boolean } {
  const out: { creds?: string; tlsVerify?: boolean } = {};
  if (env.BOOTFS_REGISTRY_CREDS) out.creds = env.BOOTFS_REGISTRY_CREDS;
  if (env.BOOTFS_REGISTRY_TLS_VERIFY?.trim()) out.tlsVerify = parseTlsVerify(env.BOOTFS_REGISTRY_TLS_VERIFY);
  return out;
}

/**
 * Store options for readers that must not give up early (a mount, a cache warm): a store error is
 * retried with capped back-off until `deadlineMs` has passed, each try limited to 10 s at most.
 */
export function untilDeadline(base: OpenStoreOptions, deadlineMs: number): OpenStoreOptions {
  const retry = { deadlineMs, timeoutMs: Math.min(deadlineMs, 10_000), tries: 1_000_000, maxBackoffMs: 2_000 };
  return { ...base, http: { ...base.http, ...retry }, sftp: { ...base.sftp, ...retry }, oci: { ...base.oci, registry: { ...base.oci?.registry, ...retry } } };
}
