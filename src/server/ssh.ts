/**
 * `bootfs serve --ssh`: an ssh2 server offering read-only SFTP over a store directory, for
 * SftpStore, casync/desync `sftp://` stores and OpenSSH's `sftp`. Public-key auth only, against an
 * authorized_keys file; a persistent host key (generated on first run) whose SHA256 fingerprint is
 * printed at start so clients can pin it. No shell, exec, port forwarding or other subsystems.
 */
import { timingSafeEqual } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import ssh2 from 'ssh2';
import type { AuthContext, Connection } from 'ssh2';
import { UsageError } from '../errors.js';
import { openLocalStore } from '../store/location.js';
import { parseListenAddress } from './serve.js';
import { fingerprint, loadOrCreateHostKey, readAuthorizedKeys, type AuthorizedKey, type HostKey } from './ssh-keys.js';
import { serveReadOnlySftp, type SshLog } from './ssh-sftp.js';

export type { SshLog } from './ssh-sftp.js';

/** A client that has not authenticated within this long is dropped (OpenSSH's LoginGraceTime is 120 s). */
const LOGIN_GRACE_MS = 30_000;
/** Failed auth attempts per connection before it is dropped (OpenSSH MaxAuthTries is 6). */
const MAX_AUTH_FAILURES = 6;

export interface SshStoreServerOptions {
  hostKey: HostKey;
  authorizedKeys: AuthorizedKey[];
  /** User names allowed to log in; default: any name (the key decides). */
  users?: string[];
  log?: SshLog;
}

/** A running SSH server: its bound address, host key fingerprint, and a close that ends sessions. */
export interface SshStoreServer {
  server: ssh2.Server;
  close(): Promise<void>;
}

const noLog: SshLog = () => undefined;

/** Is `ctx`'s key one of the authorized keys (public blob compared in constant time)? */
function findKey(keys: AuthorizedKey[], blob: Buffer): AuthorizedKey | undefined {
  return keys.find((k) => k.blob.length === blob.length && timingSafeEqual(k.blob, blob));
}

/** Create (not yet listening) an SSH server serving `realRoot` read-only over SFTP. */
export function createSshStoreServer(realRoot: string, opts: SshStoreServerOptions): SshStoreServer {
  const log = opts.log ?? noLog;
  const connections = new Set<Connection>();
  const server = new ssh2.Server({ hostKeys: [opts.hostKey.privateKey], ident: 'bootfs' }, (client, info) => {
    connections.add(client);
    const peer = `${info.ip}:${info.port}`;
    let failures = 0;
    let who = '';
    const grace = setTimeout(() => {
      log('info', 'ssh client did not authenticate in time', { peer });
      client.end();
    }, LOGIN_GRACE_MS);
    grace.unref();

    client.on('authentication', (ctx: AuthContext) => {
      const reject = (why: string, fields: Record<string, unknown> = {}): void => {
        if (ctx.method !== 'none') {
          failures++;
          log('warn', `ssh auth refused: ${why}`, { peer, user: ctx.username, method: ctx.method, ...fields });
        }
        if (failures >= MAX_AUTH_FAILURES) {
          client.end();
          return;
        }
        ctx.reject(['publickey']);
      };
      if (ctx.method !== 'publickey') return reject('only public-key auth is accepted');
      if (opts.users && !opts.users.includes(ctx.username)) return reject('unknown user');
      const key = findKey(opts.authorizedKeys, ctx.key.data);
      if (!key) return reject('key not in authorized keys', { fingerprint: fingerprint(ctx.key.data) });
      // Without a signature the client only asks whether the key would do (RFC 4252 §7).
      if (!ctx.signature || !ctx.blob) return ctx.accept();
      if (key.key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) return reject('bad signature', { fingerprint: key.fingerprint });
      who = ctx.username;
      log('info', 'ssh login', { peer, user: who, key: key.fingerprint, ...(key.comment ? { comment: key.comment } : {}) });
      ctx.accept();
    });

    client.on('ready', () => {
      clearTimeout(grace);
      client.on('session', (accept) => {
        const session = accept();
        // Only the sftp subsystem: ssh2 rejects exec, shell, pty and other subsystems that have no listener.
        session.on('sftp', (acceptSftp) => serveReadOnlySftp(acceptSftp(), realRoot, log, who));
      });
    });
    client.on('error', (err) => log('debug', 'ssh connection error', { peer, err: err.message }));
    client.on('close', () => {
      clearTimeout(grace);
      connections.delete(client);
    });
  });

  return {
    server,
    close: () =>
      new Promise<void>((resolve) => {
        // Stop accepting, then end every session: SFTP requests are short, and a client reconnects.
        server.close(() => resolve());
        for (const c of connections) c.end();
      }),
  };
}

/** Default host key file: beside the store, never inside it (the store is served to clients). */
export function defaultHostKeyFile(storeRoot: string): string {
  return path.join(path.dirname(storeRoot), 'bootfs-ssh-host-key');
}

export interface SshServeOptions {
  /** Store directory. */
  store: string;
  /** Listen address HOST:PORT. */
  listen: string;
  /** OpenSSH authorized_keys file of the clients allowed in. */
  authorizedKeysFile: string;
  /** Host key file; created (ed25519) if missing. Default: defaultHostKeyFile(store). */
  hostKeyFile?: string;
  users?: string[];
  log?: SshLog;
}

/** A running `serve --ssh`. */
export interface RunningSshServer {
  /** `HOST:PORT` actually bound. */
  address: string;
  port: number;
  storeLocation: string;
  hostKey: HostKey;
  close(): Promise<void>;
}

/** Open the store, load keys, and listen. */
export async function serveSsh(opts: SshServeOptions): Promise<RunningSshServer> {
  const addr = parseListenAddress(opts.listen);
  const store = await openLocalStore(opts.store);
  const realRoot = await realpath(store.root);
  const hostKeyFile = path.resolve(opts.hostKeyFile ?? defaultHostKeyFile(realRoot));
  const keyDir = await realpath(path.dirname(hostKeyFile)).catch(() => path.dirname(hostKeyFile));
  if (keyDir === realRoot || keyDir.startsWith(realRoot + path.sep)) {
    throw new UsageError(`ssh host key ${hostKeyFile} is inside the served store ${realRoot}: clients could download it; put it elsewhere (--host-key)`);
  }
  const hostKey = await loadOrCreateHostKey(hostKeyFile);
  const authorizedKeys = await readAuthorizedKeys(opts.authorizedKeysFile);
  const srv = createSshStoreServer(realRoot, { hostKey, authorizedKeys, ...(opts.users ? { users: opts.users } : {}), ...(opts.log ? { log: opts.log } : {}) });
  await new Promise<void>((resolve, reject) => {
    srv.server.once('error', reject);
    srv.server.listen(addr.port, addr.host, () => {
      srv.server.off('error', reject);
      resolve();
    });
  });
  const bound = (srv.server as unknown as { address(): AddressInfo }).address();
  const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return { address: `${host}:${bound.port}`, port: bound.port, storeLocation: store.location, hostKey, close: srv.close };
}

/** A pino-compatible JSON-lines logger on a stream, filtered by level name. */
export function jsonLineLog(stream: NodeJS.WritableStream, level: string): SshLog {
  const rank: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };
  const min = rank[level] ?? 30;
  return (lvl, msg, fields = {}) => {
    if (rank[lvl]! < min) return;
    stream.write(`${JSON.stringify({ level: rank[lvl], time: Date.now(), name: 'ssh', msg, ...fields })}\n`);
  };
}
