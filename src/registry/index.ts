/** The registry client (OCI distribution API v2): one repository at a time, auth, TLS and retries. */
export type { BlobRepo, BlobSource, FetchedManifest, UploadResult } from './types.js';
export { RegistryRepo, openRegistryRepo, MANIFEST_ACCEPT } from './client.js';
export { RegistryAuthError, RegistryDigestError } from './errors.js';
export { resolveRegistryOptions, parseTlsVerify, type RegistryOptions } from './options.js';
export { findCredentials, parseCreds, defaultAuthFiles, type Credentials, type CredentialOptions } from './credentials.js';
export { parseRegistryReference, parseRepoLocation, formatRegistryReference, type RegistryReference, type RepoLocation } from './reference.js';
