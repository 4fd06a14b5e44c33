/** Prometheus metrics of one HTTP store server (a private registry per server instance). */
import { Counter, Registry } from 'prom-client';

/** Counters the server updates; `registry.metrics()` renders them for `/metrics`. */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'bootfs_http_requests_total',
    help: 'HTTP requests by method and status code',
    labelNames: ['method', 'status'] as const,
    registers: [this.registry],
  });
  readonly bytesServed = new Counter({
    name: 'bootfs_http_served_bytes_total',
    help: 'Stored (compressed) chunk bytes sent in GET responses',
    registers: [this.registry],
  });
  readonly chunksServed = new Counter({
    name: 'bootfs_http_served_chunks_total',
    help: 'Chunks sent in GET responses',
    registers: [this.registry],
  });
  readonly chunksStored = new Counter({
    name: 'bootfs_http_stored_chunks_total',
    help: 'Chunks written by PUT (not counting chunks that already existed)',
    registers: [this.registry],
  });
  readonly corruptChunks = new Counter({
    name: 'bootfs_http_corrupt_chunks_total',
    help: 'Stored chunks that failed verification when requested (answered 500)',
    registers: [this.registry],
  });
}
