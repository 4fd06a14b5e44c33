/**
 * `bootfs serve` as a library call: open a local store, listen on an address, and stop cleanly
 * (in-flight requests finish, idle keep-alive connections close).
 */
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { IoError, UsageError } from '../errors.js';
import { openLocalStore } from '../store/location.js';
import { createHttpStoreServer, type HttpStoreServerOptions } from './http.js';

/** A parsed listen address. */
export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * Parse `HOST:PORT`, `[V6]:PORT` or `:PORT` (all interfaces, as Go servers such as desync read
 * it). Port 0 picks a free port.
 */
export function parseListenAddress(text: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]*)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`listen address '${text}' is not HOST:PORT (examples: 127.0.0.1:8080, :8080, [::1]:0)`);
  const host = m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!);
  return { host, port };
}

/** Read a token file: its content without the trailing newline; empty or whitespace-only is an error. */
export async function readTokenFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new IoError(`cannot read token file ${file}: ${(err as Error).message}`, err);
  }
  const token = text.replace(/\r?\n$/, '');
  if (token.trim() === '' || /\s/.test(token)) throw new UsageError(`token file ${file} must hold one token without whitespace`);
  return token;
}

export interface ServeOptions extends HttpStoreServerOptions {
  store: string;
  listen: string;
}

/** A running server: its URL and a graceful `close()`. */
export interface RunningServer {
  app: FastifyInstance;
  url: string;
  storeLocation: string;
  close(): Promise<void>;
}

/** Open the store directory and start serving it. */
export async function serveStore(opts: ServeOptions): Promise<RunningServer> {
  const { store: dir, listen, ...serverOpts } = opts;
  const addr = parseListenAddress(listen);
  const store = await openLocalStore(dir);
  const app = createHttpStoreServer(store, serverOpts);
  await app.listen({ host: addr.host, port: addr.port });
  const bound = app.server.address() as AddressInfo;
  const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  const url = `${opts.tls ? 'https' : 'http'}://${host}:${bound.port}`;
  return { app, url, storeLocation: store.location, close: () => app.close() };
}
