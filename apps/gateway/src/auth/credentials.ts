/**
 * What a request presents in its Authorization header: HTTP basic
 * credentials, a bearer token, nothing, or something unreadable (which is
 * answered 401 like a wrong password, never 500). Basic credentials with an
 * empty user and password are none. The values are secrets:
 * they are never logged.
 */
export type Presented =
  | { kind: 'none' }
  | { kind: 'basic'; user: string; password: string }
  | { kind: 'bearer'; token: string }
  | { kind: 'malformed' };

/** Reads an Authorization header value. */
export function presentedCredentials(header: string | undefined): Presented {
  if (!header) return { kind: 'none' };
  const m = /^(\S+)\s+(\S+)\s*$/.exec(header);
  if (!m) return { kind: 'malformed' };
  const scheme = m[1]!.toLowerCase();
  const value = m[2]!;
  if (scheme === 'bearer') return { kind: 'bearer', token: value };
  if (scheme !== 'basic' || !/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return { kind: 'malformed' };
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  // containers/image (skopeo, podman) without credentials answers a basic challenge with an empty user and password.
  if (decoded === ':') return { kind: 'none' };
  const colon = decoded.indexOf(':');
  if (colon <= 0) return { kind: 'malformed' };
  return { kind: 'basic', user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
