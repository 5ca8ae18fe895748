/**
 * A full disk against a real `npm start` Nixery (issue 11, point 3): its
 * STORAGE_PATH is a small tmpfs, and the image pulled has a layer of 6 MB of
 * random bytes (a package of a copied package set), so packing it fails
 * mid-write once a filler file leaves 1 MB free.
 *
 * 1. Storage full, Redis fine (the embedded Redis's directory is a tmpfs of
 *    its own): the pull is `503 UNAVAILABLE` whose detail names ENOSPC; the
 *    log has one error line with the cause; `builds_failed{reason="storage_full"}`
 *    and the cluster counter went up; the page's failures list shows it; no
 *    object under a digest key fails its hash and no staging or partial file
 *    is left; 20 pulls in a row give a few log lines that count all 20; once
 *    the filler is deleted the same pull is 200 with a correct image, no
 *    restart. Before: `500`-like `UNAVAILABLE "image build failed"` with no
 *    cause (the failure was `internal`, retried three times per pull).
 * 2. Storage and Redis on one full disk: Redis refuses writes (MISCONF);
 *    every pull gets a 503 within the build wait, never 500 or 404; the log
 *    stays a few lines (before: 900 000 identical 'worker error' lines in
 *    five minutes); freeing the space makes the same pull work, no restart.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MANIFEST_ACCEPT, type NixeryInstance, metric, type LogLine as BaseLogLine, readLogLines, startNixery } from '../helpers/nixery';
import { busyboxPackage, copyPackageSet } from '../helpers/pkgset';
import { makeScratchDir, removeScratchDir, sleep } from '../helpers/proc';
import { type Tmpfs, fill, mountTmpfs, tmpfsUnavailable } from '../helpers/tmpfs';

/** A package whose one file is 6 MB of random bytes: its layer does not compress. */
const BIG_SCRIPT = '/bin/busybox mkdir -p $out/share && /bin/busybox head -c 6000000 /dev/urandom > $out/share/blob; :';

type LogLine = BaseLogLine & { repeated?: number; failure?: { kind: string }; cause?: string };
type RegistryBody = { errors: { code: string; message: string; detail?: Record<string, unknown> }[] };

async function logLines(nx: NixeryInstance, since = 0): Promise<LogLine[]> {
  return (await readLogLines<LogLine>(nx.logFile)).filter((l) => l.time >= since);
}

const pull = (nx: NixeryInstance) => fetch(`${nx.url}/v2/big/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } });

/** Every object under a digest key hashes to its name; no staging object or partial file is left. */
async function assertNothingHalfWritten(storage: string): Promise<number> {
  let checked = 0;
  for (const dir of ['layers', 'manifests']) {
    const names = await readdir(path.join(storage, dir)).catch(() => [] as string[]);
    for (const n of names) {
      assert.match(n, /^[0-9a-f]{64}$/, `${dir}/${n}: only complete objects under digest keys`);
      const hex = createHash('sha256').update(await readFile(path.join(storage, dir, n))).digest('hex');
      assert.equal(hex, n, `${dir}/${n} does not hash to its name`);
      checked++;
    }
  }
  assert.deepEqual(await readdir(path.join(storage, 'staging')).catch(() => []), [], 'no staging leftover of the failed write');
  return checked;
}

/** Pulls the image's manifest and every blob by digest; each must hash to its digest. */
async function assertCorrectImage(nx: NixeryInstance, manifestText: string): Promise<void> {
  const m = JSON.parse(manifestText) as { config: { digest: string }; layers: { digest: string; size: number }[] };
  assert.ok(m.layers.some((l) => l.size > 5_000_000), 'the big layer is there');
  for (const { digest } of [m.config, ...m.layers]) {
    const res = await fetch(`${nx.url}/v2/big/blobs/${digest}`);
    assert.equal(res.status, 200, digest);
    const hex = createHash('sha256').update(Buffer.from(await res.arrayBuffer())).digest('hex');
    assert.equal(`sha256:${hex}`, digest);
  }
}

/** Pulls until 200 (the disk was just freed: Redis may need a second to write again); the answer and how long it took. */
async function pullUntilOk(nx: NixeryInstance, ms: number): Promise<{ res: Response; text: string; tookMs: number; attempts: number }> {
  const t0 = Date.now();
  for (let attempts = 1; ; attempts++) {
    const res = await pull(nx);
    const text = await res.text();
    if (res.status === 200 || Date.now() - t0 > ms) return { res, text, tookMs: Date.now() - t0, attempts };
    assert.equal(res.status, 503, text);
    await sleep(1000);
  }
}

const skip = tmpfsUnavailable();

/** A Nixery of `npm start` whose STORAGE_PATH is a 24 MB tmpfs (its Redis on a 64 MB one of its own with `redisApart`). */
interface SmallDisk {
  nx: NixeryInstance;
  disk: Tmpfs;
  stop(): Promise<void>;
}

async function startOnSmallDisk(env: Record<string, string>, opts: { redisApart: boolean }): Promise<SmallDisk> {
  const scratch = await makeScratchDir('nixery-diskfull-');
  const pkgs = await copyPackageSet({ extraAttrs: busyboxPackage('big', 'big-1.0', BIG_SCRIPT) });
  const disk = await mountTmpfs(path.join(scratch, 'storage'), '24m');
  const redisDisk = opts.redisApart ? await mountTmpfs(path.join(disk.dir, 'redis'), '64m') : undefined;
  const nx = await startNixery({ ...pkgs.env, NIXERY_POPCOUNT_SCHEDULE: 'off', ...env }, { storagePath: disk.dir });
  return {
    nx,
    disk,
    stop: async () => {
      await nx.stop();
      await redisDisk?.unmount();
      await disk.unmount();
      await pkgs.remove();
      await removeScratchDir(scratch);
    },
  };
}

describe('disk full: storage full, Redis fine', { skip: skip ?? false }, () => {
  let small: SmallDisk;
  let nx: NixeryInstance;
  let disk: Tmpfs;
  let t0: number;
  const REPEAT_S = 15;

  before(async () => {
    small = await startOnSmallDisk({ NIXERY_BUILD_WAIT: '120', NIXERY_LOG_REPEAT_INTERVAL: String(REPEAT_S) }, { redisApart: true });
    ({ nx, disk } = small);
    await mkdir(path.join(disk.dir, 'staging'), { recursive: true });
    await fill(path.join(disk.dir, 'filler'), 1024 * 1024);
    t0 = Date.now();
  });

  after(() => small?.stop());

  it('a layer write that fills the disk fails the build visibly: 503 naming ENOSPC, an error line, counters, the page', async () => {
    const res = await pull(nx);
    const body = (await res.json()) as RegistryBody;
    assert.equal(res.status, 503, JSON.stringify(body));
    const e = body.errors[0]!;
    assert.equal(e.code, 'UNAVAILABLE');
    assert.match(e.message, /storage is full/);
    assert.match(String(e.detail?.cause), /^ENOSPC: no space left on device$/);
    assert.ok(res.headers.get('retry-after'));

    const failed = (await logLines(nx, t0)).filter((l) => l.msg === 'build failed');
    assert.equal(failed.length, 1, 'one line for the failed build');
    assert.equal(failed[0]!.level, 50, 'at error level: the machine failed, not the image');
    assert.equal(failed[0]!.failure?.kind, 'storage_full');
    assert.match(String(failed[0]!.cause), /storage is full: ENOSPC/);
    assert.equal(failed[0]!.image, 'big');

    assert.equal(await metric(nx.url, 'nixery_builds_failed_total', { reason: 'storage_full' }), 1, 'one attempt: a full disk is not retried at once');
    assert.equal(await metric(nx.url, 'nixery_cluster_total', { counter: 'builds_failed' }), 1);

    const status = (await (await fetch(`${nx.url}/api/status`)).json()) as { failures: { image: string; failure: { kind: string; message?: string } }[] };
    assert.equal(status.failures[0]?.image, 'big');
    assert.deepEqual(status.failures[0]?.failure, { kind: 'storage_full', message: 'ENOSPC: no space left on device' });
    const page = await (await fetch(`${nx.url}/`)).text();
    assert.match(page, /storage is full: ENOSPC/);
  });

  it('nothing half-written: every object under a digest hashes to its name, no staging or partial file is left', async () => {
    const checked = await assertNothingHalfWritten(disk.dir);
    assert.ok(checked >= 1, 'the small layers packed before the big one are complete objects');
  });

  it('20 pulls in a row on the full disk: all 503 naming the cause, a few log lines that count them all', async () => {
    const since = Date.now();
    for (let i = 0; i < 20; i++) {
      const res = await pull(nx);
      const body = (await res.json()) as RegistryBody;
      assert.equal(res.status, 503, JSON.stringify(body));
      assert.equal(body.errors[0]?.detail?.cause, 'ENOSPC: no space left on device');
    }
    const elapsed = Date.now() - since;
    // Let the windows opened during the flood end, so their counts are written.
    await sleep(REPEAT_S * 1000 + 1000);
    const lines = (await logLines(nx, since)).filter((l) => l.msg.startsWith('build failed'));
    const windows = Math.ceil(elapsed / (REPEAT_S * 1000)) + 1;
    assert.ok(lines.length <= 2 * windows, `${lines.length} 'build failed' lines for 20 builds in ${elapsed} ms`);
    assert.ok(lines.length < 20);
    // A first line stands for itself, a "repeated" line for its count: together, every build.
    assert.equal(lines.reduce((n, l) => n + (l.repeated ?? 1), 0), 20, 'every build is counted');
    assert.ok(lines.some((l) => /repeated \d+ times/.test(l.msg)), 'a "repeated N times" line');
    const requests = (await logLines(nx, since)).filter((l) => l.msg.startsWith('request failed'));
    assert.ok(requests.length >= 1 && requests.length <= 2 * windows, `${requests.length} 'request failed' lines`);
    await assertNothingHalfWritten(disk.dir);
    console.log(`# 20 failed pulls in ${elapsed} ms: ${lines.length} 'build failed' lines, ${requests.length} 'request failed' lines`);
  });

  it('works again once space is freed, without a restart: 200 and a correct image', async () => {
    const pid = nx.child.pid;
    await rm(path.join(disk.dir, 'filler'));
    const { res, text, tookMs } = await pullUntilOk(nx, 30_000);
    assert.equal(res.status, 200, text);
    assert.equal(nx.child.pid, pid);
    assert.equal(nx.child.exitCode, null, 'the same process');
    await assertCorrectImage(nx, text);
    await assertNothingHalfWritten(disk.dir);
    console.log(`# 200 ${tookMs} ms after the filler was deleted`);
  });
});

describe('disk full: storage and the embedded Redis on one full disk', { skip: skip ?? false }, () => {
  let small: SmallDisk;
  let nx: NixeryInstance;
  let disk: Tmpfs;
  const WAIT_S = 20;

  before(async () => {
    const env = { NIXERY_BUILD_WAIT: String(WAIT_S), NIXERY_JOB_LOCK_TTL: '4', NIXERY_STALLED_INTERVAL: '2' };
    small = await startOnSmallDisk(env, { redisApart: false });
    ({ nx, disk } = small);
  });

  after(() => small?.stop());

  it('Redis refuses writes: every pull is a 503 within the wait, never 500 or 404, and the log stays short', async () => {
    await fill(path.join(disk.dir, 'filler'), 0);
    const since = Date.now();
    await sleep(2000); // Redis's next append to its file fails
    const statuses: string[] = [];
    for (let i = 0; i < 10; i++) {
      const t = Date.now();
      const res = await pull(nx);
      const body = (await res.json()) as RegistryBody;
      assert.equal(res.status, 503, JSON.stringify(body));
      assert.equal(body.errors[0]?.code, 'UNAVAILABLE');
      assert.ok(Date.now() - t < (WAIT_S + 10) * 1000, 'answered within the build wait');
      statuses.push(body.errors[0]!.message);
    }
    assert.ok(statuses.some((m) => /refuses writes \(MISCONF\)|storage is full/.test(m)), statuses.join('\n'));
    await sleep(5000); // the worker keeps failing to reach Redis meanwhile
    const lines = await logLines(nx, since);
    const loud = lines.filter((l) => l.level >= 40);
    const byMsg = new Map<string, number>();
    for (const l of loud) byMsg.set(l.msg.replace(/ \(repeated.*/, ''), (byMsg.get(l.msg.replace(/ \(repeated.*/, '')) ?? 0) + 1);
    console.log(`# ${Math.round((Date.now() - since) / 1000)} s on a full disk with Redis: ${loud.length} warn/error lines: ${JSON.stringify([...byMsg])}`);
    assert.ok(loud.length <= 30, `${loud.length} warn/error lines`);
    assert.ok((byMsg.get('worker error') ?? 0) <= 4, 'the worker error flood is throttled');
  });

  it('works again once space is freed, without a restart', async () => {
    const pid = nx.child.pid;
    await rm(path.join(disk.dir, 'filler'));
    const { res, text, tookMs, attempts } = await pullUntilOk(nx, 90_000);
    assert.equal(res.status, 200, text);
    assert.equal(nx.child.pid, pid);
    assert.equal(nx.child.exitCode, null);
    await assertCorrectImage(nx, text);
    await assertNothingHalfWritten(disk.dir);
    console.log(`# 200 ${tookMs} ms (${attempts} pulls) after the filler was deleted`);
  });
});
