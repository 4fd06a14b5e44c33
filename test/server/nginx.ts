/**
 * A throwaway nginx for tests: serves a store directory under /store/ on 127.0.0.1 and a free
 * port, read-only or with the dav module's PUT (Debian's nginx has --with-http_dav_module).
 * Runs in the foreground (`daemon off`) as a child of the test, with every path in a temp dir.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { tmpDir, whichTool } from '../helpers/tools.js';

export interface Nginx {
  /** Base URL of the store, without a trailing slash: http://127.0.0.1:PORT/store */
  storeUrl: string;
  stop(): Promise<void>;
}

/** A port that was free a moment ago (nginx cannot listen on port 0 and report it). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

async function waitForPort(port: number, child: ChildProcess, log: string): Promise<void> {
  const until = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${await readFile(log, 'utf8').catch(() => '')}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nginx did not listen on ${port}: ${await readFile(log, 'utf8').catch(() => '')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Start nginx serving `storeDir` at /store/; `writable` enables PUT through the dav module,
 * `accessLog` writes one line per request (`GET /store/… 200`), `port` reuses a port (a restart).
 */
export async function startNginx(storeDir: string, opts: { writable?: boolean; accessLog?: string; port?: number } = {}): Promise<Nginx> {
  const dir = await tmpDir('bootfs-nginx-');
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) await mkdir(path.join(dir, d));
  const port = opts.port ?? (await freePort());
  const log = path.join(dir, 'error.log');
  const put = opts.writable
    ? `dav_methods PUT; create_full_put_path on; dav_access user:rw group:r all:r; limit_except GET HEAD PUT { deny all; }`
    : `limit_except GET HEAD { deny all; }`;
  const conf = `
user root;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${log} info;
events { worker_connections 128; }
http {
  ${opts.accessLog ? `log_format bootfs '$request $status'; access_log ${opts.accessLog} bootfs;` : 'access_log off;'}
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 16m;
    location /store/ {
      alias ${storeDir}/;
      ${put}
    }
  }
}
`;
  const confFile = path.join(dir, 'nginx.conf');
  await writeFile(confFile, conf);
  const child = spawn(whichTool('nginx')!, ['-p', dir, '-c', confFile, '-e', log, '-g', 'daemon off;'], { stdio: 'ignore' });
  await waitForPort(port, child, log);
  return {
    storeUrl: `http://127.0.0.1:${port}/store`,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGQUIT'); // graceful stop
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
