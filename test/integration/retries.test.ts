/**
 * Failure handling of build jobs, through a real single-node Nixery: unknown
 * packages fail at once without retry; transient failures (a Nix build that
 * runs past NIX_TIMEOUT) are retried with backoff, then reported as 503.
 */
import assert from 'node:assert/strict';
import { cp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MANIFEST_ACCEPT, type NixeryInstance, REPO, metric, startNixery } from '../helpers/nixery';
import { makeScratchDir, removeScratchDir } from '../helpers/proc';

describe('build failures and retries', () => {
  let nx: NixeryInstance;
  let pkgs: string;
  before(async () => {
    pkgs = await makeScratchDir('nixery-retry-pkgs-');
    await cp(path.join(REPO, 'nix/pkgs'), pkgs, { recursive: true });
    // A `slow` build nobody has done before, taking longer than NIX_TIMEOUT.
    await writeFile(path.join(pkgs, 'slow-seconds'), `30 retry-test-${Date.now()}-${process.pid}\n`);
    nx = await startNixery({ NIXERY_PKGS_PATH: pkgs, NIXERY_NIX_OPTIONS: "--option substituters ''", NIX_TIMEOUT: '2' });
  });
  after(async () => {
    await nx?.stop();
    await removeScratchDir(pkgs);
  });

  const builds = () => metric(nx.url, 'nixery_builds_started_total');

  it('an unknown package fails on the first attempt, without retry', async () => {
    const before = await builds();
    const res = await fetch(`${nx.url}/v2/nosuchpackage/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } });
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { errors: { code: string }[] }).errors[0]?.code, 'MANIFEST_UNKNOWN');
    await new Promise((r) => setTimeout(r, 2500)); // longer than the first retry's backoff
    assert.equal((await builds()) - before, 1);
  });

  it('a build that times out is retried, then answered with 503 UNAVAILABLE', async () => {
    const before = await builds();
    const res = await fetch(`${nx.url}/v2/slow/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } });
    assert.equal(res.status, 503);
    const e = ((await res.json()) as { errors: { code: string; detail: unknown }[] }).errors[0]!;
    assert.equal(e.code, 'UNAVAILABLE');
    assert.match(JSON.stringify(e.detail), /time|out/i);
    assert.equal((await builds()) - before, 3, 'three attempts');
  });
});
