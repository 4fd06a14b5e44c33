/** Command-line flags of the make/extract benchmark, parsed with node:util parseArgs. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** The inputs the benchmark knows how to prepare. */
export const INPUT_NAMES = ['random', 'rootfs'] as const;
/** One of INPUT_NAMES. */
export type InputName = (typeof INPUT_NAMES)[number];

/** Resolved benchmark options; defaults live in parseBenchArgs. */
export interface BenchOptions {
  /** Bytes of random input (the rootfs stream has its own size). */
  sizeBytes: number;
  /** Timed repetitions per tool and operation. */
  runs: number;
  /** Base directory for the work dir; undefined picks /dev/shm or os.tmpdir(). */
  dir: string | undefined;
  /** Keep the work dir (inputs, stores, outputs) instead of deleting it. */
  keep: boolean;
  /** Inputs to measure, in order. */
  inputs: InputName[];
  help: boolean;
}

/** Usage text printed by --help and after a flag error. */
export const USAGE = `usage: npm run bench -- [options]      (after npm run build)

Times bootfs make/extract against casync make/extract on the same inputs and
writes bench/results/make-extract-<date>.json (and make-extract-latest.json).

options:
  --size SIZE        random input size (default 256M; K/M/G are binary: 16M = 16 MiB)
  --runs N           timed repetitions per tool and operation (default 3)
  --inputs LIST      comma-separated subset of random,rootfs (default random,rootfs)
  --dir DIR          create the work dir inside DIR (default /dev/shm when it has room,
                     else the OS temp dir)
  --keep             keep the work dir (inputs, stores, extracted files) afterwards
  --help             this text

exit status: 0 when every run succeeded and every extracted file matched its input
(even if a target is missed: this is a measurement), 1 when a run or a check failed,
2 for bad usage or a missing tool.`;

/** Thrown for bad flags; run.ts prints the message and the usage. */
export class BenchUsageError extends Error {}

/** Parse `256M`, `16MiB`, `1G`, `65536` (binary multiples) into bytes. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+)\s*(?:([kmg])(?:i?b)?|b)?\s*$/i.exec(text);
  if (!m) throw new BenchUsageError(`--size '${text}' is not a size (examples: 16M, 256M, 1G)`);
  const unit = (m[2] ?? '').toLowerCase();
  const bytes = Number(m[1]) * (unit === '' ? 1 : 1024 ** ('kmg'.indexOf(unit) + 1));
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new BenchUsageError(`--size '${text}' must be a positive size`);
  return bytes;
}

/** Parse --runs: a positive integer. */
export function parseRuns(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new BenchUsageError(`--runs '${text}' must be a positive integer`);
  return n;
}

/**
 * Parse a comma-separated list of names from `known` for `flag`: unknown names and an empty list
 * are BenchUsageErrors; the result keeps `known`'s order without duplicates.
 */
export function parseNameList<T extends string>(flag: string, text: string, known: readonly T[], what: string): T[] {
  const names = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const n of names) {
    if (!(known as readonly string[]).includes(n)) throw new BenchUsageError(`${flag}: unknown ${what} '${n}' (known: ${known.join(', ')})`);
  }
  const wanted = known.filter((k) => names.includes(k));
  if (wanted.length === 0) throw new BenchUsageError(`${flag} must name at least one ${what}`);
  return wanted;
}

function parseInputs(text: string): InputName[] {
  return parseNameList('--inputs', text, INPUT_NAMES, 'input');
}

type StrictConfig<O> = { args: string[]; strict: true; allowPositionals: false; options: O };

/** parseArgs in strict mode with no positionals; its errors become BenchUsageErrors. */
export function strictArgs<const O extends NonNullable<ParseArgsConfig['options']>>(
  argv: string[],
  options: O,
): ReturnType<typeof parseArgs<StrictConfig<O>>>['values'] {
  try {
    return parseArgs({ args: argv, strict: true, allowPositionals: false, options }).values;
  } catch (err) {
    throw new BenchUsageError((err as Error).message);
  }
}

/** Turn argv (without node and script) into BenchOptions; throws BenchUsageError. */
export function parseBenchArgs(argv: string[]): BenchOptions {
  const values = strictArgs(argv, {
    size: { type: 'string', default: '256M' },
    runs: { type: 'string', default: '3' },
    dir: { type: 'string' },
    keep: { type: 'boolean', default: false },
    inputs: { type: 'string', default: INPUT_NAMES.join(',') },
    help: { type: 'boolean', short: 'h', default: false },
  });
  return {
    sizeBytes: parseSize(values.size),
    runs: parseRuns(values.runs),
    dir: values.dir,
    keep: values.keep,
    inputs: parseInputs(values.inputs),
    help: values.help,
  };
}

/**
 * The flag handling every benchmark entry point shares: parse argv, or print the error with the
 * usage (exit status 2), or print the usage for --help (exit status 0).
 */
export function parseOrExit<T extends { help: boolean }>(argv: string[], parse: (argv: string[]) => T, usage: string): T | number {
  let opts: T;
  try {
    opts = parse(argv);
  } catch (err) {
    if (!(err instanceof BenchUsageError)) throw err;
    process.stderr.write(`bench: ${err.message}\n\n${usage}\n`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  return opts;
}
