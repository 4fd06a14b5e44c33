/**
 * The converter against real peers (issue 3): a Debian rootfs packaged as an OCI image by umoci,
 * with a second layer of whiteouts, an opaque directory and replacements (added verbatim with
 * `umoci raw add-layer`), and the same image as a docker-archive written by skopeo. convert →
 * unpack must give exactly the expected merged tree (rsync -a -c -H -X finds nothing), and casync
 * must rebuild the data stream from the exported .caibx.
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bootfs, snapshot } from '../cli/cli-helpers.js';
import { debianRootfs, describeWithTools, removeTree, run, tmpDir } from '../helpers/tools.js';

/** Run a bash script with variables; fail the test with its stderr when it fails. */
async function sh(script: string, env: Record<string, string>): Promise<string> {
  const r = await run('bash', ['-euo', 'pipefail', '-c', script], { env: { ...process.env, ...env }, timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`script failed (${r.code}): ${r.stderr.toString()}\n${script}`);
  return r.stdout.toString();
}

/**
 * rsync's itemized differences between two trees (empty = identical incl. owners, modes, xattrs,
 * hardlinks, contents). --modify-window=-1: by default rsync ignores nanosecond-only mtime differences.
 */
async function treeDiff(expected: string, actual: string): Promise<string> {
  const r = await run('rsync', ['-a', '-c', '-H', '-X', '-n', '-i', '--delete', '--numeric-ids', '--modify-window=-1', `${expected}/`, `${actual}/`], { timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`rsync failed: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/**
 * The data stream computed independently of bootfs's tree code: regular files' contents in
 * depth-first order with children sorted by name bytes, each inode once.
 */
function dataStreamOf(root: string): string {
  const hash = createHash('sha256');
  const seen = new Set<string>();
  const visit = (dir: Buffer): void => {
    const names = readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare);
    for (const name of names) {
      const p = Buffer.concat([dir, Buffer.from('/'), name]);
      const st = lstatSync(p, { bigint: true });
      if (st.isDirectory()) visit(p);
      else if (st.isFile() && st.size > 0n) {
        const key = `${st.dev}:${st.ino}`;
        if (seen.has(key)) continue;
        seen.add(key);
        hash.update(readFileSync(p));
      }
    }
  };
  visit(Buffer.from(root));
  return hash.digest('hex');
}

describeWithTools(['umoci', 'skopeo', 'rsync', 'casync', 'tar', 'setfattr'], 'convert → unpack of real images', () => {
  let dir: string;
  let expected: string;
  let store: string;
  beforeAll(async () => {
    dir = await tmpDir('bootfs-convert-peers-');
    const rootfs = debianRootfs().dir;
    expected = path.join(dir, 'expected');
    store = path.join(dir, 'store');
    // Layer 1: the whole rootfs (umoci computes it from an unpacked bundle). Layer 2: written by
    // GNU tar from a staging dir, listing only the entries (no parent dirs, so lower-layer
    // directory metadata stays), then appended verbatim.
    await sh(
      `
      cd "$DIR"
      umoci init --layout oci
      umoci new --image oci:base
      umoci unpack --image oci:base bundle >/dev/null
      cp -a "$ROOTFS/." bundle/rootfs/
      umoci repack --image oci:v1 bundle >/dev/null
      umoci config --image oci:v1 --config.entrypoint /bin/sh --config.cmd -c --config.cmd 'echo hi' \\
        --config.env APP=demo --config.workingdir /srv --config.user 1000:1000 --config.label org.test=yes >/dev/null

      mkdir -p stage/etc stage/usr/share/doc stage/usr/share/man stage/var stage/usr/local/bin
      : > stage/etc/.wh.motd
      : > stage/usr/share/doc/.wh.apt
      : > stage/usr/share/man/.wh..wh..opq
      printf 'opaque dir replaced\\n' > stage/usr/share/man/README
      printf 'converted\\n' > stage/etc/hostname
      printf 'a file where a directory was\\n' > stage/var/opt
      printf '#!/bin/sh\\necho capped\\n' > stage/usr/local/bin/capped
      chmod 4755 stage/usr/local/bin/capped
      setfattr -n security.capability -v 0x0100000200200000000000000000000000000000 stage/usr/local/bin/capped
      setfattr -n user.note -v 0x00ff01 stage/usr/local/bin/capped
      touch -d @1700000000.123456789 stage/usr/share/man/README stage/etc/hostname stage/var/opt stage/usr/local/bin/capped
      (cd stage && tar --xattrs --xattrs-include='*' --format=pax --numeric-owner --no-recursion -cf ../layer2.tar \\
        ./etc/.wh.motd ./usr/share/doc/.wh.apt ./usr/share/man/.wh..wh..opq ./usr/share/man/README \\
        ./etc/hostname ./var/opt ./usr/local/bin/capped)
      umoci raw add-layer --image oci:v1 --tag v2 layer2.tar
      skopeo copy --quiet oci:oci:v2 docker-archive:image.tar:bootfs/test:v2
      skopeo copy --quiet oci:oci:v2 oci-archive:image-oci.tar

      # The expected merged tree: GNU tar extracts umoci's layer 1 (umoci stores symlink mtimes in
      # whole seconds, so the layer, not the rootfs, is the truth), then layer 2's meaning is applied.
      layer1=$(python3 -c 'import json,sys
idx=json.load(open("oci/index.json"))
m=[d for d in idx["manifests"] if d.get("annotations",{}).get("org.opencontainers.image.ref.name")=="v1"][0]
man=json.load(open("oci/blobs/sha256/"+m["digest"].split(":")[1]))
print(man["layers"][0]["digest"].split(":")[1])')
      mkdir base expected
      for t in base expected; do
        zcat "oci/blobs/sha256/$layer1" | tar --xattrs --xattrs-include='*' --numeric-owner -xpf - -C "$t"
      done
      # GNU tar leaves some directories (listed before their last child) at extraction time;
      # re-apply every directory's mtime from the layer's own headers, exactly (pax ns when present).
      python3 - "oci/blobs/sha256/$layer1" base expected <<'PY'
import os, sys, tarfile
from decimal import Decimal
times = {}
with tarfile.open(sys.argv[1]) as t:
    for m in t:
        if m.isdir():
            exact = Decimal(m.pax_headers.get('mtime', str(int(m.mtime))))
            times[m.name.rstrip('/').removeprefix('./')] = int(exact * 10**9)
for root in sys.argv[2:]:
    for name, ns in times.items():
        p = os.path.join(root, name) if name not in ('', '.') else root
        os.utime(p, ns=(ns, ns), follow_symlinks=False)
PY
      rm expected/etc/motd
      rm -rf expected/usr/share/doc/apt expected/usr/share/man/* expected/var/opt
      cp -a stage/usr/share/man/README expected/usr/share/man/README
      cp -a stage/etc/hostname expected/etc/hostname
      cp -a stage/var/opt expected/var/opt
      cp -a stage/usr/local/bin/capped expected/usr/local/bin/capped
      # Directories the layer did not list keep their lower-layer metadata.
      for d in etc usr/share/doc usr/share/man var usr/local/bin; do touch -h -r "base/$d" "expected/$d"; done
      `,
      { DIR: dir, ROOTFS: rootfs },
    );
  });
  afterAll(async () => {
    // BOOTFS_KEEP_TEST_DIRS=1 keeps the trees for inspection after a failure.
    if (!process.env.BOOTFS_KEEP_TEST_DIRS) await removeTree(dir);
  });

  it('oci: convert → unpack equals the expected merged tree, and the config travels', async () => {
    const idx = path.join(dir, 'oci.bootfs');
    const c = await bootfs(['convert', `oci:${dir}/oci:v2`, '--store', store, '-o', idx, '--json']);
    expect(c.code, c.stderr).toBe(0);
    const summary = JSON.parse(c.stdout);
    expect(summary.layers).toBe(2);
    expect(summary.newChunks).toBeGreaterThan(500);
    expect(summary.chunkDigest).toBe('sha256');
    const out = path.join(dir, 'unpack-oci');
    const u = await bootfs(['unpack', idx, out, '--store', store]);
    expect(u.code, u.stderr).toBe(0);
    expect(await treeDiff(expected, out)).toBe('');
    const info = JSON.parse((await bootfs(['info', idx, '--json'])).stdout);
    expect(info.digest).toBe('sha256');
    expect(info.config).toMatchObject({ entrypoint: ['/bin/sh'], cmd: ['-c', 'echo hi'], env: expect.arrayContaining(['APP=demo']), workingDir: '/srv', user: '1000:1000', labels: { 'org.test': 'yes' } });
    // A second conversion: identical index bytes, and nothing new to store.
    const again = path.join(dir, 'oci-again.bootfs');
    const c2 = await bootfs(['convert', `oci:${dir}/oci:v2`, '--store', store, '-o', again, '--json']);
    expect(JSON.parse(c2.stdout).newChunks).toBe(0);
    expect((await readFile(again)).equals(await readFile(idx))).toBe(true);
  });

  it('docker-archive (skopeo) and oci-archive give the same tree', async () => {
    for (const [name, src] of [
      ['docker', `docker-archive:${dir}/image.tar`],
      ['ociarchive', `oci-archive:${dir}/image-oci.tar`],
    ] as const) {
      const idx = path.join(dir, `${name}.bootfs`);
      const c = await bootfs(['convert', src, '--store', store, '-o', idx, '--json']);
      expect(c.code, c.stderr).toBe(0);
      expect(JSON.parse(c.stdout).newChunks).toBe(0); // same files as the oci: conversion
      const out = path.join(dir, `unpack-${name}`);
      expect((await bootfs(['unpack', idx, out, '--store', store])).code).toBe(0);
      expect(await treeDiff(expected, out)).toBe('');
    }
  });

  it('casync rebuilds the data stream from the exported .caibx', async () => {
    const idx = path.join(dir, 'oci.bootfs');
    const caibx = path.join(dir, 'data.caibx');
    expect((await bootfs(['export-caibx', idx, caibx])).code).toBe(0);
    expect((await readFile(caibx)).readBigUInt64LE(16)).toBe(0x9000000000000000n); // casync --digest=sha256
    const data = path.join(dir, 'data.bin');
    const x = await run('casync', ['extract', `--store=${store}`, caibx, data], { timeoutMs: 600_000 });
    expect(x.code, x.stderr.toString()).toBe(0);
    const got = createHash('sha256').update(await readFile(data)).digest('hex');
    expect(got).toBe(dataStreamOf(expected));
  });

  it('--chunk-digest sha512-256 (casync\'s default): its own chunk names, the same tree, casync rebuilds it', async () => {
    const idx = path.join(dir, 'oci-512.bootfs');
    const c = await bootfs(['convert', `oci:${dir}/oci:v2`, '--store', store, '-o', idx, '--chunk-digest', 'sha512-256', '--json']);
    expect(c.code, c.stderr).toBe(0);
    const summary = JSON.parse(c.stdout);
    expect(summary.newChunks).toBeGreaterThan(500); // no name is shared with the SHA-256 conversion
    expect(JSON.parse((await bootfs(['info', idx, '--json'])).stdout).digest).toBe('sha512-256');
    const out = path.join(dir, 'unpack-oci-512');
    expect((await bootfs(['unpack', idx, out, '--store', store])).code).toBe(0);
    expect(await treeDiff(expected, out)).toBe('');
    const caibx = path.join(dir, 'data-512.caibx');
    expect((await bootfs(['export-caibx', idx, caibx])).code).toBe(0);
    expect((await readFile(caibx)).readBigUInt64LE(16)).toBe(0xb000000000000000n);
    const data = path.join(dir, 'data-512.bin');
    const x = await run('casync', ['extract', `--store=${store}`, caibx, data], { timeoutMs: 600_000 });
    expect(x.code, x.stderr.toString()).toBe(0);
    expect(createHash('sha256').update(await readFile(data)).digest('hex')).toBe(dataStreamOf(expected));
  });

  it('ls and cat see the merged tree', async () => {
    const idx = path.join(dir, 'oci.bootfs');
    const ls = await bootfs(['ls', idx, '/usr/share/man']);
    expect(ls.stdout.trim()).toBe('README');
    expect((await bootfs(['ls', idx, '/etc/motd'])).code).toBe(2);
    const cat = await bootfs(['cat', idx, '/etc/hostname', '--store', store]);
    expect(cat.stdout).toBe('converted\n');
    const l = await bootfs(['ls', '-l', idx, '/usr/local/bin/capped']);
    expect(l.stdout).toMatch(/^-rwsr-xr-x +1 +0 +0 +22 2023-11-14 22:13:20\.123456789 /);
  });

  it('a hostile layer fails naming the layer and the entry, writing no index and no chunk', async () => {
    const tar = path.join(dir, 'hostile.tar');
    await sh(
      `cd "$DIR" && mkdir -p evil && printf pwned > evil/x && tar --format=pax -cf "$TAR" --transform='s,^evil/x$,../../etc/x,' evil/x
       umoci raw add-layer --image oci:v1 --tag hostile "$TAR"`,
      { DIR: dir, TAR: tar },
    );
    const fresh = path.join(dir, 'hostile-store');
    const idx = path.join(dir, 'hostile.bootfs');
    const c = await bootfs(['convert', `oci:${dir}/oci:hostile`, '--store', fresh, '-o', idx]);
    expect(c.code).toBe(3);
    expect(c.stderr).toMatch(/layer sha256:[0-9a-f]{64}/);
    expect(c.stderr).toContain('../../etc/x');
    expect(c.stderr).not.toMatch(/internal error/);
    await expect(readFile(idx)).rejects.toThrow();
    expect((await snapshot(fresh)).size).toBe(0);
  });
});
