/**
 * src/mount/metrics.ts: request counting, the Prometheus text (every line parsed by the exposition
 * format's grammar), listen-address parsing, and the HTTP endpoint on a real loopback port.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { RequestCounters, parseListenAddress, prometheusText, serveMetrics, statsFileWriter, type MountStats } from '../../src/mount/metrics.js';
import { cleanup, tmpDir } from '../helpers/tools.js';

afterAll(cleanup);

function snapshot(over: Partial<MountStats> = {}): MountStats {
  return {
    requests: { lookup: 10, getattr: 4, read: 3 },
    errors: { read: 1 },
    reads: 3,
    bytesServed: 12_288,
    memoryHits: 7,
    cacheHits: 2,
    cacheMisses: 5,
    remoteFetches: 5,
    remoteBytes: 4_000,
    verifyFailures: 1,
    remoteErrors: 2,
    readaheads: 6,
    uptimeSeconds: 42,
    ...over,
  };
}

describe('RequestCounters', () => {
  it('counts requests per operation and failures per operation', () => {
    const c = new RequestCounters();
    c.record('getattr', 0);
    c.record('getattr', 0);
    c.record('open', 30); // EROFS
    c.record('read', 5); // EIO
    expect(c.requests).toEqual({ getattr: 2, open: 1, read: 1 });
    expect(c.errors).toEqual({ open: 1, read: 1 });
  });

  it('does not count ENOENT and ENODATA as failures: they are answers', () => {
    const c = new RequestCounters();
    c.record('lookup', 2);
    c.record('getxattr', 61);
    expect(c.requests).toEqual({ lookup: 1, getxattr: 1 });
    expect(c.errors).toEqual({});
  });

  it('counts bytes served by successful reads only', () => {
    const c = new RequestCounters();
    c.record('read', 0, 4096);
    c.record('read', 0, 100);
    c.record('read', 5, 0);
    c.record('readlink', 0, 7);
    c.record('readdir', 0, 4096);
    expect(c.reads).toBe(2);
    expect(c.bytesServed).toBe(4196);
    expect(c.requests.read).toBe(3);
  });
});

// Prometheus text exposition format 0.0.4.
const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABELS = `\\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*",?)*\\}`;
const VALUE = '(?:[+-]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][+-]?\\d+)?|[+-]?Inf|NaN)';
const HELP = new RegExp(`^# HELP (${NAME}) (.*)$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
const SAMPLE = new RegExp(`^(${NAME})(${LABELS})? (${VALUE})$`);

interface Family {
  help?: string;
  type?: string;
  samples: { labels: string; value: number }[];
}

/** Parse exposition text strictly; fails the test on any line the format does not allow. */
function parseExposition(text: string): Map<string, Family> {
  expect(text.endsWith('\n')).toBe(true);
  const families = new Map<string, Family>();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { samples: [] }));
    return f;
  };
  let current: string | undefined;
  for (const line of text.slice(0, -1).split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = HELP.exec(line))) {
      expect(family(m[1]!).help, `second HELP for ${m[1]}`).toBeUndefined();
      family(m[1]!).help = m[2]!;
      current = m[1]!;
    } else if ((m = TYPE.exec(line))) {
      const f = family(m[1]!);
      expect(f.type, `second TYPE for ${m[1]}`).toBeUndefined();
      expect(f.samples, `TYPE for ${m[1]} after its samples`).toEqual([]);
      f.type = m[2]!;
      current = m[1]!;
    } else if ((m = SAMPLE.exec(line))) {
      // Samples of one family are contiguous and follow its TYPE.
      expect(m[1], `sample ${line} outside its family`).toBe(current);
      family(m[1]!).samples.push({ labels: m[2] ?? '', value: Number(m[3]) });
    } else {
      throw new Error(`not a valid exposition line: ${JSON.stringify(line)}`);
    }
  }
  return families;
}

describe('prometheusText', () => {
  it('is valid exposition text: HELP and TYPE for every family, samples after them', () => {
    const families = parseExposition(prometheusText(snapshot()));
    for (const [name, f] of families) {
      expect(f.help, name).toBeTruthy();
      expect(f.type, name).toBeDefined();
      if (f.type === 'counter') expect(name.endsWith('_total'), `${name}: counters end in _total`).toBe(true);
    }
    expect(families.size).toBe(13);
  });

  it('carries every counter of the snapshot', () => {
    const families = parseExposition(prometheusText(snapshot()));
    const value = (name: string, labels = ''): number | undefined => families.get(name)?.samples.find((s) => s.labels === labels)?.value;
    expect(value('bootfs_mount_reads_total')).toBe(3);
    expect(value('bootfs_mount_served_bytes_total')).toBe(12_288);
    expect(value('bootfs_mount_memory_hits_total')).toBe(7);
    expect(value('bootfs_mount_cache_hits_total')).toBe(2);
    expect(value('bootfs_mount_cache_misses_total')).toBe(5);
    expect(value('bootfs_mount_remote_fetches_total')).toBe(5);
    expect(value('bootfs_mount_remote_bytes_total')).toBe(4_000);
    expect(value('bootfs_mount_verify_failures_total')).toBe(1);
    expect(value('bootfs_mount_remote_errors_total')).toBe(2);
    expect(value('bootfs_mount_readahead_chunks_total')).toBe(6);
    expect(value('bootfs_mount_requests_total', '{op="lookup"}')).toBe(10);
    expect(value('bootfs_mount_requests_total', '{op="getattr"}')).toBe(4);
    expect(value('bootfs_mount_requests_total', '{op="read"}')).toBe(3);
    expect(value('bootfs_mount_errors_total', '{op="read"}')).toBe(1);
    expect(families.get('bootfs_mount_uptime_seconds')).toMatchObject({ type: 'gauge', samples: [{ labels: '', value: 42 }] });
  });

  it('stays valid with no requests at all and with large numbers', () => {
    const families = parseExposition(prometheusText(snapshot({ requests: {}, errors: {}, remoteBytes: 2 ** 53 - 1 })));
    expect(families.get('bootfs_mount_requests_total')!.samples).toEqual([]);
    expect(families.get('bootfs_mount_remote_bytes_total')!.samples[0]!.value).toBe(2 ** 53 - 1);
  });
});

describe('parseListenAddress', () => {
  it('accepts PORT, :PORT, HOST:PORT and [IPv6]:PORT; the host defaults to loopback', () => {
    expect(parseListenAddress('9100')).toEqual({ host: '127.0.0.1', port: 9100 });
    expect(parseListenAddress(':9100')).toEqual({ host: '127.0.0.1', port: 9100 });
    expect(parseListenAddress('0.0.0.0:9100')).toEqual({ host: '0.0.0.0', port: 9100 });
    expect(parseListenAddress('localhost:80')).toEqual({ host: 'localhost', port: 80 });
    expect(parseListenAddress('[::1]:9100')).toEqual({ host: '::1', port: 9100 });
    expect(parseListenAddress('[::]:0')).toEqual({ host: '::', port: 0 });
    expect(parseListenAddress(' 65535 ')).toEqual({ host: '127.0.0.1', port: 65535 });
  });

  it('refuses anything else with a UsageError that quotes the input', () => {
    for (const bad of ['', 'abc', 'host:', ':', '65536', '99999', '123456', '-1', '1.5', 'host:port', '[::1]', '[::1]9100', 'a:b:c', '9100/tcp']) {
      let err: unknown;
      try {
        parseListenAddress(bad);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(bad)).toBeInstanceOf(UsageError);
      expect((err as Error).message).toContain(`'${bad}'`);
    }
  });
});

describe('serveMetrics', () => {
  const servers: Server[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  });

  async function start(snap: () => MountStats): Promise<{ server: Server; base: string }> {
    const server = await serveMetrics('127.0.0.1:0', snap);
    servers.push(server);
    const { address, port } = server.address() as AddressInfo;
    expect(address).toBe('127.0.0.1');
    expect(port).toBeGreaterThan(0);
    return { server, base: `http://127.0.0.1:${port}` };
  }

  it('serves /metrics as Prometheus text and /stats as JSON, each a fresh snapshot', async () => {
    let reads = 1;
    const { base } = await start(() => snapshot({ reads }));
    const m = await fetch(`${base}/metrics`);
    expect(m.status).toBe(200);
    expect(m.headers.get('content-type')).toBe('text/plain; version=0.0.4');
    const text = await m.text();
    expect(parseExposition(text).get('bootfs_mount_reads_total')!.samples[0]!.value).toBe(1);
    reads = 2;
    const s = await fetch(`${base}/stats?pretty=1`);
    expect(s.status).toBe(200);
    expect(s.headers.get('content-type')).toBe('application/json');
    expect(await s.json()).toEqual(snapshot({ reads: 2 }));
  });

  it('answers 404 elsewhere', async () => {
    const { base } = await start(() => snapshot());
    for (const p of ['/', '/metric', '/metrics/x', '/stats.json']) {
      const r = await fetch(`${base}${p}`);
      expect(r.status, p).toBe(404);
      expect(await r.text()).toMatch(/not found/);
    }
  });

  it('refuses a port already in use with a UsageError naming the address', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    servers.push(blocker);
    const addr = `127.0.0.1:${(blocker.address() as AddressInfo).port}`;
    const err = await serveMetrics(addr, () => snapshot()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toContain(addr);
  });

  it('refuses a malformed address before listening', async () => {
    await expect(serveMetrics('nope', () => snapshot())).rejects.toBeInstanceOf(UsageError);
  });
});

describe('statsFileWriter', () => {
  it('writes the snapshot as JSON at once and again when stopped', async () => {
    const dir = await tmpDir('bootfs-metrics-');
    const file = path.join(dir, 'stats.json');
    let reads = 0;
    const w = statsFileWriter(file, () => snapshot({ reads }), 60_000);
    reads = 9;
    await w.stop();
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(snapshot({ reads: 9 }));
  });
});
