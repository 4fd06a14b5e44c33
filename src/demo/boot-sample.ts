/**
 * The sample app of the boot demo: a small "app" (a config and its code) that it reads at start,
 * next to a large payload (model weights) of which it reads only a 64 KiB header. What it must
 * print is computed from the source bytes, so its output proves it read the right bytes.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pseudoRandomBytes, sampleImage } from './sample-data.js';

/** Where the app lives inside the image. */
export const APP_DIR = '/app';
/** The weights' header the app reads at start (a model loader reads its tensor table first). */
export const HEADER_BYTES = 64 * 1024;

/** One file of the app, with its path relative to the image root. */
export interface SampleFile {
  path: string;
  mode: number;
  content: Buffer;
}

export interface SampleApp {
  files: SampleFile[];
  /** The app: a shell command run in APP_DIR. */
  command: string;
  /** What the command prints when every byte it read is right. */
  expectedOutput: string;
  /** Bytes the command reads from the image's files (not counting the shell and tools it runs). */
  startReadBytes: number;
  /** Bytes of file data of the app files (config + code + weights). */
  fileBytes: number;
}

const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');

/** The sample app with `weightsMiB` MiB of weights (deterministic bytes). */
export function sampleApp(weightsMiB = 64): SampleApp {
  const config = Buffer.from(
    '# sample app: reads this file, its code (app.bin) and the header of its weights at start\n' +
      `model = ${APP_DIR}/weights.bin\nheader_bytes = ${HEADER_BYTES}\nthreads = 4\n`,
  );
  // 1 MiB of "code": text, binary and zero runs, as executables and libraries have.
  const code = sampleImage(1024 * 1024, 7);
  const weights = pseudoRandomBytes(weightsMiB * 1024 * 1024, 11);
  const files: SampleFile[] = [
    { path: 'app/config', mode: 0o644, content: config },
    { path: 'app/app.bin', mode: 0o644, content: code },
    { path: 'app/weights.bin', mode: 0o644, content: weights },
  ];
  return {
    files,
    // md5sum reads stdin so the output names no path (the same in a container and on a mount).
    command: `cat config && md5sum < app.bin && head -c ${HEADER_BYTES} weights.bin | md5sum`,
    expectedOutput: `${config.toString()}${md5(code)}  -\n${md5(weights.subarray(0, HEADER_BYTES))}  -\n`,
    startReadBytes: config.length + code.length + HEADER_BYTES,
    fileBytes: files.reduce((n, f) => n + f.content.length, 0),
  };
}

/** Write the app's files under `root` (a root filesystem directory). */
export async function writeSampleApp(root: string, app: SampleApp): Promise<void> {
  for (const f of app.files) {
    await mkdir(path.dirname(path.join(root, f.path)), { recursive: true });
    await writeFile(path.join(root, f.path), f.content, { mode: f.mode });
  }
}
