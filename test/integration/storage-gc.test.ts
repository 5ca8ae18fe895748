/**
 * Storage garbage collection (issue 11, point 4) against `npm start`: real
 * Nix builds of the bundled set, its embedded redis-server, filesystem
 * storage, and `npm run gc` (apps/popcount-job/src/gc-once.ts) as a client
 * of the running process's `gc` queue. Image A is pulled once, image B again
 * after A's keep time has passed: a dry run lists exactly A's manifest and
 * the blobs only A uses and deletes nothing; the real run deletes exactly
 * those (the bytes-freed counter equals their sizes), B still pulls, and A
 * is built again on its next pull with every blob fetchable. A second
 * instance runs the scheduled job: an old unreferenced blob goes, a fresh
 * one (within the grace) and an old manifest without a pull record (and its
 * blob) stay. Before this work nothing ever deleted a blob.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { MANIFEST_ACCEPT, type NixeryInstance, REPO, metric, startNixery } from '../helpers/nixery';

const run = promisify(execFile);
const KEEP_S = 25;
const GRACE_S = 5;

interface Pulled {
  digest: string;
  /** The digest of the image's OCI manifest (issue 13: both variants are stored). */
  oci: string;
  blobs: string[];
}

/** GETs an image's manifest; its digest and every blob digest it names. */
async function pull(nx: NixeryInstance, name: string): Promise<Pulled> {
  const res = await fetch(`${nx.url}/v2/${name}/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } });
  assert.equal(res.status, 200, `${name}: ${await res.clone().text()}`);
  const m = (await res.json()) as { config: { digest: string }; layers: { digest: string }[] };
  const oci = await fetch(`${nx.url}/v2/${name}/manifests/latest`, { method: 'HEAD', headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
  return { digest: res.headers.get('docker-content-digest')!, oci: oci.headers.get('docker-content-digest')!, blobs: [m.config.digest, ...m.layers.map((l) => l.digest)] };
}

/**
 * The manifests that go with an image manifest besides itself, found as a
 * client finds them: its OCI variant (issue 13) and, for each variant, its
 * SBOM artifact manifests, with their SPDX blobs (issue 14, the referrers
 * API). Fetching them records their pulls, as publishing did.
 */
async function companions(nx: NixeryInstance, name: string, img: Pulled): Promise<{ manifests: string[]; blobs: string[] }> {
  const manifests = [img.oci];
  const blobs = new Set<string>();
  for (const v of [img.digest, img.oci]) {
    const index = (await (await fetch(`${nx.url}/v2/${name}/referrers/${v}`)).json()) as { manifests: { digest: string }[] };
    for (const d of index.manifests) {
      manifests.push(d.digest);
      const artifact = (await (await fetch(`${nx.url}/v2/${name}/manifests/${d.digest}`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } })).json()) as { layers: { digest: string }[] };
      for (const l of artifact.layers) blobs.add(l.digest);
    }
  }
  return { manifests, blobs: [...blobs] };
}

/** Every blob of an image answers 200 with its bytes. */
async function allBlobsFetchable(nx: NixeryInstance, name: string, img: Pulled): Promise<void> {
  for (const b of img.blobs) {
    const res = await fetch(`${nx.url}/v2/${name}/blobs/${b}`);
    assert.equal(res.status, 200, `blob ${b} of ${name}`);
    await res.arrayBuffer();
  }
}

/** Relative path -> size of every object under layers/ and manifests/. */
async function objects(storage: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const dir of ['layers', 'manifests']) {
    for (const n of await readdir(path.join(storage, dir)).catch(() => [] as string[])) {
      out.set(`${dir}/${n}`, (await stat(path.join(storage, dir, n))).size);
    }
  }
  return out;
}

const hex = (digest: string) => digest.replace(/^sha256:/, '');

/** Runs `npm run gc` (its built-from-source entry) against the instance; the outcome it prints. */
async function gcCommand(nx: NixeryInstance, dryRun: boolean) {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', path.join(REPO, 'apps/popcount-job/src/gc-once.ts'), ...(dryRun ? ['--dry-run'] : [])], {
    cwd: REPO,
    env: { ...process.env, TSX_TSCONFIG_PATH: path.join(REPO, 'test/tsconfig.json'), STORAGE_PATH: nx.storagePath, LOG_LEVEL: 'error' },
    timeout: 120_000,
  });
  const last = stdout.trim().split('\n').pop()!;
  return JSON.parse(last) as {
    ok: boolean;
    report: { dryRun: boolean; manifests: { key: string; size: number }[]; blobs: { key: string; size: number }[]; bytes: number };
  };
}

describe('storage collection: dry run, sweep, rebuild', () => {
  let nx: NixeryInstance;
  before(async () => {
    nx = await startNixery({
      NIXERY_POPCOUNT_SCHEDULE: 'off',
      // The job is hosted by npm start but only runs when asked (a cron tick far away).
      NIXERY_GC_SCHEDULE: '0 0 1 1 *',
      NIXERY_GC_KEEP: String(KEEP_S),
      NIXERY_GC_GRACE: `${GRACE_S}s`,
    });
  });
  after(async () => {
    await nx?.stop();
  });

  it('collects what only a stale image uses, keeps a recent one, and rebuilds the stale one on its next pull', { timeout: 600_000 }, async () => {
    const a = await pull(nx, 'htop');
    const withA = await companions(nx, 'htop', a);
    const pulledA = Date.now();
    const b = await pull(nx, 'jq');
    const withB = await companions(nx, 'jq', b);
    assert.ok(withA.manifests.length >= 2 && withA.blobs.length === 1, 'A has an OCI variant and an SBOM for each variant');
    const aManifests = [a.digest, ...withA.manifests].map((d) => `manifests/${hex(d)}`).sort();
    const bBlobs = [...b.blobs, ...withB.blobs];
    const exclusiveA = new Set([...a.blobs, ...withA.blobs].filter((d) => !bBlobs.includes(d)).map((d) => `layers/${hex(d)}`));
    assert.ok(exclusiveA.size >= 2, 'A has blobs of its own (its config and symlink layer at least)');
    assert.ok(a.blobs.some((d) => b.blobs.includes(d)), 'A and B share a blob (it must stay)');

    // Time passes beyond the keep time for A only: B is pulled again.
    await sleep(Math.max(0, pulledA + (KEEP_S + 2) * 1000 - Date.now()));
    await pull(nx, 'jq');
    await sleep(1000); // the pull record is written in the background

    const before = await objects(nx.storagePath);
    const dry = await gcCommand(nx, true);
    assert.ok(dry.ok);
    assert.equal(dry.report.dryRun, true);
    assert.deepEqual(dry.report.manifests.map((o) => o.key).sort(), aManifests, 'the dry run lists A\'s manifests (both variants and their SBOM artifacts)');
    assert.deepEqual(new Set(dry.report.blobs.map((o) => o.key)), exclusiveA, 'the dry run lists exactly the blobs only A uses');
    assert.deepEqual(await objects(nx.storagePath), before, 'a dry run deletes nothing');
    assert.equal(await metric(nx.url, 'nixery_gc_bytes_freed_total'), 0);

    await pull(nx, 'jq');
    const real = await gcCommand(nx, false);
    assert.ok(real.ok);
    const gone = [...aManifests, ...exclusiveA];
    assert.deepEqual(new Set([...real.report.manifests, ...real.report.blobs].map((o) => o.key)), new Set(gone));
    const after = await objects(nx.storagePath);
    for (const k of gone) assert.ok(!after.has(k), `${k} is deleted`);
    for (const d of b.blobs) assert.ok(after.has(`layers/${hex(d)}`), `B's blob ${d} stays`);
    assert.ok(after.has(`manifests/${hex(b.digest)}`));
    assert.ok(after.has(`manifests/${hex(b.oci)}`), 'B\'s OCI manifest stays: pulls by tag count for both variants');
    const freed = gone.reduce((n, k) => n + before.get(k)!, 0);
    assert.equal(real.report.bytes, freed);
    assert.equal(await metric(nx.url, 'nixery_gc_bytes_freed_total'), freed, 'bytes freed = sizes of the deleted objects');
    assert.equal(await metric(nx.url, 'nixery_gc_objects_deleted_total', { kind: 'blob' }), exclusiveA.size);
    assert.equal(await metric(nx.url, 'nixery_gc_objects_deleted_total', { kind: 'manifest' }), aManifests.length);
    for (const d of withB.manifests) assert.ok(after.has(`manifests/${hex(d)}`), `B's companion manifest ${d} stays`);
    for (const d of [a.digest, a.oci]) {
      const r = await fetch(`${nx.url}/v2/htop/referrers/${d}`);
      assert.deepEqual(((await r.json()) as { manifests: unknown[] }).manifests, [], 'a collected manifest has no referrers left');
    }
    assert.equal(await metric(nx.url, 'nixery_gc_runs_total', { outcome: 'dry_run' }), 1);
    assert.equal(await metric(nx.url, 'nixery_gc_runs_total', { outcome: 'collected' }), 1);

    await allBlobsFetchable(nx, 'jq', await pull(nx, 'jq'));

    const builds = await metric(nx.url, 'nixery_builds_started_total');
    const again = await pull(nx, 'htop');
    assert.equal(await metric(nx.url, 'nixery_builds_started_total'), builds + 1, 'A is built again, not served from a cache');
    await allBlobsFetchable(nx, 'htop', again);
    assert.ok((await objects(nx.storagePath)).has(`manifests/${hex(again.digest)}`));
  });
});

describe('storage collection: the scheduled job and the grace', () => {
  let storage: string;
  let nx: NixeryInstance;
  const planted = {
    oldBlob: `layers/${'a1'.repeat(32)}`,
    freshBlob: `layers/${'b2'.repeat(32)}`,
    unrecordedManifest: `manifests/${'c3'.repeat(32)}`,
    itsBlob: `layers/${'d4'.repeat(32)}`,
  };
  before(async () => {
    storage = await mkdtemp(path.join(os.tmpdir(), 'nixery-gc-'));
    for (const dir of ['layers', 'manifests']) await mkdir(path.join(storage, dir), { recursive: true });
    const hourAgo = new Date(Date.now() - 3600_000);
    const manifest = JSON.stringify({ schemaVersion: 2, config: { digest: `sha256:${'d4'.repeat(32)}` }, layers: [] });
    for (const [k, body] of Object.entries({ oldBlob: 'old', unrecordedManifest: manifest, itsBlob: 'its config' })) {
      const p = path.join(storage, planted[k as keyof typeof planted]);
      await writeFile(p, body);
      await utimes(p, hourAgo, hourAgo);
    }
    await writeFile(path.join(storage, planted.freshBlob), 'written moments ago');
    nx = await startNixery(
      { NIXERY_POPCOUNT_SCHEDULE: 'off', NIXERY_GC_SCHEDULE: '1s', NIXERY_GC_KEEP: '1h', NIXERY_GC_GRACE: '60' },
      { storagePath: storage },
    );
  });
  after(async () => {
    await nx?.stop();
    await rm(storage, { recursive: true, force: true });
  });

  it('runs on its schedule: an old unreferenced blob goes; a fresh one and an unrecorded manifest with its blob stay', { timeout: 60_000 }, async () => {
    const deadline = Date.now() + 20_000;
    while ((await objects(storage)).has(planted.oldBlob) && Date.now() < deadline) await sleep(200);
    const left = await objects(storage);
    assert.ok(!left.has(planted.oldBlob), 'the old blob no manifest refers to is collected');
    assert.ok(left.has(planted.freshBlob), 'a blob written moments ago (within the grace) stays');
    assert.ok(left.has(planted.unrecordedManifest), 'a manifest without a pull record is kept (recorded as first seen)');
    assert.ok(left.has(planted.itsBlob), 'and so is its blob');
    await sleep(2500);
    assert.ok(await metric(nx.url, 'nixery_gc_runs_total', { outcome: 'collected' }) >= 2, 'the job runs again on each tick');
    assert.ok((await objects(storage)).has(planted.freshBlob));
    assert.ok((await objects(storage)).has(planted.unrecordedManifest), 'still kept: first seen less than the keep time ago');
  });
});
