/**
 * A small tar writer for tests: ustar headers, PAX records and GNU long names, with knobs to write
 * hostile archives (bad checksums, base-256 numbers, sizes that lie, missing end blocks, …).
 */

export type Bytes = string | Buffer;

export interface TarSpec {
  /** A string is written as UTF-8; a Buffer as raw bytes. */
  path: Bytes;
  /** Type flag character (default '0', or '5' when the path ends in '/'). */
  type?: string;
  data?: Bytes;
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds since the epoch (octal in the header). */
  mtime?: number;
  linkPath?: Bytes;
  devMajor?: number;
  devMinor?: number;
  /** PAX records written in an `x` header before the entry, in order. */
  pax?: [Bytes, Bytes][];
  /** Write long names as GNU `L`/`K` headers instead of PAX. */
  gnuLongNames?: boolean;
  /** Header magic (default ustar; 'gnu' writes "ustar  \0"). */
  format?: 'ustar' | 'gnu' | 'v7';
  /** Override the header size field (otherwise the data length). */
  size?: number;
  /** Write these header numeric fields in base-256 (two's complement). */
  base256?: Partial<Record<'size' | 'uid' | 'gid' | 'mtime', bigint>>;
  checksum?: 'unsigned' | 'signed' | 'bad';
  /** Change the header before the checksum is computed. */
  mutate?: (header: Buffer) => void;
}

const BLOCK = 512;
const bytes = (b: Bytes): Buffer => (typeof b === 'string' ? Buffer.from(b, 'utf8') : b);
const pad = (n: number): number => (BLOCK - (n % BLOCK)) % BLOCK;

function octal(h: Buffer, off: number, len: number, v: number): void {
  const s = v.toString(8).padStart(len - 1, '0');
  if (s.length > len - 1) throw new Error(`value ${v} does not fit ${len} bytes of octal`);
  h.write(s + '\0', off, 'latin1');
}

function base256(h: Buffer, off: number, len: number, v: bigint): void {
  let x = BigInt.asUintN(len * 8, v);
  for (let i = len - 1; i >= 0; i--) {
    h[off + i] = Number(x & 0xffn);
    x >>= 8n;
  }
  h[off] = v < 0n ? h[off]! | 0xc0 : 0x80;
}

/** PAX records `LEN KEY=VALUE\n` (the length counts its own digits). */
export function paxBody(records: [Bytes, Bytes][]): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of records) {
    const body = Buffer.concat([Buffer.from(' '), bytes(k), Buffer.from('='), bytes(v), Buffer.from('\n')]);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    parts.push(Buffer.concat([Buffer.from(String(len)), body]));
  }
  return Buffer.concat(parts);
}

/** One 512-byte header. */
export function header(spec: Omit<TarSpec, 'data'> & { size: number }): Buffer {
  const h = Buffer.alloc(BLOCK);
  bytes(spec.path).copy(h, 0, 0, 100);
  octal(h, 100, 8, spec.mode ?? 0o644);
  octal(h, 108, 8, spec.uid ?? 0);
  octal(h, 116, 8, spec.gid ?? 0);
  octal(h, 124, 12, spec.size);
  octal(h, 136, 12, spec.mtime ?? 0);
  h.write(spec.type ?? '0', 156, 'latin1');
  if (spec.linkPath !== undefined) bytes(spec.linkPath).copy(h, 157, 0, 100);
  const format = spec.format ?? 'ustar';
  if (format === 'ustar') h.write('ustar\x0000', 257, 'latin1');
  else if (format === 'gnu') h.write('ustar  \0', 257, 'latin1');
  if (format !== 'v7') {
    octal(h, 329, 8, spec.devMajor ?? 0);
    octal(h, 337, 8, spec.devMinor ?? 0);
  }
  const offsets = { size: [124, 12], uid: [108, 8], gid: [116, 8], mtime: [136, 12] } as const;
  for (const [k, v] of Object.entries(spec.base256 ?? {}) as [keyof typeof offsets, bigint][]) {
    base256(h, offsets[k][0], offsets[k][1], v);
  }
  spec.mutate?.(h);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += spec.checksum === 'signed' && h[i]! > 127 ? h[i]! - 256 : h[i]!;
  if (spec.checksum === 'bad') sum += 1;
  if (sum < 0) sum &= 0o777777; // negative signed sums don't fit; only matters for odd tests
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

/** Header + data + padding for a raw member (used for `x`, `g`, `L`, `K` headers too). */
export function member(spec: TarSpec): Buffer {
  const data = bytes(spec.data ?? '');
  const h = header({ ...spec, size: spec.size ?? data.length });
  return Buffer.concat([h, data, Buffer.alloc(pad(data.length))]);
}

/** All headers and data for one entry, with PAX or GNU headers for long names. */
export function entry(spec: TarSpec): Buffer {
  const out: Buffer[] = [];
  const path = bytes(spec.path);
  const type = spec.type ?? (path[path.length - 1] === 0x2f ? '5' : '0');
  const linkPath = spec.linkPath === undefined ? undefined : bytes(spec.linkPath);
  const pax: [Bytes, Bytes][] = [...(spec.pax ?? [])];
  if (spec.gnuLongNames) {
    if (path.length > 100) out.push(member({ path: '././@LongLink', type: 'L', data: Buffer.concat([path, Buffer.alloc(1)]), format: 'gnu' }));
    if (linkPath && linkPath.length > 100) out.push(member({ path: '././@LongLink', type: 'K', data: Buffer.concat([linkPath, Buffer.alloc(1)]), format: 'gnu' }));
  } else {
    if (path.length > 100 && !pax.some(([k]) => String(k) === 'path')) pax.push(['path', path]);
    if (linkPath && linkPath.length > 100 && !pax.some(([k]) => String(k) === 'linkpath')) pax.push(['linkpath', linkPath]);
  }
  if (pax.length > 0) out.push(member({ path: 'PaxHeader', type: 'x', data: paxBody(pax) }));
  out.push(member({ ...spec, type, path: path.subarray(0, 100), ...(linkPath ? { linkPath: linkPath.subarray(0, 100) } : {}) }));
  return Buffer.concat(out);
}

/** A whole archive; `end` controls the end-of-archive marker (default two zero blocks). */
export function writeTar(specs: (TarSpec | Buffer)[], opts: { end?: 0 | 1 | 2 } = {}): Buffer {
  const parts = specs.map((s) => (Buffer.isBuffer(s) ? s : entry(s)));
  parts.push(Buffer.alloc(BLOCK * (opts.end ?? 2)));
  return Buffer.concat(parts);
}

/** Feed a buffer as an async stream of chunks of `chunk` bytes (default: one chunk). */
export async function* chunked(buf: Uint8Array, chunk = buf.length || 1): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < buf.length; i += chunk) yield buf.subarray(i, i + chunk);
}
