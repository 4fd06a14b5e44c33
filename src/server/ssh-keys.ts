/**
 * SSH key material shared by the SFTP server (`bootfs serve --ssh`) and the SFTP client store:
 * OpenSSH fingerprints, authorized_keys, the server's persistent host key, and known_hosts checks
 * (plain, `[host]:port` and hashed `|1|salt|hash` entries).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import ssh2 from 'ssh2';
import type { ParsedKey } from 'ssh2';
import { errnoCode, IoError, UsageError } from '../errors.js';

const { utils } = ssh2;

/** `SHA256:<base64 of sha256(public key blob)>` without padding, as `ssh-keygen -lf` prints it. */
export function fingerprint(publicBlob: Uint8Array): string {
  return `SHA256:${createHash('sha256').update(publicBlob).digest('base64').replace(/=+$/, '')}`;
}

/** Parse one key with ssh2; a parse failure becomes a UsageError naming `what`. */
export function parseOneKey(data: Buffer | string, what: string, passphrase?: string): ParsedKey {
  const parsed = utils.parseKey(data, passphrase);
  if (parsed instanceof Error) throw new UsageError(`${what}: ${parsed.message.replace(/^./, (c) => c.toLowerCase())}`);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key) throw new UsageError(`${what}: no key found`);
  return key;
}

/** One allowed client key from an authorized_keys file. */
export interface AuthorizedKey {
  key: ParsedKey;
  /** Public key blob (what the client sends in a publickey request). */
  blob: Buffer;
  comment: string;
  fingerprint: string;
}

// An options field (`from="…",no-pty …`) may precede the key type; we do not honour options, so
// lines that carry them are refused rather than silently widened.
const KEY_TYPE = /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-\S+)$/;

/** Parse an OpenSSH authorized_keys text. Comments and blank lines are skipped. */
export function parseAuthorizedKeys(text: string, file: string): AuthorizedKey[] {
  const keys: AuthorizedKey[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    if (!KEY_TYPE.test(fields[0]!)) {
      throw new UsageError(`${file}:${i + 1}: expected 'TYPE BASE64 [COMMENT]'; authorized_keys options (from=, command=, …) are not supported`);
    }
    const key = parseOneKey(`${fields[0]} ${fields[1] ?? ''}`, `${file}:${i + 1}`);
    const blob = key.getPublicSSH();
    keys.push({ key, blob, comment: fields.slice(2).join(' '), fingerprint: fingerprint(blob) });
  });
  return keys;
}

/** Read an authorized_keys file; an empty one is refused (nobody could log in). */
export async function readAuthorizedKeys(file: string): Promise<AuthorizedKey[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new IoError(`cannot read authorized keys ${file}: ${(err as Error).message}`, err);
  }
  const keys = parseAuthorizedKeys(text, file);
  if (keys.length === 0) throw new UsageError(`authorized keys file ${file} holds no key: nobody could log in`);
  return keys;
}

/** The server's host key: the private key (PEM/OpenSSH text) and its public blob. */
export interface HostKey {
  file: string;
  privateKey: Buffer;
  blob: Buffer;
  fingerprint: string;
  type: string;
  /** True when this call generated the key. */
  created: boolean;
}

/**
 * Load the host key from `file`, or generate an ed25519 key there (mode 0600, plus `file.pub`)
 * when it does not exist. Creation uses O_EXCL, so two servers starting at once agree on one key.
 */
/**
 * A new ed25519 key pair in OpenSSH format. ssh2's generateKeyPairSync drops a leading zero byte
 * of the public key (it writes 31 bytes), so about 1 key in 300 is one its own parser rejects as
 * "malformed OpenSSH private key" (measured: 10 of 3000). Such a pair is discarded and drawn again.
 */
export function generateEd25519(): { private: string; public: string } {
  for (let i = 0; i < 32; i++) {
    const pair = utils.generateKeyPairSync('ed25519', { comment: 'bootfs serve host key' });
    if (!(utils.parseKey(pair.private) instanceof Error)) return pair;
  }
  throw new IoError('could not generate a valid ed25519 host key (ssh2 produced 32 malformed keys in a row)');
}

export async function loadOrCreateHostKey(file: string): Promise<HostKey> {
  let created = false;
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw new IoError(`cannot read ssh host key ${file}: ${(err as Error).message}`, err);
    const pair = generateEd25519();
    try {
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, pair.private, { mode: 0o600, flag: 'wx' });
      await writeFile(`${file}.pub`, `${pair.public}\n`, { mode: 0o644 }).catch(() => undefined);
      created = true;
    } catch (werr) {
      if (errnoCode(werr) !== 'EEXIST') throw new IoError(`cannot write ssh host key ${file}: ${(werr as Error).message}`, werr);
    }
    data = await readFile(file);
  }
  const key = parseOneKey(data, `ssh host key ${file}`);
  if (!key.isPrivateKey()) throw new UsageError(`ssh host key ${file} is a public key; give the private key file`);
  const blob = key.getPublicSSH();
  return { file, privateKey: data, blob, fingerprint: fingerprint(blob), type: key.type, created };
}

// ------------------------------------------------------------------------------------------------
// known_hosts
// ------------------------------------------------------------------------------------------------

/** The name known_hosts uses for a host: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** OpenSSH pattern match: `*` and `?` wildcards, whole string. */
function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return re.test(name);
}

/** Does a known_hosts host field (comma-separated patterns, `!negated`, or one `|1|salt|hash`) name `name`? */
export function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return false;
    const want = Buffer.from(hash, 'base64');
    const got = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest();
    return want.length === got.length && timingSafeEqual(want, got);
  }
  let matched = false;
  for (const p of field.split(',')) {
    if (p.startsWith('!')) {
      if (globMatch(p.slice(1), name)) return false;
    } else if (globMatch(p, name)) {
      matched = true;
    }
  }
  return matched;
}

/** The verdict on a host key: known, unknown host, or a different key on record. */
export type HostKeyVerdict = { ok: true } | { ok: false; reason: 'unknown' | 'mismatch' | 'revoked' };

/**
 * Check `blob` for `host:port` against known_hosts text. A host matches entries listing either
 * `[host]:port` (or `host` on 22). `@revoked` lines refuse their key; `@cert-authority` lines are
 * ignored (host certificates are not supported).
 */
export function checkKnownHosts(text: string, host: string, port: number, blob: Buffer): HostKeyVerdict {
  const name = knownHostsName(host, port);
  let sawHost = false;
  let known = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    let fields = line.split(/\s+/);
    let marker: string | undefined;
    if (fields[0]!.startsWith('@')) {
      marker = fields[0];
      fields = fields.slice(1);
    }
    if (fields.length < 3 || !hostFieldMatches(fields[0]!, name)) continue;
    let keyBlob: Buffer;
    try {
      keyBlob = Buffer.from(fields[2]!, 'base64');
    } catch {
      continue;
    }
    const same = keyBlob.equals(blob);
    if (marker === '@revoked') {
      if (same) return { ok: false, reason: 'revoked' };
      continue;
    }
    if (marker !== undefined) continue;
    sawHost = true;
    if (same) known = true;
  }
  if (known) return { ok: true };
  return { ok: false, reason: sawHost ? 'mismatch' : 'unknown' };
}
