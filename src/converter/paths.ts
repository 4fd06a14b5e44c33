/**
 * The one place layer entry paths are sanitized (STYLE.md §6). Image layers are hostile input: a
 * path is split into components, `.` and empty components are dropped, and anything that could
 * escape the root or confuse the tree (absolute paths, `..`, NUL, over-long names) is an error that
 * names the layer and the entry. The rules are written down in docs/flattening.md.
 */
import { BootfsError, type BootfsErrorCode, ExitCode } from '../errors.js';
import { type ByteString, displayName } from '../tree/types.js';

/** Longest file name component in bytes: Linux NAME_MAX, so every name can exist on a real disk. */
export const MAX_NAME_BYTES = 255;

/** Messages show at most this many characters of a path (a hostile path may be megabytes long). */
const MAX_SHOWN_PATH_CHARS = 200;

/** A path or name quoted for an error message: JSON-escaped, invalid UTF-8 as U+FFFD, truncated. */
export function quotePath(p: ByteString): string {
  const shown = p.length > MAX_SHOWN_PATH_CHARS ? p.slice(0, MAX_SHOWN_PATH_CHARS) : p;
  const quoted = JSON.stringify(displayName(shown));
  return p.length > MAX_SHOWN_PATH_CHARS ? `${quoted}… (${p.length} bytes)` : quoted;
}

/**
 * A layer entry's path (or hardlink target) is unsafe: absolute, contains `..` or NUL, is empty,
 * or has a component longer than MAX_NAME_BYTES. The layer is rejected as a whole.
 */
export class UnsafePathError extends BootfsError {
  /** The layer (digest or file name) the entry came from. */
  readonly layer: string;
  /** The path as found in the layer (raw bytes). */
  readonly entryPath: ByteString;
  readonly reason: string;
  constructor(layer: string, entryPath: ByteString, reason: string) {
    super(`unsafe path ${quotePath(entryPath)} in layer ${layer}: ${reason}`, {
      // 'ERR_UNSAFE_PATH' is not (yet) in BootfsErrorCode; errors.ts belongs to another owner.
      code: 'ERR_UNSAFE_PATH',
      exitCode: ExitCode.integrity,
    });
    this.layer = layer;
    this.entryPath = entryPath;
    this.reason = reason;
  }
}

/**
 * Split a layer entry path into its components, or say why it is unsafe.
 *
 * - `.` components, repeated `/` and a trailing `/` are dropped: `./etc//passwd/` → [etc, passwd].
 *   A leading `./` is how `tar -C dir .` and docker write layers, so it is allowed.
 * - The root itself (`.`, `./`) gives an empty list.
 * - Errors: the empty path, a leading `/` (absolute), any `..` component, a NUL byte, a component
 *   longer than MAX_NAME_BYTES.
 */
export function splitEntryPath(p: ByteString): ByteString[] | { problem: string } {
  if (p.length === 0) return { problem: 'the path is empty' };
  if (p.includes('\0')) return { problem: 'the path contains a NUL byte' };
  if (p.charCodeAt(0) === 0x2f) return { problem: 'absolute paths are not allowed in layers' };
  const out: ByteString[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') return { problem: "'..' components are not allowed in layers" };
    if (part.length > MAX_NAME_BYTES) {
      return { problem: `a name is ${part.length} bytes long, more than the limit of ${MAX_NAME_BYTES}` };
    }
    out.push(part);
  }
  return out;
}

/** splitEntryPath, throwing UnsafePathError (naming `layer` and the path) when the path is unsafe. */
export function sanitizeEntryPath(p: ByteString, layer: string): ByteString[] {
  const r = splitEntryPath(p);
  if (!Array.isArray(r)) throw new UnsafePathError(layer, p, r.problem);
  return r;
}

