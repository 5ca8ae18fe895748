/**
 * Layer packing against the compressor's limit, in one run on the same tar
 * bytes: single-core `gzip -6` (Debian's binary) vs the worker's packer
 * (concatenated gzip members compressed in parallel, see
 * libs/shared/src/tarball/compress.ts).
 *
 *   npm run bench:pack            (PACKAGES="python3 git curl ..." to choose, ROUNDS=3)
 *
 * Prints:
 *  1. a per-level table of the packer's compressor alone (tar bytes already in
 *     memory), MB/s of uncompressed tar and size against `gzip -6`;
 *  2. the worker's whole packing path at the chosen level (tar walk of the
 *     store paths + diff_id hash + parallel gzip + digest + filesystem
 *     storage write), the image's layers packed as many at a time as the
 *     worker does by default (one per core);
 *  3. the ratios against `gzip -6` and whether the targets (>= 2.5x its
 *     throughput, <= 1.10x its size) are met.
 * Rounds are interleaved (gzip, packer, gzip, ...) and medians are reported,
 * so a busy machine slows both sides alike.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { mapLimit } from '../libs/shared/src/core/map-limit';
import { MediaTypes } from '../libs/shared/src/core/media-types';
import { NIXERY_CLOSURE_BUDGET, groupLayers } from '../libs/shared/src/layering';
import { prepareImage } from '../libs/shared/src/nix';
import { createFilesystemDriver } from '../libs/shared/src/storage/filesystem';
import { blobKey } from '../libs/shared/src/storage/keys';
import { putStaged } from '../libs/shared/src/storage/staged';
import { GZIP_LEVEL, MEMBER_SIZE, compressAndHash, packStorePaths } from '../libs/shared/src/tarball';
import { NIX_ENV } from '../test/helpers/nix-env';

const REPO = path.resolve(__dirname, '..');
const PACKAGES = (process.env.PACKAGES ?? 'python3 git curl jq htop nano coreutils bashInteractive moreutils openssl cacert iana-etc').split(/\s+/);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const LEVELS = [1, 2, 3, 4, 5, 6];
const TARGET_SPEED = 2.5;
const TARGET_SIZE = 1.1;

const mb = (bytes: number): string => (bytes / 1e6).toFixed(1);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Wall time of `gzip -6 -c FILE > /dev/null`-like run, and its output size. */
async function gzipSix(file: string): Promise<{ ms: number; bytes: number }> {
  const t0 = performance.now();
  const child = spawn('gzip', ['-6', '-c', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  let bytes = 0;
  child.stdout.on('data', (b: Buffer) => (bytes += b.length));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`gzip exited with ${code}`);
  return { ms: performance.now() - t0, bytes };
}

/** The packer's compressor alone on tar bytes already in memory. */
async function compressOnly(tar: Buffer, level: number): Promise<{ ms: number; bytes: number }> {
  const t0 = performance.now();
  const { stream, done } = compressAndHash(Readable.from(slices(tar)), { level });
  let bytes = 0;
  for await (const b of stream) bytes += (b as Buffer).length;
  await done;
  return { ms: performance.now() - t0, bytes };
}

async function* layerTars(groups: string[][]): AsyncGenerator<Buffer> {
  for (const g of groups) for await (const b of packStorePaths(g)) yield b as Buffer;
}

function* slices(buf: Buffer): Generator<Buffer> {
  for (let off = 0; off < buf.length; off += 256 * 1024) yield buf.subarray(off, off + 256 * 1024);
}

/** The worker's path: walk + hash + compress + store, layers packed `cores` at a time (the worker's NIXERY_PACK_CONCURRENCY default). */
async function packLayers(groups: string[][]): Promise<{ ms: number; bytes: number; uncompressed: number; members: number }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nixery-bench-pack-'));
  const storage = createFilesystemDriver(dir);
  const t0 = performance.now();
  let bytes = 0;
  let uncompressed = 0;
  let members = 0;
  await mapLimit(groups, os.availableParallelism(), async (g) => {
    const { stream, done } = compressAndHash(packStorePaths(g));
    const blob = await putStaged(storage, stream, blobKey, MediaTypes.dockerLayer);
    const info = await done;
    bytes += blob.size;
    uncompressed += info.uncompressedSize;
    members += Math.max(1, Math.ceil(info.uncompressedSize / MEMBER_SIZE));
  });
  const ms = performance.now() - t0;
  await rm(dir, { recursive: true, force: true });
  return { ms, bytes, uncompressed, members };
}

async function main(): Promise<void> {
  const prepared = await prepareImage({
    nixDir: path.join(REPO, 'nix'),
    source: { type: 'path', path: path.join(REPO, 'nix/pkgs') },
    system: 'x86_64-linux',
    packages: PACKAGES,
    timeoutMs: 600_000,
    extraNixOptions: ['--option', 'substituters', ''],
    env: NIX_ENV,
  });
  if (prepared.kind !== 'ok') throw new Error(`prepare failed: ${JSON.stringify(prepared)}`);
  const groups = groupLayers(prepared.graph, { budget: NIXERY_CLOSURE_BUDGET, popularity: {} }).map((l) => l.contents);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nixery-bench-tar-'));
  try {
    // The same tar bytes for gzip -6 and the per-level table: the layers' tars, one after another.
    const tarFile = path.join(dir, 'layers.tar');
    await pipeline(Readable.from(layerTars(groups)), createWriteStream(tarFile));
    const tar = await readFile(tarFile);
    const tarBytes = tar.length;
    console.log(`date: ${new Date().toISOString()}; ${os.cpus()[0]?.model ?? 'cpu'}; ${os.availableParallelism()} cores; load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    console.log(`image: ${PACKAGES.join(' ')} (${groups.length} layers, ${mb(tarBytes)} MB of tar); member size ${MEMBER_SIZE / 1024} KiB; ${ROUNDS} rounds, medians`);

    const gz: { ms: number[]; bytes: number } = { ms: [], bytes: 0 };
    const levels = new Map(LEVELS.map((l) => [l, { ms: [] as number[], bytes: 0 }]));
    const worker = { ms: [] as number[], bytes: 0, uncompressed: 0, members: 0 };
    await packLayers(groups); // warm the page cache and the JIT
    for (let r = 0; r < ROUNDS; r++) {
      const g = await gzipSix(tarFile);
      gz.ms.push(g.ms);
      gz.bytes = g.bytes;
      for (const [level, row] of levels) {
        const c = await compressOnly(tar, level);
        row.ms.push(c.ms);
        row.bytes = c.bytes;
      }
      const w = await packLayers(groups);
      worker.ms.push(w.ms);
      Object.assign(worker, { bytes: w.bytes, uncompressed: w.uncompressed, members: w.members });
    }
    if (worker.uncompressed !== tarBytes) throw new Error(`tar sizes differ: ${worker.uncompressed} vs ${tarBytes}`);
    const gzSpeed = tarBytes / 1e6 / (median(gz.ms) / 1000);
    console.log(`\ngzip -6 -c (Debian gzip, 1 core): ${(median(gz.ms) / 1000).toFixed(2)} s, ${gzSpeed.toFixed(1)} MB/s, ${mb(gz.bytes)} MB`);
    console.log('\ncompressor alone, tar in memory (parallel members):');
    console.log('level   MB/s   x gzip-6 speed   MB     x gzip-6 size   meets both');
    for (const [level, row] of levels) {
      const speed = tarBytes / 1e6 / (median(row.ms) / 1000);
      const sx = speed / gzSpeed;
      const zx = row.bytes / gz.bytes;
      const ok = sx >= TARGET_SPEED && zx <= TARGET_SIZE;
      console.log(
        `${String(level).padEnd(7)} ${speed.toFixed(1).padStart(5)}  ${sx.toFixed(2).padStart(8)}x        ${mb(row.bytes).padStart(5)}  ${zx.toFixed(3).padStart(8)}x       ${ok ? 'yes' : 'no'}${level === GZIP_LEVEL ? '  <- chosen' : ''}`,
      );
    }
    const wSpeed = tarBytes / 1e6 / (median(worker.ms) / 1000);
    const sx = wSpeed / gzSpeed;
    const zx = worker.bytes / gz.bytes;
    console.log(
      `\nworker packing at level ${GZIP_LEVEL} (walk + diff_id + gzip members + digest + storage write, ${os.availableParallelism()} layers at a time): ` +
        `${(median(worker.ms) / 1000).toFixed(2)} s (${worker.ms.map((x) => (x / 1000).toFixed(2)).join(', ')}), ${wSpeed.toFixed(1)} MB/s, ${mb(worker.bytes)} MB in ${worker.members} members`,
    );
    console.log(`throughput: ${sx.toFixed(2)}x gzip -6 (target >= ${TARGET_SPEED}x) ${sx >= TARGET_SPEED ? 'MET' : 'NOT MET'}`);
    console.log(`size: ${zx.toFixed(3)}x gzip -6 (target <= ${TARGET_SIZE}x) ${zx <= TARGET_SIZE ? 'MET' : 'NOT MET'}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
