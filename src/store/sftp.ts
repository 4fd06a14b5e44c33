/**
 * A chunk store over SFTP: `sftp://user@host:port/path`, served by OpenSSH's sshd (read-write) or
 * `bootfs serve --ssh` (read-only). Same layout as a directory store: `<path>/<4hex>/<id>.cacnk`.
 *
 * One SSH connection carries a small pool of SFTP channels; requests are pipelined on them, bounded
 * by `concurrency`. The host key is always verified (known_hosts or a pinned fingerprint) unless
 * explicitly disabled. Connection errors and per-try timeouts are retried on a fresh connection
 * with exponential back-off inside a total deadline; SFTP status errors (permission denied, …) never.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import ssh2 from 'ssh2';
import type { Client, SFTPWrapper, Stats } from 'ssh2';
import { decodeChunk, idToHex } from '../chunk.js';
import { BootfsError, ChunkNotFoundError, IoError, UsageError } from '../errors.js';
import { backoffDelay, positiveInt, Semaphore, type RetryOptions } from '../util/limits.js';
import { checkKnownHosts, fingerprint, knownHostsName, parseOneKey } from '../server/ssh-keys.js';
import type { GetOptions, WriteStore } from './types.js';

const { STATUS_CODE } = ssh2.utils.sftp;

/** Largest stored chunk accepted: casync's cap on a chunk body (16 MiB), as for HTTP. */
export const SFTP_MAX_BODY_BYTES = 16 * 1024 * 1024;

/**
 * Retries (RetryOptions) default to: a try of 30 s, a 120 s deadline, 3 tries, back-off from
 * 200 ms without a cap.
 */
export interface SftpStoreOptions extends RetryOptions {
  /** Private key (OpenSSH/PEM text); wins over `privateKeyFile` and the defaults. */
  privateKey?: Buffer | string;
  /** Private key file (BOOTFS_SSH_KEY). Default: ~/.ssh/id_ed25519, then ~/.ssh/id_rsa, if present. */
  privateKeyFile?: string;
  passphrase?: string;
  /** ssh-agent socket (default SSH_AUTH_SOCK); tried after the key. */
  agent?: string;
  /** known_hosts file (BOOTFS_SSH_KNOWN_HOSTS; default ~/.ssh/known_hosts). */
  knownHostsFile?: string;
  /** Pinned host key `SHA256:…` (BOOTFS_SSH_HOST_FINGERPRINT); replaces the known_hosts check. */
  hostFingerprint?: string;
  /** Accept any host key (BOOTFS_SSH_INSECURE_SKIP_HOST_KEY_CHECK=1). Only for throwaway tests. */
  insecureSkipHostKeyCheck?: boolean;
  /** SFTP channels on the one connection (default 4). */
  channels?: number;
  /** Operations in flight at once (default 16). */
  concurrency?: number;
  /** Connect + handshake + auth timeout in ms (default 20 000). */
  connectTimeoutMs?: number;
  /** Largest chunk file read (default 16 MiB). */
  maxBodyBytes?: number;
}

/** SftpStore options from BOOTFS_SSH_* and SSH_AUTH_SOCK (documented in docs/remote-stores.md). */
export function sftpOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): SftpStoreOptions {
  const o: SftpStoreOptions = {};
  if (env.BOOTFS_SSH_KEY) o.privateKeyFile = env.BOOTFS_SSH_KEY;
  if (env.BOOTFS_SSH_KEY_PASSPHRASE) o.passphrase = env.BOOTFS_SSH_KEY_PASSPHRASE;
  if (env.SSH_AUTH_SOCK) o.agent = env.SSH_AUTH_SOCK;
  if (env.BOOTFS_SSH_KNOWN_HOSTS) o.knownHostsFile = env.BOOTFS_SSH_KNOWN_HOSTS;
  if (env.BOOTFS_SSH_HOST_FINGERPRINT) o.hostFingerprint = env.BOOTFS_SSH_HOST_FINGERPRINT;
  const skip = env.BOOTFS_SSH_INSECURE_SKIP_HOST_KEY_CHECK;
  if (skip !== undefined && skip !== '' && skip !== '0') {
    if (skip !== '1') throw new UsageError(`BOOTFS_SSH_INSECURE_SKIP_HOST_KEY_CHECK must be 1 or 0, got '${skip}'`);
    o.insecureSkipHostKeyCheck = true;
  }
  return o;
}

/** The host refused, or its key failed verification: never retried. */
export class HostKeyError extends BootfsError {
  constructor(message: string) {
    super(message, { code: 'ERR_IO' });
  }
}


/** `cb`-style call → promise. */
function call<T>(fn: (cb: (err: Error | null | undefined, value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));
}

/** An SFTP status error (`code` is the numeric SSH_FX_* status). */
function sftpStatus(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** A lost or broken connection (worth a retry on a new one). */
class ConnectionLost extends Error {}
class TryTimeout extends Error {}

interface Conn {
  client: Client;
  sock: net.Socket;
  channels: SFTPWrapper[];
  next: number;
  active: number;
  dead: boolean;
  /** Rejects with ConnectionLost when the connection closes. */
  lost: Promise<never>;
}

/** A WriteStore on an SFTP server, with host-key verification and a pooled connection. */
export class SftpStore implements WriteStore {
  /** `sftp://user@host:port/path/` (no secrets are ever part of it). */
  readonly location: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** Remote store directory: absolute, or relative to the login directory ('' = the login directory itself). */
  readonly root: string;
  private readonly opts: SftpStoreOptions;
  private readonly limits: { channels: number; concurrency: number; connectTimeoutMs: number; timeoutMs: number; deadlineMs: number; tries: number; backoffMs: number; maxBackoffMs: number; maxBodyBytes: number };
  private conn: Promise<Conn> | undefined;
  private posixRename: boolean | undefined;
  private readonly slots: Semaphore;
  private closed = false;

  constructor(url: string, opts: SftpStoreOptions = {}) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new UsageError(`store location '${url}' is not a valid URL`);
    }
    if (u.protocol !== 'sftp:') throw new UsageError(`store location '${url}': SftpStore needs an sftp:// URL`);
    if (!u.hostname) throw new UsageError(`store location '${url}' has no host`);
    if (u.password) throw new UsageError(`store location '${url}': passwords are not supported; use a key (BOOTFS_SSH_KEY) or ssh-agent`);
    this.host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    this.port = u.port ? Number(u.port) : 22;
    this.user = u.username ? decodeURIComponent(u.username) : os.userInfo().username;
    // `/srv/store` is absolute on the server; `/~/store` is relative to the login directory.
    const p = decodeURIComponent(u.pathname).replace(/\/+$/, '');
    this.root = p === '/~' || p.startsWith('/~/') ? p.slice(3) : p === '' ? '/' : p;
    this.opts = opts;
    this.limits = {
      channels: positiveInt('sftp', 'channels', opts.channels, 4),
      concurrency: positiveInt('sftp', 'concurrency', opts.concurrency, 16),
      connectTimeoutMs: positiveInt('sftp', 'connectTimeoutMs', opts.connectTimeoutMs, 20_000),
      timeoutMs: positiveInt('sftp', 'timeoutMs', opts.timeoutMs, 30_000),
      deadlineMs: positiveInt('sftp', 'deadlineMs', opts.deadlineMs, 120_000),
      tries: positiveInt('sftp', 'tries', opts.tries, 3),
      backoffMs: positiveInt('sftp', 'backoffMs', opts.backoffMs, 200),
      maxBackoffMs: opts.maxBackoffMs ?? Infinity,
      maxBodyBytes: positiveInt('sftp', 'maxBodyBytes', opts.maxBodyBytes, SFTP_MAX_BODY_BYTES),
    };
    this.slots = new Semaphore(this.limits.concurrency);
    if (opts.hostFingerprint !== undefined && !/^SHA256:[A-Za-z0-9+/]{43}$/.test(opts.hostFingerprint)) {
      throw new UsageError(`host fingerprint '${opts.hostFingerprint}' is not SHA256:<43 base64 characters> (as ssh-keygen -lf prints it)`);
    }
    const hostPart = this.host.includes(':') ? `[${this.host}]` : this.host;
    const shownPath = this.root.startsWith('/') ? this.root : `/~/${this.root}`;
    this.location = `sftp://${encodeURIComponent(this.user)}@${hostPart}:${this.port}${shownPath.endsWith('/') ? shownPath : `${shownPath}/`}`;
  }

  /** Remote path of a chunk. */
  chunkPath(hex: string): string {
    return this.remote(`${hex.slice(0, 4)}/${hex}.cacnk`);
  }

  private remote(rel: string): string {
    return this.root === '' ? rel : this.root.endsWith('/') ? `${this.root}${rel}` : `${this.root}/${rel}`;
  }

  async getStored(id: Uint8Array, opts: GetOptions = {}): Promise<Buffer> {
    const hex = idToHex(id);
    return this.op('read chunk', hex, opts.signal, async (sftp) => {
      let handle: Buffer;
      try {
        handle = await call<Buffer>((cb) => sftp.open(this.chunkPath(hex), 'r', cb));
      } catch (err) {
        if (sftpStatus(err) === STATUS_CODE.NO_SUCH_FILE) throw new ChunkNotFoundError(hex, this.location);
        throw this.statusError('open chunk', hex, err);
      }
      try {
        const st = await call<Stats>((cb) => sftp.fstat(handle, cb));
        if (st.size > this.limits.maxBodyBytes) throw new IoError(`chunk ${hex} in ${this.location} is ${st.size} bytes, over the ${this.limits.maxBodyBytes} byte limit`);
        const buf = Buffer.alloc(st.size);
        let off = 0;
        // ssh2 splits a large read into server-sized requests; loop for short reads.
        while (off < buf.length) {
          const n = await call<number>((cb) => sftp.read(handle, buf, off, buf.length - off, off, (err, bytesRead) => cb(err, bytesRead)));
          if (n === 0) break;
          off += n;
        }
        return buf.subarray(0, off);
      } catch (err) {
        if (err instanceof BootfsError || sftpStatus(err) === undefined) throw err;
        throw this.statusError('read chunk', hex, err);
      } finally {
        sftp.close(handle, () => undefined);
      }
    });
  }

  async getChunk(id: Uint8Array, opts: GetOptions = {}): Promise<Buffer> {
    const stored = await this.getStored(id, opts);
    return decodeChunk(id, stored, this.location, opts.size === undefined ? {} : { size: opts.size });
  }

  async hasChunk(id: Uint8Array): Promise<boolean> {
    const hex = idToHex(id);
    return this.op('stat chunk', hex, undefined, async (sftp) => {
      try {
        const st = await call<Stats>((cb) => sftp.stat(this.chunkPath(hex), cb));
        return st.isFile();
      } catch (err) {
        if (sftpStatus(err) === STATUS_CODE.NO_SUCH_FILE) return false;
        throw this.statusError('stat chunk', hex, err);
      }
    });
  }

  async storeChunk(id: Uint8Array, stored: Uint8Array): Promise<boolean> {
    if (await this.hasChunk(id)) return false;
    const hex = idToHex(id);
    const shard = this.remote(hex.slice(0, 4));
    const final = this.chunkPath(hex);
    // Never ends in .cacnk, so casync gc and desync prune skip it (casync-format.md §2.1).
    const tmp = `${shard}/.tmp-${hex}.${randomBytes(6).toString('hex')}`;
    return this.op('store chunk', hex, undefined, async (sftp) => {
      try {
        await call<void>((cb) => sftp.mkdir(shard, { mode: 0o755 }, (err) => cb(err, undefined)));
      } catch (err) {
        // Already there (FAILURE from OpenSSH for EEXIST): confirm it is a directory.
        const st = await call<Stats>((cb) => sftp.stat(shard, cb)).catch(() => undefined);
        if (!st?.isDirectory()) throw this.statusError('create shard directory for', hex, err);
      }
      try {
        await call<void>((cb) => sftp.writeFile(tmp, Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength), { flag: 'wx', mode: 0o644 }, (err) => cb(err, undefined)));
        return await this.renameIntoPlace(sftp, tmp, final, hex);
      } catch (err) {
        sftp.unlink(tmp, () => undefined);
        if (err instanceof BootfsError || sftpStatus(err) === undefined) throw err;
        throw this.statusError('store chunk', hex, err);
      }
    });
  }

  /** posix-rename@openssh.com when offered (atomic replace of identical bytes); else RENAME, which fails on an existing target. */
  private async renameIntoPlace(sftp: SFTPWrapper, tmp: string, final: string, hex: string): Promise<boolean> {
    if (this.posixRename !== false) {
      try {
        await call<void>((cb) => sftp.ext_openssh_rename(tmp, final, (err) => cb(err, undefined)));
        this.posixRename = true;
        return true;
      } catch (err) {
        if (!/does not support/i.test((err as Error).message)) throw err;
        this.posixRename = false;
      }
    }
    try {
      await call<void>((cb) => sftp.rename(tmp, final, (err) => cb(err, undefined)));
      return true;
    } catch (err) {
      // Plain SFTP rename refuses an existing target: another writer stored the chunk first.
      const st = await call<Stats>((cb) => sftp.stat(final, cb)).catch(() => undefined);
      if (st?.isFile()) {
        sftp.unlink(tmp, () => undefined);
        return false;
      }
      throw this.statusError('rename chunk', hex, err);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const conn = await this.conn?.catch(() => undefined);
    if (conn) this.drop(conn);
  }

  private statusError(what: string, hex: string, err: unknown): IoError {
    const status = sftpStatus(err);
    const hint = status === STATUS_CODE.PERMISSION_DENIED ? ' (a read-only server such as bootfs serve --ssh, or file permissions)' : '';
    return new IoError(`${what} ${hex} at ${this.location}: ${(err as Error).message}${hint}`, err);
  }

  /** One operation: tries on a (re)connected channel with back-off, until success, a non-retryable error, or the deadline. */
  private async op<T>(what: string, hex: string, signal: AbortSignal | undefined, fn: (sftp: SFTPWrapper) => Promise<T>): Promise<T> {
    if (this.closed) throw new IoError(`sftp store ${this.location} is closed`);
    const deadline = AbortSignal.timeout(this.limits.deadlineMs);
    const outer = signal ? AbortSignal.any([signal, deadline]) : deadline;
    let lastError: unknown;
    for (let attempt = 0; attempt < this.limits.tries; attempt++) {
      if (attempt > 0) {
        try {
          await sleep(backoffDelay(attempt, this.limits.backoffMs, this.limits.maxBackoffMs), undefined, { signal: outer });
        } catch {
          break;
        }
      }
      if (outer.aborted) break;
      try {
        return await this.once(fn, outer);
      } catch (err) {
        lastError = err;
        if (signal?.aborted) throw signal.reason;
        if (err instanceof BootfsError) throw err;
        if (!(err instanceof ConnectionLost || err instanceof TryTimeout)) break;
      }
    }
    if (signal?.aborted) throw signal.reason;
    const where = `${what} ${hex} at ${this.location}`;
    if (deadline.aborted) throw new IoError(`${where}: no answer within the ${this.limits.deadlineMs} ms deadline`, lastError);
    const reason = lastError instanceof Error ? lastError.message : String(lastError);
    throw new IoError(`${where} failed after ${this.limits.tries} tries: ${reason}`, lastError);
  }

  /** One try on one channel, holding one of `concurrency` slots, bounded by timeoutMs. */
  private async once<T>(fn: (sftp: SFTPWrapper) => Promise<T>, outer: AbortSignal): Promise<T> {
    await this.slots.acquire();
    let conn: Conn | undefined;
    try {
      conn = await this.connection();
      const c = conn;
      if (++c.active === 1) c.sock.ref();
      const sftp = c.channels[c.next++ % c.channels.length]!;
      const tryTimeout = AbortSignal.timeout(this.limits.timeoutMs);
      const sig = AbortSignal.any([outer, tryTimeout]);
      let onAbort: (() => void) | undefined;
      const aborted = new Promise<never>((_, reject) => {
        onAbort = () => reject(tryTimeout.aborted ? new TryTimeout(`no answer within ${this.limits.timeoutMs} ms`) : outer.reason);
        sig.addEventListener('abort', onAbort, { once: true });
      });
      aborted.catch(() => undefined);
      try {
        return await Promise.race([fn(sftp), aborted, c.lost]);
      } catch (err) {
        // A hung or broken connection: start over on a new one (requests on it may never answer).
        if (err instanceof TryTimeout || c.dead || /No response from server|not connected|channel/i.test((err as Error).message ?? '')) {
          this.drop(c);
          if (!(err instanceof TryTimeout) && !(err instanceof BootfsError)) throw new ConnectionLost((err as Error).message);
        }
        throw err;
      } finally {
        if (onAbort) sig.removeEventListener('abort', onAbort);
      }
    } finally {
      if (conn && --conn.active === 0 && !conn.dead) conn.sock.unref();
      this.slots.release();
    }
  }

  private connection(): Promise<Conn> {
    if (!this.conn) {
      this.conn = this.connect();
      // A failed connect is forgotten, so the next try connects afresh.
      this.conn.catch(() => {
        this.conn = undefined;
      });
    }
    return this.conn;
  }

  private drop(conn: Conn): void {
    if (!conn.dead) {
      conn.dead = true;
      conn.client.end();
      conn.sock.destroy();
    }
    void this.conn?.then((c) => {
      if (c === conn) this.conn = undefined;
    });
  }

  /** Key material: explicit key, BOOTFS_SSH_KEY, or the first default key file that exists. */
  private privateKey(): { privateKey?: Buffer | string; passphrase?: string } {
    const { privateKey, privateKeyFile, passphrase } = this.opts;
    const withPass = (k: Buffer | string) => ({ privateKey: k, ...(passphrase ? { passphrase } : {}) });
    if (privateKey !== undefined) return withPass(privateKey);
    const files = privateKeyFile ? [privateKeyFile] : ['id_ed25519', 'id_rsa'].map((n) => path.join(os.homedir(), '.ssh', n)).filter((f) => existsSync(f));
    for (const file of files) {
      let data: Buffer;
      try {
        data = readFileSync(file);
      } catch (err) {
        throw new IoError(`cannot read ssh key ${file}: ${(err as Error).message}`, err);
      }
      parseOneKey(data, `ssh key ${file}`, passphrase); // a clear error for a bad or encrypted key
      return withPass(data);
    }
    return {};
  }

  /** The host key check, as a verdict message (undefined = accepted). */
  private checkHostKey(blob: Buffer): string | undefined {
    const fp = fingerprint(blob);
    const name = knownHostsName(this.host, this.port);
    if (this.opts.insecureSkipHostKeyCheck) return undefined;
    if (this.opts.hostFingerprint !== undefined) {
      if (fp === this.opts.hostFingerprint) return undefined;
      return `host key of ${name} is ${fp}, not the pinned ${this.opts.hostFingerprint} (BOOTFS_SSH_HOST_FINGERPRINT): refusing to connect`;
    }
    const file = this.opts.knownHostsFile ?? path.join(os.homedir(), '.ssh', 'known_hosts');
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      // a missing file knows no host
    }
    const v = checkKnownHosts(text, this.host, this.port, blob);
    if (v.ok) return undefined;
    const fix = `check it out of band, then add it (ssh-keyscan -p ${this.port} ${this.host} >> ${file}) or pin it (BOOTFS_SSH_HOST_FINGERPRINT=${fp})`;
    if (v.reason === 'revoked') return `host key ${fp} of ${name} is marked @revoked in ${file}: refusing to connect`;
    if (v.reason === 'mismatch') return `host key of ${name} does not match ${file}: the server offered ${fp}. It may have been replaced, or someone may be intercepting the connection; ${fix}`;
    return `host ${name} is not in ${file}: the server offered key ${fp}; ${fix}`;
  }

  private async connect(): Promise<Conn> {
    const keys = this.privateKey();
    const agent = this.opts.agent;
    if (keys.privateKey === undefined && !agent) {
      throw new UsageError(`sftp store ${this.location}: no ssh key: set BOOTFS_SSH_KEY, create ~/.ssh/id_ed25519, or run ssh-agent (SSH_AUTH_SOCK)`);
    }
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: this.host, port: this.port });
      s.setTimeout(this.limits.connectTimeoutMs, () => s.destroy(new ConnectionLost(`connect to ${this.host}:${this.port} timed out`)));
      s.once('connect', () => {
        s.setTimeout(0);
        resolve(s);
      });
      s.once('error', (err) => reject(new ConnectionLost(`cannot connect to ${this.host}:${this.port}: ${err.message}`)));
    });
    const client = new ssh2.Client();
    let hostKeyProblem: string | undefined;
    const lost = new Promise<never>((_, reject) => client.once('close', () => reject(new ConnectionLost(`ssh connection to ${this.host}:${this.port} closed`))));
    lost.catch(() => undefined);
    const conn: Conn = { client, sock, channels: [], next: 0, active: 0, dead: false, lost };
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('ready', () => resolve());
        client.once('error', (err: Error & { level?: string }) => {
          if (hostKeyProblem) return reject(new HostKeyError(hostKeyProblem));
          if (err.level === 'client-authentication') {
            return reject(new IoError(`ssh login as ${this.user} to ${this.host}:${this.port} refused: no offered key was accepted (BOOTFS_SSH_KEY, ~/.ssh/id_ed25519, ssh-agent)`));
          }
          reject(new ConnectionLost(`ssh to ${this.host}:${this.port}: ${err.message}`));
        });
        client.once('close', () => reject(new ConnectionLost(`ssh to ${this.host}:${this.port}: connection closed during the handshake`)));
        client.connect({
          sock,
          username: this.user,
          ...keys,
          ...(agent ? { agent } : {}),
          readyTimeout: this.limits.connectTimeoutMs,
          hostVerifier: (key: Buffer) => {
            hostKeyProblem = this.checkHostKey(key);
            return hostKeyProblem === undefined;
          },
        });
      });
      client.on('error', () => undefined); // later errors surface as 'close' and fail the ops in flight
      client.on('close', () => {
        conn.dead = true;
        this.drop(conn);
      });
      const opened = await Promise.allSettled(Array.from({ length: this.limits.channels }, () => call<SFTPWrapper>((cb) => client.sftp(cb))));
      for (const r of opened) if (r.status === 'fulfilled') conn.channels.push(r.value);
      if (conn.channels.length === 0) {
        const why = (opened[0] as PromiseRejectedResult).reason as Error;
        throw new IoError(`ssh to ${this.host}:${this.port}: the server offers no sftp subsystem: ${why.message}`);
      }
    } catch (err) {
      client.end();
      sock.destroy();
      throw err;
    }
    // Idle connections must not keep the process alive; `once` refs the socket while ops run.
    sock.unref();
    return conn;
  }

}
