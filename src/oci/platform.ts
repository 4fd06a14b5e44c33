/**
 * Platforms (os/architecture/variant) and how an image index entry is chosen for one. Names are
 * normalised as containerd does (x86_64 → amd64, aarch64 → arm64, armhf → arm/v7, "8" → "v8"), and
 * matching follows containerd too: os and architecture must be equal; a variant must match when both
 * sides give one; arm64 without a variant means arm64/v8.
 */
import { endianness } from 'node:os';
import { UsageError } from '../errors.js';

/** An OCI platform. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

const WORD = /^[a-z0-9][a-z0-9._-]*$/;

/** Parse `os/arch[/variant]` (e.g. `linux/amd64`, `linux/arm64/v8`); UsageError otherwise. */
export function parsePlatform(text: string): Platform {
  const parts = text.trim().toLowerCase().split('/');
  if (parts.length < 2 || parts.length > 3 || !parts.every((p) => WORD.test(p))) {
    throw new UsageError(`platform '${text}' is not os/arch[/variant] (e.g. linux/amd64, linux/arm64/v8)`);
  }
  return normalizePlatform({ os: parts[0]!, architecture: parts[1]!, ...(parts[2] !== undefined ? { variant: parts[2] } : {}) });
}

/** `os/arch[/variant]`. */
export function formatPlatform(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/** The platform of this machine, as image indexes spell it. */
export function hostPlatform(): Platform {
  // Container images are Linux images on every host but Windows (Docker Desktop runs a Linux VM).
  const os = process.platform === 'win32' ? 'windows' : 'linux';
  const arch = process.arch as string;
  switch (arch) {
    case 'x64':
      return { os, architecture: 'amd64' };
    case 'arm64':
      return { os, architecture: 'arm64' };
    case 'arm': {
      const v = (process.config.variables as { arm_version?: string | number }).arm_version;
      return normalizePlatform({ os, architecture: 'arm', ...(v !== undefined ? { variant: String(v) } : {}) });
    }
    case 'ia32':
      return { os, architecture: '386' };
    case 'ppc64':
      // Node says ppc64 for both byte orders; Go (and images) distinguish them.
      return { os, architecture: endianness() === 'LE' ? 'ppc64le' : 'ppc64' };
    default:
      return { os, architecture: arch }; // s390x, riscv64, loong64, mips64el … are spelled alike
  }
}

/** Normalise architecture aliases and variant spellings (containerd's platforms.Normalize). */
export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase() === 'macos' ? 'darwin' : p.os.toLowerCase();
  let architecture = p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase() || undefined;
  switch (architecture) {
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      architecture = 'amd64';
      if (variant === 'v1') variant = undefined; // v1 is the baseline every amd64 machine meets
      break;
    case 'i386':
    case 'i686':
      architecture = '386';
      break;
    case 'aarch64':
    case 'arm64':
      architecture = 'arm64';
      if (variant === '8' || variant === 'v8.0') variant = 'v8';
      else if (variant !== undefined && /^\d+(\.\d+)?$/.test(variant)) variant = `v${variant}`;
      break;
    case 'armhf':
      architecture = 'arm';
      variant = 'v7';
      break;
    case 'armel':
      architecture = 'arm';
      variant = 'v6';
      break;
    case 'arm':
      if (variant !== undefined && /^\d+$/.test(variant)) variant = `v${variant}`;
      break;
  }
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

/** The variant to compare: arm64 without one is arm64/v8. */
function effectiveVariant(p: Platform): string | undefined {
  return p.architecture === 'arm64' ? (p.variant ?? 'v8') : p.variant;
}

/**
 * How well `have` (an index entry) serves `want`: undefined when it does not, otherwise a rank
 * where lower is better (0: same variant, 1: the entry names no variant, 2: `want` names none).
 */
export function platformRank(want: Platform, have: Platform): number | undefined {
  const w = normalizePlatform(want);
  const h = normalizePlatform(have);
  if (w.os !== h.os || w.architecture !== h.architecture) return undefined;
  const wv = effectiveVariant(w);
  const hv = effectiveVariant(h);
  if (wv === hv) return 0;
  if (wv !== undefined && hv !== undefined) return undefined;
  return hv === undefined ? 1 : 2;
}

/** Does index entry platform `have` serve `want`? */
export function platformMatches(want: Platform, have: Platform): boolean {
  return platformRank(want, have) !== undefined;
}
