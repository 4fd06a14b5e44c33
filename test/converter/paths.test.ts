import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BootfsError } from '../../src/errors.js';
import { MAX_NAME_BYTES, quotePath, sanitizeEntryPath, splitEntryPath, UnsafePathError } from '../../src/converter/paths.js';

/** A safe component: 1..20 bytes, no '/', no NUL, not '.' or '..'. */
const component = fc
  .uint8Array({ minLength: 1, maxLength: 20 })
  .map((b) => Buffer.from(b.map((c) => (c === 0 || c === 0x2f ? 0x61 : c))).toString('latin1'))
  .filter((s) => s !== '.' && s !== '..');

describe('splitEntryPath', () => {
  it.each([
    ['etc/passwd', ['etc', 'passwd']],
    ['./etc/passwd', ['etc', 'passwd']],
    ['.//etc//./passwd/', ['etc', 'passwd']],
    ['./', []],
    ['.', []],
    ['a/./b/.', ['a', 'b']],
    ['...', ['...']],
    ['..a/b..', ['..a', 'b..']],
  ])('%j → %j', (p, want) => {
    expect(splitEntryPath(p)).toEqual(want);
  });

  it.each([
    ['', /empty/],
    ['/etc/passwd', /absolute/],
    ['//x', /absolute/],
    ['../x', /'\.\.'/],
    ['a/../../x', /'\.\.'/],
    ['a/..', /'\.\.'/],
    ['./..', /'\.\.'/],
    ['a\0b', /NUL/],
    ['x'.repeat(MAX_NAME_BYTES + 1), /256 bytes/],
  ])('%j is unsafe', (p, why) => {
    const r = splitEntryPath(p);
    expect(Array.isArray(r)).toBe(false);
    expect((r as { problem: string }).problem).toMatch(why);
  });

  it('accepts a 255-byte name', () => {
    expect(splitEntryPath('d/' + 'n'.repeat(255))).toEqual(['d', 'n'.repeat(255)]);
  });

  it('sanitizeEntryPath throws UnsafePathError naming the layer and the entry', () => {
    const err = (() => {
      try {
        sanitizeEntryPath('a/../../etc/shadow', 'sha256:abc');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(UnsafePathError);
    expect(err).toBeInstanceOf(BootfsError);
    expect((err as UnsafePathError).code).toBe('ERR_UNSAFE_PATH');
    expect((err as Error).message).toContain('sha256:abc');
    expect((err as Error).message).toContain('"a/../../etc/shadow"');
  });

  it('quotePath escapes control characters, shows invalid UTF-8 and truncates', () => {
    expect(quotePath('a\nb')).toBe('"a\\nb"');
    expect(quotePath('\xff')).toBe('"\uFFFD"');
    expect(quotePath('x'.repeat(5000))).toMatch(/… \(5000 bytes\)$/);
  });

  it('property: joining safe components with any separators and ./ gives them back', () => {
    const sep = fc.constantFrom('/', '//', '/./', '/././');
    fc.assert(
      fc.property(fc.array(component, { maxLength: 8 }), fc.array(sep, { minLength: 8, maxLength: 8 }), fc.boolean(), fc.boolean(), (comps, seps, dotSlash, trailing) => {
        let p = comps.map((c, i) => (i === 0 ? c : seps[i]! + c)).join('');
        if (dotSlash || comps.length === 0) p = './' + p;
        if (trailing) p += '/';
        expect(splitEntryPath(p)).toEqual(comps);
      }),
    );
  });

  it('property: output components are never empty, ".", "..", or contain / or NUL; the result is a fixpoint', () => {
    const anyPath = fc.array(fc.constantFrom('a', 'b', '.', '..', '/', '\0', '\xff', ''), { maxLength: 12 }).map((p) => p.join(''));
    fc.assert(
      fc.property(anyPath, (p) => {
        const r = splitEntryPath(p);
        if (!Array.isArray(r)) {
          expect(() => sanitizeEntryPath(p, 'L')).toThrow(UnsafePathError);
          return;
        }
        for (const c of r) {
          expect(c === '' || c === '.' || c === '..' || c.includes('/') || c.includes('\0')).toBe(false);
        }
        expect(splitEntryPath(r.length === 0 ? '.' : r.join('/'))).toEqual(r);
        // a path with a '..' component is never accepted
        if (p.split('/').includes('..')) throw new Error(`accepted ${JSON.stringify(p)}`);
      }),
    );
  });
});
