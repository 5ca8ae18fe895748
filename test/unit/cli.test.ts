/**
 * The CLI's pure parts (issue 17): push targets, 401 challenges, Docker config
 * credentials, names and platforms, popularity choices.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { imageSpecOf } from '../../apps/cli/src/build';
import { dockerConfigCreds, parseCreds } from '../../apps/cli/src/credentials';
import { CliError } from '../../apps/cli/src/errors';
import { popularityChoice } from '../../apps/cli/src/popularity';
import { parseChallenge } from '../../apps/cli/src/registry-auth';
import { parseTarget } from '../../apps/cli/src/registry-client';
import { makeScratchDir, removeScratchDir } from '../helpers/proc';

const usage = (f: () => unknown) => assert.throws(f, (e: unknown) => e instanceof CliError && e.exitCode === 2);

describe('nixery CLI parsing', () => {
  let dir: string;
  before(async () => {
    dir = await makeScratchDir('nixery-cli-unit-');
  });
  after(() => removeScratchDir(dir));

  it('parses REGISTRY/REPO[:TAG]; loopback over plain HTTP, others HTTPS unless asked', () => {
    const opts = { plainHttp: false, defaultTag: 'latest' };
    assert.deepEqual(parseTarget('127.0.0.1:5000/demo/hello:ci', opts), { base: 'http://127.0.0.1:5000', host: '127.0.0.1:5000', repo: 'demo/hello', tag: 'ci' });
    assert.deepEqual(parseTarget('registry.example.com/tools/htop', opts), { base: 'https://registry.example.com', host: 'registry.example.com', repo: 'tools/htop', tag: 'latest' });
    assert.equal(parseTarget('registry.example.com:443/x', { ...opts, plainHttp: true }).base, 'http://registry.example.com:443');
    assert.equal(parseTarget('localhost:5000/x', opts).base, 'http://localhost:5000');
    for (const bad of ['hello', '/hello', '127.0.0.1:5000/Hello', '127.0.0.1:5000/a/../b', '127.0.0.1:5000/x:bad tag', 'a b/x']) usage(() => parseTarget(bad, opts));
  });

  it('reads Basic and Bearer challenges with quoted parameters', () => {
    assert.deepEqual(parseChallenge('Basic realm="nixery-test"'), { scheme: 'basic', params: { realm: 'nixery-test' } });
    assert.deepEqual(parseChallenge('Bearer realm="http://127.0.0.1:1/token",service="reg",scope="repository:a/b:pull,push"'), {
      scheme: 'bearer',
      params: { realm: 'http://127.0.0.1:1/token', service: 'reg', scope: 'repository:a/b:pull,push' },
    });
    assert.equal(parseChallenge(''), null);
  });

  it('takes credentials from --creds or the Docker config (auths[host].auth, any key spelling)', async () => {
    assert.deepEqual(parseCreds('ci:pa:ss'), { user: 'ci', password: 'pa:ss' });
    usage(() => parseCreds('nopassword'));
    await mkdir(path.join(dir, 'docker'), { recursive: true });
    const auth = Buffer.from('ci:s3cret').toString('base64');
    await writeFile(path.join(dir, 'docker/config.json'), JSON.stringify({ auths: { 'https://127.0.0.1:5000/v1/': { auth }, other: { username: 'u', password: 'p' } } }));
    assert.deepEqual(await dockerConfigCreds(path.join(dir, 'docker'), '127.0.0.1:5000'), { user: 'ci', password: 's3cret' });
    assert.deepEqual(await dockerConfigCreds(path.join(dir, 'docker'), 'other'), { user: 'u', password: 'p' });
    assert.equal(await dockerConfigCreds(path.join(dir, 'docker'), '127.0.0.1:6000'), undefined);
    assert.equal(await dockerConfigCreds(path.join(dir, 'missing'), '127.0.0.1:5000'), undefined);
  });

  it('reads names as the registry does and maps --platform to the Nix system', () => {
    const spec = imageSpecOf({ name: 'shell/git', tag: 'latest' });
    assert.equal(spec.system, 'x86_64-linux');
    assert.ok(spec.packages.includes('bashInteractive') && spec.packages.includes('cacert') && spec.packages.includes('git'));
    const arm = imageSpecOf({ name: 'hello', tag: 'latest', platform: 'linux/arm64' });
    assert.deepEqual([arm.system, arm.architecture], ['aarch64-linux', 'arm64']);
    assert.deepEqual(imageSpecOf({ name: 'arm64/hello', tag: 'latest' }).packages, arm.packages);
    usage(() => imageSpecOf({ name: 'arm64/hello', tag: 'latest', platform: 'linux/amd64' }));
    usage(() => imageSpecOf({ name: 'hello', tag: 'latest', platform: 'windows/amd64' }));
    usage(() => imageSpecOf({ name: 'Hello', tag: 'latest' }));
  });

  it('chooses popularity from the flag, else NIX_POPULARITY_URL, else none', () => {
    assert.deepEqual(popularityChoice(undefined, {}), { kind: 'none' });
    assert.deepEqual(popularityChoice(undefined, { popularityUrl: 'http://127.0.0.1:1/p.json' }), { kind: 'url', url: 'http://127.0.0.1:1/p.json' });
    assert.deepEqual(popularityChoice('local', { popularityUrl: 'http://x/p' }), { kind: 'local' });
    assert.deepEqual(popularityChoice('./p.json', {}), { kind: 'file', path: './p.json' });
  });
});
