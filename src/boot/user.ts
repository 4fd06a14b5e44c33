/**
 * The image's USER resolved the way docker and podman resolve it: names from the image's own
 * /etc/passwd and /etc/group (not the host's or the stub's), numbers as they are.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { BootfsError } from '../errors.js';

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups of a named user (from /etc/group), without the primary one. */
  groups: number[];
  /** The passwd home directory, when the user has an entry. */
  home?: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

const ID = /^\d+$/;

function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || !ID.test(f[2]!) || !ID.test(f[3]!)) continue;
    out.push({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! });
  }
  return out;
}

function parseGroup(text: string): { name: string; gid: number; members: string[] }[] {
  const out: { name: string; gid: number; members: string[] }[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || !ID.test(f[2]!)) continue;
    out.push({ name: f[0]!, gid: Number(f[2]), members: f[3]!.split(',').filter((m) => m !== '') });
  }
  return out;
}

async function readOptional(file: string): Promise<string> {
  return readFile(file, 'utf8').catch(() => '');
}

/** Resolve `user` ("", "name", "uid", "name:group", "uid:gid", …) inside the root filesystem at `root`. */
export async function resolveUser(root: string, user: string | undefined): Promise<ResolvedUser> {
  const spec = (user ?? '').trim();
  const passwd = parsePasswd(await readOptional(path.join(root, 'etc/passwd')));
  const groups = parseGroup(await readOptional(path.join(root, 'etc/group')));
  const [u = '', g] = spec.split(':', 2);
  let entry: PasswdEntry | undefined;
  let uid: number;
  if (u === '') {
    uid = 0;
    entry = passwd.find((p) => p.uid === 0);
  } else if (ID.test(u)) {
    uid = Number(u);
    entry = passwd.find((p) => p.uid === uid);
  } else {
    entry = passwd.find((p) => p.name === u);
    if (!entry) throw new BootfsError(`unable to find user ${u}: no matching entry in the image's /etc/passwd`);
    uid = entry.uid;
  }
  let gid = entry?.gid ?? 0;
  if (g !== undefined && g !== '') {
    if (ID.test(g)) gid = Number(g);
    else {
      const grp = groups.find((x) => x.name === g);
      if (!grp) throw new BootfsError(`unable to find group ${g}: no matching entry in the image's /etc/group`);
      gid = grp.gid;
    }
  }
  // Supplementary groups only for a named user without an explicit group, as the runtimes do.
  const extra = entry && (g === undefined || g === '') ? groups.filter((x) => x.members.includes(entry.name) && x.gid !== gid).map((x) => x.gid) : [];
  return { uid, gid, groups: [...new Set(extra)], ...(entry ? { home: entry.home } : {}) };
}
