/**
 * Store locations are URLs everywhere; this is the one place they are parsed. Today a location is
 * a directory path or a file:// URL; remote schemes are recognised so the error says what is missing.
 */
import { fileURLToPath } from 'node:url';
import { UsageError } from '../errors.js';
import { LocalStore } from './local.js';

export interface StoreLocation {
  kind: 'local';
  path: string;
}

const REMOTE = /^(https?|sftp|ssh|oci|docker):\/\//i;

/** Parse a store location: a path, or file:///abs/path. */
export function parseStoreLocation(text: string): StoreLocation {
  if (text.trim() === '') throw new UsageError('store location is empty');
  if (text.startsWith('file:')) {
    try {
      return { kind: 'local', path: fileURLToPath(text) };
    } catch (err) {
      throw new UsageError(`store location '${text}' is not a valid file: URL (${(err as Error).message})`);
    }
  }
  const remote = REMOTE.exec(text);
  if (remote) {
    throw new UsageError(`store location '${text}': ${remote[1]!.toLowerCase()}:// stores are not supported by this version of bootfs yet; use a directory`);
  }
  return { kind: 'local', path: text };
}

/** Open the store a location names. `create` makes a missing local directory (for writers). */
export async function openStore(text: string, opts: { create?: boolean } = {}): Promise<LocalStore> {
  const loc = parseStoreLocation(text);
  return LocalStore.open(loc.path, { create: !!opts.create });
}
