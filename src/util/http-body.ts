/**
 * Reading undici response bodies, for every HTTP client here (the HTTP chunk store and the
 * registry client): whole bodies with a size cap, error-message prefixes, and the two errors a
 * try can end with that the retry loops tell apart.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { IoError } from '../errors.js';

/** An undici response body. */
export type Body = Dispatcher.ResponseData['body'];

/** One try took longer than the per-try timeout (retryable). */
export class TryTimeout extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
  }
}

/** A body longer than allowed (not retryable). */
export class BodyTooLarge extends IoError {}

/** Drop a body we will not read (and its connection when needed), without an unhandled error. */
export function discard(body: Body): void {
  body.on('error', () => undefined);
  body.destroy();
}

/** The first `max` bytes of a body; the rest is dropped (the connection too, when needed). */
export async function readPrefix(body: Body, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let total = 0;
  for await (const piece of body) {
    parts.push(piece as Buffer);
    total += (piece as Buffer).length;
    if (total >= max) {
      discard(body);
      break;
    }
  }
  return Buffer.concat(parts).subarray(0, max);
}

/** A whole body of at most `cap` bytes; BodyTooLarge naming `what` (and the connection dropped) beyond. */
export async function readCapped(body: Body, cap: number, headers: IncomingHttpHeaders, what: string): Promise<Buffer> {
  const tooLarge = () => new BodyTooLarge(`${what}: response body over ${cap} bytes refused`);
  const declared = Number(headers['content-length']);
  if (Number.isFinite(declared) && declared > cap) {
    discard(body);
    throw tooLarge();
  }
  const parts: Buffer[] = [];
  let total = 0;
  for await (const piece of body) {
    total += (piece as Buffer).length;
    if (total > cap) {
      discard(body);
      throw tooLarge();
    }
    parts.push(piece as Buffer);
  }
  return Buffer.concat(parts, total);
}
