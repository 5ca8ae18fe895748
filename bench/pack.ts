/**
 * Layer packing: the missing layers of one image packed one after another
 * (what the Go original does) vs concurrently, bounded by the cores (what the
 * worker does). Same image, same layers, fresh filesystem storage per run.
 *
 *   npm run bench:pack            (PACKAGES="python3 git curl ..." to choose)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { putStaged } from '../libs/shared/src/storage/staged';
import { mapLimit } from '../libs/shared/src/core/map-limit';
import { NIXERY_CLOSURE_BUDGET, groupLayers } from '../libs/shared/src/layering';
import { MediaTypes } from '../libs/shared/src/core/media-types';
import { closureSize, prepareImage } from '../libs/shared/src/nix';
import { createFilesystemDriver } from '../libs/shared/src/storage/filesystem';
import { blobKey } from '../libs/shared/src/storage/keys';
import { NIX_ENV } from '../test/helpers/nix-env';
import { compressAndHash, packStorePaths } from '../libs/shared/src/tarball';

const REPO = path.resolve(__dirname, '..');
const PACKAGES = (process.env.PACKAGES ?? 'python3 git curl jq htop nano coreutils bashInteractive moreutils openssl cacert iana-etc').split(/\s+/);
const ROUNDS = Number(process.env.ROUNDS ?? 3);

async function packAll(groups: string[][], concurrency: number): Promise<{ ms: number; bytes: number; uncompressed: number }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nixery-bench-pack-'));
  const storage = createFilesystemDriver(dir);
  const t0 = performance.now();
  let bytes = 0;
  let uncompressed = 0;
  await mapLimit(groups, concurrency, async (g) => {
    const { stream, done } = compressAndHash(packStorePaths(g));
    const blob = await putStaged(storage, stream, blobKey, MediaTypes.dockerLayer);
    bytes += blob.size;
    uncompressed += (await done).uncompressedSize;
  });
  const ms = performance.now() - t0;
  await rm(dir, { recursive: true, force: true });
  return { ms, bytes, uncompressed };
}

async function main(): Promise<void> {
  const prepared = await prepareImage({
    nixDir: path.join(REPO, 'nix'),
    source: { type: 'path', path: path.join(REPO, 'nix/pkgs') },
    system: 'x86_64-linux',
    packages: PACKAGES,
    timeoutMs: 300_000,
    extraNixOptions: ['--option', 'substituters', ''],
    env: NIX_ENV,
  });
  if (prepared.kind !== 'ok') throw new Error(`prepare failed: ${JSON.stringify(prepared)}`);
  const groups = groupLayers(prepared.graph, { budget: NIXERY_CLOSURE_BUDGET, popularity: {} }).map((l) => l.contents);
  const cores = os.availableParallelism();
  const closureBytes = closureSize(prepared.graph);
  console.log(`image: ${PACKAGES.join(' ')}`);
  console.log(`closure: ${Object.keys(prepared.graph.paths).length} store paths, ${(closureBytes / 1e6).toFixed(1)} MB (NAR), ${groups.length} layers; ${cores} cores`);
  const rows: { mode: string; ms: number[]; bytes: number; uncompressed: number }[] = [
    { mode: 'sequential (concurrency 1, like the Go original)', ms: [], bytes: 0, uncompressed: 0 },
    { mode: `concurrent (concurrency ${cores}, the worker default)`, ms: [], bytes: 0, uncompressed: 0 },
  ];
  await packAll(groups, cores); // warm the page cache so both modes read from memory
  for (let r = 0; r < ROUNDS; r++) {
    for (const [i, c] of [1, cores].entries()) {
      const res = await packAll(groups, c);
      rows[i]!.ms.push(res.ms);
      rows[i]!.bytes = res.bytes;
      rows[i]!.uncompressed = res.uncompressed;
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const row of rows) {
    const m = median(row.ms);
    console.log(
      `${row.mode.padEnd(52)} median ${(m / 1000).toFixed(2)} s over ${ROUNDS} rounds ` +
        `(${row.ms.map((x) => (x / 1000).toFixed(2)).join(', ')}), ${(row.uncompressed / 1e6).toFixed(1)} MB tar -> ${(row.bytes / 1e6).toFixed(1)} MB gzip, ${(row.uncompressed / 1e6 / (m / 1000)).toFixed(1)} MB/s`,
    );
  }
  console.log(`speed-up: ${(median(rows[0]!.ms) / median(rows[1]!.ms)).toFixed(2)}x`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
