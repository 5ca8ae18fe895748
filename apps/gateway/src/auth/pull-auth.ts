/**
 * Pull authentication (issue 12), one Koa middleware in front of the
 * registry routes (and, with NIXERY_PROTECT_STATUS, `/metrics`,
 * `/api/status` and the web pages). Off with NIXERY_AUTH unset: then it is
 * not installed at all.
 *
 * - Who: {@link identify} (htpasswd basic credentials, bearer tokens). An
 *   authenticated user is `ctx.state.user` (admission keys clients by it)
 *   and named in the request's log lines; the credentials never are.
 * - `/v2/` answers 401 with the challenge to anybody without valid
 *   credentials (that is how clients discover authentication, also when
 *   anonymous pulls are allowed); with them, 200.
 * - Repository routes: refused credentials are a 401 always; no
 *   credentials are a 401 with NIXERY_ANONYMOUS=none, else let through; a
 *   token must grant `pull` on the route's repository name (401
 *   `insufficient_scope` otherwise). With NIXERY_ANONYMOUS=pull, an
 *   anonymous client reaches only what is built: {@link PullAuth.authorizeBuild}
 *   refuses the cold build the manifest handler would start.
 * - Status pages need an authenticated user (never anonymous).
 * - Every refusal is counted in `nixery_auth_refused_total{reason}`.
 */
import { readFileSync } from 'node:fs';
import type { AuthConfig, Logger, Metrics, Redis } from '@nixery/shared';
import type { Context, Middleware, Next } from 'koa';
import type { ClientInfo } from '../client-address';
import { addLogFields } from '../request-log';
import { type Challenge, checksBusy, unauthorized } from './challenge';
import { presentedCredentials } from './credentials';
import { parseHtpasswd } from './htpasswd';
import { identify, type Identity, type Verifiers } from './identify';
import { PasswordChecker } from './password-check';
import { fileKey, publicKey, sharedKey } from './token-keys';
import { serveToken } from './token-endpoint';
import { TokenAuthority, allows } from './tokens';

/** The installed authentication. */
export interface PullAuth {
  middleware: Middleware;
  /** Throws the 401 when this request may pull but not build (an anonymous client under NIXERY_ANONYMOUS=pull). */
  authorizeBuild(ctx: Context, name: string): void;
}

const STATUS_PATHS = new Set(['/', '/metrics', '/api/status']);
const NAME_RE = /^\/v2\/(.+)\/(?:manifests|blobs|tags)\//;

/** What a path needs: a registry route (with its repository name, if any), a status page, or nothing. */
function guarded(path: string, protectStatus: boolean): { kind: 'registry'; name?: string } | { kind: 'status' } | null {
  if (path === '/v2' || path.startsWith('/v2/')) {
    const name = NAME_RE.exec(path)?.[1];
    return name === undefined ? { kind: 'registry' } : { kind: 'registry', name };
  }
  if (protectStatus && (STATUS_PATHS.has(path) || path === '/image' || path.startsWith('/image/'))) return { kind: 'status' };
  return null;
}

/** scheme://host the client asked for, as seen through trusted proxies only (ctx.state.client, client-address.ts). */
function requestBase(ctx: Context): string {
  const c = ctx.state.client as Partial<ClientInfo> | undefined;
  return `${c?.proto ?? ctx.protocol}://${c?.host ?? ctx.host}`;
}

/** The authentication of `config.auth`, or null when it is off. Reads the htpasswd and key files now: a bad one stops start-up. */
export function createPullAuth(config: AuthConfig, deps: { redis: Redis; redisPrefix: string; log: Logger; metrics: Metrics; publicUrl?: string }): PullAuth | null {
  if (config.mode === 'off') return null;
  const verifiers: Verifiers = {};
  if (config.htpasswdPath) {
    const table = parseHtpasswd(readFileSync(config.htpasswdPath, 'utf8'));
    for (const s of table.skipped) deps.log.warn({ file: config.htpasswdPath, line: s.line, reason: s.reason }, 'htpasswd line skipped');
    verifiers.passwords = new PasswordChecker(table.users);
    deps.log.info({ users: table.users.size, mode: config.mode, anonymous: config.anonymous }, 'pull authentication on');
  }
  const t = config.token;
  if (config.mode === 'token') {
    const keys = t.publicKeyPath ? publicKey(t.publicKeyPath) : t.keyPath ? fileKey(t.keyPath) : sharedKey(deps.redis, `${deps.redisPrefix}:auth:token-key`);
    verifiers.tokens = new TokenAuthority(keys, t);
  }
  const tokenPath = config.mode === 'token' && !t.publicKeyPath ? (t.realm ? new URL(t.realm).pathname : '/token') : null;

  const challenge = (ctx: Context, name?: string, error?: 'invalid_token' | 'insufficient_scope'): Challenge =>
    config.mode === 'basic'
      ? { scheme: 'basic' }
      : {
          scheme: 'bearer',
          realm: t.realm ?? `${deps.publicUrl ?? requestBase(ctx)}/token`,
          service: t.service,
          ...(name !== undefined ? { name } : {}),
          ...(error ? { error } : {}),
        };

  const middleware = async (ctx: Context, next: Next): Promise<void> => {
    if (tokenPath !== null && ctx.path === tokenPath && verifiers.tokens) return serveToken(ctx, { ...verifiers, tokens: verifiers.tokens }, config.anonymous);
    const need = guarded(ctx.path, config.protectStatus);
    if (!need) return next();
    const name = need.kind === 'registry' ? need.name : undefined;
    const who: Identity = await identify(presentedCredentials(ctx.get('Authorization') || undefined), verifiers);
    const refuse = (reason: string, err: Error): Error => {
      deps.metrics.authRefused.inc({ reason });
      return err;
    };
    if (who.kind === 'busy') throw refuse('busy', checksBusy());
    if (who.kind === 'refused') {
      deps.metrics.authRefused.inc({ reason: who.why });
      const tokenError = who.why === 'invalid_token' || who.why === 'expired_token' ? 'invalid_token' : undefined;
      throw unauthorized(challenge(ctx, name, tokenError), who.why === 'password' ? 'wrong user name or password' : 'credentials refused');
    }
    // Status pages: basic credentials when there is an htpasswd file (browsers, Prometheus), else a token.
    if (need.kind === 'status' && who.kind !== 'user') throw refuse('anonymous', unauthorized(verifiers.passwords ? { scheme: 'basic' } : challenge(ctx)));
    if (who.kind === 'anonymous') {
      // No credentials at all: /v2/ always challenges (clients discover authentication there); the rest per NIXERY_ANONYMOUS.
      if (config.anonymous === 'none' || (name === undefined && who.access === undefined)) throw refuse('anonymous', unauthorized(challenge(ctx, name)));
      ctx.state.anonymous = true;
    }
    if (name !== undefined && who.access !== undefined && !allows(who.access, name, 'pull')) {
      throw refuse('scope', unauthorized(challenge(ctx, name, 'insufficient_scope'), `the token does not grant pull on ${name}`));
    }
    if (who.kind === 'user') {
      ctx.state.user = who.user;
      addLogFields(ctx, { user: who.user });
    }
    return next();
  };

  return {
    middleware,
    authorizeBuild: (ctx, name) => {
      if (ctx.state.anonymous === true && config.anonymous === 'pull') {
        deps.metrics.authRefused.inc({ reason: 'anonymous' });
        throw unauthorized(challenge(ctx, name), 'anonymous clients may pull only images already built; log in to build');
      }
    },
  };
}
