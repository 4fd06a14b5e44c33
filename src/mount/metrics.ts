/**
 * What a mount counts, as one JSON document (`--stats-file`) and as Prometheus text
 * (`--metrics ADDR`). The counters live in the components (session, reader, cache, router); this
 * module only gathers them, so a snapshot is always consistent with what each part did.
 */
import { createServer, type Server } from 'node:http';
import { writeFileAtomic } from '../util/files.js';
import { UsageError } from '../errors.js';

export interface MountStats {
  /** FUSE requests by operation name. */
  requests: Record<string, number>;
  /** Failed FUSE requests by operation name (any errno but ENOENT/ENODATA/ENOSYS, which are answers). */
  errors: Record<string, number>;
  reads: number;
  bytesServed: number;
  memoryHits: number;
  cacheHits: number;
  cacheMisses: number;
  remoteFetches: number;
  remoteBytes: number;
  verifyFailures: number;
  remoteErrors: number;
  readaheads: number;
  uptimeSeconds: number;
}

/** The request-side counters; the rest is pulled from the components by a `collect` function. */
export class RequestCounters {
  readonly requests: Record<string, number> = {};
  readonly errors: Record<string, number> = {};
  reads = 0;
  bytesServed = 0;

  record(op: string, errno: number, bytes = 0): void {
    this.requests[op] = (this.requests[op] ?? 0) + 1;
    // ENOENT from lookup and ENODATA from getxattr are ordinary answers, not failures; ENOSYS is
    // how the kernel is told to stop sending OPEN, FLUSH and the like.
    if (errno !== 0 && errno !== 2 && errno !== 61 && errno !== 38) this.errors[op] = (this.errors[op] ?? 0) + 1;
    if (op === 'read' && errno === 0) {
      this.reads++;
      this.bytesServed += bytes;
    }
  }
}

const HELP: Record<string, [string, string]> = {
  reads: ['bootfs_mount_reads_total', 'read requests answered'],
  bytesServed: ['bootfs_mount_served_bytes_total', 'file bytes returned by reads'],
  memoryHits: ['bootfs_mount_memory_hits_total', 'chunk lookups answered from memory'],
  cacheHits: ['bootfs_mount_cache_hits_total', 'chunks read from the cache directory'],
  cacheMisses: ['bootfs_mount_cache_misses_total', 'chunks not in the cache directory'],
  remoteFetches: ['bootfs_mount_remote_fetches_total', 'chunks fetched from a store'],
  remoteBytes: ['bootfs_mount_remote_bytes_total', 'stored chunk bytes received from stores'],
  verifyFailures: ['bootfs_mount_verify_failures_total', 'chunk copies that failed verification (cache or store)'],
  remoteErrors: ['bootfs_mount_remote_errors_total', 'store errors after retries'],
  readaheads: ['bootfs_mount_readahead_chunks_total', 'chunks requested ahead of a sequential reader'],
};

/** Prometheus text exposition of a snapshot. */
export function prometheusText(s: MountStats): string {
  const lines: string[] = [];
  for (const [key, [name, help]] of Object.entries(HELP)) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${s[key as keyof MountStats] as number}`);
  }
  lines.push('# HELP bootfs_mount_requests_total FUSE requests by operation', '# TYPE bootfs_mount_requests_total counter');
  for (const [op, n] of Object.entries(s.requests)) lines.push(`bootfs_mount_requests_total{op="${op}"} ${n}`);
  lines.push('# HELP bootfs_mount_errors_total failed FUSE requests by operation', '# TYPE bootfs_mount_errors_total counter');
  for (const [op, n] of Object.entries(s.errors)) lines.push(`bootfs_mount_errors_total{op="${op}"} ${n}`);
  lines.push('# HELP bootfs_mount_uptime_seconds seconds since the mount', '# TYPE bootfs_mount_uptime_seconds gauge', `bootfs_mount_uptime_seconds ${s.uptimeSeconds}`);
  return `${lines.join('\n')}\n`;
}

/** Parse `[HOST:]PORT` (default host 127.0.0.1). */
export function parseListenAddress(text: string): { host: string; port: number } {
  const m = /^(?:(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+))?:)?(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`listen address '${text}' is not [HOST:]PORT (IPv6 in brackets: [::1]:9100)`);
  return { host: m[1] ?? m[2] ?? '127.0.0.1', port };
}

/** Serve `/metrics` (Prometheus) and `/stats` (JSON) on `addr`. */
export async function serveMetrics(addr: string, snapshot: () => MountStats): Promise<Server> {
  const { host, port } = parseListenAddress(addr);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(prometheusText(snapshot()));
    } else if (path === '/stats') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(snapshot())}\n`);
    } else {
      res.writeHead(404).end('not found: try /metrics or /stats\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new UsageError(`cannot listen on ${addr} for metrics: ${err.message}`)));
    server.listen(port, host, resolve);
  });
  server.unref();
  return server;
}

/** Write the snapshot as JSON to `file` (atomically) every `everyMs` and when stopped. */
export function statsFileWriter(file: string, snapshot: () => MountStats, everyMs = 1000): { stop(): Promise<void> } {
  let writing: Promise<void> = Promise.resolve();
  const write = (): Promise<void> => (writing = writing.then(() => writeFileAtomic(file, Buffer.from(`${JSON.stringify(snapshot(), null, 2)}\n`), 'stats file')).catch(() => undefined));
  void write();
  const timer = setInterval(() => void write(), everyMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await write();
    },
  };
}
