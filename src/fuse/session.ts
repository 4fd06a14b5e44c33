/**
 * A FUSE session: decodes requests from the device, calls a read-only, inode-based filesystem
 * (FuseFs) and encodes its answers. It owns the protocol rules (INIT negotiation, which requests
 * get no reply, EROFS for writes, ENOSYS for the rest); the filesystem only answers questions.
 */
import {
  Errno, FOPEN_CACHE_DIR, FOPEN_KEEP_CACHE, FUSE_KERNEL_MINOR, FUSE_KERNEL_VERSION, FuseErrno, IN_HEADER_SIZE, INIT, OP_NAMES, OUT_HEADER_SIZE, Op,
  WRITE_OPS, attrOut, decodeInHeader, decodeInitIn, entryOut, initOut, negativeEntryOut, openOut, packDirents, statfsOut, xattrSizeOut,
  type Attr, type Dirent, type InHeader, type StatfsInfo,
} from './protocol.js';
import { FuseDevice, type MountOptions } from './device.js';


/** What the session asks of a filesystem. Throw FuseErrno for an errno; anything else is EIO. */
export interface FuseFs {
  lookup(parent: number, name: Buffer): Attr | undefined;
  getattr(ino: number): Attr;
  readlink(ino: number): Buffer;
  /** Check that `ino` may be opened with `flags` (O_* bits); returns nothing or throws. */
  open(ino: number, flags: number): void;
  /** The bytes, as one buffer or as parts to be written back to back. */
  read(ino: number, offset: number, size: number): Promise<Buffer | Buffer[]> | Buffer | Buffer[];
  release?(ino: number): void;
  /** Entries of a directory from position `offset` ('.' and '..' included), lazily. */
  readdir(ino: number, offset: number, plus: boolean): Iterable<Dirent>;
  statfs(): StatfsInfo;
  getxattr(ino: number, name: Buffer): Buffer | undefined;
  listxattr(ino: number): Buffer[];
}

export interface SessionOptions extends MountOptions {
  /** How long the kernel may cache names and attributes, seconds (the tree is immutable). */
  cacheSeconds?: number;
  /** Largest readahead the kernel may ask for, bytes. */
  maxReadahead?: number;
  /** Called after each request with its operation name, the errno (0 = ok) and reply size. */
  onRequest?: (op: string, errno: number, bytes: number) => void;
  /** Answer OPEN ourselves instead of letting the kernel skip it (default: skip when the kernel can). */
  noOpen?: boolean;
  /** Called for unexpected filesystem errors (mapped to EIO). */
  onError?: (op: string, err: unknown) => void;
}

const O_ACCMODE = 3;
const O_TRUNC = 0o1000;

export class FuseSession {
  private device!: FuseDevice;
  private readonly cacheSeconds: number;
  private initDone!: () => void;
  /** Resolves once the kernel's INIT has been answered: the mount is usable. */
  readonly ready: Promise<void>;
  private endError: string | undefined;
  /** The kernel agreed to skip OPEN/RELEASE (FUSE_NO_OPEN_SUPPORT): OPEN is answered ENOSYS. */
  private noOpen = false;

  private constructor(
    private readonly fs: FuseFs,
    private readonly opts: SessionOptions,
  ) {
    this.cacheSeconds = opts.cacheSeconds ?? 3600;
    this.ready = new Promise((resolve) => (this.initDone = resolve));
  }

  /** Mount `fs` at `mountpoint`; resolves when the kernel has initialised the connection. */
  static async mount(fs: FuseFs, mountpoint: string, opts: SessionOptions = {}): Promise<FuseSession> {
    const s = new FuseSession(fs, opts);
    s.device = await FuseDevice.mount(mountpoint, opts, (req) => s.handle(req), (error) => {
      s.endError = error;
      s.initDone();
    });
    await s.ready;
    if (opts.readaheadKb !== undefined) await s.device.setReadahead(opts.readaheadKb);
    return s;
  }

  get mountpoint(): string {
    return this.device.mountpoint;
  }

  /** Resolves when the filesystem is unmounted (by us, umount(8) or an abort); rejects on a device error. */
  async closed(): Promise<void> {
    await this.device.waitEnd();
    if (this.endError) throw new Error(`fuse device: ${this.endError}`);
  }

  /** Unmount and end the session. */
  close(): Promise<void> {
    return this.device.close();
  }

  /** Write the reply to `h`: the header, then the body (one buffer or parts); returns the body's length. */
  private reply(h: InHeader, errno: number, body?: Buffer | Buffer[]): number {
    const parts = body === undefined ? [] : Array.isArray(body) ? body.filter((b) => b.length > 0) : body.length > 0 ? [body] : [];
    let bytes = 0;
    for (const p of parts) bytes += p.length;
    const head = Buffer.allocUnsafe(OUT_HEADER_SIZE);
    head.writeUInt32LE(OUT_HEADER_SIZE + bytes, 0);
    head.writeInt32LE(-errno, 4);
    head.writeBigUInt64LE(h.unique, 8);
    this.device.write([head, ...parts]);
    return bytes;
  }

  private handle(req: Buffer): void {
    const h = decodeInHeader(req);
    const body = req.subarray(IN_HEADER_SIZE, h.len);
    const done = (errno: number, out?: Buffer | Buffer[]): void => {
      const bytes = this.reply(h, errno, out);
      this.opts.onRequest?.(OP_NAMES.get(h.opcode) ?? `op${h.opcode}`, errno, bytes);
    };
    const fail = (err: unknown): void => {
      if (err instanceof FuseErrno) return done(err.errno);
      this.opts.onError?.(OP_NAMES.get(h.opcode) ?? `op${h.opcode}`, err);
      done(Errno.EIO);
    };
    try {
      const out = this.dispatch(h, body);
      if (out === NO_REPLY) return;
      if (out instanceof Promise) out.then((b) => done(0, b), fail);
      else done(0, out);
    } catch (err) {
      fail(err);
    }
  }

  private dispatch(h: InHeader, body: Buffer): Buffer | Buffer[] | Promise<Buffer | Buffer[]> | typeof NO_REPLY {
    const fs = this.fs;
    switch (h.opcode) {
      case Op.INIT:
        return this.init(body);
      case Op.DESTROY:
        return Buffer.alloc(0);
      case Op.FORGET:
      case Op.BATCH_FORGET:
      case Op.INTERRUPT:
        // Inode numbers are fixed by the index, so lookup counts need no bookkeeping; reads are
        // bounded by their own deadline, so an interrupt needs no action.
        return NO_REPLY;
      case Op.LOOKUP: {
        const attr = fs.lookup(h.nodeid, cString(body, 0));
        return attr ? entryOut(attr, this.cacheSeconds) : negativeEntryOut(this.cacheSeconds);
      }
      case Op.GETATTR:
        return attrOut(fs.getattr(h.nodeid), this.cacheSeconds);
      case Op.READLINK:
        return fs.readlink(h.nodeid);
      case Op.OPEN: {
        const flags = body.readUInt32LE(0);
        if ((flags & O_ACCMODE) !== 0 || flags & O_TRUNC) throw new FuseErrno(Errno.EROFS);
        fs.open(h.nodeid, flags);
        // With no_open the kernel stops sending OPEN and RELEASE (two requests per file opened);
        // the read-only mount already refuses opens for writing before they reach us.
        if (this.noOpen) throw new FuseErrno(Errno.ENOSYS);
        return openOut(0, FOPEN_KEEP_CACHE);
      }
      case Op.READ: {
        const offset = Number(body.readBigUInt64LE(8));
        const size = body.readUInt32LE(16);
        return fs.read(h.nodeid, offset, size);
      }
      case Op.RELEASE:
        fs.release?.(h.nodeid);
        return Buffer.alloc(0);
      case Op.OPENDIR:
        fs.getattr(h.nodeid);
        if (this.noOpen) throw new FuseErrno(Errno.ENOSYS);
        return openOut(0, FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR);
      case Op.READDIR:
      case Op.READDIRPLUS: {
        const offset = Number(body.readBigUInt64LE(8));
        const size = body.readUInt32LE(16);
        const plus = h.opcode === Op.READDIRPLUS;
        return packDirents(fs.readdir(h.nodeid, offset, plus), size, plus ? this.cacheSeconds : undefined);
      }
      case Op.FLUSH:
      case Op.FSYNC:
      case Op.FSYNCDIR:
        // Nothing is ever dirty. ENOSYS makes the kernel stop asking (it remembers per connection).
        throw new FuseErrno(Errno.ENOSYS);
      case Op.RELEASEDIR:
        return Buffer.alloc(0);
      case Op.STATFS:
        return statfsOut(fs.statfs());
      case Op.GETXATTR: {
        const size = body.readUInt32LE(0);
        const value = fs.getxattr(h.nodeid, cString(body, 8));
        if (value === undefined) throw new FuseErrno(Errno.ENODATA);
        return sized(value, size);
      }
      case Op.LISTXATTR: {
        const size = body.readUInt32LE(0);
        const names = fs.listxattr(h.nodeid);
        const list = Buffer.concat(names.flatMap((n) => [n, Buffer.from([0])]));
        return sized(list, size);
      }
      case Op.ACCESS: {
        const mask = body.readUInt32LE(0);
        fs.getattr(h.nodeid);
        // Permission bits are checked by the kernel (default_permissions); only writes are ours.
        if (mask & 2) throw new FuseErrno(Errno.EROFS);
        return Buffer.alloc(0);
      }
      default:
        if (WRITE_OPS.has(h.opcode)) throw new FuseErrno(Errno.EROFS);
        throw new FuseErrno(Errno.ENOSYS);
    }
  }

  private init(body: Buffer): Buffer {
    const k = decodeInitIn(body);
    if (k.major !== FUSE_KERNEL_VERSION) {
      // A kernel speaking another major version: refuse; it retries or fails the mount.
      throw new FuseErrno(Errno.EPROTO);
    }
    const want = INIT.ASYNC_READ | INIT.DO_READDIRPLUS | INIT.READDIRPLUS_AUTO | INIT.PARALLEL_DIROPS | INIT.MAX_PAGES | INIT.CACHE_SYMLINKS |
      (this.opts.noOpen === false ? 0 : INIT.NO_OPEN_SUPPORT | INIT.NO_OPENDIR_SUPPORT);
    this.noOpen = (k.flags & want & INIT.NO_OPEN_SUPPORT) !== 0;
    const out = initOut({
      minor: Math.min(k.minor, FUSE_KERNEL_MINOR),
      maxReadahead: Math.min(k.maxReadahead, this.opts.maxReadahead ?? 1024 * 1024),
      flags: k.flags & want,
      maxBackground: 64,
      congestionThreshold: 48,
      maxWrite: 4096,
      maxPages: 256,
    });
    queueMicrotask(() => this.initDone());
    return out;
  }
}

const NO_REPLY = Symbol('no reply');

/** The NUL-terminated string at `off` of a request body, as raw bytes. */
function cString(body: Buffer, off: number): Buffer {
  const end = body.indexOf(0, off);
  return body.subarray(off, end < 0 ? body.length : end);
}

/** Answer a size probe (size 0) with the length, else the value or ERANGE when it does not fit. */
function sized(value: Buffer, size: number): Buffer {
  if (size === 0) return xattrSizeOut(value.length);
  if (value.length > size) throw new FuseErrno(Errno.ERANGE);
  return value;
}
