/** `bootfs convert`: an image into chunks in a store plus one bootfs index. */
import { Option, type Command } from 'commander';
import type { ChunkSizes } from '../../chunker/params.js';
import type { Digest } from '../../chunk.js';
import { UsageError } from '../../errors.js';
import { writeFileAtomic } from '../../util/files.js';
import { sharedPool } from '../../pool/chunk-pool.js';
import { openStore } from '../../store/location.js';
import { formatBytes, formatRate, printJson, Progress, progressLine } from '../output.js';
import { chunkDigestOption, chunkSizeOption, insecureHostKeyOption, sshKeyOption, storeAccess, storeOption } from '../options.js';
import { BOOTFS_VERSION } from '../version.js';
import { DEFAULT_CACHE_PATH } from '../../boot/config.js';
import type { OpenedImage } from '../../oci/types.js';
import type { RegistryOptions } from '../../registry/options.js';
import { parseTlsVerify } from '../../util/parse.js';

/**
 * The default base of boot images: the official Node image on Debian slim, which has Node at
 * /usr/local/bin/node and util-linux. Pin a digest, or use your own mirror, in production.
 */
export const DEFAULT_BASE = 'docker://docker.io/library/node:20-bookworm-slim';

/** Open the base image of a boot image. */
async function openBase(text: string, platform: string | undefined, registry: RegistryOptions): Promise<OpenedImage> {
  const { openImage, parseImageRef, parsePlatform } = await import('../../oci/index.js');
  return openImage(parseImageRef(text), { ...(platform ? { platform: parsePlatform(platform) } : {}), registry });
}

/** The registry flags as client options (for every docker:// reference of the command). */
function registryAccess(flags: ConvertFlags): RegistryOptions {
  return { ...(flags.creds ? { creds: flags.creds } : {}), tlsVerify: flags.tlsVerify, ...(flags.caFile ? { caFile: flags.caFile } : {}) };
}

interface ConvertFlags {
  store?: string;
  sshKey?: string;
  insecureSkipHostKeyCheck?: boolean;
  creds?: string;
  tlsVerify: boolean;
  caFile?: string;
  indexOut?: string;
  base?: string;
  imageStore?: string[];
  cachePath: string;
  chunkSize: ChunkSizes;
  chunkDigest: Digest;
  platform?: string;
  tmpdir?: string;
  json?: boolean;
  progress: boolean;
}


export function registerConvert(program: Command): void {
  program
    .command('convert')
    .summary('convert an image into chunks in a store plus a bootfs index, and a boot image')
    .description(
      'Read SRC (skopeo syntax), flatten its layers with the OCI whiteout rules in memory, cut the ' +
        'file contents into content-defined chunks, push the chunks the store lacks and write the ' +
        'index: the whole filesystem tree, the chunk table of the data stream and the image config. ' +
        'Every blob digest is verified. Nothing is extracted to disk; file data is spooled once to ' +
        "--tmpdir (it needs room for the image's file contents).\n\n" +
        'With DST it also writes a boot image there: the --base image (default the official ' +
        'node:20-bookworm-slim from Docker Hub; it must have Node at ' +
        '/usr/local/bin/node and mount(8), e.g. a Debian-slim Node image), the bootfs runtime layer ' +
        '(identical for every conversion by this bootfs version) and a small layer with the index and ' +
        "the boot config. The boot image's entrypoint mounts the image lazily from the store (and the " +
        'node cache at --cache-path) and runs the original entrypoint, cmd, env, working dir and user. ' +
        'Run it with the FUSE device: podman/docker run --device /dev/fuse --cap-add SYS_ADMIN.',
    )
    .argument('<src>', 'the image to convert')
    .argument('[dst]', 'write a boot image: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF] or docker://HOST[:PORT]/REPO[:TAG]')
    .addOption(storeOption(false))
    .addOption(sshKeyOption())
    .addOption(insecureHostKeyOption())
    .addOption(new Option('--creds <user:password>', 'credentials for docker:// registries (SRC, DST, --base); default: auth.json (skopeo/podman login), then ~/.docker/config.json').env('BOOTFS_REGISTRY_CREDS'))
    .addOption(new Option('--tls-verify <bool>', 'verify registry TLS certificates; false also allows plain-http registries').default(true).argParser(parseTlsVerify))
    .option('--ca-file <file>', 'PEM file of CA certificates to trust for docker:// registries, beside the system ones')
    .option('-o, --index-out <file>', 'the bootfs index to write (replaced atomically); required without DST')
    .addOption(new Option('--base <image>', 'base image of the boot image: Node at /usr/local/bin/node and util-linux (mount, umount, unshare, setpriv)').default(DEFAULT_BASE).env('BOOTFS_BASE'))
    .option('--image-store <url...>', 'store location(s) the boot image fetches from (default: --store); e.g. the http:// URL that serves the --store directory')
    .option('--cache-path <dir>', 'node cache directory inside the container (mount a shared volume there)', DEFAULT_CACHE_PATH)
    .addOption(chunkSizeOption())
    .addOption(chunkDigestOption('sha256', 'Default sha256: in hardware on current x86 and ARM servers, it halves the cost of verifying every chunk a mount reads; sha512-256 is casync\'s default'))
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
        '  docker://HOST[:PORT]/REPO[:TAG|@DIGEST]  an image in a registry (also as DST and --base)\n' +
        '\nExamples:\n  bootfs convert oci:./layout:v1 --store /srv/store -o app-v1.bootfs\n  bootfs convert oci:./layout:v1 oci-archive:app-boot.tar --store /srv/store --image-store http://store:8080/ --base oci:./node-base:20\n  bootfs convert docker-archive:app.tar --store /srv/store -o app.bootfs --json\n  bootfs ls -l app.bootfs /etc && bootfs cat app.bootfs /etc/os-release --store /srv/store',
    )
    .action(async (src: string, dst: string | undefined, flags: ConvertFlags) => {
      if (!flags.indexOut && !dst) throw new UsageError('convert needs --index-out FILE, or DST to write a boot image');
      if (dst && !flags.store) throw new UsageError('writing a boot image needs --store: the chunks must be somewhere the container can fetch them');
      const imageStores = flags.imageStore ?? (flags.store ? [flags.store] : []);
      const started = performance.now();
      const startedMs = Date.now();
      // Loaded when the command runs: `bootfs make` should not pay for the converter's module graph.
      const [{ convertImage }, { parseImageRef, parsePlatform }] = await Promise.all([import('../../converter/convert.js'), import('../../oci/index.js')]);
      const ref = parseImageRef(src);
      // Open the base first: a wrong --base should fail before minutes of chunking.
      const registry = registryAccess(flags);
      const base = dst ? await openBase(flags.base!, flags.platform, registry) : undefined;
      const platform = flags.platform ? parsePlatform(flags.platform) : undefined;
      const store = flags.store ? await openStore(flags.store, { create: true, ...storeAccess(flags), oci: { registry: registryAccess(flags) } }) : undefined;
      const progress = new Progress(flags.progress && process.stderr.isTTY === true);
      const result = await convertImage(ref, {
        sizes: flags.chunkSize,
        digest: flags.chunkDigest,
        pool: sharedPool(),
        mainThread: true, // bin.ts started one worker fewer than cores
        ...(store ? { store } : {}),
        ...(platform ? { platform } : {}),
        registry,
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
      if (flags.indexOut) await writeFileAtomic(flags.indexOut, result.index, 'index');
      let boot: Awaited<ReturnType<typeof import('../../boot/image.js').writeBootImage>> | undefined;
      if (dst && base) {
        const { writeBootImage } = await import('../../boot/image.js');
        try {
          boot = await writeBootImage({
            dest: dst,
            base,
            index: result.index,
            app: result.config,
            stores: imageStores,
            cachePath: flags.cachePath,
            bootfsVersion: BOOTFS_VERSION,
            source: { reference: result.reference, ...(result.config.source?.manifestDigest ? { manifestDigest: result.config.source.manifestDigest } : {}) },
            ...(flags.tmpdir ? { tmpDir: flags.tmpdir } : {}),
            registry,
          });
        } finally {
          await base.close();
        }
      }
      const seconds = (performance.now() - started) / 1000;
      const summary = {
        source: result.reference,
        index: flags.indexOut ?? null,
        bootImage: dst && boot ? { dest: dst, manifestDigest: boot.manifestDigest, runtimeLayer: boot.runtimeLayer, indexLayer: boot.indexLayer, ...(boot.push ? { push: boot.push } : {}) } : null,
        indexBytes: result.index.length,
        store: store?.location ?? null,
        layers: result.layers,
        ...result.counts,
        bytes: result.bytes,
        chunks: result.chunks,
        newChunks: result.newChunks,
        newStoredBytes: result.newStoredBytes,
        chunkDigest: flags.chunkDigest,
        dedupRatio: Number(result.dedupRatio.toFixed(4)),
        seconds: Number(seconds.toFixed(3)),
      };
      if (flags.json) return printJson(summary);
      if (dst && boot) process.stdout.write(`${dst}: boot image ${boot.manifestDigest} (stores: ${imageStores.join(', ')})\n`);
      process.stdout.write(
        `${flags.indexOut ?? 'index'}: ${result.counts.entries} entries, ${formatBytes(result.bytes)} of file data in ${result.chunks} chunks` +
          (store ? `, ${result.newChunks} new (${formatBytes(result.newStoredBytes)} stored, ${(summary.dedupRatio * 100).toFixed(1)}% reused)` : '') +
          `, index ${formatBytes(result.index.length)}, ${formatRate(result.bytes, seconds)}\n`,
      );
    });
}
