/**
 * The pure parts of the Nix store collector (issue 11): sizes as operators
 * write them (NIXERY_NIX_MIN_FREE), Nix's collection summary, and the
 * collector's settings in the one config object. The collector against a
 * real store is test/integration/nix-store-gc.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseByteSize } from '../../libs/shared/src/core/byte-size';
import { loadConfig } from '../../libs/shared/src/config/config';
import { parseGcSummary } from '../../libs/shared/src/nix/store-gc';

describe('parseByteSize', () => {
  const cases: Array<[string, number]> = [
    ['0', 0],
    ['4096', 4096],
    ['10G', 10 * 2 ** 30],
    ['10g', 10 * 2 ** 30],
    ['10GiB', 10 * 2 ** 30],
    ['10 GB', 10 * 2 ** 30],
    ['512M', 512 * 2 ** 20],
    ['1.5K', 1536],
    ['2T', 2 * 2 ** 40],
    ['100B', 100],
  ];
  for (const [text, bytes] of cases) it(`${text} is ${bytes} bytes`, () => assert.deepEqual(parseByteSize(text), { bytes }));
  for (const bad of ['', 'ten', '10X', '-1G', '1e3', 'G']) {
    it(`${JSON.stringify(bad)} is refused`, () => assert.ok('error' in parseByteSize(bad)));
  }
});

describe('parseGcSummary', () => {
  it("reads Nix 2.8's closing line", () => {
    const out = "deleting '/nix/store/x'\n3 store paths deleted, 1.50 MiB freed\n";
    assert.deepEqual(parseGcSummary(out), { deletedPaths: 3, freedBytes: 1.5 * 2 ** 20 });
  });
  it('nothing to read is undefined', () => assert.equal(parseGcSummary(''), undefined));
});

describe('collector settings', () => {
  it('defaults: keep 10 GiB free, check every 60 s, a collection may take 900 s', () => {
    assert.deepEqual(loadConfig({}).nixGc, { minFreeBytes: 10 * 2 ** 30, intervalMs: 60_000, timeoutMs: 900_000 });
  });
  it('NIXERY_NIX_MIN_FREE, NIXERY_NIX_GC_INTERVAL, NIXERY_NIX_GC_TIMEOUT', () => {
    const c = loadConfig({ NIXERY_NIX_MIN_FREE: '512M', NIXERY_NIX_GC_INTERVAL: '5', NIXERY_NIX_GC_TIMEOUT: '30' });
    assert.deepEqual(c.nixGc, { minFreeBytes: 512 * 2 ** 20, intervalMs: 5000, timeoutMs: 30_000 });
  });
  it('"off" and 0 never collect', () => {
    assert.equal(loadConfig({ NIXERY_NIX_MIN_FREE: 'off' }).nixGc.minFreeBytes, 0);
    assert.equal(loadConfig({ NIXERY_NIX_MIN_FREE: '0' }).nixGc.minFreeBytes, 0);
  });
  it('a size that is not one is a configuration error naming the variable', () => {
    assert.throws(() => loadConfig({ NIXERY_NIX_MIN_FREE: 'lots' }), /NIXERY_NIX_MIN_FREE: not a size/);
  });
});
