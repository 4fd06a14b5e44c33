/**
 * Image references in skopeo's transport syntax, e.g. `oci:./layout:latest`,
 * `oci-archive:img.tar`, `docker-archive:img.tar:example/app:1.0`, `dir:./rootfs`.
 *
 * As in containers/image, the path ends at the first ':' (so oci, oci-archive and docker-archive
 * paths cannot contain one); everything after it is the tag (a ref.name annotation for OCI layouts,
 * a RepoTag for docker archives). OCI layouts also take `@sha256:<hex>` at the end. `dir:` takes the
 * whole rest as the path. `docker://HOST[:PORT]/REPO[:TAG][@DIGEST]` names an image in a registry
 * (path = `HOST[:PORT]/REPO`, docker's short names normalised; no tag and no digest means `latest`).
 */
import { UsageError } from '../errors.js';
import { formatRegistryReference, parseRegistryReference } from '../registry/reference.js';
import { digestProblem, short } from './digest.js';

/** The transports this version reads. */
export type Transport = 'oci' | 'oci-archive' | 'docker-archive' | 'dir' | 'docker';

/** A parsed image reference. */
export interface ImageRef {
  transport: Transport;
  /** docker: `registry/repository` (e.g. `127.0.0.1:5000/team/app`, `docker.io/library/alpine`). */
  path: string;
  /** oci/oci-archive: the `org.opencontainers.image.ref.name`; docker-archive: a RepoTag; docker: the tag. */
  tag?: string;
  /** oci/oci-archive/docker: the digest of the manifest or index to use. */
  digest?: string;
}

const TRANSPORTS: readonly Transport[] = ['oci', 'oci-archive', 'docker-archive', 'dir', 'docker'];

/** Other skopeo transports, refused with a hint. */
const LATER: Readonly<Record<string, string>> = {
  'docker-daemon': 'reading from a Docker daemon is not supported',
  'containers-storage': 'reading from containers-storage (podman, buildah) is not supported',
  ostree: 'ostree is not supported',
  sif: 'SIF images are not supported',
  tarball: 'the tarball transport is not supported',
};

const EXAMPLES = 'oci:DIR[:TAG|@DIGEST], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG], docker://HOST[:PORT]/REPO[:TAG|@DIGEST] or dir:ROOTFS';

/** The OCI ref.name grammar (image-spec annotations.md). */
const REF_NAME = /^[A-Za-z0-9]+(?:(?:[-._:@/+]|--)[A-Za-z0-9]+)*$/;
/** A docker reference as it appears in RepoTags: name[:tag]. Kept loose; matching is exact. */
const DOCKER_REF = /^[A-Za-z0-9][A-Za-z0-9._\-/:]*$/;
/** `@<digest>` at the end of an OCI reference (32+ characters so `a@b:c` stays a path and a tag). */
const DIGEST_SUFFIX = /@([a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,})$/;

function isTransport(s: string): s is Transport {
  return (TRANSPORTS as readonly string[]).includes(s);
}

/** Parse skopeo syntax; UsageError on bad syntax or unsupported transports. */
export function parseImageRef(text: string): ImageRef {
  if (/[\u0000-\u001f\u007f]/.test(text)) throw new UsageError(`image reference ${JSON.stringify(short(text))} contains control characters`);
  const colon = text.indexOf(':');
  const name = colon < 0 ? '' : text.slice(0, colon);
  if (colon < 0 || !/^[a-z][a-z0-9-]*$/.test(name)) {
    throw new UsageError(`'${short(text)}' is not an image reference: write TRANSPORT:DETAILS, i.e. ${EXAMPLES}`);
  }
  const rest = text.slice(colon + 1);
  if (!isTransport(name)) {
    const why = LATER[name];
    if (why !== undefined) {
      throw new UsageError(`'${short(text)}': ${why}; copy the image to a local layout first (skopeo copy ${short(text)} oci:DIR:TAG) and convert that`);
    }
    throw new UsageError(`unknown transport '${name}' in '${short(text)}'; use ${EXAMPLES}`);
  }
  if (name === 'dir') {
    if (rest === '') throw new UsageError(`'${text}': the directory is missing (dir:ROOTFS)`);
    return { transport: 'dir', path: rest };
  }
  if (name === 'docker') {
    if (!rest.startsWith('//')) throw new UsageError(`'${short(text)}': write docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`);
    const r = parseRegistryReference(rest.slice(2));
    const tag = r.tag ?? (r.digest === undefined ? 'latest' : undefined);
    return { transport: 'docker', path: `${r.registry}/${r.repository}`, ...(tag !== undefined ? { tag } : {}), ...(r.digest !== undefined ? { digest: r.digest } : {}) };
  }

  let body = rest;
  let digest: string | undefined;
  if (name !== 'docker-archive') {
    const m = DIGEST_SUFFIX.exec(body);
    if (m) {
      const problem = digestProblem(m[1]);
      if (problem !== undefined) throw new UsageError(`'${short(text)}': ${problem}`);
      digest = m[1]!;
      body = body.slice(0, m.index);
    }
  } else if (body.includes('@')) {
    throw new UsageError(`'${short(text)}': docker-archive images are chosen by RepoTag (NAME:TAG), not by digest or index`);
  }
  const sep = body.indexOf(':');
  const path = sep < 0 ? body : body.slice(0, sep);
  const tag = sep < 0 ? undefined : body.slice(sep + 1);
  if (path === '') throw new UsageError(`'${short(text)}': the ${name === 'oci' ? 'directory' : 'file'} is missing (${EXAMPLES})`);
  if (tag !== undefined && tag === '' && digest === undefined) throw new UsageError(`'${short(text)}': the tag after ':' is empty`);
  if (tag) {
    const ok = name === 'docker-archive' ? DOCKER_REF.test(tag) : REF_NAME.test(tag);
    if (!ok) throw new UsageError(`'${short(text)}': '${short(tag)}' is not a valid ${name === 'docker-archive' ? 'image name[:tag]' : 'tag'}`);
  }
  return { transport: name, path, ...(tag ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** The canonical text of a reference (parseImageRef(formatImageRef(r)) gives r back). */
export function formatImageRef(ref: ImageRef): string {
  if (ref.transport === 'dir') return `dir:${ref.path}`;
  if (ref.transport === 'docker') {
    const slash = ref.path.indexOf('/');
    return `docker://${formatRegistryReference({ registry: ref.path.slice(0, slash), repository: ref.path.slice(slash + 1), ...(ref.tag ? { tag: ref.tag } : {}), ...(ref.digest ? { digest: ref.digest } : {}) })}`;
  }
  if (ref.path.includes(':')) {
    throw new UsageError(`${ref.transport} path '${short(ref.path)}' contains ':', which the ${ref.transport}: syntax cannot express; use a path without ':' (e.g. a symlink)`);
  }
  return `${ref.transport}:${ref.path}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}
