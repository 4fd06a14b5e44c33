/**
 * The SFTP half of the remote benchmark: SftpStore → OpenSSH sshd and → `bootfs serve --ssh`.
 *
 * SftpStore (src/store/sftp.ts) and `serve --ssh` were being written while this was, so nothing
 * here assumes their API: the module is imported only if dist/src/store/sftp.js exists, the store
 * is created through whichever of `SftpStore.open|connect|create(url, opts)` or
 * `new SftpStore(url, opts)` exists, the options carry the usual spellings of key and known-hosts
 * settings, HOME points at a directory with ~/.ssh/id_ed25519 and ~/.ssh/known_hosts for clients
 * that look there, and serve's flags are read from `bootfs serve --help`. Anything that does not
 * fit becomes a "skipped (reason)" in the results instead of a crash.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { FetchClient, FetchMethod } from './remote-fetch.js';
import { makeSshKeys, type Server, type SshKeys, startBootfsSsh, startSshd, writeKnownHosts } from './remote-servers.js';
import { runChecked, runProcess } from './proc.js';
import { which } from './tools.js';

/** A client the fetch loop can use, the methods it offers, and how to close it. */
export interface OpenedClient {
  client: FetchClient;
  methods: FetchMethod[];
  close(): Promise<void>;
  /** How the client was made (recorded in the results). */
  how: string;
}

/** One server of a part, and how to open a fresh client to it. */
export interface Target {
  /** Short key used in the results: serve, nginx, sshd, serve-ssh. */
  key: string;
  /** `HttpStore → bootfs serve` etc. */
  label: string;
  /** The bootfs server, or the reference it is compared with. */
  role: 'bootfs' | 'reference';
  server: Server;
  methods: FetchMethod[];
  open(): Promise<OpenedClient>;
}

/** Where the SFTP part stands: its targets, or why it (or one server) was skipped. */
export interface SftpSetup {
  targets: Target[];
  /** Why the whole part was skipped, or null. */
  skipped: string | null;
  /** Servers that could not be measured (the other may still be). */
  notes: string[];
  /** What was detected, for the results. */
  detected: Record<string, unknown>;
  /** Runs when the part ends: restores HOME. */
  restore(): void;
}

const SSHD = '/usr/sbin/sshd';

type AnyRecord = Record<string, unknown>;
type StoreLike = AnyRecord & { getStored?: unknown; getChunk?: unknown; close?: unknown };

function describe(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n').slice(0, 3).join(' | ');
}

/** Options under the names an ssh2-based store is likely to use; unknown ones are ignored by TS code. */
function storeOptions(keys: SshKeys, knownHosts: string, host: string, port: number, concurrency: number, privateKey: Buffer, knownHostsText: string): AnyRecord {
  const username = os.userInfo().username;
  return {
    host,
    port,
    username,
    user: username,
    concurrency,
    privateKey,
    privateKeyPath: keys.clientKey,
    privateKeyFile: keys.clientKey,
    identityFile: keys.clientKey,
    identity: keys.clientKey,
    keyFile: keys.clientKey,
    knownHostsFile: knownHosts,
    knownHostsPath: knownHosts,
    knownHosts: knownHostsText,
    strictHostKeyChecking: true,
  };
}

/** Build an SftpStore however the module allows; throws with every attempt's reason. */
async function createStore(Ctor: unknown, url: string, options: AnyRecord): Promise<{ store: StoreLike; how: string }> {
  const attempts: string[] = [];
  const c = Ctor as AnyRecord & (new (...a: unknown[]) => StoreLike);
  for (const name of ['open', 'connect', 'create']) {
    const f = c[name];
    if (typeof f !== 'function') continue;
    try {
      return { store: (await (f as (...a: unknown[]) => Promise<StoreLike>).call(c, url, options)) as StoreLike, how: `SftpStore.${name}(url, options)` };
    } catch (err) {
      attempts.push(`SftpStore.${name}(url, options): ${describe(err)}`);
    }
  }
  try {
    const store = new c(url, options);
    return { store, how: 'new SftpStore(url, options)' };
  } catch (err) {
    attempts.push(`new SftpStore(url, options): ${describe(err)}`);
  }
  try {
    const store = new c({ url, ...options });
    return { store, how: 'new SftpStore({ url, …options })' };
  } catch (err) {
    attempts.push(`new SftpStore({ url, ... }): ${describe(err)}`);
  }
  throw new Error(`could not create an SftpStore: ${attempts.join('; ')}`);
}

async function closeStore(store: StoreLike): Promise<void> {
  for (const name of ['close', 'end', 'disconnect', 'dispose']) {
    const f = store[name];
    if (typeof f === 'function') {
      await (f as () => unknown).call(store);
      return;
    }
  }
}

/**
 * A Target for an SSH server: tries each candidate store path until one fetches `probe` (a chunk
 * ID) with the right bytes; throws when none does.
 */
async function sftpTarget(
  key: string,
  label: string,
  role: Target['role'],
  server: Server,
  Ctor: unknown,
  paths: string[],
  makeOptions: () => AnyRecord,
  probe: { id: Uint8Array; bytes: Buffer },
): Promise<Target> {
  const user = os.userInfo().username;
  const problems: string[] = [];
  for (const p of paths) {
    const url = `sftp://${user}@${server.host}:${server.port}${p.startsWith('/') ? p : `/${p}`}`;
    let opened: { store: StoreLike; how: string };
    try {
      opened = await createStore(Ctor, url, makeOptions());
    } catch (err) {
      throw new Error(`${label}: ${describe(err)}`);
    }
    const { store, how } = opened;
    try {
      if (typeof store.getStored !== 'function') throw new Error(`SftpStore has no getStored method (has: ${Object.keys(Object.getPrototypeOf(store) ?? {}).join(', ')})`);
      const got = (await (store.getStored as (id: Uint8Array) => Promise<Uint8Array>).call(store, probe.id)) as Uint8Array;
      if (!Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(probe.bytes)) throw new Error(`probe chunk came back with ${got.byteLength} bytes that differ from the file on disk`);
      const methods: FetchMethod[] = typeof store.getChunk === 'function' ? ['getStored', 'getChunk'] : ['getStored'];
      await closeStore(store);
      return {
        key,
        label,
        role,
        server,
        methods,
        open: async () => {
          const { store: s, how: h } = await createStore(Ctor, url, makeOptions());
          const client: FetchClient = {
            getStored: (id) => (s.getStored as (id: Uint8Array) => Promise<Uint8Array>).call(s, id),
            getChunk: (id, o) => (s.getChunk as (id: Uint8Array, o: { size: number }) => Promise<Uint8Array>).call(s, id, o),
          };
          return { client, methods, close: () => closeStore(s), how: `${h}, url ${url}` };
        },
      };
    } catch (err) {
      problems.push(`${url} (${how}): ${describe(err)}`);
      await closeStore(store).catch(() => undefined);
    }
  }
  throw new Error(`${label}: no store path worked: ${problems.join('; ')}`);
}

/** One `--flag <arg>` or `--flag` line of commander's help. */
interface HelpFlag {
  flag: string;
  takesArg: boolean;
  text: string;
}

function helpFlags(help: string): HelpFlag[] {
  const flags: HelpFlag[] = [];
  for (const line of help.split('\n')) {
    const m = /^\s+(?:-\w,\s*)?(--[\w-]+)(\s+[<[][^>\]]+[>\]])?\s*(.*)$/.exec(line);
    if (m) flags.push({ flag: m[1]!, takesArg: m[2] !== undefined, text: m[3] ?? '' });
  }
  return flags;
}

/** argv for `bootfs serve --ssh` from its help text, or why it cannot be built. */
function serveSshArgs(help: string, storeDir: string, keys: SshKeys): { args: string[]; unmapped: string[] } | { error: string } {
  const flags = helpFlags(help);
  const ssh = flags.find((f) => f.flag === '--ssh');
  if (!ssh) return { error: "bootfs serve --help lists no --ssh flag" };
  const args = ['--store', storeDir];
  const unmapped: string[] = [];
  for (const f of flags) {
    if (!/ssh|host-key|authorized/.test(f.flag)) continue;
    if (!f.takesArg) {
      if (f.flag === '--ssh') args.push('--ssh');
      continue;
    }
    const name = f.flag;
    if (name === '--ssh' || /listen|addr|bind/.test(name)) args.push(name, '127.0.0.1:0');
    else if (/host-?key/.test(name)) args.push(name, keys.hostKey);
    else if (/authorized|client-?keys?|keys?-file/.test(name)) args.push(name, keys.authorizedKeys);
    else if (/port/.test(name)) args.push(name, '0');
    else unmapped.push(name);
  }
  return { args, unmapped };
}

export interface SftpContext {
  repoRoot: string;
  node: string;
  bootfsBin: string;
  storeDir: string;
  workDir: string;
  concurrency: number;
  probe: { id: Uint8Array; bytes: Buffer };
}

/** Detect, start and probe what the SFTP part can measure. Never throws: problems become skips. */
export async function setupSftp(ctx: SftpContext, servers: Server[]): Promise<SftpSetup> {
  const detected: Record<string, unknown> = {};
  const notes: string[] = [];
  const targets: Target[] = [];
  const oldHome = process.env.HOME;
  const restore = (): void => {
    if (oldHome === undefined) delete process.env.HOME;
    else process.env.HOME = oldHome;
  };
  const skip = (reason: string): SftpSetup => ({ targets: [], skipped: reason, notes, detected, restore });

  const moduleFile = path.join(ctx.repoRoot, 'dist', 'src', 'store', 'sftp.js');
  detected.module = moduleFile;
  if (!existsSync(moduleFile)) return skip(`${path.relative(ctx.repoRoot, moduleFile)} does not exist (SftpStore not built yet)`);
  let Ctor: unknown;
  try {
    const mod = (await import(pathToFileURL(moduleFile).href)) as AnyRecord;
    detected.exports = Object.keys(mod);
    Ctor = mod.SftpStore;
  } catch (err) {
    return skip(`cannot import ${moduleFile}: ${describe(err)}`);
  }
  if (typeof Ctor !== 'function') return skip(`${path.relative(ctx.repoRoot, moduleFile)} does not export a class SftpStore`);
  const sshKeygen = which('ssh-keygen');
  if (!sshKeygen) return skip('ssh-keygen is not on PATH (Debian package openssh-client)');

  const dir = path.join(ctx.workDir, 'ssh');
  let keys: SshKeys;
  try {
    keys = await makeSshKeys(sshKeygen, dir, async (cmd, args) => runChecked(cmd, args));
  } catch (err) {
    return skip(`cannot generate SSH keys: ${describe(err)}`);
  }
  // For clients that read ~/.ssh (ssh2-based code often does): a private HOME for this part.
  const home = path.join(dir, 'home');
  await mkdir(path.join(home, '.ssh'), { recursive: true, mode: 0o700 });
  await copyFile(keys.clientKey, path.join(home, '.ssh', 'id_ed25519'));
  await copyFile(keys.clientPub, path.join(home, '.ssh', 'id_ed25519.pub'));
  process.env.HOME = home;
  const privateKey = await readFile(keys.clientKey);

  const optionsFor = async (server: Server, knownHosts: string): Promise<() => AnyRecord> => {
    await writeKnownHosts(knownHosts, keys.hostPub, server.host, server.port);
    // Also the default location, for clients that only look there.
    await writeKnownHosts(path.join(home, '.ssh', 'known_hosts'), keys.hostPub, server.host, server.port);
    const text = await readFile(knownHosts, 'utf8');
    return () => storeOptions(keys, knownHosts, server.host, server.port, ctx.concurrency, privateKey, text);
  };

  // OpenSSH sshd.
  if (!existsSync(SSHD)) {
    notes.push(`OpenSSH: skipped (${SSHD} does not exist; Debian package openssh-server)`);
  } else {
    try {
      if (process.getuid?.() === 0 && !existsSync('/run/sshd')) {
        // Debian's sshd refuses to start without its privilege separation directory.
        await mkdir('/run/sshd', { mode: 0o755 });
        detected.createdRunSshd = true;
      }
      const sshdDir = path.join(dir, 'sshd');
      await mkdir(sshdDir, { recursive: true });
      const server = await startSshd(SSHD, keys, sshdDir);
      servers.push(server);
      const ver = await runProcess(SSHD, ['-V']).catch(() => null);
      detected.sshdVersion = ver ? (ver.stderr.trim() || ver.stdout.trim()).split('\n')[0] : 'unknown';
      const mk = await optionsFor(server, path.join(dir, 'known_hosts.sshd'));
      targets.push(await sftpTarget('sshd', 'SftpStore -> OpenSSH sshd', 'reference', server, Ctor, [ctx.storeDir], mk, ctx.probe));
    } catch (err) {
      notes.push(`OpenSSH: skipped (${describe(err)})`);
    }
  }

  // bootfs serve --ssh.
  try {
    const help = await runProcess(ctx.node, [ctx.bootfsBin, 'serve', '--help']);
    const built = serveSshArgs(help.stdout, ctx.storeDir, keys);
    if ('error' in built) throw new Error(built.error);
    detected.serveSshArgs = built.args;
    if (built.unmapped.length) detected.serveSshUnmappedFlags = built.unmapped;
    // --ssh alone (no HTTP listener); if that version also starts HTTP on a default port and
    // fails there, again with --http on a free port.
    let server: Server | undefined;
    const errors: string[] = [];
    for (const extra of [[], ['--http', '127.0.0.1:0']]) {
      try {
        server = await startBootfsSsh(ctx.node, ctx.bootfsBin, [...built.args, ...extra], dir);
        break;
      } catch (err) {
        errors.push(describe(err));
      }
    }
    if (!server) throw new Error(errors.join('; '));
    servers.push(server);
    const mk = await optionsFor(server, path.join(dir, 'known_hosts.serve'));
    const announcedPath = /^(?:sftp|ssh):\/\/[^/]+(\/\S*)$/.exec(server.url)?.[1];
    const paths = [...new Set([...(announcedPath ? [announcedPath] : []), '/', ctx.storeDir])];
    targets.push(await sftpTarget('serve-ssh', 'SftpStore -> bootfs serve --ssh', 'bootfs', server, Ctor, paths, mk, ctx.probe));
  } catch (err) {
    notes.push(`bootfs serve --ssh: skipped (${describe(err)})`);
  }

  if (targets.length === 0) return skip(notes.join('; '));
  return { targets, skipped: null, notes, detected, restore };
}
