/** `ls -l`-style rendering of index entries. */
import type { InodeStat } from '../index/bootfs-reader.js';
import type { NodeKind } from '../tree/types.js';

const TYPE_CHAR: Record<NodeKind, string> = { file: '-', dir: 'd', symlink: 'l', char: 'c', block: 'b', fifo: 'p', socket: 's' };

/** `drwxr-xr-x`, with s/S, t/T for setuid, setgid and sticky, as ls prints them. */
export function modeString(kind: NodeKind, mode: number): string {
  const rwx = (bits: number, special: boolean, specialChar: string): string => {
    const x = bits & 1 ? (special ? specialChar : 'x') : special ? specialChar.toUpperCase() : '-';
    return (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + x;
  };
  return (
    TYPE_CHAR[kind] +
    rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, 's') +
    rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, 's') +
    rwx(mode & 7, (mode & 0o1000) !== 0, 't')
  );
}

/** `2024-01-31 12:34:56.123456789` in UTC: an index is the same everywhere, so its listing is too. */
export function formatMtime(ns: bigint): string {
  const sec = ns / 1_000_000_000n;
  let frac = ns % 1_000_000_000n;
  let s = sec;
  if (frac < 0n) {
    frac += 1_000_000_000n;
    s -= 1n;
  }
  const iso = new Date(Number(s) * 1000).toISOString().replace('T', ' ').slice(0, 19);
  return `${iso}.${frac.toString().padStart(9, '0')}`;
}

/** One long-listing line: mode, links, uid, gid, size (or major, minor), mtime, name[ -> target]. */
export function longLine(st: InodeStat, name: string, target?: string): string {
  const size = st.kind === 'char' || st.kind === 'block' ? `${st.devMajor}, ${st.devMinor}` : String(st.size);
  return `${modeString(st.kind, st.mode)} ${String(st.nlink).padStart(3)} ${String(st.uid).padStart(5)} ${String(st.gid).padStart(5)} ${size.padStart(10)} ${formatMtime(st.mtimeNs)} ${name}${target !== undefined ? ` -> ${target}` : ''}`;
}
