/**
 * The 401 answers of pull authentication: the registry error `UNAUTHORIZED`
 * with the `WWW-Authenticate` challenge that tells the client how to
 * authenticate. Basic: `Basic realm="Nixery"`. Token (distribution's token
 * specification): `Bearer realm="<token endpoint>",service="<service>"`,
 * with `scope="repository:<name>:pull"` when the request names a
 * repository and `error="invalid_token"` or `"insufficient_scope"` when a
 * token was presented and refused.
 */
import { RegistryError } from '@nixery/shared';

/** The realm of basic challenges. */
export const BASIC_REALM = 'Nixery';

/** What a challenge asks for. */
export type Challenge =
  | { scheme: 'basic' }
  | { scheme: 'bearer'; realm: string; service: string; name?: string; error?: 'invalid_token' | 'insufficient_scope' };

/** The WWW-Authenticate header value of a challenge. Names are validated registry names, realm and service come from the configuration. */
export function challengeHeader(c: Challenge): string {
  if (c.scheme === 'basic') return `Basic realm="${BASIC_REALM}", charset="UTF-8"`;
  const parts = [`realm="${c.realm}"`, `service="${c.service}"`];
  if (c.name !== undefined) parts.push(`scope="repository:${c.name}:pull"`);
  if (c.error) parts.push(`error="${c.error}"`);
  return `Bearer ${parts.join(',')}`;
}

/** The 401 registry error carrying a challenge. */
export function unauthorized(c: Challenge, message = 'authentication required'): RegistryError {
  return new RegistryError('UNAUTHORIZED', message, undefined, { 'WWW-Authenticate': challengeHeader(c) });
}

/** Too many password checks are already running or waiting (see password-check.ts). */
export function checksBusy(): RegistryError {
  return new RegistryError('TOOMANYREQUESTS', 'too many password checks at once; retry shortly', undefined, { 'Retry-After': '1' });
}
