/**
 * A broken build environment is the machine's failure, not the image's: with
 * a Nix configuration that cannot build, /readyz says 503 naming the cause, a
 * pull answers 503 UNAVAILABLE with the cause in `detail` (never 404), the log
 * says how to fix it, and nothing is counted as a build or an unknown package.
 * The project's own Nix settings (nix/settings.ts) make a machine without
 * build users or /etc/nix/nix.conf build.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkNixBuilds } from '../../libs/shared/src/nix/self-check';
import { nixEnvironment } from '../../libs/shared/src/nix/settings';
import { MANIFEST_ACCEPT, type NixeryInstance, metric, startNixery } from '../helpers/nixery';
import { NIX_ENV } from '../helpers/nix-env';

const NO_SUCH_GROUP = 'nixery-no-such-group';
type ErrorBody = { errors: { code: string; message: string; detail?: { cause?: string; hint?: string } }[] };

describe('Nix self-check', () => {
  it('builds with the project settings, and says why not with a config that cannot', async () => {
    const ok = await checkNixBuilds({ options: ['--option', 'substituters', ''], env: NIX_ENV });
    assert.equal(ok.ok, true, JSON.stringify(ok));
    // The operator's NIX_CONFIG comes after the project's lines, so it wins.
    const env = nixEnvironment({ ...process.env, NIX_CONFIG: `build-users-group = ${NO_SUCH_GROUP}` }, { root: true });
    const broken = await checkNixBuilds({ options: ['--option', 'substituters', ''], env });
    assert.equal(broken.ok, false);
    if (!broken.ok) {
      assert.match(broken.cause, new RegExp(NO_SUCH_GROUP));
      assert.match(broken.hint, /build users/);
    }
  });

  it('a missing Nix is named as such', async () => {
    const h = await checkNixBuilds({ options: [], env: NIX_ENV }, { nixBuild: '/nonexistent/nix-build' });
    assert.equal(h.ok, false);
    if (!h.ok) assert.match(h.hint, /not installed/);
  });
});

describe('a Nixery whose Nix cannot build', () => {
  let nx: NixeryInstance;
  before(async () => {
    nx = await startNixery({ NIX_CONFIG: `build-users-group = ${NO_SUCH_GROUP}` });
  });
  after(async () => {
    await nx?.stop();
  });

  it('/readyz is 503 naming the cause', async () => {
    let body: { nix?: { ok: boolean; cause?: string; hint?: string } } = {};
    let status = 0;
    for (let i = 0; i < 50; i++) {
      const res = await fetch(`${nx.url}/readyz`);
      status = res.status;
      body = (await res.json()) as typeof body;
      if (body.nix?.cause && !/not finished/.test(body.nix.cause)) break;
      await sleep(200);
    }
    assert.equal(status, 503);
    assert.equal(body.nix?.ok, false);
    assert.match(body.nix?.cause ?? '', new RegExp(NO_SUCH_GROUP));
  });

  it('pulls answer 503 UNAVAILABLE with the cause, never 404; nothing counts as unknown', async () => {
    for (const name of ['hello', 'nosuchpackage']) {
      const res = await fetch(`${nx.url}/v2/${name}/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } });
      assert.equal(res.status, 503, name);
      assert.ok(res.headers.get('retry-after'), 'Retry-After');
      const e = ((await res.json()) as ErrorBody).errors[0]!;
      assert.equal(e.code, 'UNAVAILABLE');
      assert.match(e.detail?.cause ?? '', new RegExp(NO_SUCH_GROUP));
      assert.ok(e.detail?.hint);
    }
    assert.equal(await metric(nx.url, 'nixery_builds_started_total'), 0);
    assert.equal(await metric(nx.url, 'nixery_builds_failed_total', { reason: 'unknown_packages' }), 0);
    assert.ok((await metric(nx.url, 'nixery_builds_failed_total', { reason: 'nix_unavailable' })) >= 2);
  });

  it('the log says how to fix it', async () => {
    const log = await readFile(nx.logFile, 'utf8');
    assert.match(log, /Nix cannot build on this machine.*Fix: /);
  });
});

describe('a Nixery whose Nix builds', () => {
  let nx: NixeryInstance;
  before(async () => {
    nx = await startNixery();
  });
  after(async () => {
    await nx?.stop();
  });

  it('/readyz reports Nix ready', async () => {
    let body: { nix?: { ok: boolean } } = {};
    let status = 0;
    for (let i = 0; i < 50 && !body.nix?.ok; i++) {
      const res = await fetch(`${nx.url}/readyz`);
      status = res.status;
      body = (await res.json()) as typeof body;
      if (!body.nix?.ok) await sleep(200);
    }
    assert.equal(status, 200);
    assert.deepEqual(body.nix, { ok: true });
  });
});
