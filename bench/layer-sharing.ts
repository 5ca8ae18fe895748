/**
 * Layer sharing with and without a popularity table.
 *
 * Pulls a sequence of related images of the bundled package set, small to
 * large, into one client layer store (the set of layer digests it already
 * has) and reports, per image and in total, the compressed layer bytes such a
 * client must download. Two runs side by side, each with its own fresh
 * single-node Nixery (storage and embedded Redis):
 *
 * - `no table`: NIXERY_POPCOUNT_SCHEDULE=off, so layering has no popularity data;
 * - `fresh table`: the default schedule; the popularity job counts the set at
 *   start-up and the pulls start once the table is published.
 *
 *   npm run bench:layers
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectRedis } from '@nixery/shared';
import { MANIFEST_ACCEPT, type NixeryInstance, startNixery } from '../test/helpers/nixery';

const IMAGES = ['hello', 'curl', 'curl/jq', 'git/curl', 'python3/curl/jq', 'shell/git/htop/python3', 'shell/python3/jq', 'python3'];

interface ImageResult {
  image: string;
  layers: number;
  newLayers: number;
  imageBytes: number;
  downloaded: number;
}

interface Manifest {
  layers: { digest: string; size: number }[];
}

/** Pulls the sequence into one client layer store; returns per-image figures. */
async function pullSequence(nx: NixeryInstance): Promise<ImageResult[]> {
  const have = new Set<string>();
  const results: ImageResult[] = [];
  for (const image of IMAGES) {
    const res = await fetch(`${nx.url}/v2/${image}/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } });
    if (!res.ok) throw new Error(`${image}: manifest answered ${res.status}: ${await res.text()}`);
    const manifest = (await res.json()) as Manifest;
    let downloaded = 0;
    let newLayers = 0;
    for (const l of manifest.layers) {
      if (have.has(l.digest)) continue;
      const blob = Buffer.from(await (await fetch(`${nx.url}/v2/${image}/blobs/${l.digest}`)).arrayBuffer());
      const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
      if (digest !== l.digest || blob.length !== l.size) throw new Error(`${image}: blob ${l.digest} came back wrong`);
      have.add(l.digest);
      downloaded += blob.length;
      newLayers++;
    }
    results.push({
      image,
      layers: manifest.layers.length,
      newLayers,
      imageBytes: manifest.layers.reduce((n, l) => n + l.size, 0),
      downloaded,
    });
  }
  return results;
}

/** Waits until the node's popularity job has published a table; returns its metadata. */
async function waitForTable(nx: NixeryInstance): Promise<string> {
  const redis = connectRedis({ path: path.join(nx.storagePath, 'redis', 'redis.sock') });
  try {
    const deadline = Date.now() + 300_000;
    for (;;) {
      const meta = await redis.get('nixery:popularity:meta');
      if (meta) return meta;
      if (Date.now() > deadline) throw new Error('no popularity table after 300 s');
      await sleep(200);
    }
  } finally {
    redis.disconnect();
  }
}

const mb = (n: number) => (n / 1e6).toFixed(2).padStart(8);

async function run(label: string, env: Record<string, string>, withTable: boolean): Promise<ImageResult[]> {
  const started = Date.now();
  const nx = await startNixery({ LOG_LEVEL: 'info', ...env });
  try {
    if (withTable) {
      const meta = await waitForTable(nx);
      console.log(`[${label}] table published ${((Date.now() - started) / 1000).toFixed(1)} s after start: ${meta}`);
    }
    const r = await pullSequence(nx);
    console.log(`[${label}] ${IMAGES.length} images pulled in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return r;
  } finally {
    await nx.stop();
  }
}

async function main(): Promise<void> {
  const none = await run('no table', { NIXERY_POPCOUNT_SCHEDULE: 'off' }, false);
  const fresh = await run('fresh table', {}, true);

  console.log('\ncompressed layer bytes a client with a layer cache downloads (MB), per image');
  console.log(`${'image'.padEnd(24)} ${'image size'.padStart(10)} | ${'no table'.padStart(8)} ${'layers'.padStart(7)} | ${'fresh'.padStart(8)} ${'layers'.padStart(7)}`);
  for (let i = 0; i < IMAGES.length; i++) {
    const a = none[i]!;
    const b = fresh[i]!;
    console.log(
      `${a.image.padEnd(24)} ${mb(a.imageBytes).padStart(10)} | ${mb(a.downloaded)} ${`${a.newLayers}/${a.layers}`.padStart(7)} | ${mb(b.downloaded)} ${`${b.newLayers}/${b.layers}`.padStart(7)}`,
    );
  }
  const sum = (rs: ImageResult[], f: (r: ImageResult) => number) => rs.reduce((n, r) => n + f(r), 0);
  const allNone = sum(none, (r) => r.imageBytes);
  const allFresh = sum(fresh, (r) => r.imageBytes);
  const dlNone = sum(none, (r) => r.downloaded);
  const dlFresh = sum(fresh, (r) => r.downloaded);
  console.log(`${'total'.padEnd(24)} ${mb(allNone).padStart(10)} | ${mb(dlNone)} ${''.padStart(7)} | ${mb(dlFresh)}`);
  const six = (rs: ImageResult[]) => sum(rs.slice(0, 6), (r) => r.downloaded);
  console.log(`first six images (the issue's example sequence): no table ${mb(six(none))} MB, fresh ${mb(six(fresh))} MB, ratio ${(six(fresh) / six(none)).toFixed(2)}`);
  console.log(`\nno table:    downloaded ${mb(dlNone)} MB = ${((100 * dlNone) / allNone).toFixed(0)}% of all image bytes (${mb(allNone)} MB)`);
  console.log(`fresh table: downloaded ${mb(dlFresh)} MB = ${((100 * dlFresh) / allFresh).toFixed(0)}% of all image bytes (${mb(allFresh)} MB)`);
  console.log(`ratio fresh / no table: ${(dlFresh / dlNone).toFixed(2)} (${(dlNone / dlFresh).toFixed(2)}x less with a fresh table)`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
