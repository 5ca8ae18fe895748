/**
 * `npm run bench`: this registry and Debian's docker-registry (CNCF
 * distribution 2.8) side by side in one run, one table with ratios (issue 15).
 *
 *   npm run bench
 *   BENCH_SECONDS=5 BENCH_ROUNDS=3 npm run bench      # shorter loads
 *   BENCH_IMAGE=shell/git/python3 npm run bench       # another big image
 *
 * 1. Nixery starts as `npm start` runs it (`node dist/single-node.js`, built
 *    by `tsc -b`), LOG_LEVEL=info, fresh storage; docker-registry beside it.
 *    Idle RSS of both is read from /proc after a few seconds.
 * 2. A big image is built cold through the worker (the worker's own packing
 *    code); its time is split into Nix (evaluating + building stages) and
 *    packing (layering + packing + uploading) from nixery_build_duration_seconds.
 *    The same cold build runs again in fresh instances (BENCH_BUILDS in all,
 *    default 3): one build is one sample, and medians are printed.
 *    The layers' tar bytes (decompressed from the served layers) are then
 *    compressed by single-core `gzip -6`, the compressor's limit the packing
 *    is compared with. Nixery's RSS is sampled every 100 ms during the build.
 *    A small image (hello) is built after it: a peak that grew with layer
 *    size would show as a higher peak for the big one.
 * 3. The image is copied to docker-registry with skopeo (same digests).
 * 4. Warm manifests by tag and by digest: wrk, 32 connections; blobs: the
 *    largest layer with 1 and 8 connections. Targets are interleaved round
 *    after round so background load hits both alike; medians are printed.
 */
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startDistributionRegistry } from '../test/helpers/clients';
import { MANIFEST_ACCEPT, REPO, metricValue, startNixery } from '../test/helpers/nixery';
import { makeScratchDir, removeScratchDir, runChecked, sleep } from '../test/helpers/proc';
import { type WrkResult, median, residentMemory, sampleRss, wrk } from './lib';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const BIG = process.env.BENCH_IMAGE ?? 'shell/git/python3/curl/htop/jq/nano/moreutils';
const SMALL = 'hello';
/** Cold builds of the big image, each in a fresh instance (the first one's is also the RSS peak); medians are printed. */
const BUILDS = Number(process.env.BENCH_BUILDS ?? 3);
const MB = 1e6;

interface Row {
  what: string;
  nixery: string;
  reference: string;
  ratio: string;
  target: string;
}

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? `${(a / b).toFixed(2)}x` : '-');

/** A stage's total seconds from a /metrics page. */
const stageSeconds = (metrics: string, stages: string[]) =>
  stages.reduce((n, stage) => n + metricValue(metrics, 'nixery_build_duration_seconds_sum', { stage }), 0);

async function main(): Promise<void> {
  await mkdir(path.join(REPO, 'test-artifacts'), { recursive: true });
  await stat(path.join(REPO, 'dist/single-node.js')).catch(() => {
    throw new Error('dist/single-node.js is missing: run `npx tsc -b tsconfig.json` first');
  });
  const load = execLoad();
  console.log(`machine: ${os.cpus().length} cores, load average ${load}; ${SECONDS} s x ${ROUNDS} rounds per target`);
  const nx = await startNixery({ LOG_LEVEL: 'info' }, { compiled: true });
  const reg = await startDistributionRegistry();
  const scratch = await makeScratchDir('nixery-bench-compare-');
  const rows: Row[] = [];
  const summary: Record<string, number> = {};
  try {
    const nxPid = nx.child.pid!;
    const regPid = reg.pid;
    await sleep(5000);
    const idle = residentMemory(nxPid)!.rss;
    const regIdle = regPid ? (residentMemory(regPid)?.rss ?? NaN) : NaN;

    // --- the big cold build, with RSS sampled; then the same cold build in fresh instances, for medians ---
    const bigSampler = sampleRss(nxPid);
    const first = await coldBuild(nx.url);
    const bigPeak = bigSampler.stop();
    const { manifest, digest } = first;
    const builds = [first];
    for (let i = 1; i < BUILDS; i++) {
      const fresh = await startNixery({ LOG_LEVEL: 'info' }, { compiled: true });
      try {
        const b = await coldBuild(fresh.url);
        if (b.digest !== digest) throw new Error(`a fresh instance built ${b.digest}, the first ${digest}`);
        builds.push(b);
      } finally {
        await fresh.stop();
      }
    }
    const buildMs = median(builds.map((b) => b.ms));
    const nixS = median(builds.map((b) => b.nixS));
    const packS = median(builds.map((b) => b.packS));
    console.log(`cold builds (fresh storage each): packing ${builds.map((b) => b.packS.toFixed(2)).join(', ')} s; Nix ${builds.map((b) => b.nixS.toFixed(2)).join(', ')} s`);

    const smallSampler = sampleRss(nxPid);
    const small = await fetch(`${nx.url}/v2/${SMALL}/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } });
    const smallPeak = smallSampler.stop();
    if (small.status !== 200) throw new Error(`small build failed: ${small.status}`);

    // --- the compressor's limit: single-core gzip -6 on the same tar bytes ---
    let tarBytes = 0;
    let gzBytes = 0;
    let gzipMs = 0;
    for (const [i, l] of manifest.layers.entries()) {
      const gz = path.join(scratch, `layer-${i}.gz`);
      const tar = path.join(scratch, `layer-${i}.tar`);
      await writeFile(gz, Buffer.from(await (await fetch(`${nx.url}/v2/${BIG}/blobs/${l.digest}`)).arrayBuffer()));
      await runChecked('sh', ['-c', 'gzip -dc "$1" > "$2"', 'sh', gz, tar], { timeoutMs: 120_000 });
      tarBytes += (await stat(tar)).size;
      const g0 = performance.now();
      await runChecked('sh', ['-c', 'gzip -6 -c "$1" > "$1.gz6"', 'sh', tar], { timeoutMs: 300_000 });
      gzipMs += performance.now() - g0;
      gzBytes += (await stat(`${tar}.gz6`)).size;
      await rm(gz);
      await rm(tar);
      await rm(`${tar}.gz6`);
    }
    const packedBytes = manifest.layers.reduce((n, l) => n + l.size, 0);
    const packMBs = tarBytes / MB / packS;
    const gzipMBs = tarBytes / MB / (gzipMs / 1000);

    // --- the same image in docker-registry ---
    await runChecked('skopeo', [
      '--insecure-policy', 'copy', '--src-tls-verify=false', '--dest-tls-verify=false', '--preserve-digests',
      `docker://${nx.host}/${BIG}:latest`, `docker://${reg.host}/${BIG}:latest`,
    ], { timeoutMs: 600_000 });
    const regDigest = (await fetch(`http://${reg.host}/v2/${BIG}/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } })).headers.get('docker-content-digest');
    if (regDigest !== digest) throw new Error(`registry serves ${regDigest}, Nixery ${digest}`);
    const largest = [...manifest.layers].sort((a, b) => b.size - a.size)[0]!;

    // --- loads, interleaved ---
    const manifestTargets = ['tag', 'digest'].flatMap((by) => {
      const ref = by === 'tag' ? 'latest' : digest;
      return [
        { key: `nixery manifest ${by}`, url: `${nx.url}/v2/${BIG}/manifests/${ref}`, c: 32 },
        { key: `registry manifest ${by}`, url: `http://${reg.host}/v2/${BIG}/manifests/${ref}`, c: 32 },
      ];
    });
    const blobTargets = [1, 8].flatMap((c) => [
      { key: `nixery blob ${c}`, url: `${nx.url}/v2/${BIG}/blobs/${largest.digest}`, c },
      { key: `registry blob ${c}`, url: `http://${reg.host}/v2/${BIG}/blobs/${largest.digest}`, c },
    ]);
    const targets = [...manifestTargets, ...blobTargets];
    const opts = (c: number) => ({ connections: c, seconds: SECONDS, threads: Math.min(2, c), headers: { Accept: MANIFEST_ACCEPT } });
    for (const t of targets) await wrk(t.url, { ...opts(t.c), seconds: 2 }).catch(() => undefined); // warm-up
    const results = new Map<string, WrkResult[]>(targets.map((t) => [t.key, []]));
    const loadSampler = sampleRss(nxPid);
    const regSampler = regPid ? sampleRss(regPid) : undefined;
    for (let r = 1; r <= ROUNDS; r++) {
      for (const t of targets) {
        const res = await wrk(t.url, opts(t.c));
        results.get(t.key)!.push(res);
        console.log(`round ${r} ${t.key}: ${fmt(res.rps)} req/s, ${fmt(res.bytesPerSec / MB)} MB/s, p50 ${fmt(res.p50ms, 2)} ms, p99 ${fmt(res.p99ms, 2)} ms, errors ${res.errors}`);
        if (res.errors > 0) throw new Error(`${t.key}: ${res.errors} errors`);
      }
    }
    const loadPeak = loadSampler.stop();
    const regPeak = regSampler?.stop() ?? NaN;
    const med = (key: string, f: (x: WrkResult) => number) => median(results.get(key)!.map(f));

    for (const by of ['tag', 'digest']) {
      const n = med(`nixery manifest ${by}`, (x) => x.rps);
      const d = med(`registry manifest ${by}`, (x) => x.rps);
      summary[`manifest_${by}_rps`] = n;
      summary[`registry_manifest_${by}_rps`] = d;
      rows.push({ what: `warm manifest by ${by}, req/s (32 conn)`, nixery: fmt(n), reference: fmt(d), ratio: ratio(n, d), target: '>= 10x' });
      for (const p of ['p50ms', 'p99ms'] as const) {
        const a = med(`nixery manifest ${by}`, (x) => x[p]);
        const b = med(`registry manifest ${by}`, (x) => x[p]);
        rows.push({ what: `  ${p.slice(0, 3)} ms`, nixery: fmt(a, 2), reference: fmt(b, 2), ratio: ratio(a, b), target: '' });
      }
    }
    for (const c of [1, 8]) {
      const n = med(`nixery blob ${c}`, (x) => x.bytesPerSec) / MB;
      const d = med(`registry blob ${c}`, (x) => x.bytesPerSec) / MB;
      summary[`blob_${c}_MBps`] = n;
      summary[`registry_blob_${c}_MBps`] = d;
      rows.push({ what: `blob MB/s, ${c} client${c > 1 ? 's' : ''} (${fmt(largest.size / MB, 1)} MB layer)`, nixery: fmt(n), reference: fmt(d), ratio: ratio(n, d), target: '>= 1.0x' });
    }
    rows.push({ what: `big cold build, s (${manifest.layers.length} layers, median of ${builds.length})`, nixery: fmt(buildMs / 1000, 2), reference: '', ratio: '', target: '' });
    rows.push({ what: '  Nix (evaluate + build), s', nixery: fmt(nixS, 2), reference: '', ratio: '', target: '' });
    rows.push({ what: '  packing (layer + pack + upload), s', nixery: fmt(packS, 2), reference: `gzip -6: ${fmt(gzipMs / 1000, 2)}`, ratio: '', target: '' });
    rows.push({ what: `  packing MB/s of tar (${fmt(tarBytes / MB)} MB)`, nixery: fmt(packMBs, 1), reference: `gzip -6: ${fmt(gzipMBs, 1)}`, ratio: ratio(packMBs, gzipMBs), target: '>= 2.5x' });
    rows.push({ what: '  compressed MB', nixery: fmt(packedBytes / MB, 1), reference: `gzip -6: ${fmt(gzBytes / MB, 1)}`, ratio: ratio(packedBytes, gzBytes), target: '<= 1.10x' });
    rows.push({ what: 'RSS idle, MB', nixery: fmt(idle / MB, 1), reference: fmt(regIdle / MB, 1), ratio: ratio(idle, regIdle), target: '' });
    rows.push({ what: 'RSS peak, big build, MB', nixery: fmt(bigPeak / MB, 1), reference: '', ratio: `idle +${fmt((bigPeak - idle) / MB, 1)}`, target: 'idle + 64' });
    rows.push({ what: 'RSS peak, small build (hello), MB', nixery: fmt(smallPeak / MB, 1), reference: '', ratio: `idle +${fmt((smallPeak - idle) / MB, 1)}`, target: '' });
    rows.push({ what: 'RSS peak under the loads above, MB', nixery: fmt(loadPeak / MB, 1), reference: fmt(regPeak / MB, 1), ratio: ratio(loadPeak, regPeak), target: '' });
    Object.assign(summary, { buildMs, nixS, packS, tarBytes, packedBytes, gzBytes, gzipMs, packMBs, gzipMBs, idle, regIdle, bigPeak, smallPeak, loadPeak, regPeak });

    const w = [Math.max(...rows.map((r) => r.what.length)), 10, 16, 10, 9];
    const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(w[i]!)).join(' | ')} |`;
    console.log(`\n${new Date().toISOString().slice(0, 16)}Z, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), load average at start ${load}`);
    console.log(`image ${BIG} (${digest}); medians of ${ROUNDS} interleaved rounds of ${SECONDS} s`);
    console.log(line(['', 'nixery', 'docker-registry', 'ratio', 'target']));
    console.log(line(w.map((n) => '-'.repeat(n))));
    for (const r of rows) console.log(line([r.what, r.nixery, r.reference, r.ratio, r.target]));
    await writeFile(path.join(REPO, 'test-artifacts', 'bench-compare.json'), JSON.stringify({ date: new Date().toISOString(), load, image: BIG, summary }, null, 2));
  } finally {
    await removeScratchDir(scratch);
    await reg.stop();
    await nx.stop();
  }
}

/** One cold build of the big image on a fresh instance: its manifest, wall time, and Nix and packing seconds from /metrics. */
async function coldBuild(url: string) {
  const before = await (await fetch(`${url}/metrics`)).text();
  const t0 = performance.now();
  const built = await fetch(`${url}/v2/${BIG}/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } });
  const ms = performance.now() - t0;
  if (built.status !== 200) throw new Error(`big build failed: ${built.status} ${await built.text()}`);
  const manifest = (await built.json()) as { layers: { digest: string; size: number }[] };
  const after = await (await fetch(`${url}/metrics`)).text();
  return {
    manifest,
    digest: built.headers.get('docker-content-digest')!,
    ms,
    nixS: stageSeconds(after, ['evaluating', 'building']) - stageSeconds(before, ['evaluating', 'building']),
    packS: stageSeconds(after, ['layering', 'packing', 'uploading']) - stageSeconds(before, ['layering', 'packing', 'uploading']),
  };
}

/** The 1-, 5- and 15-minute load averages, for the report. */
function execLoad(): string {
  return os.loadavg().map((x) => x.toFixed(1)).join(' ');
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
