/**
 * A spool: one temp file that layer file contents are appended to during the single decompression
 * pass over each layer, so conversion never extracts an image to disk. The index builder later reads
 * the ranges back in sorted path order (a ContentRef is `{source, offset, size}` into this file).
 *
 * Appends are copied into a write buffer; a full buffer is written with one positioned write while
 * the next one fills (double buffering), so parsing and disk writes overlap.
 */
import { readSync } from 'node:fs';
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { BootfsError, IoError } from '../errors.js';

/** A range of the spool file. */
export interface SpoolRange {
  offset: number;
  size: number;
}

export interface SpoolOptions {
  /** Write buffer size in bytes (default 4 MiB: large enough that syscalls are not the cost). */
  bufferSize?: number;
}

/** Read size for readRange (1 MiB). */
const READ_CHUNK = 1 << 20;

export class Spool {
  /** The temp directory (made with mkdtemp, removed by close()). */
  readonly dir: string;
  /** The spool file inside `dir`; workers may open it read-only once flush() has returned. */
  readonly path: string;
  private fh: FileHandle | null;
  private buf: Buffer;
  private spare: Buffer;
  private bufLen = 0;
  /** File offset of buf[0]. */
  private bufStart = 0;
  /** Bytes on disk (every write up to here has completed). */
  private written = 0;
  private inflight: Promise<void> | null = null;
  private writeError: unknown = null;

  private constructor(dir: string, file: string, fh: FileHandle, bufferSize: number) {
    this.dir = dir;
    this.path = file;
    this.fh = fh;
    this.buf = Buffer.allocUnsafe(bufferSize);
    this.spare = Buffer.allocUnsafe(bufferSize);
  }

  /** A new, empty spool in a fresh `bootfs-spool-XXXXXX` directory under `parentDir`. */
  static async create(parentDir: string, opts: SpoolOptions = {}): Promise<Spool> {
    const bufferSize = opts.bufferSize ?? 4 << 20;
    if (!Number.isSafeInteger(bufferSize) || bufferSize <= 0) throw new BootfsError(`spool bufferSize must be a positive integer`);
    let dir: string;
    try {
      dir = await mkdtemp(path.join(parentDir, 'bootfs-spool-'));
    } catch (err) {
      throw new IoError(`cannot create a spool directory in ${parentDir}: ${(err as Error).message}`, err);
    }
    const file = path.join(dir, 'data');
    try {
      return new Spool(dir, file, await open(file, 'w+', 0o600), bufferSize);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw new IoError(`cannot create spool file ${file}: ${(err as Error).message}`, err);
    }
  }

  /** Total bytes appended so far. */
  get size(): number {
    return this.bufStart + this.bufLen;
  }

  /** Append all bytes of `data`; returns where they are. */
  async append(data: AsyncIterable<Uint8Array> | Iterable<Uint8Array> | Uint8Array): Promise<SpoolRange> {
    const offset = this.size;
    if (data instanceof Uint8Array) {
      await this.put(data);
    } else {
      for await (const chunk of data) await this.put(chunk);
    }
    return { offset, size: this.size - offset };
  }

  private async put(chunk: Uint8Array): Promise<void> {
    const fh = this.open();
    let pos = 0;
    while (pos < chunk.length) {
      const n = Math.min(chunk.length - pos, this.buf.length - this.bufLen);
      this.buf.set(chunk.subarray(pos, pos + n), this.bufLen);
      this.bufLen += n;
      pos += n;
      if (this.bufLen === this.buf.length) await this.startWrite(fh);
    }
  }

  /** Start writing the full buffer (after the previous write finished) and switch to the spare. */
  private async startWrite(fh: FileHandle): Promise<void> {
    await this.settle();
    const full = this.buf;
    const len = this.bufLen;
    const at = this.bufStart;
    this.buf = this.spare;
    this.spare = full;
    this.bufStart += len;
    this.bufLen = 0;
    this.inflight = writeAll(fh, full, len, at).then(
      () => {
        this.written = at + len;
      },
      (err: unknown) => {
        this.writeError = err;
      },
    );
  }

  /** Wait for the write in flight; rethrow its error. */
  private async settle(): Promise<void> {
    if (this.inflight) {
      await this.inflight;
      this.inflight = null;
    }
    if (this.writeError !== null) throw new IoError(`cannot write spool file ${this.path}: ${(this.writeError as Error).message}`, this.writeError);
  }

  /** Write everything appended so far to the file. */
  async flush(): Promise<void> {
    const fh = this.open();
    if (this.bufLen > 0) await this.startWrite(fh);
    await this.settle();
  }

  /** `size` bytes at `offset`, in chunks of at most 1 MiB (fresh buffers; flushes first if needed). */
  async *readRange(offset: number, size: number): AsyncGenerator<Buffer, void, undefined> {
    this.checkRange(offset, size);
    if (offset + size > this.written) await this.flush();
    const fh = this.open();
    let pos = offset;
    const end = offset + size;
    while (pos < end) {
      const want = Math.min(READ_CHUNK, end - pos);
      const b = Buffer.allocUnsafe(want);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(b, got, want - got, pos + got);
        if (bytesRead === 0) throw new IoError(`spool file ${this.path} is shorter than expected (reading ${offset}+${size})`);
        got += bytesRead;
      }
      pos += want;
      yield b;
    }
  }

  /**
   * `size` bytes at `offset`, synchronously (for worker-style batch readers). The range must be on
   * disk already: call flush() after the last append.
   */
  readRangeSync(offset: number, size: number, into: Buffer = Buffer.allocUnsafe(size)): Buffer {
    this.checkRange(offset, size);
    if (offset + size > this.written) throw new BootfsError(`spool range ${offset}+${size} is not flushed yet: call flush() first`);
    if (into.length < size) throw new BootfsError(`buffer of ${into.length} bytes is too small for ${size} bytes`);
    const fd = this.open().fd;
    let got = 0;
    while (got < size) {
      const n = readSync(fd, into, got, size - got, offset + got);
      if (n === 0) throw new IoError(`spool file ${this.path} is shorter than expected (reading ${offset}+${size})`);
      got += n;
    }
    return into.subarray(0, size);
  }

  /** Close and delete the spool (idempotent). */
  async close(): Promise<void> {
    const fh = this.fh;
    if (fh === null) return;
    this.fh = null;
    if (this.inflight) await this.inflight;
    this.inflight = null;
    try {
      await fh.close();
    } finally {
      await rm(this.dir, { recursive: true, force: true });
    }
  }

  private open(): FileHandle {
    if (this.fh === null) throw new BootfsError(`spool ${this.path} is closed`);
    return this.fh;
  }

  private checkRange(offset: number, size: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(size) || offset < 0 || size < 0 || offset + size > this.size) {
      throw new BootfsError(`spool range ${offset}+${size} is outside the spool (${this.size} bytes)`);
    }
  }
}

async function writeAll(fh: FileHandle, buf: Buffer, len: number, at: number): Promise<void> {
  let done = 0;
  while (done < len) {
    const { bytesWritten } = await fh.write(buf, done, len - done, at + done);
    done += bytesWritten;
  }
}
