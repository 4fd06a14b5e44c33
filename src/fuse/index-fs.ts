/**
 * The FUSE filesystem of a bootfs index: the session's questions answered from the index (names,
 * metadata, symlinks, xattrs) and from a DataReader (file contents). Inode numbers are the
 * index's, so hardlinks share one inode and every number is stable for the life of the mount.
 * Nothing here but translation and errno mapping.
 */
import type { BootfsIndex } from '../index/bootfs-reader.js';
import type { DataReader } from '../mount/data-reader.js';
import { fromByteString } from '../tree/types.js';
import { Errno, FuseErrno, encodeDev, type Attr, type Dirent, type StatfsInfo } from './protocol.js';
import type { FuseFs } from './session.js';

const S_IFDIR = 0o040000;

export class IndexFs implements FuseFs {
  /** parent[ino] of every directory, built on first use (the index stores children only). */
  private parents: Uint32Array | undefined;

  constructor(
    private readonly index: BootfsIndex,
    private readonly data: DataReader,
  ) {}

  private check(ino: number): void {
    if (!Number.isInteger(ino) || ino < 1 || ino > this.index.inodeCount) throw new FuseErrno(Errno.ENOENT, `no inode ${ino}`);
  }

  getattr(ino: number): Attr {
    this.check(ino);
    const st = this.index.stat(ino);
    return {
      ino,
      size: st.size,
      mode: st.stMode,
      nlink: st.nlink,
      uid: st.uid,
      gid: st.gid,
      rdev: st.devMajor || st.devMinor ? encodeDev(st.devMajor, st.devMinor) : 0,
      mtimeNs: st.mtimeNs,
    };
  }

  lookup(parent: number, name: Buffer): Attr | undefined {
    this.check(parent);
    if (this.index.kind(parent) !== 'dir') throw new FuseErrno(Errno.ENOTDIR);
    const ino = this.index.lookup(parent, name.toString('latin1'));
    return ino === undefined ? undefined : this.getattr(ino);
  }

  readlink(ino: number): Buffer {
    this.check(ino);
    if (this.index.kind(ino) !== 'symlink') throw new FuseErrno(Errno.EINVAL);
    return fromByteString(this.index.readlink(ino));
  }

  open(ino: number): void {
    this.check(ino);
    const kind = this.index.kind(ino);
    if (kind === 'dir') throw new FuseErrno(Errno.EISDIR);
    // Devices, fifos and sockets are opened by the kernel itself and never reach us.
    if (kind !== 'file') throw new FuseErrno(Errno.EINVAL);
  }

  read(ino: number, offset: number, size: number): Promise<Buffer[]> | Buffer {
    this.check(ino);
    if (this.index.kind(ino) !== 'file') throw new FuseErrno(Errno.EINVAL);
    const ext = this.index.fileExtent(ino);
    if (offset >= ext.size || size === 0) return Buffer.alloc(0);
    return this.data.readParts(ext.offset + offset, Math.min(size, ext.size - offset), ino, ext.offset + ext.size);
  }

  release(ino: number): void {
    this.data.endStream(ino);
  }

  *readdir(ino: number, offset: number, plus: boolean): Iterable<Dirent> {
    this.check(ino);
    if (this.index.kind(ino) !== 'dir') throw new FuseErrno(Errno.ENOTDIR);
    // Positions: 0 is '.', 1 is '..', 2 + i is the i-th child in name order.
    if (offset <= 0) yield { name: DOT, ino, mode: S_IFDIR, next: 1 };
    if (offset <= 1) yield { name: DOTDOT, ino: this.parentOf(ino), mode: S_IFDIR, next: 2 };
    const n = this.index.childCount(ino);
    for (let i = Math.max(0, offset - 2); i < n; i++) {
      const e = this.index.childAt(ino, i);
      const attr = this.getattr(e.ino);
      yield { name: fromByteString(e.name), ino: e.ino, mode: attr.mode, next: i + 3, ...(plus ? { attr } : {}) };
    }
  }

  private parentOf(dir: number): number {
    if (!this.parents) {
      const parents = new Uint32Array(this.index.inodeCount + 1);
      parents[this.index.rootIno] = this.index.rootIno;
      for (let ino = 1; ino <= this.index.inodeCount; ino++) {
        if (this.index.kind(ino) !== 'dir') continue;
        for (const e of this.index.readdir(ino)) if (this.index.kind(e.ino) === 'dir') parents[e.ino] = ino;
      }
      this.parents = parents;
    }
    return this.parents[dir] || dir;
  }

  statfs(): StatfsInfo {
    return { blocks: Math.ceil(this.index.dataSize / 4096), files: this.index.inodeCount, bsize: 4096, namelen: 255 };
  }

  getxattr(ino: number, name: Buffer): Buffer | undefined {
    this.check(ino);
    return this.index.getXattr(ino, name.toString('latin1'));
  }

  listxattr(ino: number): Buffer[] {
    this.check(ino);
    return this.index.listXattrs(ino).map(fromByteString);
  }
}

const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');
