/**
 * A streaming tar reader for image layers, which are hostile input.
 *
 * Why not `tar-stream` (2.2.0 is in node_modules only as a dependency of zstd-napi's installer, and
 * the current 3.x reads PAX the same way): `headers.decodePax` turns each whole record into a JS
 * string with `buf.toString()` (UTF-8), so the binary value of `SCHILY.xattr.security.capability`
 * and any non-UTF-8 PAX `path` come out with U+FFFD in place of their bytes; malformed PAX records
 * are silently dropped; `parseInt(…, 8)` accepts octal fields with trailing garbage; and there are
 * no limits on PAX sizes or entry counts. So we read tar ourselves: the format is small.
 *
 * Layout (POSIX ustar, pax, GNU): 512-byte header blocks, each followed by the entry's data padded
 * to 512 bytes; two zero blocks end the archive. Header fields, at byte offsets:
 *   0 name[100]  100 mode[8]  108 uid[8]  116 gid[8]  124 size[12]  136 mtime[12]  148 chksum[8]
 *   156 typeflag  157 linkname[100]  257 magic[6]  263 version[2]  265 uname[32]  297 gname[32]
 *   329 devmajor[8]  337 devminor[8]  345 prefix[155] (ustar; GNU keeps atime/ctime there)
 * Numbers are octal text, or base-256 when the first byte has bit 0x80 (GNU; 0xff = negative).
 * The checksum is the sum of the header bytes with the chksum field read as spaces; old writers
 * summed signed bytes, so both sums are accepted.
 *
 * Compatibility choices follow Go's archive/tar, which docker and containerd use: data after
 * header-only entry types (links, dirs, devices, fifos) is not skipped, a `\0` entry whose name ends
 * in `/` is a directory, and PAX global headers (`g`) are checked and then ignored.
 */
import { BootfsError, type BootfsErrorCode, ExitCode, UsageError } from '../errors.js';
import type { ByteString } from '../tree/types.js';
import { quotePath } from './paths.js';

/** Bounds on one layer; each violation is a LayerFormatError naming the layer and the entry. */
export interface TarLimits {
  /** Entries per layer (PAX/long-name headers are not counted; `g` and `V` headers are). */
  maxEntries: number;
  /** Largest PAX (`x` or `g`) header body in bytes. */
  maxPaxHeaderSize: number;
  /** Longest entry path or link target in bytes (Linux PATH_MAX). */
  maxPathLength: number;
  /** Largest regular file in bytes. */
  maxFileSize: number;
}

export const DEFAULT_TAR_LIMITS: Readonly<TarLimits> = Object.freeze({
  maxEntries: 1_000_000,
  maxPaxHeaderSize: 1 << 20,
  maxPathLength: 4096,
  maxFileSize: 64 * 2 ** 30,
});

/** Defaults filled in; a limit that is not a positive safe integer is a UsageError naming it. */
export function resolveTarLimits(limits: Partial<TarLimits> = {}): TarLimits {
  const out = { ...DEFAULT_TAR_LIMITS };
  for (const key of Object.keys(DEFAULT_TAR_LIMITS) as (keyof TarLimits)[]) {
    const v = limits[key];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v <= 0) throw new UsageError(`tar limit ${key} must be a positive integer, got ${String(v)}`);
    out[key] = v;
  }
  return out;
}

/** A layer is not a tar we accept: malformed, truncated, over a limit, or using an unsupported feature. */
export class LayerFormatError extends BootfsError {
  readonly layer: string;
  /** The entry's path, when the header got far enough to have one. */
  readonly entryPath: ByteString | undefined;
  readonly reason: string;
  constructor(layer: string, reason: string, where: { entry?: ByteString; offset?: number } = {}) {
    const entry = where.entry !== undefined ? ` entry ${quotePath(where.entry)}` : '';
    const at = where.offset !== undefined ? ` (header at byte ${where.offset})` : '';
    super(`layer ${layer} is invalid:${entry}${at}: ${reason}`, {
      // 'ERR_LAYER' is not (yet) in BootfsErrorCode; errors.ts belongs to another owner.
      code: 'ERR_LAYER',
      exitCode: ExitCode.integrity,
    });
    this.layer = layer;
    this.entryPath = where.entry;
    this.reason = reason;
  }
}

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

/** One archive member, with PAX and GNU long-name headers already applied. */
export interface TarEntry {
  type: TarEntryType;
  /** The path as stored (raw bytes, not yet sanitized: see paths.ts). */
  path: ByteString;
  /** Hardlink or symlink target as stored; '' for other types. */
  linkPath: ByteString;
  /** Permission bits with setuid/setgid/sticky (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
  /** Data bytes (regular files only; 0 for every other type). */
  size: number;
  devMajor: number;
  devMinor: number;
  /** From `SCHILY.xattr.*` (raw bytes) and `LIBARCHIVE.xattr.*` (base64) PAX records. */
  xattrs: Map<ByteString, Buffer>;
  /** Byte offset of the entry's first header (PAX or long-name header included) in the layer. */
  offset: number;
  /**
   * The `size` data bytes, as views into the input's chunks. Read it (at most once) before asking
   * for the next entry; whatever is left unread is skipped.
   */
  data: AsyncIterable<Uint8Array>;
}

export interface TarReadOptions {
  /** Names the layer in errors (a digest or file name). */
  layer: string;
  limits?: Partial<TarLimits>;
}

const BLOCK = 512;
/** Metadata headers (`x`, `L`, `K`) allowed before one entry; real writers use at most three. */
const MAX_METADATA_HEADERS = 16;
const MAX_ID = 0xffff_ffff;
const EMPTY = new Uint8Array(0);

/** Pulls bytes from the input: small exact reads (headers) and zero-copy data slices. */
class Input {
  private readonly it: AsyncIterator<Uint8Array>;
  private buf: Uint8Array = EMPTY;
  private pos = 0;
  /** Bytes consumed so far. */
  offset = 0;

  constructor(src: AsyncIterable<Uint8Array>) {
    this.it = src[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    while (this.pos >= this.buf.length) {
      const r = await this.it.next();
      if (r.done) return false;
      this.buf = r.value;
      this.pos = 0;
    }
    return true;
  }

  /** Up to `max` bytes (a view, at least 1 byte), or null at end of input. */
  async take(max: number): Promise<Uint8Array | null> {
    if (this.pos >= this.buf.length && !(await this.fill())) return null;
    const n = Math.min(max, this.buf.length - this.pos);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.offset += n;
    return out;
  }

  /** Exactly `n` bytes; a short read returns how many bytes there were before the end. */
  async readExact(n: number): Promise<Uint8Array | number> {
    if (this.buf.length - this.pos >= n) {
      const out = this.buf.subarray(this.pos, this.pos + n);
      this.pos += n;
      this.offset += n;
      return out;
    }
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      const part = await this.take(n - got);
      if (part === null) return got;
      out.set(part, got);
      got += part.length;
    }
    return out;
  }

  /** Skip `n` bytes; false if the input ended first. */
  async skip(n: number): Promise<boolean> {
    while (n > 0) {
      const part = await this.take(n);
      if (part === null) return false;
      n -= part.length;
    }
    return true;
  }

  /** Tell the source we stop early (errors from it are irrelevant by then). */
  async close(): Promise<void> {
    try {
      await this.it.return?.();
    } catch {
      // the source failed while closing; the caller already has the error that matters
    }
  }

  /** Read and discard the rest of the input (so a digest-verifying source sees all of it). */
  async drain(): Promise<void> {
    while ((await this.take(Number.MAX_SAFE_INTEGER)) !== null) {
      // discard
    }
  }
}

const latin1 = (b: Uint8Array, start = 0, end = b.length): string =>
  Buffer.from(b.buffer, b.byteOffset + start, end - start).toString('latin1');

/** A NUL-terminated header string field as a ByteString. */
function field(h: Uint8Array, off: number, len: number): ByteString {
  let end = off;
  while (end < off + len && h[end] !== 0) end++;
  return latin1(h, off, end);
}

/** A numeric header field (octal text or base-256), or a string saying why it is not a number. */
function numeric(h: Uint8Array, off: number, len: number): number | string {
  const first = h[off]!;
  if (first & 0x80) {
    // base-256 two's complement; bit 0x40 of the first byte is the sign (as Go's archive/tar).
    const inv = first & 0x40 ? 0xff : 0;
    let x = 0n;
    for (let i = 0; i < len; i++) {
      let c = h[off + i]! ^ inv;
      if (i === 0) c &= 0x7f;
      x = (x << 8n) | BigInt(c);
    }
    if (inv) x = -x - 1n;
    if (x > BigInt(Number.MAX_SAFE_INTEGER) || x < BigInt(Number.MIN_SAFE_INTEGER)) return 'base-256 number out of range';
    return Number(x);
  }
  // octal text, padded with spaces or NULs on either side (as Go's parseOctal)
  let i = off;
  const end = off + len;
  while (i < end && (h[i] === 0x20 || h[i] === 0)) i++;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = h[i]!;
    if (c < 0x30 || c > 0x37) break;
    v = v * 8 + (c - 0x30);
    digits++;
  }
  for (; i < end; i++) if (h[i] !== 0x20 && h[i] !== 0) return 'not an octal number';
  return digits === 0 ? 0 : v;
}

/** Does the header's checksum field match its unsigned or signed byte sum? */
function checksumOk(h: Uint8Array): boolean {
  const want = numeric(h, 148, 8);
  if (typeof want !== 'number') return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return want === unsigned || want === signed;
}

function isZeroBlock(h: Uint8Array): boolean {
  for (let i = 0; i < BLOCK; i++) if (h[i] !== 0) return false;
  return true;
}

/** PAX records `LEN KEY=VALUE\n`, later keys winning; values are copies of the raw bytes. */
function parsePax(body: Uint8Array, p: { fail(reason: string): never }): Map<ByteString, Buffer> {
  const out = new Map<ByteString, Buffer>();
  let pos = 0;
  while (pos < body.length) {
    if (body[pos] === 0) {
      // trailing NUL padding, as some writers leave it
      for (let i = pos; i < body.length; i++) if (body[i] !== 0) p.fail('PAX header has data after NUL padding');
      break;
    }
    let len = 0;
    let i = pos;
    while (i < body.length && i - pos < 16 && body[i]! >= 0x30 && body[i]! <= 0x39) len = len * 10 + (body[i++]! - 0x30);
    if (i === pos || body[i] !== 0x20) p.fail('malformed PAX record length');
    const end = pos + len;
    if (len <= i - pos + 1 || end > body.length || body[end - 1] !== 0x0a) p.fail('malformed PAX record');
    const eq = body.indexOf(0x3d, i + 1);
    if (eq < 0 || eq >= end - 1 || eq === i + 1) p.fail('malformed PAX record (no key)');
    out.set(latin1(body, i + 1, eq), Buffer.from(body.subarray(eq + 1, end - 1)));
    pos = end;
  }
  return out;
}

const DECIMAL = /^[0-9]{1,20}$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Read a tar stream entry by entry. Entries come out in archive order with PAX and GNU long-name
 * headers applied; paths are raw bytes and are not sanitized here (flatten.ts does that, via
 * paths.ts). Every malformed, truncated or over-limit input is a LayerFormatError.
 */
export async function* readTar(input: AsyncIterable<Uint8Array>, opts: TarReadOptions): AsyncGenerator<TarEntry, void, undefined> {
  const parser = new TarParser(input, opts.layer, resolveTarLimits(opts.limits));
  let finished = false;
  try {
    for (;;) {
      const e = await parser.next();
      if (e === null) {
        finished = true;
        return;
      }
      yield e;
    }
  } finally {
    // On an error or an early `break`, let the source release what it holds (a file, a decompressor).
    if (!finished) await parser.close();
  }
}

/** The parser's state machine (a class rather than closures: no per-header allocations). */
class TarParser {
  private readonly src: Input;
  private entries = 0;
  /** The last entry returned, for messages about its data. */
  private lastEntry: ByteString | undefined = undefined;
  private lastOffset = 0;
  /** Bumped for every header, so a stale entry's data iterator can tell it has been left. */
  private token = 0;
  /** The current entry's unread data bytes, and the padding after them. */
  private remaining = 0;
  private padding = 0;
  // Metadata gathered from `x`, `L` and `K` headers for the next entry.
  private pax: Map<ByteString, Buffer> | null = null;
  private longName: ByteString | null = null;
  private longLink: ByteString | null = null;
  private metaHeaders = 0;
  /** Offset of the next entry's first header (its PAX or long-name header, if any). */
  private entryOffset = 0;
  /** The header being parsed, and its name field. */
  private h: Uint8Array = EMPTY;
  private headerName: ByteString = '';

  constructor(
    input: AsyncIterable<Uint8Array>,
    private readonly layer: string,
    private readonly limits: TarLimits,
  ) {
    this.src = new Input(input);
  }

  /** Stop reading the input early. */
  async close(): Promise<void> {
    await this.src.close();
  }

  /** The next entry, or null after the end-of-archive marker. */
  async next(): Promise<TarEntry | null> {
    const { src, limits } = this;
    for (;;) {
      if (this.remaining + this.padding > 0) {
        if (!(await src.skip(this.remaining + this.padding))) this.failAt('archive is truncated inside the entry data', this.lastEntry, this.lastOffset);
        this.remaining = this.padding = 0;
      }
      this.token++;
      const offset = src.offset;
      if (this.metaHeaders === 0) this.entryOffset = offset;
      const h = await src.readExact(BLOCK);
      if (h === 0 && this.metaHeaders === 0) {
        // Input ending exactly at a header boundary is the end of the archive, as in Go's
        // archive/tar (which docker and containerd use): umoci 0.4.7 writes layers with no
        // end-of-archive blocks, and their diff_ids are computed over exactly those bytes.
        return null;
      }
      if (typeof h === 'number') {
        const why = h === 0 ? 'archive ends after a PAX or long-name header with no entry' : 'archive is truncated inside a header';
        return this.failAt(why + (this.lastEntry !== undefined ? ` after entry ${quotePath(this.lastEntry)}` : ''), undefined, offset);
      }
      if (isZeroBlock(h)) {
        if (this.metaHeaders > 0) this.failAt('archive ends after a PAX or long-name header with no entry', undefined, this.entryOffset);
        const h2 = await src.readExact(BLOCK);
        // A lone zero block at the very end is accepted, as GNU tar does.
        if (typeof h2 === 'number' ? h2 !== 0 : !isZeroBlock(h2)) this.failAt('data after a zero block', undefined, offset);
        await src.drain();
        return null;
      }
      this.h = h;
      this.headerName = field(h, 0, 100);
      if (!checksumOk(h)) this.fail('bad header checksum (not a tar archive, or corrupt)');
      const typeflag = h[156]!;
      const size = this.num(124, 12, 'size');
      if (size < 0) this.fail(`negative size ${size}`);

      // Metadata headers: they describe the next entry, or (g, V) nothing we use.
      if (typeflag === 0x78 /* x */ || typeflag === 0x67 /* g */) {
        if (size > limits.maxPaxHeaderSize) this.fail(`PAX header of ${size} bytes exceeds the limit of ${limits.maxPaxHeaderSize}`);
        const body = await src.readExact(size);
        if (typeof body === 'number' || !(await src.skip(-size & (BLOCK - 1)))) return this.fail('archive is truncated inside a PAX header');
        const recs = parsePax(body, this);
        if (typeflag === 0x67) {
          // Global headers are checked but not applied: docker and containerd ignore them too, and
          // a global `path` would rename every entry.
          this.countEntry();
          continue;
        }
        if (this.pax === null) this.pax = recs;
        else for (const [k, v] of recs) this.pax.set(k, v);
      } else if (typeflag === 0x4c /* L */ || typeflag === 0x4b /* K */) {
        const what = typeflag === 0x4c ? 'name' : 'link';
        if (size > limits.maxPathLength + 1) this.fail(`GNU long ${what} of ${size} bytes exceeds the path limit of ${limits.maxPathLength}`);
        const body = await src.readExact(size);
        if (typeof body === 'number' || !(await src.skip(-size & (BLOCK - 1)))) return this.fail('archive is truncated inside a GNU long-name header');
        let end = body.length;
        while (end > 0 && body[end - 1] === 0) end--;
        if (body.subarray(0, end).includes(0)) this.fail(`GNU long ${what} contains a NUL byte`);
        if (typeflag === 0x4c) this.longName = latin1(body, 0, end);
        else this.longLink = latin1(body, 0, end);
      } else if (typeflag === 0x56 /* V */) {
        // GNU volume label: metadata only, nothing to apply.
        this.countEntry();
        this.remaining = size;
        this.padding = -size & (BLOCK - 1);
        continue;
      } else {
        return this.entry(typeflag, size);
      }
      if (++this.metaHeaders > MAX_METADATA_HEADERS) this.fail(`more than ${MAX_METADATA_HEADERS} PAX/long-name headers before one entry`);
    }
  }

  /** Build the entry for the current header (type flag `typeflag`, header size `size`). */
  private entry(typeflag: number, size: number): TarEntry {
    const { h, limits } = this;
    let type: TarEntryType;
    switch (typeflag) {
      case 0x30: case 0x37: case 0: type = 'file'; break; // '0', '7' (contiguous), '\0' (old)
      case 0x31: type = 'hardlink'; break;
      case 0x32: type = 'symlink'; break;
      case 0x33: type = 'char'; break;
      case 0x34: type = 'block'; break;
      case 0x35: type = 'dir'; break;
      case 0x36: type = 'fifo'; break;
      case 0x53: return this.fail('sparse files are not supported (GNU sparse entry); re-create the layer without --sparse');
      case 0x4d: return this.fail('multi-volume archives are not supported');
      default: {
        const shown = typeflag >= 0x20 && typeflag <= 0x7e ? `'${String.fromCharCode(typeflag)}'` : `0x${typeflag.toString(16).padStart(2, '0')}`;
        return this.fail(`unsupported entry type ${shown}`);
      }
    }
    this.countEntry();
    const magic = latin1(h, 257, 263);
    const ustar = magic === 'ustar\0';
    const gnu = magic === 'ustar ';
    let path = ustar && h[345] !== 0 ? `${field(h, 345, 155)}/${this.headerName}` : this.headerName;
    let linkPath = field(h, 157, 100);
    if (this.longName !== null) path = this.longName;
    if (this.longLink !== null) linkPath = this.longLink;
    let uid = this.num(108, 8, 'uid');
    let gid = this.num(116, 8, 'gid');
    let mtimeNs = BigInt(this.num(136, 12, 'mtime')) * 1_000_000_000n;
    const mode = this.num(100, 8, 'mode');
    let devMajor = 0;
    let devMinor = 0;
    if ((type === 'char' || type === 'block') && (ustar || gnu)) {
      devMajor = this.num(329, 8, 'devmajor');
      devMinor = this.num(337, 8, 'devminor');
    }
    const xattrs = new Map<ByteString, Buffer>();
    if (this.pax !== null) {
      for (const [key, v] of this.pax) {
        if (key.startsWith('GNU.sparse.')) this.fail('sparse files are not supported (GNU.sparse PAX records); re-create the layer without --sparse');
        if (v.length === 0 && !key.includes('xattr.')) continue; // an empty value restores the header's field
        if (key === 'path' || key === 'linkpath') {
          if (v.includes(0)) this.fail(`PAX ${key} contains a NUL byte`);
          if (key === 'path') path = v.toString('latin1');
          else linkPath = v.toString('latin1');
        } else if (key === 'size') size = this.decimal(key, v);
        else if (key === 'uid') uid = this.decimal(key, v);
        else if (key === 'gid') gid = this.decimal(key, v);
        else if (key === 'mtime') mtimeNs = this.paxTime(v.toString('latin1'));
        else if (key === 'SCHILY.devmajor') devMajor = this.decimal(key, v);
        else if (key === 'SCHILY.devminor') devMinor = this.decimal(key, v);
        else if (key.startsWith('SCHILY.xattr.')) {
          // The name is used as is (no %-decoding), as Go's archive/tar and libarchive do.
          const name = key.slice('SCHILY.xattr.'.length);
          if (name === '') this.fail('PAX xattr record with an empty name');
          xattrs.set(name, v);
        } else if (key.startsWith('LIBARCHIVE.xattr.')) {
          const name = decodePercent(key.slice('LIBARCHIVE.xattr.'.length));
          const s = v.toString('latin1');
          if (name === null || name === '') return this.fail('PAX LIBARCHIVE.xattr record with a malformed name');
          if (!BASE64.test(s)) this.fail(`PAX ${JSON.stringify(key)} value is not base64`);
          xattrs.set(name, Buffer.from(s, 'base64'));
        }
        // Anything else (atime, ctime, uname, gname, comment, hdrcharset, SCHILY.acl.*, …) is not
        // part of the tree we build.
      }
    }
    if (typeflag === 0 && path.endsWith('/')) type = 'dir'; // old tars: '\0' + trailing slash (as Go)
    if (path.length > limits.maxPathLength) this.fail(`path of ${path.length} bytes exceeds the limit of ${limits.maxPathLength}`);
    if (linkPath.length > limits.maxPathLength) this.fail(`link target of ${linkPath.length} bytes exceeds the limit of ${limits.maxPathLength}`);
    if (uid < 0 || uid > MAX_ID || gid < 0 || gid > MAX_ID) this.fail(`uid/gid ${uid}/${gid} out of range`);
    if (mode < 0) this.fail('negative mode');
    if (devMajor < 0 || devMajor > MAX_ID || devMinor < 0 || devMinor > MAX_ID) this.fail('device number out of range');
    if (size > limits.maxFileSize) this.fail(`size ${size} exceeds the limit of ${limits.maxFileSize} bytes`);
    // Header-only types carry no data, whatever the size field says (as Go's archive/tar).
    if (type !== 'file') size = 0;
    const offset = this.entryOffset;
    this.remaining = size;
    this.padding = -size & (BLOCK - 1);
    this.lastEntry = path;
    this.lastOffset = offset;
    this.pax = null;
    this.longName = this.longLink = null;
    this.metaHeaders = 0;
    return {
      type, path, linkPath: type === 'hardlink' || type === 'symlink' ? linkPath : '',
      mode: mode & 0o7777, uid, gid, mtimeNs, size, devMajor, devMinor, xattrs, offset,
      data: this.data(this.token, path, offset),
    };
  }

  private async *data(mine: number, entry: ByteString, at: number): AsyncGenerator<Uint8Array, void, undefined> {
    while (this.remaining > 0) {
      if (mine !== this.token) throw new Error('tar entry data read after moving on to the next entry');
      const part = await this.src.take(this.remaining);
      if (part === null) return this.failAt('archive is truncated inside the entry data', entry, at);
      this.remaining -= part.length;
      yield part;
    }
  }

  private countEntry(): void {
    if (++this.entries > this.limits.maxEntries) this.fail(`more than ${this.limits.maxEntries} entries`);
  }

  /** A numeric field of the current header. */
  private num(off: number, len: number, what: string): number {
    const v = numeric(this.h, off, len);
    if (typeof v === 'string') return this.fail(`${what} field: ${v}`);
    return v;
  }

  /** A PAX decimal value (digits only: no sign, no spaces). */
  private decimal(key: string, v: Buffer): number {
    const s = v.toString('latin1');
    if (!DECIMAL.test(s)) this.fail(`PAX ${key} ${JSON.stringify(s.slice(0, 40))} is not a non-negative integer`);
    const n = Number(s);
    if (!Number.isSafeInteger(n)) this.fail(`PAX ${key} ${s} is out of range`);
    return n;
  }

  /** A PAX time (`-?SECONDS[.FRACTION]`) in nanoseconds; digits past nanoseconds are dropped. */
  private paxTime(s: string): bigint {
    const m = /^(-?)([0-9]{1,19})(?:\.([0-9]*))?$/.exec(s);
    if (!m) return this.fail(`PAX mtime ${JSON.stringify(s.slice(0, 40))} is not a number`);
    const ns = BigInt(m[2]!) * 1_000_000_000n + BigInt((m[3] ?? '').slice(0, 9).padEnd(9, '0'));
    return m[1] === '-' ? -ns : ns;
  }

  /** Fail naming the entry the current header belongs to (as far as it is known). */
  fail(reason: string): never {
    const p = this.pax?.get('path');
    const name = p !== undefined && p.length > 0 ? p.toString('latin1') : (this.longName ?? this.headerName);
    return this.failAt(reason, name, this.entryOffset);
  }

  private failAt(reason: string, entry: ByteString | undefined, offset: number): never {
    throw new LayerFormatError(this.layer, reason, entry === undefined ? { offset } : { entry, offset });
  }
}

/** Decode `%XX` escapes (libarchive's xattr name encoding) to bytes; null if malformed. */
function decodePercent(s: string): ByteString | null {
  if (!s.includes('%')) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] !== '%') {
      out += s[i];
      continue;
    }
    const hex = s.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null;
    out += String.fromCharCode(parseInt(hex, 16));
    i += 2;
  }
  return out;
}
