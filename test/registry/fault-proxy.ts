/**
 * A tiny HTTP proxy in front of a test registry that injects faults: answer a matching request
 * with an error status without forwarding it (`before`), forward it and then answer with the error
 * instead of the registry's answer (`after`), or forward it and cut the response body off after
 * some bytes (`cut`, a broken download). The Host header is passed through, so the Locations the
 * registry builds point at the proxy. Every request is recorded as `METHOD PATH`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FaultRule {
  method: string;
  /** Matched against the path (query included). */
  path?: RegExp;
  /** How many matching requests to hit (default 1); later ones pass through. */
  times?: number;
  mode: 'before' | 'after' | 'cut';
  /** Status for before/after (default 500). */
  status?: number;
  /** cut: bytes of the response body sent before the connection is dropped (default 1000). */
  afterBytes?: number;
}

export interface FaultProxy {
  /** `127.0.0.1:PORT` */
  host: string;
  /** Requests seen, `METHOD PATH`, and for injected faults ` -> fault`. */
  log: string[];
  /** Add a rule; returns a counter of the faults it injected. */
  fail(rule: FaultRule): { count: number };
  stop(): Promise<void>;
}

/** Start a proxy forwarding to `upstream` (`127.0.0.1:PORT`, plain http). */
export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const [uhost, uport] = upstream.split(':') as [string, string];
  const rules: { rule: FaultRule; left: number; hit: { count: number } }[] = [];
  const log: string[] = [];
  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const r = rules.find((x) => x.left > 0 && x.rule.method === method && (!x.rule.path || x.rule.path.test(url)));
    if (r) {
      r.left--;
      r.hit.count++;
    }
    log.push(`${method} ${url}${r ? ` -> ${r.rule.mode}` : ''}`);
    const status = r?.rule.status ?? 500;
    if (r?.rule.mode === 'before') {
      req.resume();
      req.on('end', () => res.writeHead(status, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNKNOWN","message":"injected fault"}]}'));
      return;
    }
    const up = http.request({ host: uhost, port: Number(uport), method, path: url, headers: req.headers }, (ur) => {
      if (r?.rule.mode === 'after') {
        ur.resume();
        ur.on('end', () => res.writeHead(status, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNKNOWN","message":"injected fault after forwarding"}]}'));
        return;
      }
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      if (r?.rule.mode === 'cut') {
        let sent = 0;
        const limit = r.rule.afterBytes ?? 1000;
        ur.on('data', (b: Buffer) => {
          if (sent >= limit) return;
          const part = b.subarray(0, limit - sent);
          sent += part.length;
          res.write(part);
          if (sent >= limit) {
            ur.destroy();
            res.socket?.destroy();
          }
        });
        ur.on('end', () => res.end());
        return;
      }
      ur.pipe(res);
    });
    up.on('error', () => res.socket?.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    log,
    fail: (rule) => {
      const hit = { count: 0 };
      rules.push({ rule, left: rule.times ?? 1, hit });
      return hit;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
