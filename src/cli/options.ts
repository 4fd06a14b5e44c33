/** Flag helpers shared by commands: env fallbacks (flags > BOOTFS_* env > defaults) and parsers. */
import { Option } from 'commander';
import { type ChunkSizes, DEFAULT_CHUNK_SIZES, formatChunkSizes, parseChunkSizes } from '../chunker/params.js';
import { type Digest, DIGESTS } from '../chunk.js';
import { UsageError } from '../errors.js';
import type { OpenStoreOptions } from '../store/location.js';

/** `--store` with BOOTFS_STORE as fallback. */
export function storeOption(required: boolean): Option {
  const opt = new Option('-s, --store <location>', `chunk store: a directory, file://, http(s):// (token: BOOTFS_STORE_TOKEN), sftp://user@host[:port]/path or oci://registry/repo[:tag] URL${required ? '' : ' (omit to compute the index only)'}`).env('BOOTFS_STORE');
  return opt;
}

/** `--ssh-key FILE` for sftp:// stores (a flag wins over BOOTFS_SSH_KEY and the ~/.ssh defaults). */
export function sshKeyOption(): Option {
  return new Option('--ssh-key <file>', 'private key for sftp:// stores (default: BOOTFS_SSH_KEY, then ~/.ssh/id_ed25519, ~/.ssh/id_rsa, then the ssh-agent)');
}

/** `--insecure-skip-host-key-check`: the only way past an unknown SSH host key, named to be noticed. */
export function insecureHostKeyOption(): Option {
  return new Option('--insecure-skip-host-key-check', 'accept any SSH host key for sftp:// stores (throwaway tests only; default: known_hosts or BOOTFS_SSH_HOST_FINGERPRINT)');
}

/** The store-access flags as openStore options. */
export function storeAccess(flags: { sshKey?: string; insecureSkipHostKeyCheck?: boolean }): OpenStoreOptions {
  return {
    sftp: {
      ...(flags.sshKey ? { privateKeyFile: flags.sshKey } : {}),
      ...(flags.insecureSkipHostKeyCheck ? { insecureSkipHostKeyCheck: true } : {}),
    },
  };
}

/** `--chunk-size MIN:AVG:MAX`, validated when parsed. */
export function chunkSizeOption(): Option {
  return new Option(
    '--chunk-size <min:avg:max>',
    `FastCDC chunk sizes (min >= 64, max >= 1K, min <= avg <= max <= 128M; a single AVG means AVG/4:AVG:AVG*4). Changing them changes every chunk, so stores only dedup between runs with equal sizes`,
  )
    .default(DEFAULT_CHUNK_SIZES, formatChunkSizes(DEFAULT_CHUNK_SIZES))
    .env('BOOTFS_CHUNK_SIZE')
    .argParser((v: string): ChunkSizes => parseChunkSizes(v));
}

/**
 * `--chunk-digest`: the digest chunk IDs use (casync's `--digest`). `why` says why `fallback` is
 * this command's default.
 */
export function chunkDigestOption(fallback: Digest, why: string): Option {
  return new Option(
    '--chunk-digest <name>',
    `digest of chunk IDs, recorded in the index (casync --digest). ${why}. Chunks dedup only between indexes of one digest`,
  )
    .choices(DIGESTS)
    .default(fallback)
    .env('BOOTFS_CHUNK_DIGEST');
}

export { parseDuration } from '../util/duration.js';

/** Reject `--json` together with data on stdout. */
export function assertStdoutFree(json: boolean, dataToStdout: boolean): void {
  if (json && dataToStdout) throw new UsageError('--json cannot be combined with writing data to stdout (-)');
}
