/**
 * Chunk ID → (chunk map, entry) over many chunk maps: an open-addressing hash table of 8 bytes per
 * slot, so a store of a million chunks costs ~16 MB on top of its maps (68 bytes a chunk) and a
 * lookup is a probe or two, however many segments the store has.
 *
 * Chunk IDs in a map come from the registry (hostile), so the hash is keyed with a per-table random
 * seed: IDs crafted to collide cannot turn inserts quadratic.
 */
import { randomBytes } from 'node:crypto';
import type { ChunkMap } from './registry-format.js';

/** Smallest table (slots); it doubles whenever it is half full. */
const MIN_SLOTS = 1024;

export class ChunkLookup {
  private readonly maps: ChunkMap[] = [];
  /** Map number + 1 per slot (0 = empty) and the entry number in that map. */
  private mapOf: Uint32Array;
  private entryOf: Uint32Array;
  private mask: number;
  private used = 0;
  private readonly seed = randomBytes(4).readUInt32LE(0);

  constructor() {
    this.mapOf = new Uint32Array(MIN_SLOTS);
    this.entryOf = new Uint32Array(MIN_SLOTS);
    this.mask = MIN_SLOTS - 1;
  }

  /** Distinct chunk IDs in the table. */
  get size(): number {
    return this.used;
  }

  /** Add every entry of `map`. An ID already present keeps its first entry. */
  add(map: ChunkMap): void {
    this.maps.push(map);
    const m = this.maps.length;
    while ((this.used + map.count) * 2 > this.mapOf.length) this.grow();
    for (let i = 0; i < map.count; i++) this.insert(m, i, map.id(i));
  }

  /** The map and entry holding `id`, or undefined. */
  find(id: Uint8Array): { map: ChunkMap; index: number } | undefined {
    let slot = this.hash(id) & this.mask;
    for (;;) {
      const m = this.mapOf[slot]!;
      if (m === 0) return undefined;
      const map = this.maps[m - 1]!;
      const index = this.entryOf[slot]!;
      if (map.idEquals(index, id)) return { map, index };
      slot = (slot + 1) & this.mask;
    }
  }

  private insert(m: number, i: number, id: Uint8Array): void {
    let slot = this.hash(id) & this.mask;
    for (;;) {
      const cur = this.mapOf[slot]!;
      if (cur === 0) {
        this.mapOf[slot] = m;
        this.entryOf[slot] = i;
        this.used++;
        return;
      }
      if (this.maps[cur - 1]!.idEquals(this.entryOf[slot]!, id)) return;
      slot = (slot + 1) & this.mask;
    }
  }

  private grow(): void {
    const oldMap = this.mapOf;
    const oldEntry = this.entryOf;
    this.mapOf = new Uint32Array(oldMap.length * 2);
    this.entryOf = new Uint32Array(oldMap.length * 2);
    this.mask = this.mapOf.length - 1;
    this.used = 0;
    for (let s = 0; s < oldMap.length; s++) {
      const m = oldMap[s]!;
      if (m !== 0) this.insert(m, oldEntry[s]!, this.maps[m - 1]!.id(oldEntry[s]!));
    }
  }

  /** A seeded mix of all 32 bytes of the ID (IDs are digest outputs, but maps are hostile). */
  private hash(id: Uint8Array): number {
    let h = this.seed;
    for (let o = 0; o < 32; o += 4) {
      const w = (id[o]! | (id[o + 1]! << 8) | (id[o + 2]! << 16) | (id[o + 3]! << 24)) >>> 0;
      h = Math.imul(h ^ w, 0x9e3779b1);
      h ^= h >>> 15;
    }
    h = Math.imul(h ^ (h >>> 13), 0x85ebca6b);
    return (h ^ (h >>> 16)) >>> 0;
  }
}
