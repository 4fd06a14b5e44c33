/** Durations as users write them: `90s`, `15m`, `2h`, `1d`, `250ms` or plain seconds. */
import { UsageError } from '../errors.js';

/** Milliseconds of `text`; `what` names the flag or variable in the error. */
export function parseDuration(text: string, what?: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!m) throw new UsageError(`${what ? `${what} ` : ''}'${text}' is not a duration (examples: 30s, 15m, 2h, 1d)`);
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 's']!;
  return Number(m[1]) * mult;
}
