/**
 * An index of a tar archive's members (name → byte range), built once by reading the headers only,
 * so blobs can later be read straight out of the archive by offset. Understands ustar, GNU long
 * names (L/K) and pax extended headers (path, linkpath, size); that covers what skopeo, podman,
 * docker and GNU tar write for image archives.
 *
 * The archive is hostile input: header checksums are verified, names are normalised and names that
 * would leave the archive are dropped, and entry counts and metadata sizes are bounded.
 */
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ImageFormatError } from './errors.js';

const BLOCK = 512;
/** An image archive has a few files per layer; a million members is far past any real one. */
export const MAX_TAR_MEMBERS = 1_000_000;
/** pax and GNU long-name records hold a name or two; 1 MiB is generous. */
const MAX_META_SIZE = 1 << 20;

/** A member of the archive, by normalised name. */
export type TarMember =
  | { kind: 'file'; offset: number; size: number }
  | { kind: 'hardlink'; target: string }
  | { kind: 'symlink'; target: string }
  | { kind: 'other'; type: string };

/**
 * Normalise a member name: strip leading './' and '/', collapse '.', '..' and repeated slashes.
 * Undefined for names that leave the archive's root or are empty.
 */
export function normalizeMemberName(name: string): string | undefined {
  const n = path.posix.normalize(`/${name}`).slice(1).replace(/\/+$/, '');
  if (n === '' || n === '.') return undefined;
  // normalize('/' + name) cannot produce '..' components, but a name that tried is suspicious:
  // refuse it rather than silently mapping '../x' to 'x'.
  if (name.split('/').includes('..')) return undefined;
  return n;
}

function cstring(buf: Buffer, start: number, end: number): string {
  const z = buf.indexOf(0, start);
  return buf.toString('utf8', start, z >= 0 && z < end ? z : end);
}

/** A numeric header field: octal text, or GNU base-256 when the high bit of the first byte is set. */
function number(buf: Buffer, start: number, end: number): number | undefined {
  if ((buf[start]! & 0x80) !== 0) {
    if ((buf[start]! & 0x40) !== 0) return undefined; // negative
    let v = buf[start]! & 0x3f;
    for (let i = start + 1; i < end; i++) v = v * 256 + buf[i]!;
    return Number.isSafeInteger(v) ? v : undefined;
  }
  const text = buf.toString('latin1', start, end).replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) return undefined;
  const v = parseInt(text, 8);
  return Number.isSafeInteger(v) ? v : undefined;
}

function checksumOk(h: Buffer): boolean {
  const stored = number(h, 148, 156);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

/** Parse pax records `LEN key=value\n`. */
function paxRecords(data: Buffer, where: string): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    const sp = data.indexOf(0x20, pos);
    const len = sp < 0 ? NaN : Number(data.toString('latin1', pos, sp));
    if (!Number.isSafeInteger(len) || len <= sp - pos || pos + len > data.length) {
      if (data.subarray(pos).every((b) => b === 0)) break;
      throw new ImageFormatError(`${where}: malformed pax header`);
    }
    const rec = data.toString('utf8', sp + 1, pos + len - 1);
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    pos += len;
  }
  return out;
}

/** Read exactly `n` bytes at `pos`, or fewer at end of file. */
async function readAt(fh: FileHandle, pos: number, n: number): Promise<Buffer> {
  const buf = Buffer.alloc(n);
  let got = 0;
  while (got < n) {
    const { bytesRead } = await fh.read(buf, got, n - got, pos + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === n ? buf : buf.subarray(0, got);
}

/**
 * Index the members of the tar archive open as `fh` (`label` names it in errors). Later members of
 * the same name replace earlier ones, as extraction would.
 */
export async function indexTar(fh: FileHandle, label: string): Promise<Map<string, TarMember>> {
  const fileSize = (await fh.stat()).size;
  const members = new Map<string, TarMember>();
  let pos = 0;
  let count = 0;
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax: Map<string, string> | undefined;
  for (;;) {
    const h = await readAt(fh, pos, BLOCK);
    if (h.length === 0) break; // EOF without the end-of-archive blocks: tolerated, as GNU tar does
    if (h.length < BLOCK) throw new ImageFormatError(`${label}: truncated tar header at offset ${pos}`);
    if (h.every((b) => b === 0)) break; // end of archive
    if (!checksumOk(h)) {
      throw new ImageFormatError(pos === 0 ? `${label} is not a tar archive` : `${label}: corrupt tar header at offset ${pos}`);
    }
    if (++count > MAX_TAR_MEMBERS) throw new ImageFormatError(`${label}: more than ${MAX_TAR_MEMBERS} tar members`);
    const type = String.fromCharCode(h[156]!) || '0';
    const headerSize = number(h, 124, 136);
    if (headerSize === undefined) throw new ImageFormatError(`${label}: bad size field in tar header at offset ${pos}`);
    const paxSize = pax?.get('size');
    const size = paxSize !== undefined && /^\d+$/.test(paxSize) ? Number(paxSize) : headerSize;
    const dataStart = pos + BLOCK;
    if (!Number.isSafeInteger(size) || dataStart + size > fileSize) {
      throw new ImageFormatError(`${label}: tar member at offset ${pos} runs past the end of the file (truncated archive?)`);
    }
    const next = dataStart + Math.ceil(size / BLOCK) * BLOCK;

    if (type === 'x' || type === 'L' || type === 'K') {
      if (size > MAX_META_SIZE) throw new ImageFormatError(`${label}: tar metadata record of ${size} bytes at offset ${pos} is too large`);
      const data = await readAt(fh, dataStart, size);
      if (type === 'x') pax = paxRecords(data, label);
      else if (type === 'L') longName = cstring(data, 0, data.length);
      else longLink = cstring(data, 0, data.length);
      pos = next;
      continue;
    }
    if (type !== 'g') {
      const ustar = h.toString('latin1', 257, 263) === 'ustar\0';
      const prefix = ustar ? cstring(h, 345, 500) : '';
      const rawName = pax?.get('path') ?? longName ?? (prefix ? `${prefix}/${cstring(h, 0, 100)}` : cstring(h, 0, 100));
      const rawLink = pax?.get('linkpath') ?? longLink ?? cstring(h, 157, 257);
      const name = normalizeMemberName(rawName);
      if (name !== undefined) {
        if (type === '0' || type === '\0' || type === '7') members.set(name, { kind: 'file', offset: dataStart, size });
        else if (type === '1') members.set(name, { kind: 'hardlink', target: rawLink });
        else if (type === '2') members.set(name, { kind: 'symlink', target: rawLink });
        else members.set(name, { kind: 'other', type });
      }
    }
    longName = undefined;
    longLink = undefined;
    pax = undefined;
    pos = next;
  }
  return members;
}
