/**
 * Registry auth pieces: WWW-Authenticate challenges (RFC 7235: `Bearer realm="…",service="…",
 * scope="…"`, `Basic realm="…"`), scopes (`repository:NAME:pull,push`) and the token endpoint's
 * answer (distribution's token spec: `token` or `access_token`, `expires_in` seconds, default 60).
 */

/** One challenge of a WWW-Authenticate header. */
export interface Challenge {
  /** Lower-case scheme: `bearer`, `basic`, … */
  scheme: string;
  /** Parameters with lower-case names. */
  params: Record<string, string>;
}

/** A token68 or a quoted-string/token parameter list, as RFC 7235 allows. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/;

/** Parse every challenge of one or more WWW-Authenticate headers (malformed tails are ignored). */
export function parseWwwAuthenticate(header: string | string[] | undefined): Challenge[] {
  const out: Challenge[] = [];
  for (const h of header === undefined ? [] : Array.isArray(header) ? header : [header]) {
    let s = h;
    let current: Challenge | undefined;
    for (;;) {
      s = s.replace(/^[\s,]+/, '');
      if (s === '') break;
      const tok = TOKEN.exec(s);
      if (!tok) break;
      const name = tok[0];
      const after = s.slice(name.length);
      const eq = /^\s*=\s*/.exec(after);
      if (current && eq && !/^\s*=\s*=*\s*(,|$)/.test(after)) {
        // name=value: a parameter of the current challenge.
        let rest = after.slice(eq[0].length);
        let value: string;
        if (rest.startsWith('"')) {
          value = '';
          let i = 1;
          for (; i < rest.length && rest[i] !== '"'; i++) {
            if (rest[i] === '\\' && i + 1 < rest.length) i++;
            value += rest[i];
          }
          rest = rest.slice(i + 1);
        } else {
          // RFC 7235 wants a token here; servers also send bare URLs, so take up to , or space.
          value = /^[^\s,]*/.exec(rest)![0];
          rest = rest.slice(value.length);
        }
        current.params[name.toLowerCase()] = value;
        s = rest;
        continue;
      }
      // A new scheme (possibly followed by a token68, which no registry scheme uses).
      current = { scheme: name.toLowerCase(), params: {} };
      out.push(current);
      s = after.replace(/^\s+[A-Za-z0-9._~+/-]+=*\s*(?=,|$)/, '');
    }
  }
  return out;
}

/** `repository:NAME:ACTIONS`. */
export function repositoryScope(repository: string, actions: 'pull' | 'pull,push'): string {
  return `repository:${repository}:${actions}`;
}

/** Scopes as a stable cache key (sorted, space separated, as the token spec sends several). */
export function scopeKey(scopes: readonly string[]): string {
  return [...new Set(scopes)].sort().join(' ');
}

/** The scopes a challenge asks for (space-separated in one parameter). */
export function challengeScopes(c: Challenge): string[] {
  return (c.params.scope ?? '').split(' ').filter((s) => s !== '');
}

/** A bearer token and when it stops being usable (ms since the epoch). */
export interface BearerToken {
  token: string;
  expiresAt: number;
}

/** Tokens are refreshed this long before they expire, so a request never races the expiry. */
const EXPIRY_MARGIN_MS = 10_000;
/** distribution's token spec: a token without expires_in lasts 60 s. */
const DEFAULT_EXPIRES_S = 60;

/** The token endpoint's JSON answer as a BearerToken; undefined when it holds no token. */
export function parseTokenResponse(body: unknown, now = Date.now()): BearerToken | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const o = body as Record<string, unknown>;
  const token = typeof o.token === 'string' && o.token !== '' ? o.token : typeof o.access_token === 'string' && o.access_token !== '' ? o.access_token : undefined;
  if (token === undefined || /[\s\u0000-\u001f]/.test(token)) return undefined;
  const expires = typeof o.expires_in === 'number' && Number.isFinite(o.expires_in) && o.expires_in > 0 ? o.expires_in : DEFAULT_EXPIRES_S;
  return { token, expiresAt: now + Math.max(expires * 1000 - EXPIRY_MARGIN_MS, 1000) };
}
