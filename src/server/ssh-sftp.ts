/**
 * A read-only SFTP session over a store directory. The client sees the store root as `/`; every
 * path is normalized (a `..` above the root is refused, not clamped), then resolved with realpath
 * and must stay below the real root, so symlinks pointing out of the store are refused too.
 *
 * Served: OPEN (read only), READ, FSTAT, CLOSE, OPENDIR, READDIR, STAT, LSTAT, REALPATH.
 * Refused with PERMISSION_DENIED: every write (OPEN for write/create, WRITE, REMOVE, RENAME, MKDIR,
 * RMDIR, SETSTAT, FSETSTAT, SYMLINK). READLINK and extensions (posix-rename@openssh.com, …) get
 * OP_UNSUPPORTED from ssh2, which answers every request without a listener that way.
 */
import { constants as fsConstants, type Stats } from 'node:fs';
import { lstat, open, readdir, realpath, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import ssh2 from 'ssh2';
import type { Attributes, SFTPWrapper } from 'ssh2';
import { errnoCode } from '../errors.js';

const { OPEN_MODE, STATUS_CODE } = ssh2.utils.sftp;

/** Largest READ answered in one reply: OpenSSH's own limit (256 KiB); clients ask for 32–256 KiB. */
const MAX_READ = 256 * 1024;
/** Open handles per session: plenty for parallel chunk reads, bounded against handle floods. */
const MAX_HANDLES = 256;
/** Directory entries per READDIR reply (OpenSSH sends 100). */
const READDIR_BATCH = 100;

/** Where log lines go; `fields` are merged into the JSON line. */
export type SshLog = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

type Handle = { kind: 'file'; fh: FileHandle; vpath: string } | { kind: 'dir'; names: string[]; next: number; real: string; vpath: string };

/** A refusal with an SFTP status code. */
class Refused extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/**
 * Normalize a client path to a virtual absolute path (`/` = store root). Relative paths are
 * relative to the root (the session's home). Returns undefined for `..` above the root or NUL bytes.
 */
export function normalizeVirtualPath(p: string): string | undefined {
  if (p.includes('\0')) return undefined;
  const segs: string[] = [];
  for (const s of p.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..') {
      if (segs.length === 0) return undefined;
      segs.pop();
    } else {
      segs.push(s);
    }
  }
  return `/${segs.join('/')}`;
}

function fsStatus(err: unknown): Refused {
  const code = errnoCode(err);
  if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return new Refused(STATUS_CODE.NO_SUCH_FILE, 'no such file');
  if (code === 'EACCES' || code === 'EPERM') return new Refused(STATUS_CODE.PERMISSION_DENIED, 'permission denied');
  return new Refused(STATUS_CODE.FAILURE, code ?? 'failure');
}

function toAttrs(st: Stats): Attributes {
  return { mode: st.mode, uid: st.uid, gid: st.gid, size: st.size, atime: Math.floor(st.atimeMs / 1000), mtime: Math.floor(st.mtimeMs / 1000) };
}

/** An `ls -l`-style line for READDIR (OpenSSH's sftp shows it for `ls -l`). */
function longname(name: string, st: Stats): string {
  const type = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : '-';
  const perms = 'rwxrwxrwx'.replace(/./g, (c, i: number) => (st.mode & (1 << (8 - i)) ? c : '-'));
  const date = new Date(st.mtimeMs).toISOString().slice(0, 16).replace('T', ' ');
  return `${type}${perms} ${String(st.nlink).padStart(4)} ${String(st.uid).padEnd(8)} ${String(st.gid).padEnd(8)} ${String(st.size).padStart(12)} ${date} ${name}`;
}

/** Serve one SFTP channel read-only over `realRoot` (already realpath'ed). */
export function serveReadOnlySftp(sftp: SFTPWrapper, realRoot: string, log: SshLog, who: string): void {
  const handles = new Map<number, Handle>();
  let nextHandle = 1;

  const inside = (real: string): boolean => real === realRoot || real.startsWith(realRoot + path.sep);

  /** Virtual path → real path, following symlinks (`follow`) or all but the last component. */
  const resolve = async (clientPath: string, follow: boolean): Promise<{ real: string; vpath: string }> => {
    const vpath = normalizeVirtualPath(clientPath);
    if (vpath === undefined) {
      log('warn', 'sftp path escapes the store root', { user: who, path: clientPath });
      throw new Refused(STATUS_CODE.PERMISSION_DENIED, 'path outside the store');
    }
    const joined = path.join(realRoot, vpath);
    let real: string;
    try {
      real = follow || vpath === '/' ? await realpath(joined) : path.join(await realpath(path.dirname(joined)), path.basename(joined));
    } catch (err) {
      throw fsStatus(err);
    }
    if (!inside(real)) {
      log('warn', 'sftp path resolves outside the store root', { user: who, path: clientPath });
      throw new Refused(STATUS_CODE.PERMISSION_DENIED, 'path outside the store');
    }
    return { real, vpath };
  };

  const addHandle = (h: Handle): Buffer => {
    if (handles.size >= MAX_HANDLES) throw new Refused(STATUS_CODE.FAILURE, 'too many open handles');
    const n = nextHandle++;
    handles.set(n, h);
    const buf = Buffer.alloc(4);
    buf.writeUInt32BE(n);
    return buf;
  };
  const getHandle = (buf: Buffer): Handle => {
    const h = buf.length === 4 ? handles.get(buf.readUInt32BE(0)) : undefined;
    if (!h) throw new Refused(STATUS_CODE.FAILURE, 'invalid handle');
    return h;
  };

  /** Run one request; a Refused (or any error) becomes a status reply. */
  const answer = (reqid: number, op: string, fn: () => Promise<void>): void => {
    fn().catch((err: unknown) => {
      const r = err instanceof Refused ? err : new Refused(STATUS_CODE.FAILURE, 'failure');
      if (!(err instanceof Refused)) log('error', `sftp ${op} failed`, { user: who, err: (err as Error).message });
      sftp.status(reqid, r.status, r.message);
    });
  };

  const denyWrite = (op: string) => (reqid: number, p?: unknown) => {
    log('info', `sftp ${op} refused: read-only store`, { user: who, ...(typeof p === 'string' ? { path: p } : {}) });
    sftp.status(reqid, STATUS_CODE.PERMISSION_DENIED, 'read-only store');
  };

  sftp.on('OPEN', (reqid, filename, flags) => {
    if ((flags & ~OPEN_MODE.READ) !== 0 || (flags & OPEN_MODE.READ) === 0) return denyWrite('open for write')(reqid, filename);
    answer(reqid, 'open', async () => {
      const { real, vpath } = await resolve(filename, true);
      // NOFOLLOW: the resolved path has no symlink left; NONBLOCK: a FIFO cannot hang the open.
      let fh: FileHandle;
      try {
        fh = await open(real, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
      } catch (err) {
        throw fsStatus(err);
      }
      const st = await fh.stat();
      if (!st.isFile()) {
        await fh.close();
        throw new Refused(STATUS_CODE.FAILURE, 'not a regular file');
      }
      sftp.handle(reqid, addHandle({ kind: 'file', fh, vpath }));
    });
  });

  sftp.on('READ', (reqid, handle, offset, length) => {
    answer(reqid, 'read', async () => {
      const h = getHandle(handle);
      if (h.kind !== 'file') throw new Refused(STATUS_CODE.FAILURE, 'not a file handle');
      const buf = Buffer.alloc(Math.min(length, MAX_READ));
      const { bytesRead } = await h.fh.read(buf, 0, buf.length, offset);
      if (bytesRead === 0) return sftp.status(reqid, STATUS_CODE.EOF);
      sftp.data(reqid, buf.subarray(0, bytesRead));
    });
  });

  sftp.on('FSTAT', (reqid, handle) => {
    answer(reqid, 'fstat', async () => {
      const h = getHandle(handle);
      sftp.attrs(reqid, toAttrs(h.kind === 'file' ? await h.fh.stat() : await stat(h.real)));
    });
  });

  sftp.on('CLOSE', (reqid, handle) => {
    answer(reqid, 'close', async () => {
      const h = getHandle(handle);
      handles.delete(handle.readUInt32BE(0));
      if (h.kind === 'file') await h.fh.close();
      sftp.status(reqid, STATUS_CODE.OK);
    });
  });

  sftp.on('OPENDIR', (reqid, p) => {
    answer(reqid, 'opendir', async () => {
      const { real, vpath } = await resolve(p, true);
      let names: string[];
      try {
        names = (await readdir(real)).sort();
      } catch (err) {
        throw fsStatus(err);
      }
      sftp.handle(reqid, addHandle({ kind: 'dir', names, next: 0, real, vpath }));
    });
  });

  sftp.on('READDIR', (reqid, handle) => {
    answer(reqid, 'readdir', async () => {
      const h = getHandle(handle);
      if (h.kind !== 'dir') throw new Refused(STATUS_CODE.FAILURE, 'not a directory handle');
      const batch = h.names.slice(h.next, h.next + READDIR_BATCH);
      h.next += batch.length;
      if (batch.length === 0) return sftp.status(reqid, STATUS_CODE.EOF);
      const entries = [];
      for (const filename of batch) {
        // lstat: a symlink is listed as a symlink; following it is left to STAT/OPEN, which check it.
        const st = await lstat(path.join(h.real, filename)).catch(() => undefined);
        if (st) entries.push({ filename, longname: longname(filename, st), attrs: toAttrs(st) });
      }
      sftp.name(reqid, entries);
    });
  });

  for (const [event, follow] of [['STAT', true], ['LSTAT', false]] as const) {
    sftp.on(event, (reqid: number, p: string) => {
      answer(reqid, event.toLowerCase(), async () => {
        const { real } = await resolve(p, follow);
        try {
          sftp.attrs(reqid, toAttrs(follow ? await stat(real) : await lstat(real)));
        } catch (err) {
          throw fsStatus(err);
        }
      });
    });
  }

  sftp.on('REALPATH', (reqid, p) => {
    answer(reqid, 'realpath', async () => {
      const vpath = normalizeVirtualPath(p);
      if (vpath === undefined) throw new Refused(STATUS_CODE.PERMISSION_DENIED, 'path outside the store');
      let out = vpath;
      try {
        // Symlinks inside the store resolve to their virtual target; the real root never shows.
        const real = await realpath(path.join(realRoot, vpath));
        if (!inside(real)) throw new Refused(STATUS_CODE.PERMISSION_DENIED, 'path outside the store');
        out = `/${path.relative(realRoot, real).split(path.sep).join('/')}`;
      } catch (err) {
        if (err instanceof Refused) throw err;
        // A path that does not exist yet normalizes lexically (as OpenSSH's sftp-server did).
      }
      sftp.name(reqid, [{ filename: out, longname: out, attrs: {} as Attributes }]);
    });
  });

  sftp.on('WRITE', denyWrite('write'));
  sftp.on('FSETSTAT', denyWrite('fsetstat'));
  sftp.on('SETSTAT', denyWrite('setstat'));
  sftp.on('REMOVE', denyWrite('remove'));
  sftp.on('RMDIR', denyWrite('rmdir'));
  sftp.on('MKDIR', denyWrite('mkdir'));
  sftp.on('RENAME', denyWrite('rename'));
  sftp.on('SYMLINK', denyWrite('symlink'));

  // The client closed its side (sftp's `bye`, end of a batch): close ours, or it waits forever.
  sftp.on('end', () => sftp.end());
  sftp.on('close', () => {
    for (const h of handles.values()) if (h.kind === 'file') void h.fh.close().catch(() => undefined);
    handles.clear();
  });
}
