/**
 * Output conventions: results on stdout (human text, or exactly one JSON document with --json);
 * progress and logs on stderr, with a live progress line only when stderr is a TTY.
 */

/** Print one JSON document on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Human-readable byte count: 1536 → "1.5 KiB". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

/** A throttled single-line progress display on a TTY stderr; a no-op elsewhere. */
export class Progress {
  private last = 0;
  private shown = false;
  private readonly enabled: boolean;

  constructor(enabled = process.stderr.isTTY === true) {
    this.enabled = enabled;
  }

  /** Show `line` if 100 ms passed since the last update (redrawing is the expensive part). */
  update(render: () => string): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 100) return;
    this.last = now;
    this.shown = true;
    process.stderr.write(`\r\x1b[K${render()}`);
  }

  /** Clear the line before printing anything else. */
  done(): void {
    if (this.enabled && this.shown) process.stderr.write('\r\x1b[K');
    this.shown = false;
  }
}

/**
 * One progress line: a bar and percentage when the total is known, then bytes, rate and `extra`.
 * `[##########..........]  50%  128.0 MiB / 256.0 MiB  312.4 MB/s  2001 chunks`
 */
export function progressLine(done: number, total: number | undefined, startedMs: number, extra = ''): string {
  const seconds = (Date.now() - startedMs) / 1000;
  const rate = formatRate(done, seconds);
  if (total && total > 0) {
    const frac = Math.min(1, done / total);
    const width = 20;
    const filled = Math.round(frac * width);
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.floor(frac * 100)).padStart(3)}%`;
    return `${bar}  ${formatBytes(done)} / ${formatBytes(total)}  ${rate}${extra ? '  ' + extra : ''}`;
  }
  return `${formatBytes(done)}  ${rate}${extra ? '  ' + extra : ''}`;
}

/** Rate over an elapsed time: "123.4 MB/s" (decimal MB, as benchmarks report). */
export function formatRate(bytes: number, seconds: number): string {
  return seconds > 0 ? `${(bytes / 1e6 / seconds).toFixed(1)} MB/s` : '-';
}
