/**
 * WORKER_CONCURRENCY: one worker runs that many build jobs at once. Two
 * different slow images are requested together; the queue's active-jobs gauge
 * must reach 2 (with the default concurrency of 1 it never exceeds 1).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MANIFEST_ACCEPT, type NixeryInstance, metric, startNixery } from '../helpers/nixery';
import { type PackageSetCopy, copyPackageSet } from '../helpers/pkgset';

describe('worker concurrency', () => {
  let pkgs: PackageSetCopy;
  let nx: NixeryInstance;
  before(async () => {
    pkgs = await copyPackageSet({ slowSeconds: 5 });
    nx = await startNixery({ ...pkgs.env, WORKER_CONCURRENCY: '2', NIXERY_POPCOUNT_SCHEDULE: 'off' });
  });
  after(async () => {
    await nx?.stop();
    await pkgs?.remove();
  });

  it('runs two builds at once with WORKER_CONCURRENCY=2', async () => {
    let maxActive = 0;
    let done = false;
    const watch = (async () => {
      while (!done) {
        maxActive = Math.max(maxActive, await metric(nx.url, 'nixery_queue_active_jobs', { queue: 'build-x86_64-linux' }));
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const pulls = await Promise.all(
      ['slow/hello', 'slow/jq'].map((name) => fetch(`${nx.url}/v2/${name}/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } })),
    );
    done = true;
    await watch;
    for (const r of pulls) assert.equal(r.status, 200);
    assert.equal(maxActive, 2);
  });
});
