/**
 * Registry references: `host[:port]/repo[:tag][@digest]`, with docker's normalisation of short
 * names (`alpine` → `docker.io/library/alpine`, `me/app` → `docker.io/me/app`). The grammar is
 * distribution/reference's: lower-case path components separated by `.`, `_`, `__` or dashes, a
 * domain (a name with a dot or a port, `localhost`, or a bracketed IPv6 address) as the first
 * component, tags of at most 128 word characters, dots and dashes.
 */
import { UsageError } from '../errors.js';
import { digestProblem, short } from '../oci/digest.js';

/** A repository on a registry. */
export interface RepoLocation {
  /** The registry as written (normalised): `host[:port]`, `docker.io` for Docker Hub. */
  registry: string;
  /** Repository name inside the registry, e.g. `library/alpine`, `team/app`. */
  repository: string;
}

/** A repository plus an optional tag and digest. */
export interface RegistryReference extends RepoLocation {
  tag?: string;
  digest?: string;
}

/** Docker Hub's name in references and auth files. */
export const DOCKER_HUB = 'docker.io';
/** Docker Hub's API endpoint (references say docker.io; the API lives elsewhere). */
export const DOCKER_HUB_API = 'registry-1.docker.io';

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_NAME = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*$/;
const IPV6 = /^\[[0-9a-fA-F:.]+\]$/;
/** A tag (distribution/reference). */
export const TAG = /^[\w][\w.-]{0,127}$/;
/** distribution/reference: a name (domain included) is at most 255 characters. */
const MAX_NAME = 255;

/** Is `s` a valid `host[:port]`? */
function validDomain(s: string): boolean {
  const m = /^(.*?)(?::(\d{1,5}))?$/.exec(s);
  if (!m) return false;
  const host = m[1]!;
  if (m[2] !== undefined && (Number(m[2]) < 1 || Number(m[2]) > 65535)) return false;
  return DOMAIN_NAME.test(host) || IPV6.test(host);
}

/** Does the first component of a name look like a registry (docker's rule)? */
function isDomain(first: string): boolean {
  return first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[') || first !== first.toLowerCase();
}

/** Split `name` (no tag or digest) into registry and repository, with docker's defaults. */
function splitName(name: string, text: string): RepoLocation {
  const slash = name.indexOf('/');
  let registry: string;
  let repository: string;
  if (slash >= 0 && isDomain(name.slice(0, slash))) {
    registry = name.slice(0, slash);
    repository = name.slice(slash + 1);
  } else {
    registry = DOCKER_HUB;
    repository = name;
  }
  if (registry === 'index.docker.io') registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  if (!validDomain(registry)) throw new UsageError(`'${short(text)}': '${short(registry)}' is not a valid registry host[:port]`);
  if (repository === '' || !repository.split('/').every((c) => PATH_COMPONENT.test(c))) {
    throw new UsageError(`'${short(text)}': repository '${short(repository)}' is not valid (lower-case letters, digits and . _ - separators, components joined by /)`);
  }
  if (registry.length + 1 + repository.length > MAX_NAME) throw new UsageError(`'${short(text)}': the name is longer than ${MAX_NAME} characters`);
  return { registry, repository };
}

/** Parse `host[:port]/repo[:tag][@digest]` (short Docker Hub names allowed); UsageError when invalid. */
export function parseRegistryReference(text: string): RegistryReference {
  if (text === '' || /[\s\u0000-\u001f\u007f]/.test(text)) throw new UsageError(`'${short(text)}' is not a registry reference (host[:port]/repo[:tag|@digest])`);
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    const problem = digestProblem(digest);
    if (problem !== undefined) throw new UsageError(`'${short(text)}': ${problem}`);
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new UsageError(`'${short(text)}': '${short(tag)}' is not a valid tag (up to 128 letters, digits, _ . -, not starting with . or -)`);
  }
  const loc = splitName(rest, text);
  return { ...loc, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** Parse `host[:port]/repo` (no tag, no digest). */
export function parseRepoLocation(text: string): RepoLocation {
  const r = parseRegistryReference(text);
  if (r.tag !== undefined || r.digest !== undefined) throw new UsageError(`'${short(text)}': a repository location takes no tag or digest (host[:port]/repo)`);
  return { registry: r.registry, repository: r.repository };
}

/** `registry/repository[:tag][@digest]`. */
export function formatRegistryReference(r: RegistryReference): string {
  return `${r.registry}/${r.repository}${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest !== undefined ? `@${r.digest}` : ''}`;
}

/** The host[:port] the API is reached at (Docker Hub's API is not at docker.io). */
export function apiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
}

/** The host name without port or brackets. */
export function hostName(registry: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(registry);
  if (m) return m[1]!;
  const colon = registry.lastIndexOf(':');
  return colon >= 0 ? registry.slice(0, colon) : registry;
}

/** Loopback hosts: traffic never leaves the machine (docker allows plain http to them). */
export function isLoopback(registry: string): boolean {
  const h = hostName(registry).toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}
