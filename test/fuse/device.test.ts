/**
 * FuseDevice's reply writes without a mount: a fifo stands in for /dev/fuse, so a big reply (written
 * from the thread pool) can be held up on purpose and close() watched while it is in flight.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FuseDevice } from '../../src/fuse/device.js';
import { tmpDir } from '../helpers/tools.js';

/** A FuseDevice on `fd` whose session has already ended, so close() only closes the fd. */
function deviceOn(fd: number, onReplyError: (err: unknown) => void): FuseDevice {
  const Ctor = FuseDevice as unknown as new (fd: number, mountpoint: string, onReplyError: (err: unknown) => void) => FuseDevice;
  const dev = new Ctor(fd, '/nonexistent', onReplyError);
  (dev as unknown as { ended: boolean }).ended = true;
  return dev;
}

function fdIsOpen(fd: number): boolean {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

describe('FuseDevice reply writes', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('close() waits for a big reply still being written before it closes the fd', async () => {
    dir = await tmpDir('bootfs-device-');
    const fifo = path.join(dir, 'fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const rfd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const wfd = openSync(fifo, constants.O_WRONLY);
    const errors: unknown[] = [];
    const dev = deviceOn(wfd, (err) => errors.push(err));
    // 1 MiB in three parts: far more than the fifo holds, so the write blocks until we read.
    const parts = [Buffer.alloc(16, 1), Buffer.alloc(512 * 1024, 2), Buffer.alloc(512 * 1024 - 16, 3)];
    dev.write(parts);
    let closed = false;
    const closing = dev.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 200));
    expect(closed).toBe(false);
    expect(fdIsOpen(wfd)).toBe(true);
    // Drain the fifo: the write completes, then close() goes on.
    const got: Buffer[] = [];
    const buf = Buffer.alloc(64 * 1024);
    let total = 0;
    while (total < 1024 * 1024) {
      let n = 0;
      try {
        n = readSync(rfd, buf, 0, buf.length, null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        await new Promise((r) => setTimeout(r, 5));
      }
      got.push(Buffer.from(buf.subarray(0, n)));
      total += n;
    }
    await closing;
    expect(fdIsOpen(wfd)).toBe(false);
    expect(Buffer.concat(got).equals(Buffer.concat(parts))).toBe(true);
    expect(errors).toEqual([]);
    // A write after close is dropped, not attempted on a closed (or reused) fd.
    dev.write(parts);
    await new Promise((r) => setTimeout(r, 50));
    expect(errors).toEqual([]);
    closeSync(rfd);
  });

  it('reports a failed write other than ENOENT/ENODEV, small (at once) or big (thread pool)', async () => {
    dir = await tmpDir('bootfs-device-');
    const file = path.join(dir, 'ro');
    closeSync(openSync(file, 'w'));
    const errors: string[] = [];
    const dev = deviceOn(openSync(file, constants.O_RDONLY), (err) => errors.push((err as NodeJS.ErrnoException).code ?? '?'));
    dev.write([Buffer.alloc(16)]);
    expect(errors).toEqual(['EBADF']);
    dev.write([Buffer.alloc(16), Buffer.alloc(64 * 1024)]);
    await new Promise((r) => setTimeout(r, 100));
    expect(errors).toEqual(['EBADF', 'EBADF']);
    await dev.close();
  });
});
