/**
 * A push target for `nixery push` tests: Debian's docker-registry (CNCF
 * distribution) on loopback with filesystem storage and its access log on,
 * optionally behind htpasswd basic authentication (bcrypt, made with
 * bcryptjs). Uploads are counted on the registry's side, from its access log.
 */
import { createHash, generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { SignJWT } from 'jose';
import { distributionConfig } from './clients';
import { freePort, logTail, makeScratchDir, removeScratchDir, runChecked, startProcess } from './proc';

/** A running push target. */
export interface PushRegistry {
  /** `127.0.0.1:PORT`. */
  host: string;
  dir: string;
  logFile: string;
  /** Access-log lines of requests whose method and path start as given (e.g. `POST`, `/v2/demo/blobs/uploads/`). */
  requests(method: string, pathPrefix: string): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Starts docker-registry; with `htpasswd` only that user (bcrypt-hashed
 * password) may pull or push; with `auth` that `auth:` section is used
 * instead (e.g. `tokenAuthConfig`); with `readOnly` it refuses every write.
 */
export async function startPushRegistry(opts: { htpasswd?: { user: string; password: string }; auth?: string; readOnly?: boolean } = {}): Promise<PushRegistry> {
  const dir = await makeScratchDir('nixery-push-target-');
  const port = await freePort();
  let config = distributionConfig(dir, port);
  // Read-only maintenance mode: every write is refused (405).
  if (opts.readOnly) config = config.replace('  maintenance:\n', '  maintenance:\n    readonly:\n      enabled: true\n');
  if (opts.auth) config += opts.auth;
  else if (opts.htpasswd) {
    const file = join(dir, 'htpasswd');
    await writeFile(file, `${opts.htpasswd.user}:${bcrypt.hashSync(opts.htpasswd.password, 6)}\n`);
    config += ['auth:', '  htpasswd:', '    realm: nixery-test', `    path: ${file}`, ''].join('\n');
  }
  const configFile = join(dir, 'config.yml');
  await writeFile(configFile, config);
  const logFile = join(dir, 'registry.log');
  const proc = await startProcess({
    name: 'docker-registry',
    cmd: 'docker-registry',
    args: ['serve', configFile],
    logFile,
    ready: async () =>
      (await logTail(logFile, 1_000_000)).includes(`listening on 127.0.0.1:${port}`) &&
      [200, 401].includes((await fetch(`http://127.0.0.1:${port}/v2/`)).status),
    readyTimeoutMs: 30_000,
  });
  return {
    host: `127.0.0.1:${port}`,
    dir,
    logFile,
    requests: async (method, pathPrefix) => {
      const text = await readFile(logFile, 'utf8');
      return text.split('\n').filter((l) => l.includes(`"${method} ${pathPrefix}`)).length;
    },
    stop: async () => {
      await proc.stop();
      await removeScratchDir(dir);
    },
  };
}

/** A token issuer for docker-registry's token authentication, as distribution's token specification describes. */
export interface TokenIssuer {
  /** The realm docker-registry sends clients to (`http://127.0.0.1:PORT/token`). */
  realm: string;
  /** The issuer's certificate (PEM), docker-registry's `rootcertbundle`. */
  certFile: string;
  /** Token requests seen: the scope asked and whether the credentials were right. */
  requests: { scope: string | null; service: string | null; authorized: boolean }[];
  close(): Promise<void>;
}

const ISSUER = 'nixery-test-issuer';
const SERVICE = 'nixery-test-registry';

/** libtrust's key id, which distribution 2.8 looks a token's `kid` up by: base32 of the first 240 bits of the SHA-256 of the DER public key, in groups of 4. */
function libtrustKeyId(publicKeyDer: Buffer): string {
  const bits = createHash('sha256').update(publicKeyDer).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let out = '';
  let acc = 0;
  let n = 0;
  for (const byte of bits) {
    acc = (acc << 8) | byte;
    n += 8;
    while (n >= 5) {
      out += alphabet[(acc >> (n - 5)) & 31];
      n -= 5;
    }
  }
  return out.match(/.{4}/g)!.join(':');
}

/**
 * Starts a loopback token issuer: an EC P-256 key with a self-signed
 * certificate (openssl), answering `GET /token?service&scope` with an ES256
 * JWT granting the asked repository actions to `user` when the request's
 * Basic credentials are right, 401 otherwise.
 */
export async function startTokenIssuer(dir: string, user: { user: string; password: string }): Promise<TokenIssuer> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keyFile = join(dir, 'issuer-key.pem');
  const certFile = join(dir, 'issuer-cert.pem');
  await writeFile(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await runChecked('openssl', ['req', '-x509', '-new', '-key', keyFile, '-subj', `/CN=${ISSUER}`, '-days', '2', '-out', certFile]);
  const kid = libtrustKeyId(publicKey.export({ type: 'spki', format: 'der' }));
  const requests: TokenIssuer['requests'] = [];
  const expected = `Basic ${Buffer.from(`${user.user}:${user.password}`).toString('base64')}`;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const scope = url.searchParams.get('scope');
    const authorized = req.headers.authorization === expected;
    requests.push({ scope, service: url.searchParams.get('service'), authorized });
    if (!authorized) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'wrong credentials' }] }));
      return;
    }
    const [type, name, actions] = (scope ?? '').split(':');
    const access = type === 'repository' && name ? [{ type, name, actions: (actions ?? '').split(',').filter(Boolean) }] : [];
    new SignJWT({ access })
      .setProtectedHeader({ alg: 'ES256', kid })
      .setIssuer(ISSUER)
      .setSubject(user.user)
      .setAudience(SERVICE)
      .setIssuedAt()
      .setNotBefore('0s')
      .setExpirationTime('5m')
      .setJti(randomUUID())
      .sign(privateKey)
      .then((token) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ token, expires_in: 300 }));
      }, (e: unknown) => {
        res.writeHead(500);
        res.end(String(e));
      });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    certFile,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** The `auth:` section of a docker-registry config that trusts `issuer`'s tokens. */
export function tokenAuthConfig(issuer: Pick<TokenIssuer, 'realm' | 'certFile'>): string {
  return ['auth:', '  token:', `    realm: ${issuer.realm}`, `    service: ${SERVICE}`, `    issuer: ${ISSUER}`, `    rootcertbundle: ${issuer.certFile}`, ''].join('\n');
}
