/**
 * The emulated link of the boot benchmark and the servers behind it: a network namespace this
 * process creates, a veth pair into it (host 10.231.0.1, namespace 10.231.0.2), `tc tbf` on both
 * ends, and servers started inside the namespace with `ip netns exec` (a docker registry and
 * `bootfs serve`). Everything is torn down by `teardownSync`, which the signal path can call too.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { SetupError } from './common.js';
import { runChecked, runProcess } from './proc.js';

/** Host side of the veth pair; the namespace side is NS_ADDR. A /24 nothing else here uses. */
export const HOST_ADDR = '10.231.0.1';
export const NS_ADDR = '10.231.0.2';
const PREFIX = '10.231.0.';
/** tbf parameters besides the rate (DESIGN.md §8): burst and queue latency as measured there. */
const TBF = ['burst', '64kb', 'latency', '100ms'] as const;
/** How long a server may take to answer its first request. */
const READY_TIMEOUT_MS = 30_000;
/** How long a server may take to exit after SIGTERM before SIGKILL. */
const STOP_TIMEOUT_MS = 10_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A server process inside the namespace. */
export interface NsServer {
  name: string;
  pid: number;
  argv: string[];
  log: string;
  url: string;
  child: ChildProcess;
}

/** The namespace, its veth pair and the servers in it. */
export class BenchLink {
  readonly ns: string;
  readonly hostDev: string;
  readonly nsDev: string;
  private created = { ns: false, veth: false };
  shaped = false;
  readonly servers: NsServer[] = [];

  constructor(readonly rate: string, pid = process.pid) {
    this.ns = `bootfs-bench-${pid}`;
    // Interface names are at most 15 bytes; a pid has at most 7 digits.
    this.hostDev = `bfb${pid}h`;
    this.nsDev = `bfb${pid}n`;
  }

  /** Create the namespace and the veth pair, unshaped (images are pushed at full speed first). */
  async create(): Promise<void> {
    const addrs = spawnSync('ip', ['-o', 'addr', 'show'], { encoding: 'utf8' }).stdout ?? '';
    if (addrs.includes(` ${PREFIX}`)) throw new SetupError(`${PREFIX}0/24 is already in use on this host (ip -o addr show): remove it or stop the benchmark using it`);
    await runChecked('ip', ['netns', 'add', this.ns]);
    this.created.ns = true;
    await runChecked('ip', ['link', 'add', this.hostDev, 'type', 'veth', 'peer', 'name', this.nsDev]);
    this.created.veth = true;
    await runChecked('ip', ['link', 'set', this.nsDev, 'netns', this.ns]);
    await runChecked('ip', ['addr', 'add', `${HOST_ADDR}/24`, 'dev', this.hostDev]);
    await runChecked('ip', ['link', 'set', this.hostDev, 'up']);
    await this.inNs('ip', ['addr', 'add', `${NS_ADDR}/24`, 'dev', this.nsDev]);
    await this.inNs('ip', ['link', 'set', this.nsDev, 'up']);
    await this.inNs('ip', ['link', 'set', 'lo', 'up']);
  }

  /** `tc qdisc add dev X root tbf rate R burst 64kb latency 100ms` on both ends. */
  async shape(): Promise<void> {
    await runChecked('tc', ['qdisc', 'add', 'dev', this.hostDev, 'root', 'tbf', 'rate', this.rate, ...TBF]);
    await this.inNs('tc', ['qdisc', 'add', 'dev', this.nsDev, 'root', 'tbf', 'rate', this.rate, ...TBF]);
    this.shaped = true;
  }

  /** The qdiscs as `tc -s qdisc show` prints them (sent bytes, drops, overlimits), both ends. */
  async qdiscStats(): Promise<{ host: string; ns: string }> {
    const host = await runProcess('tc', ['-s', 'qdisc', 'show', 'dev', this.hostDev]);
    const ns = await runProcess('ip', ['netns', 'exec', this.ns, 'tc', '-s', 'qdisc', 'show', 'dev', this.nsDev]);
    return { host: host.stdout.trim(), ns: ns.stdout.trim() };
  }

  /** Bytes the host side has received over the link (what came from the registry and the store). */
  rxBytes(): number {
    return Number(readFileSync(`/sys/class/net/${this.hostDev}/statistics/rx_bytes`, 'utf8').trim());
  }

  private async inNs(cmd: string, args: string[]): Promise<void> {
    await runChecked('ip', ['netns', 'exec', this.ns, cmd, ...args]);
  }

  /**
   * Start `argv` inside the namespace (`ip netns exec` execs it, so the pid is the server's), output
   * to `log`; ready once GET `url` + `probePath` answers 200 from the host, over the link.
   */
  async startServer(name: string, argv: string[], log: string, url: string, probePath: string): Promise<NsServer> {
    const fd = openSync(log, 'a');
    let child: ChildProcess;
    try {
      child = spawn('ip', ['netns', 'exec', this.ns, ...argv], { stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    const server: NsServer = { name, pid: child.pid ?? -1, argv, log, url, child };
    this.servers.push(server);
    let spawnError: Error | undefined;
    child.once('error', (err) => (spawnError = err));
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (spawnError) throw new Error(`cannot start ${name}: ${spawnError.message}`);
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before it answered: ${tail(log)}`);
      const ok = await fetch(`${url}${probePath}`, { signal: AbortSignal.timeout(1000) }).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) return server;
      if (Date.now() > deadline) throw new Error(`${name} did not answer ${url}${probePath} within ${READY_TIMEOUT_MS / 1000} s: ${tail(log)}`);
      await sleep(50);
    }
  }

  /** Stop every server (SIGTERM, then SIGKILL after STOP_TIMEOUT_MS); returns the problems. */
  async stopServers(): Promise<string[]> {
    const problems: string[] = [];
    await Promise.all(
      this.servers.map(async (s) => {
        if (s.child.exitCode !== null || s.child.signalCode !== null) return;
        const exited = new Promise<void>((r) => s.child.once('exit', () => r()));
        s.child.kill('SIGTERM');
        const inTime = await Promise.race([exited.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)]);
        if (!inTime) {
          problems.push(`${s.name} (pid ${s.pid}) did not exit within ${STOP_TIMEOUT_MS / 1000} s of SIGTERM; killed`);
          s.child.kill('SIGKILL');
          await exited;
        }
      }),
    );
    this.servers.length = 0;
    return problems;
  }

  /**
   * The signal path and the last step of the normal one: kill what is still running (by pid),
   * delete the namespace (which takes its veth end, and so the pair, with it) and the host end if
   * it somehow survived. Never throws.
   */
  teardownSync(): void {
    for (const s of this.servers) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
    const pause = new Int32Array(new SharedArrayBuffer(4));
    const deadline = Date.now() + 5000;
    for (const s of this.servers) while (Date.now() < deadline && alive(s.pid)) Atomics.wait(pause, 0, 0, 10);
    this.servers.length = 0;
    if (this.created.ns) spawnSync('ip', ['netns', 'del', this.ns]);
    // The namespace goes away once its last process has; its veth end (and so ours) with it.
    while (this.created.veth && Date.now() < deadline + 5000 && linkExists(this.hostDev)) Atomics.wait(pause, 0, 0, 20);
    if (this.created.veth && linkExists(this.hostDev)) spawnSync('ip', ['link', 'del', this.hostDev]);
    this.created = { ns: false, veth: false };
  }
}

/** Is `pid` still running (not gone, not a zombie)? */
function alive(pid: number): boolean {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2, text.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function linkExists(dev: string): boolean {
  try {
    readFileSync(`/sys/class/net/${dev}/ifindex`);
    return true;
  } catch {
    return false;
  }
}

/** The last lines of a log file, joined for an error message. */
export function tail(file: string, lines = 3): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join(' | ') || '(empty log)';
  } catch {
    return '(no log)';
  }
}

/**
 * A docker-registry (distribution 2.x) config: filesystem storage under `dataDir`, plain HTTP on
 * NS_ADDR:5000, no access log (it would log every blob request of every pull).
 */
export async function writeRegistryConfig(file: string, dataDir: string): Promise<string> {
  const yaml = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${dataDir}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${NS_ADDR}:5000`,
    // A fixed secret only silences the warning about a generated one (one instance, no load balancer).
    '  secret: bootfs-bench',
    '',
  ].join('\n');
  await writeFile(file, yaml);
  return `${NS_ADDR}:5000`;
}

/** Counters of `bootfs serve`'s /metrics that the benchmark reads. */
export interface StoreCounters {
  servedBytes: number;
  servedChunks: number;
}

/** Read bootfs_http_served_bytes_total and bootfs_http_served_chunks_total from `storeUrl`/metrics. */
export async function readStoreCounters(storeUrl: string): Promise<StoreCounters> {
  const r = await fetch(new URL('metrics', storeUrl), { signal: AbortSignal.timeout(10_000) });
  if (r.status !== 200) throw new Error(`GET ${storeUrl}metrics answered ${r.status}`);
  const text = await r.text();
  const value = (name: string): number => {
    const m = new RegExp(`^${name}(?:\\{\\})? (\\S+)$`, 'm').exec(text);
    if (!m) throw new Error(`${storeUrl}metrics has no ${name}`);
    return Number(m[1]);
  };
  return { servedBytes: value('bootfs_http_served_bytes_total'), servedChunks: value('bootfs_http_served_chunks_total') };
}
