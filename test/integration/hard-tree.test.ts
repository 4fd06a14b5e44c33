/**
 * A synthetic tree with everything that is hard to get right (issue 3), round-tripped through
 * convert → unpack twice: read in place (dir:) and as a GNU tar layer in an OCI image built with
 * umoci. rsync -a -c -H -X --numeric-ids is the judge.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bootfs } from '../cli/cli-helpers.js';
import { startMount } from '../helpers/mount.js';
import { describeWithTools, removeTree, run, tmpDir } from '../helpers/tools.js';

async function sh(script: string, env: Record<string, string>): Promise<void> {
  const r = await run('bash', ['-euo', 'pipefail', '-c', script], { env: { ...process.env, ...env }, timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`script failed (${r.code}): ${r.stderr.toString()}`);
}

async function treeDiff(expected: string, actual: string): Promise<string> {
  const r = await run('rsync', ['-a', '-c', '-H', '-X', '-n', '-i', '--delete', '--numeric-ids', '--modify-window=-1', `${expected}/`, `${actual}/`], { timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`rsync failed: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

const isRoot = process.getuid?.() === 0;

describeWithTools(['rsync', 'umoci', 'tar', 'setfattr', 'mknod'], 'a hard tree survives convert → unpack', () => {
  let dir: string;
  let tree: string;
  beforeAll(async () => {
    if (!isRoot) throw new Error('this test needs root (devices, owners, security.capability)');
    dir = await tmpDir('bootfs-hard-tree-');
    tree = path.join(dir, 'tree');
    await sh(
      String.raw`
      mkdir -p "$T" && cd "$T"
      # Regular files: empty, tiny, exactly the chunk-size parameters, and a large one with long zero runs.
      : > empty; : > empty2; printf x > one
      for n in 16384 65536 262144 262145; do head -c $n /dev/urandom > size-$n; done
      { head -c 8388608 /dev/zero; head -c 4194304 /dev/urandom; head -c 8388608 /dev/zero; } > zeros.img
      # Hardlinks: three names of one inode across directories, and an empty-file pair.
      mkdir -p links/a links/b
      printf 'shared content\n' > links/a/orig
      ln links/a/orig links/b/second; ln links/a/orig links/third
      ln empty links/empty-link
      # Modes: setuid, setgid, sticky; owners.
      printf '#!/bin/sh\n' > suid && chmod 4755 suid
      printf 'g\n' > sgid && chmod 2711 sgid
      mkdir -m 1777 sticky-dir; mkdir -m 2755 sgid-dir
      printf 'owned\n' > owned && chown 1234:5678 owned
      mkdir owned-dir && chown 65534:65534 owned-dir
      # xattrs: binary user values and a file capability.
      printf 'cap\n' > capped
      setfattr -n security.capability -v 0x0100000200200000000000000000000000000000 capped
      setfattr -n user.bin -v 0x00ff00fe01 capped
      setfattr -n user.empty capped
      mkdir xdir && setfattr -n user.dir -v dirvalue xdir
      # Special files.
      mkfifo fifo
      mknod null-dev c 1 3
      mknod loop-dev b 7 0
      # Names: 255 bytes, not UTF-8, shell-hostile, leading dash.
      touch "$(printf 'n%.0s' $(seq 255))"
      touch -- $'caf\xe9' $'\xff\xfe-bytes' 'spa ce' '-dash' $'new\nline'
      # 200 nested directories with a file at the bottom.
      p=deep; for i in $(seq 2 200); do p="$p/d"; done; mkdir -p "$p" && printf 'bottom\n' > "$p/file"
      # Symlinks: relative, absolute, dangling, looping, self, to a dir.
      ln -s one rel-link; ln -s /etc/passwd abs-link; ln -s does/not/exist dangling
      ln -s loop-b loop-a; ln -s loop-a loop-b; ln -s self self; ln -s links dir-link
      # Nanosecond and old mtimes, on files, dirs and symlinks.
      touch -h -d @1600000000.123456789 one rel-link links/b
      touch -d @0 empty2
      touch -d '1969-07-20 20:17:40' old-file 2>/dev/null || true
      `,
      { T: tree },
    );
  });
  afterAll(async () => {
    if (dir && !process.env.BOOTFS_KEEP_TEST_DIRS) await removeTree(dir);
  });

  it('from a directory (dir:)', async () => {
    const store = path.join(dir, 'store-dir');
    const idx = path.join(dir, 'dir.bootfs');
    const c = await bootfs(['convert', `dir:${tree}`, '--store', store, '-o', idx, '--json']);
    expect(c.code, c.stderr).toBe(0);
    const out = path.join(dir, 'out-dir');
    const u = await bootfs(['unpack', idx, out, '--store', store]);
    expect(u.code, u.stderr).toBe(0);
    expect(await treeDiff(tree, out)).toBe('');
  });

  it('from a GNU tar layer in an OCI image (umoci)', async () => {
    await sh(
      `cd "$D"
       umoci init --layout oci && umoci new --image oci:empty
       tar --xattrs --xattrs-include='*' --format=pax --numeric-owner -C "$T" -cf layer.tar .
       umoci raw add-layer --image oci:empty --tag hard layer.tar`,
      { D: dir, T: tree },
    );
    const store = path.join(dir, 'store-oci');
    const idx = path.join(dir, 'oci.bootfs');
    const c = await bootfs(['convert', `oci:${dir}/oci:hard`, '--store', store, '-o', idx, '--json']);
    expect(c.code, c.stderr).toBe(0);
    const out = path.join(dir, 'out-oci');
    const u = await bootfs(['unpack', idx, out, '--store', store]);
    expect(u.code, u.stderr).toBe(0);
    expect(await treeDiff(tree, out)).toBe('');
  });

  it('mounted with FUSE (bootfs mount): the same tree, inode for inode', async () => {
    const store = path.join(dir, 'store-dir');
    const idx = path.join(dir, 'dir.bootfs');
    if (!existsSync(idx)) {
      const c = await bootfs(['convert', `dir:${tree}`, '--store', store, '-o', idx]);
      expect(c.code, c.stderr).toBe(0);
    }
    const mnt = path.join(dir, 'mnt');
    await mkdir(mnt, { recursive: true });
    const m = await startMount(idx, mnt, ['--store', store]);
    try {
      expect(await treeDiff(tree, mnt)).toBe('');
      // Hardlinks share one stable inode number; devices and fifos are what they were.
      const st = await sh2(`stat -c '%i %h %F %t:%T' links/a/orig links/b/second links/third fifo null-dev loop-dev`, mnt);
      const [a, b, c, fifo, chr, blk] = st.trim().split('\n');
      expect(a!.split(' ')[0]).toBe(b!.split(' ')[0]);
      expect(a!.split(' ')[0]).toBe(c!.split(' ')[0]);
      expect(a!.split(' ')[1]).toBe('3');
      expect(fifo).toContain('fifo');
      expect(chr).toMatch(/character special file 1:3$/);
      expect(blk).toMatch(/block special file 7:0$/);
    } finally {
      expect(await m.stop()).toBe(0);
    }
  });
});

async function sh2(script: string, cwd: string): Promise<string> {
  const r = await run('bash', ['-euo', 'pipefail', '-c', script], { cwd, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`script failed (${r.code}): ${r.stderr.toString()}`);
  return r.stdout.toString();
}
