/** `bootfs convert`: an image into chunks in a store plus one bootfs index. */
import type { Command } from 'commander';
import type { ChunkSizes } from '../../chunker/params.js';
import { UsageError } from '../../errors.js';
import { writeFileAtomic } from '../../util/files.js';
import { sharedPool } from '../../pool/chunk-pool.js';
import { openStore } from '../../store/location.js';
import { formatBytes, formatRate, printJson, Progress, progressLine } from '../output.js';
import { chunkSizeOption, insecureHostKeyOption, sshKeyOption, storeAccess, storeOption } from '../options.js';

interface ConvertFlags {
  store?: string;
  sshKey?: string;
  insecureSkipHostKeyCheck?: boolean;
  indexOut?: string;
  chunkSize: ChunkSizes;
  platform?: string;
  tmpdir?: string;
  json?: boolean;
  progress: boolean;
}


export function registerConvert(program: Command): void {
  program
    .command('convert')
    .summary('convert an image into chunks in a store plus a bootfs index')
    .description(
      'Read SRC (skopeo syntax), flatten its layers with the OCI whiteout rules in memory, cut the ' +
        'file contents into content-defined chunks, push the chunks the store lacks and write the ' +
        'index: the whole filesystem tree, the chunk table of the data stream and the image config. ' +
        'Every blob digest is verified. Nothing is extracted to disk; file data is spooled once to ' +
        "--tmpdir (it needs room for the image's file contents).",
    )
    .argument('<src>', 'the image to convert')
    .addOption(storeOption(false))
    .addOption(sshKeyOption())
    .addOption(insecureHostKeyOption())
    .requiredOption('-o, --index-out <file>', 'the bootfs index to write (replaced atomically)')
    .addOption(chunkSizeOption())
    .option('--platform <os/arch[/variant]>', "image to pick from an index or manifest list (default: this host's)")
    .option('--tmpdir <dir>', 'where to spool file contents while converting (default: $TMPDIR or /tmp)')
    .option('--json', 'print one JSON summary on stdout')
    .option('--no-progress', 'no progress line on stderr')
    .addHelpText(
      'after',
      '\nSRC transports:\n' +
        '  oci:DIR[:TAG|@DIGEST]       an OCI image layout\n' +
        '  oci-archive:FILE[:TAG]      a tar of an OCI layout\n' +
        '  docker-archive:FILE[:REF]   docker save / podman save output\n' +
        '  dir:PATH                    a plain root filesystem directory\n' +
        '\nExamples:\n  bootfs convert oci:./layout:v1 --store /srv/store -o app-v1.bootfs\n  bootfs convert docker-archive:app.tar --store /srv/store -o app.bootfs --json\n  bootfs ls -l app.bootfs /etc && bootfs cat app.bootfs /etc/os-release --store /srv/store',
    )
    .action(async (src: string, flags: ConvertFlags) => {
      if (!flags.indexOut) throw new UsageError('convert needs --index-out FILE');
      const started = performance.now();
      const startedMs = Date.now();
      // Loaded when the command runs: `bootfs make` should not pay for the converter's module graph.
      const [{ convertImage }, { parseImageRef, parsePlatform }] = await Promise.all([import('../../converter/convert.js'), import('../../oci/index.js')]);
      const ref = parseImageRef(src);
      const platform = flags.platform ? parsePlatform(flags.platform) : undefined;
      const store = flags.store ? await openStore(flags.store, { create: true, ...storeAccess(flags) }) : undefined;
      const progress = new Progress(flags.progress && process.stderr.isTTY === true);
      const result = await convertImage(ref, {
        sizes: flags.chunkSize,
        pool: sharedPool(),
        ...(store ? { store } : {}),
        ...(platform ? { platform } : {}),
        ...(flags.tmpdir ? { tmpDir: flags.tmpdir } : {}),
        onWarning: (m) => {
          progress.done();
          process.stderr.write(`bootfs: warning: ${m}\n`);
        },
        onProgress: (p) =>
          progress.update(() =>
            p.phase === 'layer'
              ? `layer ${p.index + 1}/${p.count} ${p.digest.slice(0, 19)}  ${formatBytes(p.bytes)} of files`
              : progressLine(p.bytes, p.total, startedMs, `${p.chunks} chunks, ${p.newChunks} new`),
          ),
      });
      progress.done();
      await writeFileAtomic(flags.indexOut, result.index, 'index');
      const seconds = (performance.now() - started) / 1000;
      const summary = {
        source: result.reference,
        index: flags.indexOut,
        indexBytes: result.index.length,
        store: store?.location ?? null,
        layers: result.layers,
        ...result.counts,
        bytes: result.bytes,
        chunks: result.chunks,
        newChunks: result.newChunks,
        newStoredBytes: result.newStoredBytes,
        dedupRatio: Number(result.dedupRatio.toFixed(4)),
        seconds: Number(seconds.toFixed(3)),
      };
      if (flags.json) return printJson(summary);
      process.stdout.write(
        `${flags.indexOut}: ${result.counts.entries} entries, ${formatBytes(result.bytes)} of file data in ${result.chunks} chunks` +
          (store ? `, ${result.newChunks} new (${formatBytes(result.newStoredBytes)} stored, ${(summary.dedupRatio * 100).toFixed(1)}% reused)` : '') +
          `, index ${formatBytes(result.index.length)}, ${formatRate(result.bytes, seconds)}\n`,
      );
    });
}
