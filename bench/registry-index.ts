/**
 * Comparing two bootfs indexes of the same image converted from different sources. They cannot be
 * byte-identical: the config section records `source.reference` (`docker://127.0.0.1:PORT/…` vs
 * `oci:/dev/shm/…`), and so the config's length and the header checksum differ too. Everything
 * else must be: the header's counts, chunk sizes and data size, the inodes, entries, xattrs,
 * chunk table, names and strings sections byte for byte, and the config JSON once the reference is
 * removed (manifest and config digests included: skopeo pushed the layout's bytes unchanged).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { HEADER, SECTION_ORDER } from '../src/index/bootfs-index.js';

/** The outcome, recorded in the results. */
export interface IndexComparison {
  a: { file: string; bytes: number; sha256: string; reference: string | null };
  b: { file: string; bytes: number; sha256: string; reference: string | null };
  /** The whole files are equal (expected only for the same source). */
  byteIdentical: boolean;
  /** Equal apart from config.source.reference (and what follows from it: config length, checksum). */
  identicalExceptReference: boolean;
  /** What differs besides the reference (empty when identicalExceptReference). */
  differences: string[];
}

interface Parsed {
  buf: Buffer;
  sections: Map<string, { offset: number; length: number }>;
  config: Record<string, unknown> | null;
}

function parse(buf: Buffer): Parsed {
  const sections = new Map<string, { offset: number; length: number }>();
  let config: Record<string, unknown> | null = null;
  if (buf.length >= HEADER.checksum) {
    SECTION_ORDER.forEach((name, k) => {
      const at = HEADER.sections + 16 * k;
      sections.set(name, { offset: Number(buf.readBigUInt64LE(at)), length: Number(buf.readBigUInt64LE(at + 8)) });
    });
    const c = sections.get('config')!;
    try {
      config = JSON.parse(buf.subarray(c.offset, c.offset + c.length).toString('utf8')) as Record<string, unknown>;
    } catch {
      config = null;
    }
  }
  return { buf, sections, config };
}

function referenceOf(config: Record<string, unknown> | null): string | null {
  const ref = (config?.source as Record<string, unknown> | undefined)?.reference;
  return typeof ref === 'string' ? ref : null;
}

/** The config as canonical text without source.reference (keys stay in the file's sorted order). */
function withoutReference(config: Record<string, unknown>): string {
  const source = { ...(config.source as Record<string, unknown> | undefined) };
  delete source.reference;
  return JSON.stringify({ ...config, source });
}

/** Compare index files `fileA` and `fileB` (see the file comment). */
export async function compareIndexes(fileA: string, fileB: string): Promise<IndexComparison> {
  const [bufA, bufB] = await Promise.all([readFile(fileA), readFile(fileB)]);
  const a = parse(bufA);
  const b = parse(bufB);
  const describe = (file: string, p: Parsed) => ({ file, bytes: p.buf.length, sha256: createHash('sha256').update(p.buf).digest('hex'), reference: referenceOf(p.config) });
  const differences: string[] = [];
  if (a.sections.size === 0 || b.sections.size === 0) differences.push('an index is shorter than its header');
  else {
    // Magic, versions, header size, flags, chunker, chunk sizes, digest, counts, data size.
    if (!bufA.subarray(0, HEADER.sections).equals(bufB.subarray(0, HEADER.sections))) differences.push('header fields before the section table');
    for (const name of SECTION_ORDER) {
      if (name === 'config') continue;
      const sa = a.sections.get(name)!;
      const sb = b.sections.get(name)!;
      if (sa.offset !== sb.offset || sa.length !== sb.length) differences.push(`section ${name}: offset/length ${sa.offset}/${sa.length} vs ${sb.offset}/${sb.length}`);
      else if (!bufA.subarray(sa.offset, sa.offset + sa.length).equals(bufB.subarray(sb.offset, sb.offset + sb.length))) differences.push(`section ${name}: bytes differ`);
    }
    if (a.config === null || b.config === null) differences.push('config section is not JSON');
    else if (withoutReference(a.config) !== withoutReference(b.config)) differences.push(`config differs beyond source.reference: ${withoutReference(a.config).slice(0, 300)} vs ${withoutReference(b.config).slice(0, 300)}`);
  }
  return {
    a: describe(fileA, a),
    b: describe(fileB, b),
    byteIdentical: bufA.equals(bufB),
    identicalExceptReference: differences.length === 0,
    differences,
  };
}
