/** `bootfs serve`: serve a local chunk store over HTTP(S) for casync, desync and bootfs clients. */
import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { IoError, UsageError } from '../../errors.js';
import { DEFAULT_MAX_BODY_BYTES } from '../../server/http.js';
import { readTokenFile, serveStore } from '../../server/serve.js';

interface ServeFlags {
  store: string;
  http: string;
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
    .summary('serve a chunk store over HTTP(S)')
    .description(
      'Serve a local store directory at /<4hex>/<id>.cacnk, the layout casync and desync clients ' +
        'fetch (GET, HEAD). Chunks are verified before they are sent. With --writable, PUT stores ' +
        'chunks for clients with the bearer token (--token-file or BOOTFS_TOKEN); bodies are verified ' +
        'before anything is written. Stops cleanly on SIGINT/SIGTERM. See docs/remote-stores.md.',
    )
    .addOption(new Option('-s, --store <dir>', 'store directory to serve').env('BOOTFS_STORE').makeOptionMandatory())
    .option('--http <addr>', 'listen address HOST:PORT (:PORT = all interfaces, port 0 = any free port)', '127.0.0.1:8080')
    .option('--writable', 'accept PUT (needs a token)')
    .option('--token-file <file>', 'bearer token for PUT (default: env BOOTFS_TOKEN)')
    .option('--read-token-file <file>', 'bearer token also required for GET/HEAD of chunks')
    .option('--max-body <bytes>', 'largest PUT body in bytes', String(DEFAULT_MAX_BODY_BYTES))
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (needs --tls-key)')
    .option('--tls-key <file>', 'PEM private key for --tls-cert')
    .option('--log-level <level>', 'pino log level on stderr (fatal, error, warn, info, debug, silent)', 'info')
    .option('--log-requests', 'log every request, not only errors and rejections')
    .addHelpText('after', '\nExamples:\n  bootfs serve --store /srv/store --http :8080\n  casync extract --store=http://host:8080/ image.caibx image.raw\n  BOOTFS_TOKEN=… bootfs serve --store /srv/store --http 127.0.0.1:8080 --writable')
    .action(async (flags: ServeFlags) => {
      const maxBody = Number(flags.maxBody);
      if (!Number.isSafeInteger(maxBody) || maxBody < 1) throw new UsageError(`--max-body must be a positive number of bytes, got '${flags.maxBody}'`);
      if (!!flags.tlsCert !== !!flags.tlsKey) throw new UsageError('--tls-cert and --tls-key go together');
      const token = flags.tokenFile ? await readTokenFile(flags.tokenFile) : process.env.BOOTFS_TOKEN || undefined;
      if (flags.writable && !token) throw new UsageError('--writable needs a token: --token-file FILE or BOOTFS_TOKEN');
      if (!flags.writable && flags.tokenFile) throw new UsageError('--token-file is the PUT token; it needs --writable (use --read-token-file to protect reads)');
      const readToken = flags.readTokenFile ? await readTokenFile(flags.readTokenFile) : undefined;
      const tls = flags.tlsCert && flags.tlsKey ? { cert: await readPem(flags.tlsCert), key: await readPem(flags.tlsKey) } : undefined;
      const server = await serveStore({
        store: flags.store,
        listen: flags.http,
        writable: !!flags.writable,
        ...(flags.writable && token ? { writeTokens: [token] } : {}),
        ...(readToken ? { readTokens: [readToken] } : {}),
        maxBodyBytes: maxBody,
        ...(tls ? { tls } : {}),
        logger: { level: flags.logLevel, stream: process.stderr },
        logRequests: !!flags.logRequests,
      });
      process.stderr.write(`bootfs: serving ${server.storeLocation} over ${server.url}\n`);
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGINT', () => resolve('SIGINT'));
        process.once('SIGTERM', () => resolve('SIGTERM'));
      });
      process.stderr.write(`bootfs: ${signal}: finishing requests in flight, then stopping\n`);
      await server.close();
    });
}

async function readPem(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new IoError(`cannot read ${file}: ${(err as Error).message}`, err);
  }
}
