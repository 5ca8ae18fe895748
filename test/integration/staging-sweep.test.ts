/**
 * Staging leftovers are removed at start-up and periodically (issue 11,
 * point 4). What a SIGKILL mid-pack leaves (a staged object that was never
 * moved, and the filesystem driver's partial file of a write in progress) is
 * planted with an old time in the storage of an `npm start` Nixery before it
 * starts: its worker's sweeper removes it at start-up, keeps the objects under
 * digest keys, and later removes a staging object planted while it runs once
 * that is older than NIXERY_STAGING_MAX_AGE. Before the sweeper nothing ever
 * deleted them.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { type NixeryInstance, startNixery } from '../helpers/nixery';

const exists = (p: string) => stat(p).then(() => true, () => false);

/** Polls until `p` is gone; false after `ms`. */
async function goneWithin(p: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!(await exists(p))) return true;
    await sleep(200);
  }
  return !(await exists(p));
}

describe('staging sweep', () => {
  let storage: string;
  let nx: NixeryInstance;
  const hex = 'd'.repeat(64);
  const planted = {
    staged: 'staging/6f1a3c2e-8b4d-4e5f-9a0b-1c2d3e4f5a6b',
    partial: 'staging/7a2b4d3f-9c5e-4f60-8b1c-2d3e4f5a6b7c.partial-0123456789ab',
    layer: `layers/${hex}`,
    manifest: `manifests/${hex}`,
  };
  before(async () => {
    storage = await mkdtemp(path.join(os.tmpdir(), 'nixery-sweep-'));
    for (const dir of ['staging', 'layers', 'manifests']) await mkdir(path.join(storage, dir), { recursive: true });
    const hourAgo = new Date(Date.now() - 3600_000);
    for (const f of Object.values(planted)) {
      await writeFile(path.join(storage, f), 'left over');
      await utimes(path.join(storage, f), hourAgo, hourAgo);
    }
    nx = await startNixery(
      { NIXERY_STAGING_MAX_AGE: '3', NIXERY_STAGING_SWEEP_INTERVAL: '1', NIXERY_POPCOUNT_SCHEDULE: 'off' },
      { storagePath: storage },
    );
  });
  after(async () => {
    await nx?.stop();
    await rm(storage, { recursive: true, force: true });
  });

  it('removes old staging leftovers at start-up and keeps digest objects', async () => {
    assert.ok(await goneWithin(path.join(storage, planted.staged), 10_000), 'the staged object left by a killed write is removed');
    assert.ok(await goneWithin(path.join(storage, planted.partial), 10_000), 'the partial file of a killed write is removed');
    assert.ok(await exists(path.join(storage, planted.layer)), 'a layer stays');
    assert.ok(await exists(path.join(storage, planted.manifest)), 'a manifest stays');
  });

  it('sweeps periodically: a staging object goes once it is older than the maximum age, not before', async () => {
    const fresh = path.join(storage, 'staging/8b3c5e40-ad6f-4071-9c2d-3e4f5a6b7c8d');
    await writeFile(fresh, 'in progress');
    await sleep(1500); // a sweep or more ran meanwhile
    assert.ok(await exists(fresh), 'a fresh staging object is kept');
    assert.ok(await goneWithin(fresh, 10_000), 'it is removed once older than NIXERY_STAGING_MAX_AGE');
    assert.ok(await exists(path.join(storage, planted.layer)));
  });
});
