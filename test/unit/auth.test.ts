/**
 * The parts of pull authentication (apps/gateway/src/auth/) that need no
 * server: htpasswd parsing, Authorization headers, the password checker's
 * memory and its bound on concurrent bcrypt checks, token scopes, and the
 * configuration's rules. End to end: test/e2e/auth.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { challengeHeader } from '../../apps/gateway/src/auth/challenge';
import { presentedCredentials } from '../../apps/gateway/src/auth/credentials';
import { parseHtpasswd } from '../../apps/gateway/src/auth/htpasswd';
import { PasswordChecker } from '../../apps/gateway/src/auth/password-check';
import { pullGrants } from '../../apps/gateway/src/auth/token-endpoint';
import { ConfigError, loadConfig } from '../../libs/shared/src/config';

const b64 = (s: string) => Buffer.from(s).toString('base64');
// Low cost keeps the unit test quick; the e2e test uses cost 10 as htpasswd -B does.
const HASH = bcrypt.hashSync('s3cret', 4).replace(/^\$2b\$/, '$2y$');

describe('htpasswd', () => {
  it('keeps bcrypt entries ($2y$ as htpasswd -B writes) and reports the others', () => {
    const t = parseHtpasswd(`# comment\n\nalice:${HASH}\nbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\ncarol:$apr1$abc$def\nnocolon\n`);
    assert.deepEqual([...t.users.keys()], ['alice']);
    assert.deepEqual(t.skipped.map((s) => s.line), [4, 5, 6]);
  });
});

describe('Authorization header', () => {
  it('reads basic and bearer credentials; anything else is malformed, an empty basic pair is none', () => {
    assert.deepEqual(presentedCredentials(undefined), { kind: 'none' });
    assert.deepEqual(presentedCredentials(`Basic ${b64('alice:pa:ss')}`), { kind: 'basic', user: 'alice', password: 'pa:ss' });
    assert.deepEqual(presentedCredentials(`basic ${b64(':')}`), { kind: 'none' });
    assert.deepEqual(presentedCredentials('Bearer abc.def.ghi'), { kind: 'bearer', token: 'abc.def.ghi' });
    for (const bad of ['Basic', 'Basic !!!', `Basic ${b64('nocolon')}`, `Basic ${b64(':pw')}`, 'Digest x', 'Basic a b']) {
      assert.deepEqual(presentedCredentials(bad), { kind: 'malformed' }, bad);
    }
  });
});

describe('PasswordChecker', () => {
  it('verifies $2y$ hashes, refuses unknown users and wrong passwords', async () => {
    const c = new PasswordChecker(new Map([['alice', HASH]]));
    assert.equal(await c.check('alice', 's3cret'), 'ok');
    assert.equal(await c.check('alice', 'nope'), 'wrong');
    assert.equal(await c.check('mallory', 's3cret'), 'wrong');
  });

  it('remembers right and wrong verdicts, so a repeated check runs bcrypt once', async () => {
    const c = new PasswordChecker(new Map([['alice', HASH]]));
    for (let i = 0; i < 5; i++) assert.equal(await c.check('alice', 's3cret'), 'ok');
    for (let i = 0; i < 5; i++) assert.equal(await c.check('alice', 'wrong'), 'wrong');
    assert.equal(c.bcryptChecks, 2);
    assert.equal(await c.check('mallory', 'x'), 'wrong');
    assert.equal(c.bcryptChecks, 2, 'an unknown user costs no bcrypt');
  });

  it('runs one check at a time, lets a bounded number wait, and answers busy past that', async () => {
    const c = new PasswordChecker(new Map([['alice', HASH]]), { concurrency: 1, queue: 3 });
    const verdicts = await Promise.all(Array.from({ length: 10 }, (_, i) => c.check('alice', `guess-${i}`)));
    assert.deepEqual(verdicts.filter((v) => v === 'wrong').length, 4);
    assert.deepEqual(verdicts.filter((v) => v === 'busy').length, 6);
    assert.equal(c.bcryptChecks, 4);
    assert.equal(await c.check('alice', 's3cret'), 'ok', 'the queue drains');
  });
});

describe('token scopes and challenges', () => {
  it('grants only pull on repositories with valid names', () => {
    assert.deepEqual(pullGrants(['repository:shell/git:pull,push', 'repository:hello:push', 'registry:catalog:*', 'repository:Bad..Name:pull repository:curl:pull']), [
      { type: 'repository', name: 'shell/git', actions: ['pull'] },
      { type: 'repository', name: 'curl', actions: ['pull'] },
    ]);
  });

  it('writes the Bearer challenge of the token specification', () => {
    assert.equal(
      challengeHeader({ scheme: 'bearer', realm: 'http://127.0.0.1:8080/token', service: 'nixery', name: 'shell/git' }),
      'Bearer realm="http://127.0.0.1:8080/token",service="nixery",scope="repository:shell/git:pull"',
    );
  });
});

describe('authentication settings', () => {
  it('are off by default; basic needs an htpasswd file; an external issuer needs its name and realm', () => {
    assert.equal(loadConfig({}).auth.mode, 'off');
    assert.throws(() => loadConfig({ NIXERY_AUTH: 'basic' }), ConfigError);
    assert.throws(() => loadConfig({ NIXERY_AUTH: 'token' }), ConfigError);
    assert.throws(() => loadConfig({ NIXERY_AUTH: 'token', NIXERY_TOKEN_PUBLIC_KEY: '/k.pem' }), ConfigError);
    const ext = loadConfig({ NIXERY_AUTH: 'token', NIXERY_TOKEN_PUBLIC_KEY: '/k.pem', NIXERY_TOKEN_ISSUER: 'i', NIXERY_TOKEN_REALM: 'https://auth.example/token' });
    assert.equal(ext.auth.token.publicKeyPath, '/k.pem');
    const anon = loadConfig({ NIXERY_AUTH: 'token', NIXERY_ANONYMOUS: 'pull', NIXERY_PROTECT_STATUS: 'true' });
    assert.equal(anon.auth.anonymous, 'pull');
    assert.equal(anon.auth.protectStatus, true);
    assert.equal(anon.auth.token.ttlSeconds, 300);
  });
});
