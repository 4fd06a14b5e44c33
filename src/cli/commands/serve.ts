/** `bootfs serve`: serve a local chunk store over HTTP(S) and/or read-only SFTP for casync, desync and bootfs clients. */
import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { IoError, UsageError } from '../../errors.js';
import { DEFAULT_MAX_BODY_BYTES } from '../../server/chunk-path.js';
import type { RunningServer } from '../../server/serve.js';
import type { RunningSshServer } from '../../server/ssh.js';

interface ServeFlags {
  store: string;
  http?: string;
  ssh?: string;
  authorizedKeys?: string;
  hostKey?: string;
  sshUser?: string[];
  writable?: boolean;
  tokenFile?: string;
  readTokenFile?: string;
  maxBody: string;
  tlsCert?: string;
  tlsKey?: string;
  logLevel: string;
  logRequests?: boolean;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .summary('serve a chunk store over HTTP(S) and/or SFTP')
    .description(
      'Serve a local store directory at /<4hex>/<id>.cacnk, the layout casync and desync clients ' +
        'fetch (GET, HEAD). Chunks are verified before they are sent. With --writable, PUT stores ' +
        'chunks for clients with the bearer token (--token-file or BOOTFS_TOKEN); bodies are verified ' +
        'before anything is written. With --ssh, also (or only) serves the store read-only over SFTP to ' +
        'clients whose keys are in --authorized-keys. Stops cleanly on SIGINT/SIGTERM. See docs/remote-stores.md.',
    )
    .addOption(new Option('-s, --store <dir>', 'store directory to serve').env('BOOTFS_STORE').makeOptionMandatory())
    .option('--http <addr>', 'HTTP listen address HOST:PORT (:PORT = all interfaces, port 0 = any free port; default 127.0.0.1:8080 unless only --ssh is given)')
    .option('--ssh <addr>', 'also serve read-only SFTP on HOST:PORT (needs --authorized-keys)')
    .option('--authorized-keys <file>', 'OpenSSH authorized_keys file of the clients allowed to --ssh')
    .option('--host-key <file>', 'SSH host key, generated (ed25519) if missing (default: <store>/../bootfs-ssh-host-key)')
    .option('--ssh-user <name>', 'SSH user name allowed in (repeatable; default: any name, the key decides)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--writable', 'accept PUT (needs a token)')
    .option('--token-file <file>', 'bearer token for PUT (default: env BOOTFS_TOKEN)')
    .option('--read-token-file <file>', 'bearer token also required for GET/HEAD of chunks')
    .option('--max-body <bytes>', 'largest PUT body in bytes', String(DEFAULT_MAX_BODY_BYTES))
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (needs --tls-key)')
    .option('--tls-key <file>', 'PEM private key for --tls-cert')
    .option('--log-level <level>', 'pino log level on stderr (fatal, error, warn, info, debug, silent)', 'info')
    .option('--log-requests', 'log every request, not only errors and rejections')
    .addHelpText('after', '\nExamples:\n  bootfs serve --store /srv/store --http :8080\n  bootfs serve --store /srv/store --ssh :2222 --authorized-keys ~/.ssh/authorized_keys\n  casync extract --store=http://host:8080/ image.caibx image.raw\n  BOOTFS_TOKEN=… bootfs serve --store /srv/store --http 127.0.0.1:8080 --writable')
    .action(async (flags: ServeFlags) => {
      const maxBody = Number(flags.maxBody);
      if (!Number.isSafeInteger(maxBody) || maxBody < 1) throw new UsageError(`--max-body must be a positive number of bytes, got '${flags.maxBody}'`);
      if (!!flags.tlsCert !== !!flags.tlsKey) throw new UsageError('--tls-cert and --tls-key go together');
      // The servers (fastify, ssh2) load only when serve runs: ~150 ms no other command should pay.
      const [{ readTokenFile, serveStore }, { jsonLineLog, serveSsh }] = await Promise.all([import('../../server/serve.js'), import('../../server/ssh.js')]);
      const token = flags.tokenFile ? await readTokenFile(flags.tokenFile) : process.env.BOOTFS_TOKEN || undefined;
      if (flags.writable && !token) throw new UsageError('--writable needs a token: --token-file FILE or BOOTFS_TOKEN');
      if (!flags.writable && flags.tokenFile) throw new UsageError('--token-file is the PUT token; it needs --writable (use --read-token-file to protect reads)');
      const readToken = flags.readTokenFile ? await readTokenFile(flags.readTokenFile) : undefined;
      if (flags.ssh && !flags.authorizedKeys) throw new UsageError('--ssh needs --authorized-keys FILE (public-key auth only)');
      if (!flags.ssh && (flags.authorizedKeys || flags.hostKey || flags.sshUser)) throw new UsageError('--authorized-keys, --host-key and --ssh-user need --ssh ADDR');
      const httpListen = flags.http ?? (flags.ssh ? undefined : '127.0.0.1:8080');
      if (!httpListen && (flags.writable || readToken || flags.tlsCert)) throw new UsageError('--writable, --read-token-file and --tls-* apply to --http; the SSH server is always read-only');
      const tls = flags.tlsCert && flags.tlsKey ? { cert: await readPem(flags.tlsCert), key: await readPem(flags.tlsKey) } : undefined;
      // Listen for the stop signal before starting, so a SIGTERM during startup still stops cleanly.
      const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGINT', () => resolve('SIGINT'));
        process.once('SIGTERM', () => resolve('SIGTERM'));
      });
      const servers: { close(): Promise<void> }[] = [];
      const stopAll = () => Promise.all(servers.map((x) => x.close()));
      let server: RunningServer | undefined;
      let ssh: RunningSshServer | undefined;
      try {
        if (httpListen) {
          server = await serveStore({
            store: flags.store,
            listen: httpListen,
            writable: !!flags.writable,
            ...(flags.writable && token ? { writeTokens: [token] } : {}),
            ...(readToken ? { readTokens: [readToken] } : {}),
            maxBodyBytes: maxBody,
            ...(tls ? { tls } : {}),
            logger: { level: flags.logLevel, stream: process.stderr },
            logRequests: !!flags.logRequests,
          });
          servers.push(server);
        }
        if (flags.ssh && flags.authorizedKeys) {
          ssh = await serveSsh({
            store: flags.store,
            listen: flags.ssh,
            authorizedKeysFile: flags.authorizedKeys,
            ...(flags.hostKey ? { hostKeyFile: flags.hostKey } : {}),
            ...(flags.sshUser ? { users: flags.sshUser } : {}),
            log: jsonLineLog(process.stderr, flags.logLevel),
          });
          servers.push(ssh);
        }
      } catch (err) {
        await stopAll();
        throw err;
      }
      if (server) process.stderr.write(`bootfs: serving ${server.storeLocation} over ${server.url}\n`);
      if (ssh) {
        if (ssh.hostKey.created) process.stderr.write(`bootfs: generated ssh host key ${ssh.hostKey.file}\n`);
        process.stderr.write(`bootfs: ssh host key ${ssh.hostKey.type} ${ssh.hostKey.fingerprint} (${ssh.hostKey.file})\n`);
        process.stderr.write(`bootfs: serving ${ssh.storeLocation} read-only over sftp://${ssh.address}/\n`);
      }
      const signal = await stopSignal;
      process.stderr.write(`bootfs: ${signal}: finishing requests in flight, then stopping\n`);
      await stopAll();
    });
}

async function readPem(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new IoError(`cannot read ${file}: ${(err as Error).message}`, err);
  }
}
