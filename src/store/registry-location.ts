/**
 * `oci://host[:port]/repo[:tag]` store locations (docs/remote-stores.md, "Registry stores"). Kept
 * apart from the store so src/store/location.ts can validate a location without loading it.
 */
import { UsageError } from '../errors.js';
import { short } from '../oci/digest.js';
import { parseRegistryReference } from '../registry/reference.js';

/**
 * Tag of the store's index when the location names none. Defined here, not in registry-format.ts:
 * location parsing runs at every start, and must not load the store's format code.
 */
export const DEFAULT_TAG = 'bootfs-chunks';

/** An `oci://` location, parsed. */
export interface RegistryStoreLocation {
  /** `host[:port]`. */
  registry: string;
  repository: string;
  tag: string;
}

/** Parse `oci://host[:port]/repo[:tag]`; UsageError saying what is wrong otherwise. */
export function parseRegistryStoreLocation(text: string): RegistryStoreLocation {
  const m = /^oci:\/\/(.*)$/i.exec(text);
  if (!m) throw new UsageError(`store location '${short(text)}' is not an oci://host[:port]/repo[:tag] URL`);
  const rest = m[1]!;
  if (/[?#]/.test(rest)) throw new UsageError(`store location '${short(text)}': an oci:// URL takes no query or fragment`);
  const first = rest.split('/')[0]!;
  if (first.includes('@')) throw new UsageError(`store location '${short(text)}': credentials do not go in the URL; use --creds, an auth.json (podman/skopeo login) or ~/.docker/config.json`);
  if (!rest.includes('/')) throw new UsageError(`store location '${short(text)}' has no repository (oci://host[:port]/repo[:tag])`);
  const ref = parseRegistryReference(rest);
  if (ref.digest !== undefined) throw new UsageError(`store location '${short(text)}': a store names a tag, not a digest (oci://host[:port]/repo[:tag])`);
  // docker's rule would read `oci://registry/chunks` as Docker Hub's registry/chunks: require a host.
  if (ref.registry !== first && !(first === 'index.docker.io' && ref.registry === 'docker.io')) {
    throw new UsageError(`store location '${short(text)}': '${short(first)}' is not a registry host (it needs a dot or a port, or to be localhost)`);
  }
  return { registry: ref.registry, repository: ref.repository, tag: ref.tag ?? DEFAULT_TAG };
}

