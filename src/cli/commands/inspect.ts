/** `bootfs info | ls | cat | export-caibx`: look inside a bootfs index. */
import type { Command } from 'commander';
import { formatChunkSizes } from '../../chunker/params.js';
import { NotFoundError, UsageError } from '../../errors.js';
import { writeCaibxFile } from '../../index/caibx.js';
import type { BootfsIndex } from '../../index/bootfs-reader.js';
import { openStore } from '../../store/location.js';
import { displayName, utf8ToByteString } from '../../tree/types.js';
import { longLine } from '../listing.js';
import { formatBytes, printJson } from '../output.js';
import { insecureHostKeyOption, sshKeyOption, storeAccess, storeOption } from '../options.js';

/** Read an index; the reader module is loaded only by the commands that need it. */
async function loadIndex(path: string): Promise<BootfsIndex> {
  const { BootfsIndex } = await import('../../index/bootfs-reader.js');
  return BootfsIndex.readFile(path);
}

/** The ino at a user-typed path, or NotFoundError naming the path and the index. */
function resolvePath(index: BootfsIndex, indexPath: string, p: string): number {
  const ino = index.resolve(utf8ToByteString(p));
  if (ino === undefined) throw new NotFoundError(`${p} not found in ${indexPath}`);
  return ino;
}

/** Counts of inodes by kind (an index walk; cheap even for 100k entries). */
function kindCounts(index: BootfsIndex): Record<string, number> {
  const counts: Record<string, number> = {};
  for (let ino = 1; ino <= index.inodeCount; ino++) {
    const k = index.kind(ino);
    counts[k] = (counts[k] ?? 0) + 1;
  }
  return counts;
}

export function registerInspect(program: Command): void {
  program
    .command('info')
    .summary('summarize a bootfs index: sizes, counts, chunking, image config')
    .argument('<index>', 'a bootfs index (from bootfs convert)')
    .option('--json', 'print one JSON result on stdout')
    .action(async (indexPath: string, flags: { json?: boolean }) => {
      const index = await loadIndex(indexPath);
      const info = {
        index: indexPath,
        formatVersion: `${index.version.major}.${index.version.minor}`,
        checksum: index.checksum,
        indexBytes: index.byteLength,
        entries: index.entryCount,
        inodes: index.inodeCount,
        kinds: kindCounts(index),
        dataBytes: index.dataSize,
        chunks: index.table.count,
        chunker: { algorithm: 'fastcdc-ronomon', ...index.sizes },
        digest: index.digest,
        config: index.config,
      };
      if (flags.json) return printJson(info);
      const c = index.config;
      const lines = [
        `${indexPath}: bootfs index v${info.formatVersion}, ${formatBytes(info.indexBytes)}`,
        `  entries ${info.entries} (${Object.entries(info.kinds).map(([k, n]) => `${n} ${k}`).join(', ')})`,
        `  data    ${formatBytes(info.dataBytes)} in ${info.chunks} chunks (FastCDC ${formatChunkSizes(index.sizes)}, ${index.digest === 'sha256' ? 'SHA-256' : 'SHA-512/256'})`,
        c.source ? `  source  ${c.source.reference}${c.source.manifestDigest ? ` ${c.source.manifestDigest}` : ''}${c.source.os ? ` ${c.source.os}/${c.source.architecture}${c.source.variant ? '/' + c.source.variant : ''}` : ''}` : undefined,
        c.entrypoint ? `  entrypoint ${JSON.stringify(c.entrypoint)}` : undefined,
        c.cmd ? `  cmd     ${JSON.stringify(c.cmd)}` : undefined,
        c.workingDir ? `  workdir ${c.workingDir}` : undefined,
        c.user ? `  user    ${c.user}` : undefined,
        c.env?.length ? `  env     ${c.env.join(' ')}` : undefined,
        c.exposedPorts?.length ? `  ports   ${c.exposedPorts.join(' ')}` : undefined,
        c.stopSignal ? `  stop signal ${c.stopSignal}` : undefined,
        c.labels && Object.keys(c.labels).length ? `  labels  ${Object.entries(c.labels).map(([k, v]) => `${k}=${v}`).join(' ')}` : undefined,
      ];
      process.stdout.write(lines.filter((l) => l !== undefined).join('\n') + '\n');
    });

  program
    .command('ls')
    .summary('list a directory (or one entry) of a bootfs index')
    .argument('<index>', 'a bootfs index')
    .argument('[path]', 'path inside the image', '/')
    .option('-l, --long', 'long listing: mode, links, uid, gid, size, mtime (UTC, ns)')
    .option('-d, --directory', 'list a directory itself, not its contents')
    .option('-R, --recursive', 'list the whole subtree')
    .option('--json', 'print one JSON result on stdout')
    .action(async (indexPath: string, p: string, flags: { long?: boolean; directory?: boolean; recursive?: boolean; json?: boolean }) => {
      const index = await loadIndex(indexPath);
      const ino = resolvePath(index, indexPath, p);
      const rows: { name: string; ino: number }[] = [];
      if (index.kind(ino) !== 'dir' || flags.directory) rows.push({ name: p, ino });
      else if (flags.recursive) {
        const base = utf8ToByteString(p).replace(/^\/+|\/+$/g, '');
        for (const item of index.walk()) {
          if (item.ino === index.rootIno && item.path === '') continue;
          if (base === '' || item.path === base || item.path.startsWith(base + '/')) {
            if (item.path !== base) rows.push({ name: displayName(item.path), ino: item.ino });
          }
        }
      } else for (const e of index.readdir(ino)) rows.push({ name: displayName(e.name), ino: e.ino });
      if (flags.json) {
        return printJson(
          rows.map(({ name, ino: i }) => {
            const st = index.stat(i);
            return { name, ino: i, kind: st.kind, mode: st.mode, uid: st.uid, gid: st.gid, size: st.size, nlink: st.nlink, mtimeNs: st.mtimeNs.toString(), ...(st.kind === 'symlink' ? { target: displayName(index.readlink(i)) } : {}) };
          }),
        );
      }
      const out = rows.map(({ name, ino: i }) => {
        if (!flags.long) return name;
        const st = index.stat(i);
        return longLine(st, name, st.kind === 'symlink' ? displayName(index.readlink(i)) : undefined);
      });
      if (out.length) process.stdout.write(out.join('\n') + '\n');
    });

  program
    .command('cat')
    .summary("print a file's contents, fetched from the store and verified")
    .argument('<index>', 'a bootfs index')
    .argument('<path>', 'path of a regular file inside the image')
    .addOption(storeOption(true))
    .addOption(sshKeyOption())
    .addOption(insecureHostKeyOption())
    .action(async (indexPath: string, p: string, flags: { store?: string; sshKey?: string; insecureSkipHostKeyCheck?: boolean }) => {
      if (!flags.store) throw new UsageError('cat needs --store (or BOOTFS_STORE)');
      const index = await loadIndex(indexPath);
      // Like cat in a chroot of the image: symlinks are followed, inside the image only.
      const { resolveFollow } = await import('../../index/path-resolve.js');
      const ino = resolveFollow(index, utf8ToByteString(p));
      const kind = index.kind(ino);
      if (kind !== 'file') throw new UsageError(`${p} in ${indexPath} is a ${kind}, not a regular file`);
      const { offset, size } = index.fileExtent(ino);
      if (size === 0) return;
      const store = await openStore(flags.store, storeAccess(flags));
      const { readRange } = await import('../../ops/read-range.js');
      for await (const piece of readRange(index.table, store, offset, size)) {
        if (!process.stdout.write(piece)) await new Promise<void>((r) => process.stdout.once('drain', () => r()));
      }
    });

  program
    .command('export-caibx')
    .summary("write the index's data-stream chunk table as a casync .caibx")
    .description(
      'The data stream (every regular file\'s contents in sorted path order, hardlinks once) is ' +
        'exactly a casync blob: `casync extract --store=STORE OUT.caibx data.bin` rebuilds it from the ' +
        'same store, which proves the store and the index agree.',
    )
    .argument('<index>', 'a bootfs index')
    .argument('<out>', 'the .caibx to write')
    .action(async (indexPath: string, out: string) => {
      const index = await loadIndex(indexPath);
      await writeCaibxFile(out, index.toBlobIndex());
      process.stdout.write(`${out}: ${index.table.count} chunks, ${formatBytes(index.dataSize)}\n`);
    });
}
