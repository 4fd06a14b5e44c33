/** Command-line flags of the remote-store benchmark (bench/remote.ts), parsed with node:util parseArgs. */
import { BenchUsageError, parseNameList, parseRuns, strictArgs } from './options.js';

/** The parts of the remote benchmark, in the order they run. */
export const REMOTE_PART_NAMES = ['http', 'sftp'] as const;
/** One of REMOTE_PART_NAMES. */
export type RemotePartName = (typeof REMOTE_PART_NAMES)[number];

/** Resolved options; defaults live in parseRemoteArgs. */
export interface RemoteBenchOptions {
  /** Timed rounds; each round fetches every chunk once per server and method. */
  runs: number;
  /** Requests in flight at once (workers of the fetch loop and the store's connection count). */
  concurrency: number;
  /** Keep adding real data to the store until it holds at least this many chunks. */
  minChunks: number;
  /** Parts to run, always in REMOTE_PART_NAMES order. */
  parts: RemotePartName[];
  /** Base directory for the work dir; undefined picks /dev/shm or os.tmpdir(). */
  dir: string | undefined;
  /** Keep the work dir instead of deleting it. */
  keep: boolean;
  help: boolean;
}

/** Usage text printed by --help and after a flag error. */
export const REMOTE_USAGE = `usage: node dist/bench/remote.js [options]      (after npm run build)

Fetches every chunk of a store of real data (the Debian rootfs fixtures, topped up
with /usr/lib files to --min-chunks) with N requests in flight and reports chunks/s,
MB/s (stored bytes) and p50/p99 latency per request for

  http    HttpStore -> bootfs serve  vs  HttpStore -> nginx (sendfile, keep-alive,
          1 worker), getStored and getChunk (verified), target serve/nginx >= 0.7
  sftp    SftpStore -> OpenSSH sshd  vs  SftpStore -> bootfs serve --ssh (only when
          dist/src/store/sftp.js exports SftpStore and /usr/sbin/sshd exists;
          otherwise reported as skipped with the reason)

Servers run on 127.0.0.1 (ephemeral ports) for the whole run; the order of the
servers alternates from round to round. Writes bench/results/remote-<date>.json
(and remote-latest.json).

options:
  --runs N           timed rounds (default 3); results are medians over rounds
  --concurrency N    requests in flight (default 16)
  --min-chunks N     chunks the store must hold at least (default 2500)
  --parts LIST       comma-separated subset of http,sftp (default http,sftp)
  --dir DIR          create the work dir inside DIR (default /dev/shm when it has room,
                     else the OS temp dir)
  --keep             keep the work dir (store, indexes, server configs and logs)
  --help             this text

exit status: 0 when every server started and every fetched chunk matched the file on
disk (even if a target is missed: this is a measurement), 1 when a fetch, a check or
a server failed, 2 for bad usage or a missing tool.`;

function positiveInt(flag: string, text: string, max: number): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1 || n > max) throw new BenchUsageError(`${flag} '${text}' must be an integer from 1 to ${max}`);
  return n;
}

/** Turn argv (without node and script) into RemoteBenchOptions; throws BenchUsageError. */
export function parseRemoteArgs(argv: string[]): RemoteBenchOptions {
  const values = strictArgs(argv, {
    runs: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '16' },
    'min-chunks': { type: 'string', default: '2500' },
    parts: { type: 'string', default: REMOTE_PART_NAMES.join(',') },
    dir: { type: 'string' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  return {
    runs: parseRuns(values.runs),
    concurrency: positiveInt('--concurrency', values.concurrency, 1024),
    minChunks: positiveInt('--min-chunks', values['min-chunks'], 1_000_000),
    parts: parseNameList('--parts', values.parts, REMOTE_PART_NAMES, 'part'),
    dir: values.dir,
    keep: values.keep,
    help: values.help,
  };
}
