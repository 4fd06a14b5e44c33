/**
 * The decoder treats its input as hostile: for any bytes it either returns an index that re-encodes
 * to exactly those bytes, or throws IndexFormatError. Nothing else, and never slowly.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IndexFormatError } from '../../src/errors.js';
import { CA_FORMAT_INDEX, CA_FORMAT_TABLE, decodeCaibx, encodeCaibx } from '../../src/index/caibx.js';
import { HELLO_CAIBX, arbIndex } from './caibx-fixtures.js';

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'byte'; at: number; value: number }
  | { kind: 'u64'; slot: number; value: bigint }
  | { kind: 'truncate'; at: number }
  | { kind: 'append'; bytes: Uint8Array };

// Values that sit on the decoder's boundaries: zero, 48, powers of two around 2^32 and 2^53, all ones.
const interesting = fc.constantFrom(
  0n, 1n, 48n, 56n, 2n ** 27n, 2n ** 27n + 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n,
  CA_FORMAT_INDEX, CA_FORMAT_TABLE, 0x4b4f050e5549ecd1n, 0x9000000000000000n, 0xb000000000000000n,
);

const arbMutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('u64' as const), slot: fc.nat(), value: fc.oneof(interesting, fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 90 }) }),
);

function mutate(orig: Buffer, muts: Mutation[]): Buffer {
  let buf = Buffer.from(orig);
  for (const m of muts) {
    if (buf.length === 0 && m.kind !== 'append') continue;
    switch (m.kind) {
      case 'flip':
        buf[m.at % buf.length]! ^= 1 << m.bit;
        break;
      case 'byte':
        buf[m.at % buf.length] = m.value;
        break;
      case 'u64': {
        const slots = Math.floor(buf.length / 8);
        if (slots > 0) buf.writeBigUInt64LE(m.value, (m.slot % slots) * 8);
        break;
      }
      case 'truncate':
        buf = buf.subarray(0, m.at % buf.length);
        break;
      case 'append':
        buf = Buffer.concat([buf, m.bytes]);
        break;
    }
  }
  return buf;
}

/** Decode must accept (and then round-trip exactly) or throw IndexFormatError; returns whether it accepted. */
function checkDecode(bytes: Buffer): boolean {
  let idx;
  try {
    idx = decodeCaibx(bytes, 'fuzz.caibx');
  } catch (err) {
    if (!(err instanceof IndexFormatError)) throw new Error(`decodeCaibx threw a ${String(err)}`, { cause: err });
    expect(err.message.startsWith('index fuzz.caibx is invalid: ')).toBe(true);
    return false;
  }
  expect(bytes.length).toBe(104 + 40 * idx.table.count);
  expect(encodeCaibx(idx).equals(bytes)).toBe(true);
  return true;
}

describe('decodeCaibx on corrupted input (fast-check)', () => {
  it('random mutations of valid encodings', () => {
    const seen = { accepted: 0, rejected: 0 };
    fc.assert(
      fc.property(arbIndex(20), fc.array(arbMutation, { minLength: 1, maxLength: 4 }), (idx, muts) => {
        seen[checkDecode(mutate(encodeCaibx(idx), muts)) ? 'accepted' : 'rejected']++;
      }),
      { numRuns: 3000 },
    );
    // Both outcomes must be exercised, or the property says nothing.
    expect(seen.accepted).toBeGreaterThan(100);
    expect(seen.rejected).toBeGreaterThan(100);
  });

  it('random bytes behind a valid prefix', () => {
    const prefix = HELLO_CAIBX.subarray(0, 64); // valid header and table header
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 64 }), fc.uint8Array({ maxLength: 600 }), (keep, tail) => {
        checkDecode(Buffer.concat([prefix.subarray(0, keep), tail]));
      }),
      { numRuns: 2000 },
    );
  });

  it('mutations that keep the file well-formed are accepted or rejected, never mis-decoded', () => {
    // Rewrite one item's end offset: the result must be rejected unless offsets stay valid.
    fc.assert(
      fc.property(arbIndex(20), fc.nat(), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (idx, which, value) => {
        const bytes = encodeCaibx(idx);
        if (idx.table.count === 0) return;
        const i = which % idx.table.count;
        bytes.writeBigUInt64LE(value, 64 + 40 * i);
        checkDecode(bytes);
      }),
      { numRuns: 1000 },
    );
  });
});
