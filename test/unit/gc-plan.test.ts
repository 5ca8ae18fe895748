/** The storage collector's pure mark step and manifest references (issue 11, point 4). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ListedManifest, type ListedObject, manifestReferences, parseDurationMs, planCollection } from '../../libs/shared/src/collect';
import { type Digest, sha256Digest } from '../../libs/shared/src/core/digest';

const DAY = 86_400_000;
const now = 40 * DAY;
const d = (name: string): Digest => sha256Digest(name);
const blob = (name: string, updated = DAY): ListedObject => ({ digest: d(name), size: name.length, updated });
const manifest = (name: string, refs: string[], updated = DAY, children: string[] = []): ListedManifest => ({
  ...blob(name, updated),
  refs: { blobs: refs.map(d), manifests: children.map(d) },
});
const names = (objs: readonly ListedObject[]) => objs.map((o) => o.digest).sort();
const opts = { now, keepMs: 30 * DAY, graceMs: 3600_000 };

describe('planCollection', () => {
  it('the worked example: a stale image goes with the blobs only it uses', () => {
    const plan = planCollection({
      ...opts,
      manifests: [manifest('A', ['L1', 'L2', 'C1']), manifest('B', ['L2', 'L3', 'C2'])],
      blobs: ['L1', 'L2', 'L3', 'C1', 'C2'].map((n) => blob(n)).concat(blob('L9', now - 600_000)),
      pulls: new Map([[d('A'), 2 * DAY], [d('B'), 39 * DAY]]),
    });
    assert.deepEqual(names(plan.manifests), names([blob('A')]));
    assert.deepEqual(names(plan.blobs), names([blob('L1'), blob('C1')]));
    assert.equal(plan.keptManifests, 1);
    assert.equal(plan.keptBlobs, 4);
  });

  it('keeps manifests written within the grace, without a pull record, or unreadable, and the blobs they use', () => {
    const unreadable: ListedManifest = { ...blob('U'), refs: null };
    const plan = planCollection({
      ...opts,
      manifests: [manifest('fresh', ['L1'], now - 60_000), manifest('unrecorded', ['L2']), unreadable],
      blobs: [blob('L1'), blob('L2'), blob('L3')],
      pulls: new Map([[d('fresh'), 1], [d('U'), 1]]),
    });
    assert.deepEqual(plan.manifests, []);
    assert.deepEqual(names(plan.blobs), names([blob('L3')]));
    assert.deepEqual(plan.unrecorded, [d('unrecorded')]);
  });

  it('a kept image index keeps the manifests it lists', () => {
    const plan = planCollection({
      ...opts,
      manifests: [manifest('index', [], DAY, ['amd64']), manifest('amd64', ['L1'])],
      blobs: [blob('L1')],
      pulls: new Map([[d('index'), 39 * DAY], [d('amd64'), DAY]]),
    });
    assert.deepEqual(plan.manifests, []);
    assert.deepEqual(plan.blobs, []);
  });
});

describe('manifestReferences and durations', () => {
  it('reads the config and layers of a manifest and the manifests of an index', () => {
    const body = JSON.stringify({ config: { digest: d('C') }, layers: [{ digest: d('L1') }, { digest: 'not a digest' }], manifests: [{ digest: d('M') }] });
    assert.deepEqual(manifestReferences(body), { blobs: [d('C'), d('L1')], manifests: [d('M')] });
    assert.equal(manifestReferences('not json'), null);
    assert.equal(manifestReferences('[1]'), null);
  });

  it('parses seconds and durations with units', () => {
    assert.equal(parseDurationMs('90'), 90_000);
    assert.equal(parseDurationMs('15m'), 900_000);
    assert.equal(parseDurationMs('30d'), 30 * DAY);
    assert.equal(parseDurationMs('1.5h'), null);
    assert.equal(parseDurationMs('soon'), null);
  });
});
