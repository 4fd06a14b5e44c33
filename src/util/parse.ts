/** Small parsers of user-given values shared by commands, stores and the boot stub. */
import { UsageError } from '../errors.js';

/** `--tls-verify` / BOOTFS_REGISTRY_TLS_VERIFY: true, false, 1, 0, yes or no. */
export function parseTlsVerify(text: string): boolean {
  const v = text.trim().toLowerCase();
  if (['true', '1', 'yes'].includes(v)) return true;
  if (['false', '0', 'no'].includes(v)) return false;
  throw new UsageError(`--tls-verify takes true or false, not '${text}'`);
}
