/**
 * Who a request is, from its Authorization header: a user whose htpasswd
 * password is right, the holder of a valid bearer token (its subject and
 * access; an empty subject is an anonymous token), nobody (no header), or
 * refused: a wrong password, an unreadable header, a forged, expired or
 * foreign token. Refusals are data; the caller answers them with 401.
 */
import type { Presented } from './credentials';
import type { PasswordChecker } from './password-check';
import type { Grant, TokenAuthority } from './tokens';

/** The outcome of identifying a request. */
export type Identity =
  | { kind: 'user'; user: string; access?: Grant[] }
  | { kind: 'anonymous'; access?: Grant[] }
  | { kind: 'refused'; why: 'password' | 'malformed' | 'invalid_token' | 'expired_token' | 'scheme' }
  | { kind: 'busy' };

/** What can check credentials: passwords (htpasswd) and tokens, each when configured. */
export interface Verifiers {
  passwords?: PasswordChecker;
  tokens?: TokenAuthority;
}

/** Identifies the presented credentials. */
export async function identify(p: Presented, v: Verifiers): Promise<Identity> {
  switch (p.kind) {
    case 'none':
      return { kind: 'anonymous' };
    case 'malformed':
      return { kind: 'refused', why: 'malformed' };
    case 'basic': {
      if (!v.passwords) return { kind: 'refused', why: 'scheme' };
      const verdict = await v.passwords.check(p.user, p.password);
      if (verdict === 'busy') return { kind: 'busy' };
      return verdict === 'ok' ? { kind: 'user', user: p.user } : { kind: 'refused', why: 'password' };
    }
    case 'bearer': {
      if (!v.tokens) return { kind: 'refused', why: 'scheme' };
      const t = await v.tokens.verify(p.token);
      if ('refused' in t) return { kind: 'refused', why: t.refused === 'expired' ? 'expired_token' : 'invalid_token' };
      return t.sub === '' ? { kind: 'anonymous', access: t.access } : { kind: 'user', user: t.sub, access: t.access };
    }
  }
}
