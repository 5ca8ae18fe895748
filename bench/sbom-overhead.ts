/**
 * What an image's SBOM costs a build. A big image of the bundled set is built
 * and published by the real pipeline (real Nix preparation on this machine's
 * store, layering, packing into fresh filesystem storage, publishing) several
 * times; in each round the SBOM's own work (the SPDX document from the
 * closure, `imageSbom`, and its writes for both manifest variants,
 * `publishSbom`) is timed again on
 * the same data, in fresh storage, right after the build. Two kinds of build,
 * interleaved round by round: `cold` (empty layer cache: every layer packed)
 * and `warm` (layers already in the cache: Nix and publishing only, the
 * smallest build there is, where the SBOM weighs most). The overhead is the
 * median SBOM time over the median build time without it.
 *
 *   npm run bench:sbom            (PACKAGES="..." ROUNDS=5 to choose)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { BuildJobData } from '../libs/shared/src/jobs';
import { prepareImage, type PrepareRequest, type PrepareResult } from '../libs/shared/src/nix';
import { type CachedLayer, type LayerStore, buildImage, imageSbom, publishImage, publishSbom } from '../libs/shared/src/pipeline';
import { parseImage } from '../libs/shared/src/protocol';
import { createFilesystemDriver } from '../libs/shared/src/storage';
import { NIX_ENV } from '../test/helpers/nix-env';

const REPO = path.resolve(__dirname, '..');
const PACKAGES = process.env.PACKAGES ?? 'python3/git/curl/jq/htop/nano/coreutils/bashinteractive/moreutils/openssl/7zz/busybox';
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const log = pino({ level: 'silent' });

function memoryLayers(): LayerStore {
  const map = new Map<string, CachedLayer>();
  return { get: async (k) => map.get(k) ?? null, put: async (k, l) => void map.set(k, l), tryLock: async () => ({ release: async () => undefined }) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const parsed = parseImage(PACKAGES, 'latest');
  if (!parsed.ok) throw new Error(parsed.error.reason);
  const job: BuildJobData = { buildKey: 'bench', image: parsed.spec, source: { identity: 'path:bench#x', revision: 'bench', nix: { type: 'path', path: path.join(REPO, 'nix/pkgs') } } };
  let last: Extract<PrepareResult, { kind: 'ok' }> | null = null;
  const prepare = async (req: PrepareRequest): Promise<PrepareResult> => {
    const r = await prepareImage({ ...req, nixDir: path.join(REPO, 'nix'), timeoutMs: 600_000, extraNixOptions: ['--option', 'substituters', ''], env: NIX_ENV });
    if (r.kind === 'ok') last = r;
    return r;
  };
  const warmLayers = memoryLayers();
  const rows = { cold: { build: [] as number[], sbom: [] as number[] }, warm: { build: [] as number[], sbom: [] as number[] } };
  for (let round = 0; round <= ROUNDS; round++) {
    for (const kind of ['cold', 'warm'] as const) {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'nixery-bench-sbom-'));
      const storage = createFilesystemDriver(path.join(dir, 'build'));
      const t0 = performance.now();
      const out = await buildImage(
        { storage, layerCache: kind === 'cold' ? memoryLayers() : warmLayers, prepare, popularity: async () => ({}), layerBudget: 95, packConcurrency: os.availableParallelism(), log },
        job,
        () => undefined,
        new AbortController().signal,
      );
      if (!out.ok || !('image' in out)) throw new Error(`build failed: ${JSON.stringify(out)}`);
      await publishImage({ storage, status: { recordSuccess: async () => undefined }, manifests: { put: async () => undefined }, log }, job, out.image, 0);
      const total = performance.now() - t0;
      // The SBOM's own work, again, on the same closure, into fresh storage.
      const prepared = last!;
      const sbomStorage = createFilesystemDriver(path.join(dir, 'sbom'));
      const subjects = [out.image.documents.manifest, out.image.documents.oci].map((m) => ({ mediaType: m.mediaType, digest: m.digest, size: m.size }));
      const t1 = performance.now();
      const sbom = imageSbom(job, prepared.graph, prepared.packages);
      await publishSbom(sbomStorage, sbom, subjects);
      const sbomMs = performance.now() - t1;
      await rm(dir, { recursive: true, force: true });
      if (round === 0) {
        console.log(`${kind} warm-up: ${total.toFixed(0)} ms; closure ${Object.keys(prepared.graph.paths).length} store paths, SBOM ${sbom.size} bytes`);
        continue; // the first round builds the store paths and warms caches
      }
      rows[kind].build.push(total - sbomMs);
      rows[kind].sbom.push(sbomMs);
      console.log(`round ${round} ${kind}: build ${total.toFixed(0)} ms, of which SBOM ${sbomMs.toFixed(1)} ms`);
    }
  }
  console.log(`\nimage ${PACKAGES}, ${ROUNDS} rounds, medians:`);
  for (const kind of ['cold', 'warm'] as const) {
    const b = median(rows[kind].build);
    const s = median(rows[kind].sbom);
    console.log(`${kind}: build without SBOM ${b.toFixed(0)} ms, SBOM ${s.toFixed(1)} ms, overhead ${((100 * s) / b).toFixed(2)} %`);
  }
  // The bundled set's closures are small; a nixpkgs image's may hold thousands of paths.
  for (const n of [1000, 5000]) {
    const paths: Record<string, { path: string; narSize: number; references: string[]; narHash: string }> = {};
    const names = Array.from({ length: n }, (_, i) => `/nix/store/${i.toString(32).padStart(32, '0')}-pkg${i}-1.${i}`);
    names.forEach((p, i) => (paths[p] = { path: p, narSize: 1000 + i, references: names.slice(i + 1, i + 11), narHash: `sha256:${'0'.repeat(52)}` }));
    const t = performance.now();
    const doc = imageSbom(job, { roots: [names[0]!], paths }, { pkg0: { attr: 'pkg0', out: names[0]! } });
    console.log(`synthetic closure of ${n} paths (10 references each): SPDX document ${(doc.size / 1e6).toFixed(1)} MB in ${(performance.now() - t).toFixed(0)} ms`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
