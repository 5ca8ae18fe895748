/**
 * Pull authentication (issue 12, point 4), end to end with a real Docker
 * engine and skopeo against `npm start` Nixerys:
 *
 * - NIXERY_AUTH=basic with an htpasswd file of bcrypt (`$2y$`, cost 10)
 *   entries: docker login + pull + run, skopeo --creds, wrong password and
 *   no credentials 401 with the Basic challenge; NIXERY_ANONYMOUS=pull
 *   lets anonymous clients pull what is built and nothing else;
 *   NIXERY_PROTECT_STATUS guards /metrics, /api/status and the page;
 * - NIXERY_AUTH=token: the built-in token endpoint (key generated and kept
 *   in Redis; or the operator's key file), docker login + pull + run and
 *   skopeo through it, forged and expired tokens 401; an external issuer's
 *   public key: its tokens pass, others are refused;
 * - admission keys clients by the authenticated user (two users on one
 *   address have a build bucket each);
 * - no password, basic credential or token appears in the log file.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { SignJWT, decodeJwt, importSPKI, jwtVerify } from 'jose';
import { type Dockerd, startDockerd } from '../helpers/dockerd';
import { MANIFEST_ACCEPT, type NixeryInstance, metricValue, startNixery } from '../helpers/nixery';
import { makeScratchDir, removeScratchDir, run } from '../helpers/proc';

const USER = 'alice';
const PASS = 'correct-horse-battery-42';
const WRONG = 'wrong-password-7';
const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
const ALICE = basic(USER, PASS);

let scratch: string;
let htpasswd: string;
let docker: Dockerd;
/** Every secret a test handed to Nixery, to look for in its logs. */
const secrets: string[] = [PASS, WRONG, ALICE.slice(6), basic(USER, WRONG).slice(6)];

before(async () => {
  scratch = await makeScratchDir('nixery-auth-');
  // As `htpasswd -B` writes it: bcrypt, cost 10, the `$2y$` prefix.
  const hash = bcrypt.hashSync(PASS, 10).replace(/^\$2[ab]\$/, '$2y$');
  assert.match(hash, /^\$2y\$10\$/);
  htpasswd = path.join(scratch, 'htpasswd');
  await writeFile(htpasswd, `# users\n${USER}:${hash}\n`);
  docker = await startDockerd();
});
after(async () => {
  await docker?.stop();
  if (scratch) await removeScratchDir(scratch);
});

/** Starts a Nixery (its environment made then) before a suite's tests and stops it after; the tests read `.nx`. */
function suiteNixery(env: () => Promise<Record<string, string>>): { nx: NixeryInstance } {
  const holder = {} as { nx: NixeryInstance };
  before(async () => {
    holder.nx = await startNixery(await env());
  });
  after(async () => holder.nx?.stop());
  return holder;
}

async function get(url: string, auth?: string, accept = MANIFEST_ACCEPT): Promise<Response> {
  return fetch(url, { headers: { Accept: accept, ...(auth ? { Authorization: auth } : {}) } });
}

async function assertUnauthorized(r: Response, challenge: RegExp): Promise<void> {
  assert.equal(r.status, 401);
  assert.match(r.headers.get('www-authenticate') ?? '', challenge);
  const body = (await r.json()) as { errors: { code: string }[] };
  assert.equal(body.errors[0]?.code, 'UNAUTHORIZED');
}

function skopeo(args: string[]) {
  return run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 300_000 });
}

async function dockerLoginPullRun(nx: NixeryInstance): Promise<void> {
  const login = await docker.docker(['login', '-u', USER, '--password-stdin', nx.host], { input: PASS });
  assert.equal(login.code, 0, login.stderr);
  assert.match(login.stdout, /Login Succeeded/);
  const pull = await docker.docker(['pull', `${nx.host}/shell/hello`], { timeoutMs: 300_000 });
  assert.equal(pull.code, 0, pull.stderr);
  const r = await docker.docker(['run', '--rm', '--network', 'none', `${nx.host}/shell/hello`, 'hello']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'Hello, world!');
  const badLogin = await docker.docker(['login', '-u', USER, '--password-stdin', nx.host], { input: WRONG });
  assert.notEqual(badLogin.code, 0);
  assert.match(badLogin.stderr, /unauthorized|401/i);
}

async function assertNoSecretsLogged(nx: NixeryInstance, more: string[] = []): Promise<void> {
  const text = await readFile(nx.logFile, 'utf8');
  assert.ok(text.includes('"msg":"request"'), 'the log has request lines (LOG_LEVEL=debug)');
  for (const s of [...secrets, ...more]) assert.ok(!text.includes(s), `a credential is in ${nx.logFile}`);
  assert.ok(!/authorization/i.test(text), 'no Authorization header is logged');
}

describe('NIXERY_AUTH=basic, NIXERY_ANONYMOUS=none, NIXERY_PROTECT_STATUS=true', () => {
  const s = suiteNixery(async () => ({ NIXERY_AUTH: 'basic', NIXERY_HTPASSWD: htpasswd, NIXERY_PROTECT_STATUS: 'true' }));

  it('/v2/ challenges without credentials and with a wrong password, answers 200 with the right one', async () => {
    await assertUnauthorized(await get(`${s.nx.url}/v2/`), /^Basic realm="Nixery"/);
    await assertUnauthorized(await get(`${s.nx.url}/v2/`, basic(USER, WRONG)), /^Basic realm=/);
    await assertUnauthorized(await get(`${s.nx.url}/v2/`, basic('mallory', PASS)), /^Basic realm=/);
    await assertUnauthorized(await get(`${s.nx.url}/v2/`, 'Basic !!!'), /^Basic realm=/);
    assert.equal((await get(`${s.nx.url}/v2/`, ALICE)).status, 200);
    await assertUnauthorized(await get(`${s.nx.url}/v2/shell/hello/manifests/latest`), /^Basic /);
    await assertUnauthorized(await get(`${s.nx.url}/v2/shell/hello/tags/list`, basic(USER, WRONG)), /^Basic /);
  });

  it('a Docker engine logs in, pulls and runs; a wrong password fails docker login', async () => {
    await dockerLoginPullRun(s.nx);
  });

  it('skopeo with --creds inspects and copies; with a wrong password or none it is refused', async () => {
    const ref = `docker://${s.nx.host}/shell/hello:latest`;
    const ok = await skopeo(['inspect', '--tls-verify=false', '--no-tags', '--creds', `${USER}:${PASS}`, ref]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as { Architecture: string }).Architecture, 'amd64');
    const copy = await skopeo(['copy', '--src-tls-verify=false', '--src-creds', `${USER}:${PASS}`, ref, `oci:${path.join(scratch, 'oci-basic')}:latest`]);
    assert.equal(copy.code, 0, copy.stderr);
    const wrong = await skopeo(['inspect', '--tls-verify=false', '--no-tags', '--creds', `${USER}:${WRONG}`, ref]);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /401|unauthorized/i);
    const none = await skopeo(['inspect', '--tls-verify=false', '--no-tags', ref]);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /401|unauthorized|authentication required/i);
  });

  it('NIXERY_PROTECT_STATUS: /metrics, /api/status and the page need credentials; /healthz does not', async () => {
    for (const p of ['/metrics', '/api/status', '/', '/image/shell/hello']) {
      await assertUnauthorized(await get(`${s.nx.url}${p}`, undefined, '*/*'), /^Basic /);
      await assertUnauthorized(await get(`${s.nx.url}${p}`, basic(USER, WRONG), '*/*'), /^Basic /);
      assert.equal((await get(`${s.nx.url}${p}`, ALICE, '*/*')).status, 200, p);
    }
    assert.equal((await get(`${s.nx.url}/healthz`, undefined, '*/*')).status, 200);
    // Refusals are counted by reason (the wrong passwords and missing credentials of this suite).
    const text = await (await get(`${s.nx.url}/metrics`, ALICE, '*/*')).text();
    assert.ok(metricValue(text, 'nixery_auth_refused_total', { reason: 'password' }) >= 6);
    assert.ok(metricValue(text, 'nixery_auth_refused_total', { reason: 'anonymous' }) >= 5);
    assert.ok(metricValue(text, 'nixery_auth_refused_total', { reason: 'malformed' }) >= 1);
  });

  it('no credential reaches the log', async () => {
    await assertNoSecretsLogged(s.nx);
  });
});

describe('NIXERY_AUTH=basic, NIXERY_ANONYMOUS=pull: anonymous clients pull only what is built', () => {
  const s = suiteNixery(async () => ({ NIXERY_AUTH: 'basic', NIXERY_HTPASSWD: htpasswd, NIXERY_ANONYMOUS: 'pull' }));

  it('a cold build is 401 for them; once a user has built it, manifest and blobs are theirs (skopeo without credentials too)', async () => {
    const manifest = `${s.nx.url}/v2/shell/hello/manifests/latest`;
    await assertUnauthorized(await get(manifest), /^Basic /);
    assert.equal((await get(`${s.nx.url}/v2/`)).status, 401, '/v2/ still challenges, so clients find the login');
    const built = await get(manifest, ALICE);
    assert.equal(built.status, 200);
    const m = (await built.json()) as { layers: { digest: string }[] };
    assert.equal((await get(manifest)).status, 200);
    const blob = await get(`${s.nx.url}/v2/shell/hello/blobs/${m.layers[0]!.digest}`, undefined, '*/*');
    assert.equal(blob.status, 200);
    await assertUnauthorized(await get(`${s.nx.url}/v2/hello/manifests/latest`), /^Basic /);
    const copy = await skopeo(['copy', '--src-tls-verify=false', `docker://${s.nx.host}/shell/hello:latest`, `oci:${path.join(scratch, 'oci-anon')}:latest`]);
    assert.equal(copy.code, 0, copy.stderr);
    const cold = await skopeo(['inspect', '--tls-verify=false', '--no-tags', `docker://${s.nx.host}/hello:latest`]);
    assert.notEqual(cold.code, 0);
    await assertUnauthorized(await get(manifest, basic(USER, WRONG)), /^Basic /);
  });
});

describe('admission keys clients by the authenticated user (ctx.state.user)', () => {
  const s = suiteNixery(async () => {
    const file = path.join(scratch, 'htpasswd-two');
    await writeFile(file, `${await readFile(htpasswd, 'utf8')}bob:${bcrypt.hashSync('bobs-pass', 10).replace(/^\$2[ab]\$/, '$2y$')}\n`);
    return { NIXERY_AUTH: 'basic', NIXERY_HTPASSWD: file, NIXERY_BUILD_RATE: '1/1h' };
  });

  it('two users on one address have a build bucket each', async () => {
    const cold = (name: string, auth: string) => get(`${s.nx.url}/v2/${name}/manifests/latest`, auth);
    assert.equal((await cold('nosuchpackage-a', ALICE)).status, 404, "alice's one build: an unknown package");
    assert.equal((await cold('nosuchpackage-b', ALICE)).status, 429, "alice's bucket is empty");
    assert.equal((await cold('nosuchpackage-c', basic('bob', 'bobs-pass'))).status, 404, 'bob, from the same address, has his own');
  });
});

/** A token as a foreign issuer (or a forger) would make it. */
async function signToken(
  key: KeyObject,
  claims: { iss: string; sub: string; aud: string; name: string; exp?: number },
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ access: [{ type: 'repository', name: claims.name, actions: ['pull'] }] })
    .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
    .setIssuer(claims.iss)
    .setSubject(claims.sub)
    .setAudience(claims.aud)
    .setIssuedAt(now - 600)
    .setNotBefore(now - 600)
    .setExpirationTime(claims.exp ?? now + 300)
    .setJti(`test-${now}`)
    .sign(key);
}

const ec = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });

describe('NIXERY_AUTH=token with the built-in token endpoint (key generated, kept in Redis)', () => {
  const tokens: string[] = [];
  const s = suiteNixery(async () => ({ NIXERY_AUTH: 'token', NIXERY_HTPASSWD: htpasswd }));

  it('challenges with Bearer realm, service and scope; the endpoint issues tokens with the claims of the specification', async () => {
    const realm = `${s.nx.url}/token`;
    await assertUnauthorized(await get(`${s.nx.url}/v2/`), new RegExp(`^Bearer realm="${realm}",service="nixery"$`));
    await assertUnauthorized(
      await get(`${s.nx.url}/v2/shell/hello/manifests/latest`),
      new RegExp(`^Bearer realm="${realm}",service="nixery",scope="repository:shell/hello:pull"$`),
    );
    const q = '?service=nixery&scope=repository:shell/hello:pull';
    await assertUnauthorized(await get(`${realm}${q}`), /^Basic /);
    await assertUnauthorized(await get(`${realm}${q}`, basic(USER, WRONG)), /^Basic /);
    const r = await get(`${realm}${q}&account=${USER}`, ALICE, 'application/json');
    assert.equal(r.status, 200);
    const body = (await r.json()) as { token: string; access_token: string; expires_in: number; issued_at: string };
    assert.equal(body.access_token, body.token);
    assert.equal(body.expires_in, 300);
    tokens.push(body.token);
    const c = decodeJwt(body.token);
    assert.equal(c.iss, 'nixery');
    assert.equal(c.sub, USER);
    assert.equal(c.aud, 'nixery');
    assert.equal(c.exp! - c.iat!, 300);
    assert.equal(c.nbf, c.iat);
    assert.equal(new Date(body.issued_at).getTime(), c.iat! * 1000);
    assert.equal(typeof c.jti, 'string');
    assert.deepEqual(c.access, [{ type: 'repository', name: 'shell/hello', actions: ['pull'] }]);
    const bearer = `Bearer ${body.token}`;
    assert.equal((await get(`${s.nx.url}/v2/`, bearer)).status, 200);
    assert.equal((await get(`${s.nx.url}/v2/shell/hello/tags/list`, bearer, '*/*')).status, 200);
    // The token's access must cover the repository asked for.
    await assertUnauthorized(await get(`${s.nx.url}/v2/shell/git/tags/list`, bearer, '*/*'), /scope="repository:shell\/git:pull",error="insufficient_scope"/);
    // Push is never granted.
    const push = (await (await get(`${realm}?service=nixery&scope=repository:shell/hello:push`, ALICE, 'application/json')).json()) as { token: string };
    assert.deepEqual(decodeJwt(push.token).access, []);
  });

  it('a forged token (the same claims signed with another key) is 401, never 500', async () => {
    const forged = await signToken(ec().privateKey, { iss: 'nixery', sub: USER, aud: 'nixery', name: 'shell/hello' });
    tokens.push(forged);
    await assertUnauthorized(await get(`${s.nx.url}/v2/shell/hello/manifests/latest`, `Bearer ${forged}`), /error="invalid_token"/);
    await assertUnauthorized(await get(`${s.nx.url}/v2/`, 'Bearer not.a.jwt'), /error="invalid_token"/);
  });

  it('a Docker engine logs in, pulls and runs through the token endpoint; skopeo --creds too', async () => {
    await dockerLoginPullRun(s.nx);
    const ok = await skopeo(['inspect', '--tls-verify=false', '--no-tags', '--creds', `${USER}:${PASS}`, `docker://${s.nx.host}/shell/hello:latest`]);
    assert.equal(ok.code, 0, ok.stderr);
    const wrong = await skopeo(['inspect', '--tls-verify=false', '--no-tags', '--creds', `${USER}:${WRONG}`, `docker://${s.nx.host}/shell/hello:latest`]);
    assert.notEqual(wrong.code, 0);
  });

  it('no credential or token reaches the log', async () => {
    await assertNoSecretsLogged(s.nx, tokens.map((t) => t.split('.')[2]!));
  });
});

describe('NIXERY_AUTH=token: the generated key is kept, not made per process', () => {
  it('a token issued before a restart (same storage, so the same embedded Redis) is still valid after it', async () => {
    const dir = await makeScratchDir('nixery-auth-key-');
    const env = { NIXERY_AUTH: 'token', NIXERY_HTPASSWD: htpasswd };
    try {
      const first = await startNixery(env, { storagePath: dir });
      const r = await get(`${first.url}/token?service=nixery&scope=repository:shell/hello:pull`, ALICE, 'application/json');
      const { token } = (await r.json()) as { token: string };
      await first.stop();
      const second = await startNixery(env, { storagePath: dir });
      try {
        assert.equal((await get(`${second.url}/v2/shell/hello/tags/list`, `Bearer ${token}`, '*/*')).status, 200);
      } finally {
        await second.stop();
      }
    } finally {
      await removeScratchDir(dir);
    }
  });
});

describe('NIXERY_AUTH=token with NIXERY_TOKEN_KEY', () => {
  const key = ec();
  const s = suiteNixery(async () => {
    const file = path.join(scratch, 'token-key.pem');
    await writeFile(file, key.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    return { NIXERY_AUTH: 'token', NIXERY_HTPASSWD: htpasswd, NIXERY_TOKEN_KEY: file, NIXERY_TOKEN_SERVICE: 'registry.test' };
  });

  it('signs with the key file; a token of that key passes, an expired one or one for another service is 401', async () => {
    const r = await get(`${s.nx.url}/token?service=registry.test&scope=repository:shell/hello:pull`, ALICE, 'application/json');
    const { token } = (await r.json()) as { token: string };
    const pub = await importSPKI(key.publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'ES256');
    assert.equal((await jwtVerify(token, pub, { issuer: 'nixery', audience: 'registry.test' })).payload.sub, USER);
    const tags = `${s.nx.url}/v2/shell/hello/tags/list`;
    const own = await signToken(key.privateKey, { iss: 'nixery', sub: USER, aud: 'registry.test', name: 'shell/hello' });
    assert.equal((await get(tags, `Bearer ${own}`, '*/*')).status, 200);
    const expired = await signToken(key.privateKey, { iss: 'nixery', sub: USER, aud: 'registry.test', name: 'shell/hello', exp: Math.floor(Date.now() / 1000) - 120 });
    await assertUnauthorized(await get(tags, `Bearer ${expired}`, '*/*'), /error="invalid_token"/);
    const otherService = await signToken(key.privateKey, { iss: 'nixery', sub: USER, aud: 'nixery', name: 'shell/hello' });
    await assertUnauthorized(await get(tags, `Bearer ${otherService}`, '*/*'), /error="invalid_token"/);
  });
});

describe('NIXERY_AUTH=token trusting an external issuer (NIXERY_TOKEN_ISSUER, NIXERY_TOKEN_PUBLIC_KEY)', () => {
  const issuer = ec();
  const realm = 'http://127.0.0.1:9/auth/token';
  const s = suiteNixery(async () => {
    const file = path.join(scratch, 'issuer.pub.pem');
    await writeFile(file, issuer.publicKey.export({ type: 'spki', format: 'pem' }));
    return { NIXERY_AUTH: 'token', NIXERY_TOKEN_ISSUER: 'test-issuer', NIXERY_TOKEN_PUBLIC_KEY: file, NIXERY_TOKEN_REALM: realm };
  });

  it("accepts the issuer's tokens and refuses others; challenges name the external realm; serves no token endpoint", async () => {
    await assertUnauthorized(await get(`${s.nx.url}/v2/`), new RegExp(`^Bearer realm="${realm}",service="nixery"$`));
    const tags = `${s.nx.url}/v2/shell/hello/tags/list`;
    const good = await signToken(issuer.privateKey, { iss: 'test-issuer', sub: 'bob', aud: 'nixery', name: 'shell/hello' });
    assert.equal((await get(`${s.nx.url}/v2/`, `Bearer ${good}`)).status, 200);
    assert.equal((await get(tags, `Bearer ${good}`, '*/*')).status, 200);
    const otherKey = await signToken(ec().privateKey, { iss: 'test-issuer', sub: 'bob', aud: 'nixery', name: 'shell/hello' });
    await assertUnauthorized(await get(tags, `Bearer ${otherKey}`, '*/*'), /error="invalid_token"/);
    const otherIssuer = await signToken(issuer.privateKey, { iss: 'nixery', sub: 'bob', aud: 'nixery', name: 'shell/hello' });
    await assertUnauthorized(await get(tags, `Bearer ${otherIssuer}`, '*/*'), /error="invalid_token"/);
    assert.equal((await get(`${s.nx.url}/token`, basic(USER, PASS), '*/*')).status, 404);
  });
});
