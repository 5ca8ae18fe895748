import { CliError } from './errors';
import type { Credentials } from './credentials';

/** One `WWW-Authenticate` challenge: its scheme and parameters. */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."` (one challenge; quoted or token values). */
export function parseChallenge(header: string): Challenge | null {
  const m = /^\s*([A-Za-z]+)\s*(.*)$/.exec(header);
  if (!m) return null;
  const params: Record<string, string> = {};
  const re = /([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  for (let p = re.exec(m[2] ?? ''); p; p = re.exec(m[2] ?? '')) params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  return { scheme: m[1]!.toLowerCase(), params };
}

const basic = (c: Credentials) => `Basic ${Buffer.from(`${c.user}:${c.password}`).toString('base64')}`;

/** Bound on one token request. */
const TOKEN_TIMEOUT_MS = 30_000;

/**
 * The Authorization header a registry asks for, learned from its 401
 * challenges: Basic with the credentials, or Bearer with a token fetched
 * from the challenge's realm (`service`, and the push scope of the
 * repository) as distribution's token specification describes, with the
 * credentials as Basic on the token request when there are any.
 */
export class RegistryAuth {
  private header: string | undefined;

  constructor(
    private readonly creds: Credentials | undefined,
    private readonly scope: string,
  ) {}

  /** The header to send now (none until a challenge was answered). */
  get authorization(): string | undefined {
    return this.header;
  }

  /** Answers a 401: sets the header for the retry, or throws when it cannot be met. */
  async answer(res: Response): Promise<void> {
    const challenge = parseChallenge(res.headers.get('www-authenticate') ?? '');
    if (challenge?.scheme === 'basic') {
      if (!this.creds) throw new CliError('the registry asks for a user and password: give --creds user:pass or docker login');
      if (this.header === basic(this.creds)) throw new CliError(`the registry refused the credentials of ${this.creds.user}: ${res.status} ${await res.text()}`);
      this.header = basic(this.creds);
      return;
    }
    if (challenge?.scheme === 'bearer' && challenge.params.realm) {
      const url = new URL(challenge.params.realm);
      if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
      // The push scope up front (a HEAD's challenge asks only pull), and the challenge's own when it differs.
      url.searchParams.append('scope', this.scope);
      if (challenge.params.scope && challenge.params.scope !== this.scope) url.searchParams.append('scope', challenge.params.scope);
      if (this.creds) url.searchParams.set('account', this.creds.user);
      const tokenRes = await fetch(url, {
        headers: this.creds ? { Authorization: basic(this.creds) } : {},
        signal: AbortSignal.timeout(TOKEN_TIMEOUT_MS),
      }).catch((e: unknown) => {
        throw new CliError(`cannot reach the token service ${url.origin}: ${e instanceof Error ? e.message : String(e)}`);
      });
      const text = await tokenRes.text();
      if (!tokenRes.ok) throw new CliError(`the token service refused: ${tokenRes.status} ${text}`);
      const body = JSON.parse(text) as { token?: string; access_token?: string };
      const token = body.token ?? body.access_token;
      if (!token) throw new CliError('the token service answered without a token');
      if (this.header === `Bearer ${token}`) throw new CliError(`the registry refused the token: ${res.status} ${await res.text()}`);
      this.header = `Bearer ${token}`;
      return;
    }
    throw new CliError(`the registry asks for authentication it does not describe: ${res.status} ${await res.text()}`);
  }
}
