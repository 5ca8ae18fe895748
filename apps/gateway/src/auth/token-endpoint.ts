/**
 * The built-in token endpoint of NIXERY_AUTH=token (distribution's token
 * specification): `GET <realm>?service=...&scope=repository:<name>:pull&account=...`
 * with basic credentials (checked against the htpasswd file) or none (an
 * anonymous token, unless NIXERY_ANONYMOUS=none). Only `pull` on
 * repositories with valid names is ever granted; other scopes are left out
 * of the token, as the specification says. Answers
 * `{token, access_token, expires_in, issued_at}`; wrong credentials are a
 * 401 with a basic challenge.
 */
import { RegistryError, validateName } from '@nixery/shared';
import type { Context } from 'koa';
import { checksBusy, unauthorized } from './challenge';
import { presentedCredentials } from './credentials';
import { identify, type Verifiers } from './identify';
import type { Grant, TokenAuthority } from './tokens';

/** The repositories with `pull` that the requested scopes ask for. */
export function pullGrants(scopes: string[]): Grant[] {
  const names = new Set<string>();
  for (const scope of scopes.flatMap((s) => s.split(' ')).filter(Boolean)) {
    const first = scope.indexOf(':');
    const last = scope.lastIndexOf(':');
    if (first < 0 || last === first || scope.slice(0, first) !== 'repository') continue;
    const name = scope.slice(first + 1, last);
    if (scope.slice(last + 1).split(',').includes('pull') && !validateName(name)) names.add(name);
  }
  return [...names].map((name) => ({ type: 'repository', name, actions: ['pull'] }));
}

/** Answers one token request. */
export async function serveToken(ctx: Context, v: Verifiers & { tokens: TokenAuthority }, anonymous: 'build' | 'pull' | 'none'): Promise<void> {
  ctx.state.route = 'token';
  if (ctx.method !== 'GET') throw new RegistryError('UNSUPPORTED', 'the token endpoint answers GET');
  const who = await identify(presentedCredentials(ctx.get('Authorization') || undefined), { passwords: v.passwords });
  if (who.kind === 'busy') throw checksBusy();
  if (who.kind === 'refused') throw unauthorized({ scheme: 'basic' }, 'wrong user name or password');
  if (who.kind === 'anonymous' && anonymous === 'none') throw unauthorized({ scheme: 'basic' });
  const scope = ctx.query.scope;
  const access = pullGrants(scope === undefined ? [] : Array.isArray(scope) ? scope : [scope]);
  const issued = await v.tokens.issue(who.kind === 'user' ? who.user : '', access);
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Content-Type', 'application/json');
  ctx.body = Buffer.from(
    JSON.stringify({ token: issued.token, access_token: issued.token, expires_in: issued.expiresIn, issued_at: issued.issuedAt.toISOString() }),
  );
}
