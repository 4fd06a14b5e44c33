/**
 * Servers of the registry benchmark, each a child process on 127.0.0.1 with its log in the work
 * dir: Debian's docker-registry (distribution 2.x) and `bootfs serve` (read-only, or --writable).
 * Every one is tracked in a ServerSet and stopped by its own pid: SIGTERM, SIGKILL after 5 s; the
 * signal path kills them synchronously.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { freePort } from './remote-servers.js';

/** How long a server may take to answer its readiness probe. */
const READY_TIMEOUT_MS = 30_000;
/** How long a server may take to exit after SIGTERM before SIGKILL. */
const STOP_TIMEOUT_MS = 5_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A started server. */
export interface BenchServer {
  name: string;
  /** `http://127.0.0.1:PORT` (no trailing slash). */
  url: string;
  /** `127.0.0.1:PORT`, as docker:// and oci:// references name it. */
  host: string;
  pid: number | undefined;
  /** Command line, recorded in the results. */
  argv: string[];
  /** File the child's stdout and stderr go to. */
  log: string;
  /** Extra facts for the results (config file, token file). */
  details: Record<string, string>;
}

/** The last lines of a log file, joined for an error message. */
function tail(file: string, lines = 4): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join(' | ') || '(empty log)';
  } catch {
    return '(no log)';
  }
}

/** Every server this run started; stopped at the end, or killed on a signal. */
export class ServerSet {
  private readonly running: { server: BenchServer; child: ChildProcess }[] = [];
  /** Everything ever started, for the results. */
  readonly started: BenchServer[] = [];

  /**
   * Start `cmd args` with output to `log` on a port chosen beforehand; ready once GET `probeUrl`
   * answers 200. A server that exits or stays silent is killed and the error quotes its log.
   */
  async start(name: string, cmd: string, args: string[], log: string, port: number, probePath: string, details: Record<string, string> = {}): Promise<BenchServer> {
    const fd = openSync(log, 'a');
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    const host = `127.0.0.1:${port}`;
    const server: BenchServer = { name, url: `http://${host}`, host, pid: child.pid, argv: [cmd, ...args], log, details };
    this.running.push({ server, child });
    this.started.push(server);
    let spawnError: Error | undefined;
    child.once('error', (err) => (spawnError = err));
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (spawnError) throw new Error(`cannot start ${name}: ${spawnError.message}`);
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before it answered: ${tail(log)}`);
      const ok = await fetch(`${server.url}${probePath}`, { signal: AbortSignal.timeout(1000) }).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) return server;
      if (Date.now() > deadline) {
        await this.stop(server);
        throw new Error(`${name} did not answer ${server.url}${probePath} within ${READY_TIMEOUT_MS / 1000} s: ${tail(log)}`);
      }
      await sleep(50);
    }
  }

  /** Stop one server (SIGTERM, SIGKILL after STOP_TIMEOUT_MS); returns a problem or null. */
  async stop(server: BenchServer): Promise<string | null> {
    const i = this.running.findIndex((r) => r.server === server);
    if (i < 0) return null;
    const { child } = this.running[i]!;
    this.running.splice(i, 1);
    if (child.exitCode !== null || child.signalCode !== null) return null;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const inTime = await Promise.race([exited.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)]);
    if (inTime) return null;
    child.kill('SIGKILL');
    await exited;
    return `${server.name} (pid ${server.pid}) did not exit within ${STOP_TIMEOUT_MS / 1000} s of SIGTERM; killed`;
  }

  /** Stop every running server; returns the problems. */
  async stopAll(): Promise<string[]> {
    const problems: string[] = [];
    for (const { server } of [...this.running].reverse()) {
      const p = await this.stop(server);
      if (p) problems.push(p);
    }
    return problems;
  }

  /** The signal path: SIGKILL every running server by its own pid. Never throws. */
  killAllSync(): void {
    for (const { child } of this.running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    this.running.length = 0;
  }
}

/**
 * docker-registry with filesystem storage in `dir`/data, plain http on 127.0.0.1 and a free port.
 * As Debian's default config: the in-memory blob descriptor cache. Log level warn and no access
 * log: at info distribution writes a line per request, which would be measured along with it.
 * No background purge of upload directories while the benchmark runs.
 */
export async function startDockerRegistry(servers: ServerSet, bin: string, dir: string): Promise<BenchServer> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const yaml = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  cache:',
    '    blobdescriptor: inmemory',
    '  filesystem:',
    `    rootdirectory: ${path.join(dir, 'data')}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    // A fixed secret only silences the warning about a generated one (one instance).
    '  secret: bootfs-bench',
    '',
  ].join('\n');
  const config = path.join(dir, 'config.yml');
  await writeFile(config, yaml);
  return servers.start('docker-registry', bin, ['serve', config], path.join(dir, 'registry.log'), port, '/v2/', { config: yaml });
}

/**
 * `bootfs serve --store DIR --http 127.0.0.1:PORT --log-level warn`; with `tokenFile`, also
 * `--writable --token-file FILE` (clients send the token as BOOTFS_STORE_TOKEN).
 */
export async function startBootfsServe(servers: ServerSet, node: string, bin: string, storeDir: string, log: string, tokenFile?: string): Promise<BenchServer> {
  await mkdir(storeDir, { recursive: true });
  const port = await freePort();
  const args = [bin, 'serve', '--store', storeDir, '--http', `127.0.0.1:${port}`, '--log-level', 'warn', ...(tokenFile ? ['--writable', '--token-file', tokenFile] : [])];
  return servers.start(tokenFile ? 'bootfs serve --writable' : 'bootfs serve', node, args, log, port, '/healthz', { store: storeDir });
}
