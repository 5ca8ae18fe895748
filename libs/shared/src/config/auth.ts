import { z } from 'zod';

/**
 * Pull authentication settings (issue 12), read with the rest of the
 * configuration. Off by default: with NIXERY_AUTH unset everyone may do
 * everything, as in Nixery. The gateway's `auth/` folder does the work.
 */
export interface AuthConfig {
  /** NIXERY_AUTH: `off` (default), `basic` (htpasswd) or `token` (distribution's token flow). */
  mode: 'off' | 'basic' | 'token';
  /** NIXERY_HTPASSWD: an htpasswd file of bcrypt entries (`htpasswd -B`). Needed for `basic`; for `token` it is who the built-in endpoint issues tokens to. */
  htpasswdPath?: string;
  /**
   * NIXERY_ANONYMOUS (default `none`): what clients without credentials may do while
   * authentication is on: `build` (everything), `pull` (only images already built:
   * a manifest cache hit, a manifest by digest, a blob, tags) or `none`.
   */
  anonymous: 'build' | 'pull' | 'none';
  /** NIXERY_PROTECT_STATUS (default false): `/metrics`, `/api/status` and the web pages need credentials too. */
  protectStatus: boolean;
  /** Token mode only. */
  token: TokenConfig;
}

/** Settings of `NIXERY_AUTH=token`. */
export interface TokenConfig {
  /** NIXERY_TOKEN_REALM: the token endpoint's URL in challenges; default `<request scheme and host>/token`, served by the gateway. */
  realm?: string;
  /** NIXERY_TOKEN_SERVICE (default `nixery`): the challenge's `service` and the tokens' `aud`. */
  service: string;
  /** NIXERY_TOKEN_ISSUER: the tokens' `iss` (default `nixery` for the built-in issuer; required for an external one). */
  issuer: string;
  /** NIXERY_TOKEN_TTL (seconds, default 300): lifetime of the tokens the built-in endpoint issues. */
  ttlSeconds: number;
  /** NIXERY_TOKEN_KEY: PEM private key (EC P-256/P-384, RSA or Ed25519) the built-in endpoint signs with; default one generated once and kept in Redis. */
  keyPath?: string;
  /** NIXERY_TOKEN_PUBLIC_KEY: PEM public key of an external issuer: then the gateway only verifies tokens and serves no token endpoint. */
  publicKeyPath?: string;
}

/** The environment variables of {@link AuthConfig}, for the config schema. */
export const AuthEnv = {
  NIXERY_AUTH: z.enum(['off', 'basic', 'token']).default('off'),
  NIXERY_HTPASSWD: z.string().min(1).optional(),
  NIXERY_ANONYMOUS: z.enum(['build', 'pull', 'none']).default('none'),
  NIXERY_PROTECT_STATUS: z.enum(['1', '0', 'true', 'false', 'yes', 'no']).default('false'),
  NIXERY_TOKEN_REALM: z.string().url().optional(),
  NIXERY_TOKEN_SERVICE: z.string().min(1).default('nixery'),
  NIXERY_TOKEN_ISSUER: z.string().min(1).optional(),
  NIXERY_TOKEN_TTL: z.coerce.number().int().min(10).max(86_400).default(300),
  NIXERY_TOKEN_KEY: z.string().min(1).optional(),
  NIXERY_TOKEN_PUBLIC_KEY: z.string().min(1).optional(),
};

const AuthEnvSchema = z.object(AuthEnv);
type AuthEnvValues = z.infer<typeof AuthEnvSchema>;

/** The authentication settings from the parsed environment; a string names what is wrong. */
export function authConfig(e: AuthEnvValues): AuthConfig | { error: string } {
  const external = e.NIXERY_TOKEN_PUBLIC_KEY !== undefined;
  if (e.NIXERY_AUTH === 'basic' && !e.NIXERY_HTPASSWD) return { error: 'NIXERY_AUTH=basic needs NIXERY_HTPASSWD (an htpasswd file with bcrypt entries)' };
  if (e.NIXERY_AUTH === 'token') {
    if (external && e.NIXERY_TOKEN_KEY) return { error: 'set NIXERY_TOKEN_KEY (sign tokens here) or NIXERY_TOKEN_PUBLIC_KEY (trust an external issuer), not both' };
    if (external && (!e.NIXERY_TOKEN_ISSUER || !e.NIXERY_TOKEN_REALM)) return { error: 'NIXERY_TOKEN_PUBLIC_KEY needs NIXERY_TOKEN_ISSUER and NIXERY_TOKEN_REALM (the external token endpoint)' };
    if (!external && !e.NIXERY_HTPASSWD && e.NIXERY_ANONYMOUS === 'none') return { error: 'NIXERY_AUTH=token with the built-in issuer needs NIXERY_HTPASSWD or NIXERY_ANONYMOUS=pull|build' };
  }
  const protectStatus = ['1', 'true', 'yes'].includes(e.NIXERY_PROTECT_STATUS);
  return {
    mode: e.NIXERY_AUTH,
    ...(e.NIXERY_HTPASSWD ? { htpasswdPath: e.NIXERY_HTPASSWD } : {}),
    anonymous: e.NIXERY_ANONYMOUS,
    protectStatus,
    token: {
      ...(e.NIXERY_TOKEN_REALM ? { realm: e.NIXERY_TOKEN_REALM } : {}),
      service: e.NIXERY_TOKEN_SERVICE,
      issuer: e.NIXERY_TOKEN_ISSUER ?? 'nixery',
      ttlSeconds: e.NIXERY_TOKEN_TTL,
      ...(e.NIXERY_TOKEN_KEY ? { keyPath: e.NIXERY_TOKEN_KEY } : {}),
      ...(external ? { publicKeyPath: e.NIXERY_TOKEN_PUBLIC_KEY } : {}),
    },
  };
}
