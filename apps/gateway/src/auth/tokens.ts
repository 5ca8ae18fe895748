/**
 * Bearer tokens of distribution's token specification, as JWTs (jose):
 * claims `iss`, `sub` (empty for an anonymous client), `aud` (the service),
 * `exp`, `nbf`, `iat`, `jti` and `access: [{type, name, actions}]`.
 * Verifying checks signature, algorithm, issuer, audience and times (30 s
 * of clock skew between machines allowed); a token that fails any of these
 * is `invalid` or `expired`, never an exception.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, errors, jwtVerify } from 'jose';
import type { TokenKeys } from './token-keys';

/** One access entry: what a token allows on one resource. */
export interface Grant {
  type: string;
  name: string;
  actions: string[];
}

/** A verified token: who (empty subject: anonymous) and what it allows. */
export interface VerifiedToken {
  sub: string;
  access: Grant[];
}

/** A token as the token endpoint returns it. */
export interface IssuedToken {
  token: string;
  expiresIn: number;
  issuedAt: Date;
}

/** Settings shared by issuing and verifying. */
export interface TokenSettings {
  issuer: string;
  service: string;
  ttlSeconds: number;
}

const SKEW_SECONDS = 30;

function grantsOf(claim: unknown): Grant[] {
  if (!Array.isArray(claim)) return [];
  return claim.flatMap((g: unknown) => {
    const e = g as Partial<Grant> | null;
    return e && typeof e.type === 'string' && typeof e.name === 'string' && Array.isArray(e.actions)
      ? [{ type: e.type, name: e.name, actions: e.actions.filter((a): a is string => typeof a === 'string') }]
      : [];
  });
}

/** Signs and verifies tokens with one issuer's keys. */
export class TokenAuthority {
  constructor(private readonly keys: TokenKeys, private readonly settings: TokenSettings) {}

  /** Whether this authority can issue tokens (false for an external issuer's key). */
  get issues(): boolean {
    return this.keys.signing !== undefined;
  }

  /** A signed token for `sub` granting `access`. */
  async issue(sub: string, access: Grant[]): Promise<IssuedToken> {
    if (!this.keys.signing) throw new Error('tokens are issued by an external issuer');
    const k = await this.keys.signing();
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ access })
      .setProtectedHeader({ alg: k.alg, typ: 'JWT', kid: k.kid })
      .setIssuer(this.settings.issuer)
      .setSubject(sub)
      .setAudience(this.settings.service)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + this.settings.ttlSeconds)
      .setJti(randomUUID())
      .sign(k.key);
    return { token, expiresIn: this.settings.ttlSeconds, issuedAt: new Date(now * 1000) };
  }

  /** The token's subject and access, or why it is refused. */
  async verify(token: string): Promise<VerifiedToken | { refused: 'invalid' | 'expired' }> {
    const first = await this.tryVerify(token);
    if (first !== 'bad_signature' || !this.keys.refresh || !(await this.keys.refresh())) return first === 'bad_signature' ? { refused: 'invalid' } : first;
    const second = await this.tryVerify(token);
    return second === 'bad_signature' ? { refused: 'invalid' } : second;
  }

  private async tryVerify(token: string): Promise<VerifiedToken | { refused: 'invalid' | 'expired' } | 'bad_signature'> {
    const k = await this.keys.verifying();
    try {
      const { payload } = await jwtVerify(token, k.key, {
        algorithms: [k.alg],
        issuer: this.settings.issuer,
        audience: this.settings.service,
        clockTolerance: SKEW_SECONDS,
        requiredClaims: ['exp'],
      });
      return { sub: typeof payload.sub === 'string' ? payload.sub : '', access: grantsOf(payload.access) };
    } catch (err) {
      if (err instanceof errors.JWTExpired) return { refused: 'expired' };
      if (err instanceof errors.JWSSignatureVerificationFailed) return 'bad_signature';
      if (err instanceof errors.JOSEError) return { refused: 'invalid' };
      throw err;
    }
  }
}

/** Whether `access` allows `action` on repository `name`. */
export function allows(access: Grant[], name: string, action: string): boolean {
  return access.some((g) => g.type === 'repository' && g.name === name && (g.actions.includes(action) || g.actions.includes('*')));
}
