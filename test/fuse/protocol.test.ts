/**
 * src/fuse/protocol.ts: the reply structures byte for byte. Offsets come from one table (LAYOUT),
 * which a test checks against the struct definitions in /usr/include/linux/fuse.h, so every
 * layout assertion below is ultimately an assertion against the kernel's header.
 */
import { existsSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ATTR_OUT_SIZE, ATTR_SIZE, ENTRY_OUT_SIZE, FOPEN_CACHE_DIR, FOPEN_KEEP_CACHE, FUSE_KERNEL_VERSION, FUSE_ROOT_ID, IN_HEADER_SIZE, INIT, OP_NAMES,
  OUT_HEADER_SIZE, Op, WRITE_OPS, attrOut, decodeInHeader, decodeInitIn, encodeDev, entryOut, initOut, negativeEntryOut, openOut, packDirents,
  statfsOut, writeAttr, xattrSizeOut, type Attr, type Dirent,
} from '../../src/fuse/protocol.js';
import { inCI } from '../helpers/tools.js';

const HEADER_FILE = '/usr/include/linux/fuse.h';
const header = existsSync(HEADER_FILE) ? readFileSync(HEADER_FILE, 'utf8') : undefined;
/** Without the header (linux-libc-dev) the cross-checks cannot run; in CI that is a failure, not a skip. */
const noHeader = header === undefined && !inCI();

/** Field offsets the tests below read, per struct (from fuse.h; checked against it). */
const LAYOUT = {
  fuse_attr: {
    ino: 0, size: 8, blocks: 16, atime: 24, mtime: 32, ctime: 40, atimensec: 48, mtimensec: 52, ctimensec: 56,
    mode: 60, nlink: 64, uid: 68, gid: 72, rdev: 76, blksize: 80, flags: 84, SIZE: 88,
  },
  fuse_entry_out: { nodeid: 0, generation: 8, entry_valid: 16, attr_valid: 24, entry_valid_nsec: 32, attr_valid_nsec: 36, attr: 40, SIZE: 128 },
  fuse_attr_out: { attr_valid: 0, attr_valid_nsec: 8, dummy: 12, attr: 16, SIZE: 104 },
  fuse_in_header: { len: 0, opcode: 4, unique: 8, nodeid: 16, uid: 24, gid: 28, pid: 32, SIZE: 40 },
  fuse_out_header: { len: 0, error: 4, unique: 8, SIZE: 16 },
  fuse_init_in: { major: 0, minor: 4, max_readahead: 8, flags: 12 },
  fuse_init_out: {
    major: 0, minor: 4, max_readahead: 8, flags: 12, max_background: 16, congestion_threshold: 18, max_write: 20, time_gran: 24,
    max_pages: 28, map_alignment: 30, SIZE: 64,
  },
  fuse_kstatfs: { blocks: 0, bfree: 8, bavail: 16, files: 24, ffree: 32, bsize: 40, namelen: 44, frsize: 48, padding: 52, SIZE: 80 },
  fuse_open_out: { fh: 0, open_flags: 8, padding: 12, SIZE: 16 },
  fuse_getxattr_out: { size: 0, padding: 4, SIZE: 8 },
  fuse_dirent: { ino: 0, off: 8, namelen: 16, type: 20, name: 24 },
  fuse_direntplus: { entry_out: 0, dirent: 128 },
} as const;
const A = LAYOUT.fuse_attr;
const E = LAYOUT.fuse_entry_out;
const D = LAYOUT.fuse_dirent;

// ------------------------------------------------------------------------------------------------
// A minimal C struct layout calculator for the header's plain structs (fixed-width integers,
// arrays, nested structs, one flexible array member): natural alignment, as on every Linux ABI.

interface StructLayout {
  size: number;
  align: number;
  offsets: Map<string, number>;
}

const SCALARS: Record<string, number> = { uint64_t: 8, int64_t: 8, uint32_t: 4, int32_t: 4, uint16_t: 2, int16_t: 2, uint8_t: 1, char: 1 };

function structLayouts(text: string): Map<string, StructLayout> {
  const out = new Map<string, StructLayout>();
  for (const m of text.matchAll(/^struct (\w+) \{\n([\s\S]*?)^\};/gm)) {
    const body = m[2]!.replace(/\/\*[\s\S]*?\*\//g, '');
    let off = 0;
    let align = 1;
    const offsets = new Map<string, number>();
    let ok = true;
    for (const decl of body.split(';').map((s) => s.trim()).filter((s) => s !== '')) {
      const d = /^(struct\s+\w+|\w+)\s+(\w+)(?:\[(\d*)\])?$/.exec(decl.replace(/\s+/g, ' '));
      if (!d) {
        ok = false; // unions, bitfields, …: not one of the structs we check
        break;
      }
      const [, type, name, count] = d as unknown as [string, string, string, string | undefined];
      let size: number;
      let a: number;
      if (type.startsWith('struct ')) {
        const inner = out.get(type.slice(7).trim());
        if (!inner) {
          ok = false;
          break;
        }
        [size, a] = [inner.size, inner.align];
      } else if (SCALARS[type] !== undefined) {
        [size, a] = [SCALARS[type]!, SCALARS[type]!];
      } else {
        ok = false;
        break;
      }
      off = Math.ceil(off / a) * a;
      offsets.set(name, off);
      align = Math.max(align, a);
      off += count === undefined ? size : count === '' ? 0 : size * Number(count);
    }
    if (ok) out.set(m[1]!, { size: Math.ceil(off / align) * align, align, offsets });
  }
  return out;
}

function attrOf(over: Partial<Attr> = {}): Attr {
  return { ino: 42, size: 1000, mode: 0o100644, nlink: 1, uid: 1000, gid: 100, rdev: 0, mtimeNs: 1_700_000_000_123_456_789n, ...over };
}

/** sec as the signed 64-bit value the kernel reads and nsec, from a struct fuse_attr at `off`. */
function timesAt(b: Buffer, off: number): { sec: bigint[]; nsec: number[] } {
  return {
    sec: [A.atime, A.mtime, A.ctime].map((f) => b.readBigInt64LE(off + f)),
    nsec: [A.atimensec, A.mtimensec, A.ctimensec].map((f) => b.readUInt32LE(off + f)),
  };
}

describe('layout constants against linux/fuse.h', () => {
  it.skipIf(noHeader)('every offset and size the tests use is the header’s', () => {
    expect(header, `${HEADER_FILE} is missing (install linux-libc-dev)`).toBeDefined();
    const layouts = structLayouts(header!);
    for (const [struct, fields] of Object.entries(LAYOUT)) {
      const l = layouts.get(struct);
      expect(l, struct).toBeDefined();
      for (const [field, off] of Object.entries(fields)) {
        if (field === 'SIZE') expect(l!.size, `sizeof(struct ${struct})`).toBe(off);
        else expect(l!.offsets.get(field), `offsetof(struct ${struct}, ${field})`).toBe(off);
      }
    }
    expect(layouts.get('fuse_attr')!.size).toBe(ATTR_SIZE);
    expect(layouts.get('fuse_entry_out')!.size).toBe(ENTRY_OUT_SIZE);
    expect(layouts.get('fuse_attr_out')!.size).toBe(ATTR_OUT_SIZE);
    expect(layouts.get('fuse_in_header')!.size).toBe(IN_HEADER_SIZE);
    expect(layouts.get('fuse_out_header')!.size).toBe(OUT_HEADER_SIZE);
  });

  it.skipIf(noHeader)('opcodes, INIT flags and FOPEN flags have the header’s values', () => {
    const define = (name: string): number => {
      const m = new RegExp(`#define ${name}\\s+\\(1 << (\\d+)\\)`).exec(header!);
      expect(m, name).not.toBeNull();
      return 2 ** Number(m![1]);
    };
    const opcode = (name: string): number => {
      const m = new RegExp(`\\bFUSE_${name}\\s*=\\s*(\\d+)`).exec(header!);
      expect(m, `FUSE_${name}`).not.toBeNull();
      return Number(m![1]);
    };
    for (const [name, value] of Object.entries(Op)) expect(value, name).toBe(opcode(name));
    for (const [name, value] of Object.entries(INIT)) expect(value, name).toBe(define(`FUSE_${name}`));
    expect(FOPEN_KEEP_CACHE).toBe(define('FOPEN_KEEP_CACHE'));
    expect(FOPEN_CACHE_DIR).toBe(define('FOPEN_CACHE_DIR'));
    expect(FUSE_ROOT_ID).toBe(Number(/#define FUSE_ROOT_ID (\d+)/.exec(header!)![1]));
    expect(FUSE_KERNEL_VERSION).toBe(Number(/#define FUSE_KERNEL_VERSION (\d+)/.exec(header!)![1]));
  });

  it('names every opcode in lower case and classes the modifying ones as writes', () => {
    expect(OP_NAMES.get(Op.READDIRPLUS)).toBe('readdirplus');
    expect(OP_NAMES.get(Op.LOOKUP)).toBe('lookup');
    expect(OP_NAMES.size).toBe(Object.keys(Op).length);
    for (const op of [Op.WRITE, Op.MKDIR, Op.UNLINK, Op.SETATTR, Op.SETXATTR, Op.CREATE, Op.RENAME2]) expect(WRITE_OPS.has(op)).toBe(true);
    for (const op of [Op.READ, Op.LOOKUP, Op.GETATTR, Op.READDIR, Op.GETXATTR, Op.OPEN, Op.STATFS]) expect(WRITE_OPS.has(op)).toBe(false);
  });
});

describe('writeAttr', () => {
  it('writes every field of struct fuse_attr at its offset, and nothing outside 88 bytes', () => {
    const b = Buffer.alloc(8 + ATTR_SIZE + 8, 0xaa);
    writeAttr(b, 8, attrOf({ ino: 7, size: 5 * 2 ** 30 + 3, mode: 0o104755, nlink: 3, uid: 0xffffffff, gid: 65534, rdev: 0x10010300 }));
    const at = (f: number): number => 8 + f;
    expect(b.readBigUInt64LE(at(A.ino))).toBe(7n);
    expect(b.readBigUInt64LE(at(A.size))).toBe(5n * 2n ** 30n + 3n);
    expect(b.readBigUInt64LE(at(A.blocks))).toBe(BigInt(Math.ceil((5 * 2 ** 30 + 3) / 512)));
    expect(b.readUInt32LE(at(A.mode))).toBe(0o104755);
    expect(b.readUInt32LE(at(A.nlink))).toBe(3);
    expect(b.readUInt32LE(at(A.uid))).toBe(0xffffffff);
    expect(b.readUInt32LE(at(A.gid))).toBe(65534);
    expect(b.readUInt32LE(at(A.rdev))).toBe(0x10010300);
    expect(b.readUInt32LE(at(A.blksize))).toBe(4096);
    expect(b.readUInt32LE(at(A.flags))).toBe(0);
    expect(b.subarray(0, 8)).toEqual(Buffer.alloc(8, 0xaa));
    expect(b.subarray(8 + ATTR_SIZE)).toEqual(Buffer.alloc(8, 0xaa));
  });

  it('counts blocks in 512-byte units, rounding up', () => {
    const b = Buffer.alloc(ATTR_SIZE);
    for (const [size, blocks] of [[0, 0n], [1, 1n], [512, 1n], [513, 2n], [4096, 8n]] as const) {
      writeAttr(b, 0, attrOf({ size }));
      expect(b.readBigUInt64LE(A.blocks), `size ${size}`).toBe(blocks);
    }
  });

  it('splits mtime into seconds and nanoseconds and uses it for atime and ctime too', () => {
    const b = Buffer.alloc(ATTR_SIZE);
    writeAttr(b, 0, attrOf({ mtimeNs: 1_700_000_000_123_456_789n }));
    expect(timesAt(b, 0)).toEqual({ sec: [1_700_000_000n, 1_700_000_000n, 1_700_000_000n], nsec: [123_456_789, 123_456_789, 123_456_789] });
  });

  it('writes pre-1970 times as a negative second (u64 two’s complement) and a non-negative nanosecond', () => {
    const b = Buffer.alloc(ATTR_SIZE);
    const cases: [bigint, bigint, number][] = [
      [-1_500_000_001n, -2n, 499_999_999],
      [-1n, -1n, 999_999_999],
      [-1_000_000_000n, -1n, 0],
      [-999_999_999n, -1n, 1],
      [0n, 0n, 0],
      [-(2n ** 63n), -9_223_372_037n, 145_224_192],
    ];
    for (const [ns, sec, nsec] of cases) {
      writeAttr(b, 0, attrOf({ mtimeNs: ns }));
      expect(b.readBigUInt64LE(A.mtime), `${ns} ns`).toBe(BigInt.asUintN(64, sec));
      expect(timesAt(b, 0).sec[1]).toBe(sec);
      expect(b.readUInt32LE(A.mtimensec), `${ns} ns`).toBe(nsec);
    }
    writeAttr(b, 0, attrOf({ mtimeNs: -1_500_000_001n }));
    expect(b.subarray(A.mtime, A.mtime + 8).toString('hex')).toBe('feffffffffffffff');
  });

  it('round-trips every signed 64-bit nanosecond time (property)', () => {
    const b = Buffer.alloc(ATTR_SIZE);
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), (ns) => {
        writeAttr(b, 0, attrOf({ mtimeNs: ns }));
        const sec = b.readBigInt64LE(A.mtime);
        const nsec = b.readUInt32LE(A.mtimensec);
        return nsec >= 0 && nsec < 1_000_000_000 && sec * 1_000_000_000n + BigInt(nsec) === ns;
      }),
      { numRuns: 500 },
    );
  });
});

describe('encodeDev', () => {
  /** The kernel's new_encode_dev on dev_t MKDEV(major, minor) (12-bit major, 20-bit minor), in u32 arithmetic. */
  const newEncodeDev = (major: number, minor: number): number => Number(
    BigInt.asUintN(32, (BigInt(minor) & 0xffn) | (BigInt(major) << 8n) | ((BigInt(minor) & ~0xffn) << 12n)),
  );
  /** The kernel's new_decode_dev (what fuse_fillattr applies to fuse_attr.rdev). */
  const newDecodeDev = (dev: number): [number, number] => [(dev & 0xfff00) >>> 8, ((dev & 0xff) | ((dev >>> 12) & 0xfff00)) >>> 0];

  it('matches new_encode_dev on known devices', () => {
    expect(encodeDev(1, 3)).toBe(0x103); // /dev/null
    expect(encodeDev(8, 1)).toBe(0x801); // /dev/sda1
    expect(encodeDev(259, 65536)).toBe(0x10010300); // an NVMe partition with a large minor
    expect(encodeDev(4095, 0xfffff)).toBe(0xffffffff);
    expect(encodeDev(0, 0)).toBe(0);
    expect(encodeDev(259, 65536)).toBe(newEncodeDev(259, 65536));
  });

  it('equals new_encode_dev and decodes back with new_decode_dev over the whole dev_t range (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xfff }), fc.integer({ min: 0, max: 0xfffff }), (major, minor) => {
        const enc = encodeDev(major, minor);
        expect(enc).toBe(newEncodeDev(major, minor));
        expect(enc).toBeGreaterThanOrEqual(0);
        expect(enc).toBeLessThanOrEqual(0xffffffff);
        expect(newDecodeDev(enc)).toEqual([major, minor]);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('entryOut, negativeEntryOut, attrOut, openOut', () => {
  it('entryOut is struct fuse_entry_out: nodeid = ino, generation 0, whole-second timeouts, the attr at 40', () => {
    const a = attrOf({ ino: 9, size: 6, mode: 0o120777 });
    const b = entryOut(a, 3600.9);
    expect(b.length).toBe(E.SIZE);
    expect(b.readBigUInt64LE(E.nodeid)).toBe(9n);
    expect(b.readBigUInt64LE(E.generation)).toBe(0n);
    expect(b.readBigUInt64LE(E.entry_valid)).toBe(3600n);
    expect(b.readBigUInt64LE(E.attr_valid)).toBe(3600n);
    expect(b.readUInt32LE(E.entry_valid_nsec)).toBe(0);
    expect(b.readUInt32LE(E.attr_valid_nsec)).toBe(0);
    const ref = Buffer.alloc(ATTR_SIZE);
    writeAttr(ref, 0, a);
    expect(b.subarray(E.attr)).toEqual(ref);
  });

  it('negativeEntryOut has nodeid 0 and only an entry timeout', () => {
    const b = negativeEntryOut(60);
    const expected = Buffer.alloc(E.SIZE);
    expected.writeBigUInt64LE(60n, E.entry_valid);
    expect(b).toEqual(expected);
  });

  it('attrOut is struct fuse_attr_out: timeout, zero nsec and dummy, the attr at 16', () => {
    const a = attrOf({ mtimeNs: -1_500_000_001n });
    const b = attrOut(a, 1);
    expect(b.length).toBe(LAYOUT.fuse_attr_out.SIZE);
    expect(b.readBigUInt64LE(LAYOUT.fuse_attr_out.attr_valid)).toBe(1n);
    expect(b.readUInt32LE(LAYOUT.fuse_attr_out.attr_valid_nsec)).toBe(0);
    expect(b.readUInt32LE(LAYOUT.fuse_attr_out.dummy)).toBe(0);
    const ref = Buffer.alloc(ATTR_SIZE);
    writeAttr(ref, 0, a);
    expect(b.subarray(LAYOUT.fuse_attr_out.attr)).toEqual(ref);
    expect(b.readBigInt64LE(16 + A.mtime)).toBe(-2n);
  });

  it('openOut is struct fuse_open_out with zero padding', () => {
    const b = openOut(5, FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR);
    expect(b.length).toBe(LAYOUT.fuse_open_out.SIZE);
    expect(b.readBigUInt64LE(LAYOUT.fuse_open_out.fh)).toBe(5n);
    expect(b.readUInt32LE(LAYOUT.fuse_open_out.open_flags)).toBe(0b1010);
    expect(b.readUInt32LE(LAYOUT.fuse_open_out.padding)).toBe(0);
  });

  it('xattrSizeOut is struct fuse_getxattr_out', () => {
    expect(xattrSizeOut(1234)).toEqual(Buffer.from([0xd2, 0x04, 0, 0, 0, 0, 0, 0]));
  });
});

describe('decodeInHeader and decodeInitIn', () => {
  it('reads struct fuse_in_header, little-endian, with a 64-bit unique', () => {
    const b = Buffer.alloc(IN_HEADER_SIZE + 4);
    const H = LAYOUT.fuse_in_header;
    b.writeUInt32LE(44, H.len);
    b.writeUInt32LE(Op.READDIRPLUS, H.opcode);
    b.writeBigUInt64LE(2n ** 63n + 5n, H.unique);
    b.writeBigUInt64LE(123_456n, H.nodeid);
    b.writeUInt32LE(0xfffffffe, H.uid);
    b.writeUInt32LE(100, H.gid);
    b.writeUInt32LE(4321, H.pid);
    expect(decodeInHeader(b)).toEqual({ len: 44, opcode: 44, unique: 2n ** 63n + 5n, nodeid: 123_456, uid: 0xfffffffe, gid: 100, pid: 4321 });
  });

  it('reads the fields of struct fuse_init_in it needs', () => {
    const b = Buffer.alloc(64);
    b.writeUInt32LE(7, 0);
    b.writeUInt32LE(38, 4);
    b.writeUInt32LE(131072, 8);
    b.writeUInt32LE(0x8000_0001, 12);
    expect(decodeInitIn(b)).toEqual({ major: 7, minor: 38, maxReadahead: 131072, flags: 0x8000_0001 });
  });
});

describe('initOut', () => {
  it('is struct fuse_init_out (64 bytes) with major 7, nanosecond granularity, the rest zero', () => {
    const I = LAYOUT.fuse_init_out;
    const b = initOut({ minor: 31, maxReadahead: 1 << 20, flags: INIT.DO_READDIRPLUS | (1 << 31), maxBackground: 64, congestionThreshold: 48, maxWrite: 4096, maxPages: 256 });
    expect(b.length).toBe(I.SIZE);
    expect(b.readUInt32LE(I.major)).toBe(FUSE_KERNEL_VERSION);
    expect(b.readUInt32LE(I.minor)).toBe(31);
    expect(b.readUInt32LE(I.max_readahead)).toBe(1 << 20);
    expect(b.readUInt32LE(I.flags)).toBe((INIT.DO_READDIRPLUS | 0x8000_0000) >>> 0);
    expect(b.readUInt16LE(I.max_background)).toBe(64);
    expect(b.readUInt16LE(I.congestion_threshold)).toBe(48);
    expect(b.readUInt32LE(I.max_write)).toBe(4096);
    expect(b.readUInt32LE(I.time_gran)).toBe(1);
    expect(b.readUInt16LE(I.max_pages)).toBe(256);
    expect(b.readUInt16LE(I.map_alignment)).toBe(0);
    expect(b.subarray(32)).toEqual(Buffer.alloc(32)); // flags2 and unused[]
  });
});

describe('statfsOut', () => {
  it('is struct fuse_statfs_out: blocks, files, bsize, namelen, frsize; nothing free', () => {
    const S = LAYOUT.fuse_kstatfs;
    const b = statfsOut({ blocks: 2 ** 33 + 1, files: 70_000, bsize: 4096, namelen: 255 });
    expect(b.length).toBe(S.SIZE);
    expect(b.readBigUInt64LE(S.blocks)).toBe(2n ** 33n + 1n);
    expect(b.readBigUInt64LE(S.bfree)).toBe(0n);
    expect(b.readBigUInt64LE(S.bavail)).toBe(0n);
    expect(b.readBigUInt64LE(S.files)).toBe(70_000n);
    expect(b.readBigUInt64LE(S.ffree)).toBe(0n);
    expect(b.readUInt32LE(S.bsize)).toBe(4096);
    expect(b.readUInt32LE(S.namelen)).toBe(255);
    expect(b.readUInt32LE(S.frsize)).toBe(4096);
    expect(b.subarray(S.padding)).toEqual(Buffer.alloc(S.SIZE - S.padding));
  });
});

// ------------------------------------------------------------------------------------------------
// Directory entries

const DT = { fifo: 1, chr: 2, dir: 4, blk: 6, reg: 8, lnk: 10, sock: 12 };

interface Parsed {
  ino: bigint;
  off: bigint;
  type: number;
  name: Buffer;
  /** readdirplus only: entry_out.nodeid and the attr bytes. */
  nodeid?: bigint;
  entryValid?: bigint;
  attr?: Buffer;
}

/** Parse a reply the way the kernel does (fuse_parse_dirfile / parse_dirplusfile), strictly. */
function parseDirents(buf: Buffer, plus: boolean): Parsed[] {
  const out: Parsed[] = [];
  let off = 0;
  const head = plus ? LAYOUT.fuse_direntplus.dirent : 0;
  while (off < buf.length) {
    const d = off + head;
    const namelen = buf.readUInt32LE(d + D.namelen);
    const reclen = (head + D.name + namelen + 7) & ~7;
    expect(off + reclen).toBeLessThanOrEqual(buf.length);
    const p: Parsed = {
      ino: buf.readBigUInt64LE(d + D.ino),
      off: buf.readBigUInt64LE(d + D.off),
      type: buf.readUInt32LE(d + D.type),
      name: Buffer.from(buf.subarray(d + D.name, d + D.name + namelen)),
    };
    // Padding after the name is zero.
    expect(buf.subarray(d + D.name + namelen, off + reclen)).toEqual(Buffer.alloc(off + reclen - (d + D.name + namelen)));
    if (plus) {
      p.nodeid = buf.readBigUInt64LE(off + E.nodeid);
      p.entryValid = buf.readBigUInt64LE(off + E.entry_valid);
      p.attr = Buffer.from(buf.subarray(off + E.attr, off + E.attr + ATTR_SIZE));
    }
    out.push(p);
    off += reclen;
  }
  return out;
}

const dirent = (name: string | Buffer, ino: number, mode: number, next: number, attr?: Attr): Dirent => ({
  name: typeof name === 'string' ? Buffer.from(name) : name,
  ino,
  mode,
  next,
  ...(attr ? { attr } : {}),
});

describe('packDirents', () => {
  it('lays out struct fuse_dirent records, each padded with zeros to 8 bytes', () => {
    const entries = [
      dirent('.', 1, 0o040755, 1),
      dirent('abcdefgh', 5, 0o100644, 2), // 24 + 8 = 32: no padding
      dirent('abcdefghi', 6, 0o120777, 3), // 24 + 9 → 40
      dirent(Buffer.from([0xff, 0x00, 0xfe]), 7, 0o020666, 4), // binary name, even a NUL byte
      dirent('p', 8, 0o010644, 5),
    ];
    const b = packDirents(entries, 4096);
    expect(b.length).toBe(32 + 32 + 40 + 32 + 32);
    expect(b.length % 8).toBe(0);
    // First record by hand.
    expect(b.readBigUInt64LE(D.ino)).toBe(1n);
    expect(b.readBigUInt64LE(D.off)).toBe(1n);
    expect(b.readUInt32LE(D.namelen)).toBe(1);
    expect(b.readUInt32LE(D.type)).toBe(DT.dir);
    expect(b.subarray(D.name, 32)).toEqual(Buffer.from('.\0\0\0\0\0\0\0'));
    expect(parseDirents(b, false)).toEqual([
      { ino: 1n, off: 1n, type: DT.dir, name: Buffer.from('.') },
      { ino: 5n, off: 2n, type: DT.reg, name: Buffer.from('abcdefgh') },
      { ino: 6n, off: 3n, type: DT.lnk, name: Buffer.from('abcdefghi') },
      { ino: 7n, off: 4n, type: DT.chr, name: Buffer.from([0xff, 0x00, 0xfe]) },
      { ino: 8n, off: 5n, type: DT.fifo, name: Buffer.from('p') },
    ]);
  });

  it('turns S_IFMT into the d_type the kernel expects (mode >> 12)', () => {
    const modes = { fifo: 0o010000, chr: 0o020000, dir: 0o040000, blk: 0o060000, reg: 0o100000, lnk: 0o120000, sock: 0o140000 } as const;
    const entries = Object.entries(modes).map(([k, m], i) => dirent(k, i + 2, m | 0o7777, i + 1));
    const parsed = parseDirents(packDirents(entries, 4096), false);
    expect(parsed.map((p) => p.type)).toEqual(Object.keys(modes).map((k) => DT[k as keyof typeof DT]));
  });

  it('stops at the first entry that does not fit, even if a later one would', () => {
    const entries = [dirent('a', 2, 0o100644, 1), dirent('x'.repeat(100), 3, 0o100644, 2), dirent('b', 4, 0o100644, 3)];
    expect(parseDirents(packDirents(entries, 32 + 128), false).map((p) => p.name.toString())).toEqual(['a', 'x'.repeat(100)]);
    expect(parseDirents(packDirents(entries, 32 + 127), false).map((p) => p.name.toString())).toEqual(['a']);
    expect(packDirents(entries, 32).length).toBe(32);
    expect(packDirents(entries, 31).length).toBe(0);
    expect(packDirents(entries, 0).length).toBe(0);
    expect(packDirents([], 4096).length).toBe(0);
  });

  it('pulls at most one entry past the last that fits (lazy sources stay lazy)', () => {
    let pulled = 0;
    function* many(): Generator<Dirent> {
      for (let i = 0; i < 1_000_000; i++) {
        pulled++;
        yield dirent(`n${i}`, i + 2, 0o100644, i + 1);
      }
    }
    const b = packDirents(many(), 4096);
    expect(b.length).toBe(4096); // 128 records of 32 bytes
    expect(pulled).toBe(129);
  });

  it('readdirplus: an entry_out before each dirent; "." and ".." without attr have nodeid 0', () => {
    const fileAttr = attrOf({ ino: 5, size: 3, mode: 0o100600, mtimeNs: -1n });
    const dirAttr = attrOf({ ino: 6, size: 0, mode: 0o040700, nlink: 2 });
    const entries = [
      dirent('.', 1, 0o040755, 1),
      dirent('..', 1, 0o040755, 2),
      dirent('f', 5, fileAttr.mode, 3, fileAttr),
      dirent('sub', 6, dirAttr.mode, 4, dirAttr),
    ];
    const b = packDirents(entries, 4096, 3600);
    const rec = (n: number): number => (128 + 24 + n + 7) & ~7;
    expect(b.length).toBe(rec(1) + rec(2) + rec(1) + rec(3));
    expect(rec(1)).toBe(160);
    // The dot entries: a whole zero entry_out.
    expect(b.subarray(0, 128)).toEqual(Buffer.alloc(128));
    expect(b.subarray(rec(1), rec(1) + 128)).toEqual(Buffer.alloc(128));
    const parsed = parseDirents(b, true);
    expect(parsed.map((p) => [p.name.toString(), p.ino, p.off, p.type, p.nodeid, p.entryValid])).toEqual([
      ['.', 1n, 1n, DT.dir, 0n, 0n],
      ['..', 1n, 2n, DT.dir, 0n, 0n],
      ['f', 5n, 3n, DT.reg, 5n, 3600n],
      ['sub', 6n, 4n, DT.dir, 6n, 3600n],
    ]);
    const ref = Buffer.alloc(ATTR_SIZE);
    writeAttr(ref, 0, fileAttr);
    expect(parsed[2]!.attr).toEqual(ref);
    expect(b.subarray(rec(1) + rec(2), rec(1) + rec(2) + 128)).toEqual(entryOut(fileAttr, 3600));
  });

  it('readdirplus also stops at the first entry that does not fit', () => {
    const a = attrOf({ ino: 3 });
    const entries = [dirent('a', 3, a.mode, 1, a), dirent('b', 3, a.mode, 2, a)];
    expect(packDirents(entries, 160 + 159, 1).length).toBe(160);
    expect(packDirents(entries, 320, 1).length).toBe(320);
  });

  it('packs any entries into exactly the prefix that fits, parseable by the kernel’s rules (property)', () => {
    const arbEntry = fc.record({
      name: fc.uint8Array({ minLength: 1, maxLength: 255 }),
      ino: fc.integer({ min: 1, max: 2 ** 32 - 1 }),
      type: fc.constantFrom(0o010000, 0o020000, 0o040000, 0o060000, 0o100000, 0o120000, 0o140000),
      withAttr: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(arbEntry, { maxLength: 40 }), fc.integer({ min: 0, max: 8192 }), fc.boolean(), (list, size, plus) => {
        const entries = list.map((e, i) => dirent(Buffer.from(e.name), e.ino, e.type | 0o644, i + 1, e.withAttr ? attrOf({ ino: e.ino, mode: e.type | 0o644 }) : undefined));
        const b = packDirents(entries, size, plus ? 10 : undefined);
        expect(b.length).toBeLessThanOrEqual(size);
        let fit = 0;
        let used = 0;
        for (const e of entries) {
          const len = ((plus ? 128 : 0) + 24 + e.name.length + 7) & ~7;
          if (used + len > size) break;
          used += len;
          fit++;
        }
        expect(b.length).toBe(used);
        const parsed = parseDirents(b, plus);
        expect(parsed.length).toBe(fit);
        parsed.forEach((p, i) => {
          const e = entries[i]!;
          expect(p.name).toEqual(e.name);
          expect(p.ino).toBe(BigInt(e.ino));
          expect(p.off).toBe(BigInt(e.next));
          expect(p.type).toBe(e.mode >>> 12);
          if (plus) expect(p.nodeid).toBe(e.attr ? BigInt(e.ino) : 0n);
        });
      }),
      { numRuns: 300 },
    );
  });
});
