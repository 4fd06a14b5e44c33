/**
 * Choosing one image manifest from an image index / manifest list (possibly nested) for a platform.
 */
import { NotFoundError } from '../errors.js';
import { ImageFormatError } from './errors.js';
import { isIndexType, isManifestType } from './media-types.js';
import { formatPlatform, platformRank, type Platform } from './platform.js';
import type { Descriptor, ParsedIndex } from './schema.js';

/** Nesting deeper than this is a loop or an attack; real images nest one level at most. */
export const MAX_INDEX_DEPTH = 4;
/** Manifests gathered over all nested indexes (a multi-arch image has a dozen). */
export const MAX_INDEX_ENTRIES = 4096;

/** A manifest entry reachable from an index, with the platform its descriptor states. */
interface Leaf {
  desc: Descriptor;
  platform?: Platform;
}

/** Loads a nested index by its descriptor (verified by the caller). */
export type IndexLoader = (desc: Descriptor, depth: number) => Promise<ParsedIndex>;

async function gather(index: ParsedIndex, load: IndexLoader, depth: number, out: Leaf[], what: string): Promise<void> {
  for (const desc of index.manifests) {
    if (out.length >= MAX_INDEX_ENTRIES) throw new ImageFormatError(`${what}: more than ${MAX_INDEX_ENTRIES} manifests in its indexes`);
    if (isManifestType(desc.mediaType)) {
      out.push(desc.platform ? { desc, platform: desc.platform } : { desc });
    } else if (isIndexType(desc.mediaType)) {
      if (depth >= MAX_INDEX_DEPTH) throw new ImageFormatError(`${what}: image indexes nested more than ${MAX_INDEX_DEPTH} deep`);
      await gather(await load(desc, depth + 1), load, depth + 1, out, what);
    }
    // Anything else (signatures, SBOMs, other artifacts) is not a candidate.
  }
}

/**
 * The manifest descriptor of `index` for platform `want`: the best-ranked match (exact variant
 * first), the first in index order among equals. An index whose only manifest names no platform
 * yields that manifest. NotFoundError listing the available platforms otherwise.
 */
export async function selectManifest(
  index: ParsedIndex,
  want: Platform,
  load: IndexLoader,
  what: string,
): Promise<{ desc: Descriptor; platform?: Platform }> {
  const leaves: Leaf[] = [];
  await gather(index, load, 0, leaves, what);
  let best: Leaf | undefined;
  let bestRank = Infinity;
  for (const leaf of leaves) {
    const rank = leaf.platform ? platformRank(want, leaf.platform) : undefined;
    if (rank !== undefined && rank < bestRank) {
      best = leaf;
      bestRank = rank;
    }
  }
  if (best) return best;
  if (leaves.length === 1 && !leaves[0]!.platform) return leaves[0]!;
  const available = [...new Set(leaves.map((l) => (l.platform ? formatPlatform(l.platform) : '(unspecified)')))];
  throw new NotFoundError(
    `${what} has no image for platform ${formatPlatform(want)}; available platforms: ${available.length > 0 ? available.join(', ') : '(none)'}; choose one with --platform`,
  );
}
