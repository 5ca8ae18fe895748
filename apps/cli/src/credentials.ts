import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CliError, EXIT_USAGE } from './errors';

/** A user name and password for a registry. */
export interface Credentials {
  user: string;
  password: string;
}

/** `--creds user:pass` (the password may hold colons). */
export function parseCreds(text: string): Credentials {
  const i = text.indexOf(':');
  if (i <= 0) throw new CliError('--creds must be user:password', EXIT_USAGE);
  return { user: text.slice(0, i), password: text.slice(i + 1) };
}

/** The host (and port) a Docker config `auths` key names: `host:port`, `https://host/v1/`, ... */
function hostOfKey(key: string): string {
  const bare = key.replace(/^[a-z]+:\/\//, '');
  return bare.split('/')[0] ?? '';
}

/**
 * The credentials the Docker config (`<dir>/config.json`, as `docker login`
 * writes it) holds for `host`: `auths[host].auth`, base64 of `user:password`.
 * None when the file or the entry is missing; credential helpers
 * (`credsStore`, `credHelpers`) are not run.
 */
export async function dockerConfigCreds(dir: string, host: string): Promise<Credentials | undefined> {
  const file = path.join(dir, 'config.json');
  const text = await readFile(file, 'utf8').catch(() => null);
  if (text === null) return undefined;
  let config: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
  try {
    config = JSON.parse(text) as typeof config;
  } catch {
    throw new CliError(`${file} is not JSON`, EXIT_USAGE);
  }
  const entry = Object.entries(config.auths ?? {}).find(([k]) => hostOfKey(k) === host)?.[1];
  if (!entry) return undefined;
  if (entry.auth) return parseCreds(Buffer.from(entry.auth, 'base64').toString('utf8'));
  if (entry.username && entry.password) return { user: entry.username, password: entry.password };
  return undefined;
}
