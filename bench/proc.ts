/** Child processes for the benchmark: a promise around spawn, and a timed run under GNU time. */
import { spawn } from 'node:child_process';

/** GNU time, which reports the child's peak RSS (`%M`, KiB) — Node cannot measure another process's. */
export const GNU_TIME = '/usr/bin/time';

/**
 * Marker in front of GNU time's line. The child's stderr may not end with a newline, in which case
 * time's line is glued to it; the marker lets us find the numbers anyway.
 */
const TIME_MARK = 'BOOTFS_BENCH_TIME';
const TIME_FORMAT = `${TIME_MARK} %e %M`;
const TIME_LINE = new RegExp(`${TIME_MARK} (\\d+(?:\\.\\d+)?) (\\d+)\\s*$`);

/** Keep this much of each output stream: enough for an error message, bounded for chatty tools. */
const CAPTURE_LIMIT = 64 * 1024;

/** What a finished child left behind. */
export interface ProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last CAPTURE_LIMIT characters of stdout. */
  stdout: string;
  /** The last CAPTURE_LIMIT characters of stderr. */
  stderr: string;
}

/** Append `piece` and keep only the tail, so a runaway child cannot fill our memory. */
function appendTail(buf: string, piece: Buffer): string {
  const next = buf + piece.toString('utf8');
  return next.length > CAPTURE_LIMIT ? next.slice(next.length - CAPTURE_LIMIT) : next;
}

/** Run `cmd args` (no shell) to completion; rejects only when it cannot be started. */
export function runProcess(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout = appendTail(stdout, b)));
    child.stderr.on('data', (b: Buffer) => (stderr = appendTail(stderr, b)));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** One timed child run. */
export interface TimedRun {
  ok: boolean;
  /** Wall seconds measured here with hrtime (GNU time's %e only has 10 ms resolution). */
  seconds: number;
  /** GNU time's elapsed seconds, kept to cross-check `seconds`. */
  timeSeconds: number | null;
  /** Peak resident set size of the child in KiB (GNU time %M); worker threads are included. */
  peakRssKiB: number | null;
  exitCode: number | null;
  /** Why the run failed: the exit status and the tail of the child's stderr. */
  error?: string;
}

/** The child's own stderr without GNU time's line (and its "Command exited…" note). */
function childStderr(stderr: string): string {
  return stderr
    .replace(TIME_LINE, '')
    .replace(/Command (exited with non-zero status|terminated by signal) \d+\s*$/, '')
    .trim();
}

/** A timed run plus the tail of the child's stdout (e.g. a `--json` summary to parse). */
export interface CapturedRun {
  run: TimedRun;
  /** The last 64 KiB of the child's stdout. */
  stdout: string;
}

/** Run `cmd args` under GNU time; measures wall time and peak RSS, never throws for a failed child. */
export async function runTimed(cmd: string, args: readonly string[]): Promise<TimedRun> {
  return (await runTimedCapture(cmd, args)).run;
}

/**
 * The variables a timed tool sees: the host's settings stay out of the timings, for every tool
 * alike. Measured on the build VMs: their NODE_EXTRA_CA_CERTS (a CA bundle Node parses at every
 * start) adds ~50 ms to each Node process, more than bootfs's own start-up, and nothing a timed
 * command does needs it. Commands that do need a variable pass it explicitly (`env K=V cmd`).
 */
export const TIMED_ENV_KEYS = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TMPDIR', 'USER'] as const;

export function timedEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const k of TIMED_ENV_KEYS) if (process.env[k] !== undefined) env[k] = process.env[k];
  return env;
}

/** runTimed, also returning the child's stdout. */
export async function runTimedCapture(cmd: string, args: readonly string[]): Promise<CapturedRun> {
  const started = process.hrtime.bigint();
  const r = await runProcess(GNU_TIME, ['-f', TIME_FORMAT, cmd, ...args], timedEnv());
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const m = TIME_LINE.exec(r.stderr);
  const run: TimedRun = {
    ok: r.code === 0 && m !== null,
    seconds,
    timeSeconds: m ? Number(m[1]) : null,
    peakRssKiB: m ? Number(m[2]) : null,
    exitCode: r.code,
  };
  if (!run.ok) {
    const status = r.signal ? `signal ${r.signal}` : `exit ${r.code}`;
    const tail = childStderr(r.stderr).split('\n').slice(-5).join('\n');
    run.error = m ? `${status}: ${tail || '(no stderr)'}` : `${status}; no GNU time line in stderr: ${tail}`;
  }
  return { run, stdout: r.stdout };
}

/** Run `cmd args` (untimed) and return its stdout; throws an Error with the stderr tail unless it exits 0. */
export async function runChecked(cmd: string, args: readonly string[]): Promise<string> {
  const r = await runProcess(cmd, args);
  if (r.code !== 0) {
    const status = r.signal ? `signal ${r.signal}` : `exit ${r.code}`;
    const tail = r.stderr.trim().split('\n').slice(-5).join('\n');
    throw new Error(`${[cmd, ...args].join(' ')} failed (${status}): ${tail || '(no stderr)'}`);
  }
  return r.stdout;
}
