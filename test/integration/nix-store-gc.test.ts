/**
 * The Nix store stays bounded (issue 11, point 4): an `npm start` Nixery on a
 * Nix store of its own (helpers/private-nix.ts: a scratch directory mounted
 * as /nix in a private mount namespace, so no collection here can touch the
 * machine's shared store) with NIXERY_NIX_MIN_FREE far above the free space
 * and a 1 s check interval, so it collects all the time:
 * - garbage planted before the start is collected, a rooted path is kept,
 *   and the collections are logged and counted (runs, bytes freed);
 * - a build of a slow package runs while collections run, and answers 200
 *   with layers whose digests are right and that hold its store paths;
 * - a collection that fails for real (a store path the filesystem refuses to
 *   delete: `chattr +i`) is one error line naming the cause however often it
 *   fails, counted every time; the worker keeps building and serving, and the
 *   next collection after the fault is gone works again.
 * And, against prepareImage and the collector alone: a collection between
 * the evaluation and the build (when the evaluation's `.drv` files have no
 * root) does not break the build; a collection that hangs is killed at its
 * timeout and reported.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { checkStoreSpace, prepareImage } from '../../libs/shared/src/nix';
import { MANIFEST_ACCEPT, type NixeryInstance, REPO, metric, type LogLine, readLogLines, startNixery } from '../helpers/nixery';
import { NIX_ENV } from '../helpers/nix-env';
import { type PackageSetCopy, copyPackageSet } from '../helpers/pkgset';
import { type PrivateNix, makePrivateNix } from '../helpers/private-nix';
import { isAlive, makeScratchDir, waitFor } from '../helpers/proc';

const ERROR = 50;
const MiB = 2 ** 20;

async function logLines(nx: NixeryInstance): Promise<LogLine[]> {
  return readLogLines(nx.logFile);
}

/** A derivation whose output is `bytes` random bytes, built from host files alone. */
const PLANT_NIX = `{ name, bytes }: derivation {
  inherit name;
  system = builtins.currentSystem;
  builder = "/bin/busybox";
  args = [ "sh" "-c" "head -c \${toString bytes} /dev/urandom > $out" ];
}`;

/**
 * Builds a path of `bytes` random bytes in the private store, rooted by the
 * link `root` (made by the building Nix process, so never unrooted); returns
 * its store path.
 */
function plant(priv: PrivateNix, expr: string, name: string, bytes: number, root: string): string {
  return priv.sh(
    `nix-build ${expr} --argstr name ${name} --arg bytes ${bytes} --option substitute false --out-link ${root}`,
  );
}

describe('Nix store garbage collection', () => {
  let priv: PrivateNix;
  let pkgs: PackageSetCopy;
  let scratch: string;
  let nx: NixeryInstance;
  let expr: string;
  let garbage: string;
  let kept: string;

  before(async () => {
    priv = await makePrivateNix();
    pkgs = await copyPackageSet({ slowSeconds: 8 });
    scratch = await makeScratchDir('nixery-store-gc-');
    expr = path.join(scratch, 'plant.nix');
    await writeFile(expr, PLANT_NIX);
    garbage = plant(priv, expr, 'planted-garbage', 2 * MiB, path.join(scratch, 'garbage-root'));
    await rm(path.join(scratch, 'garbage-root')); // now unrooted: garbage
    kept = plant(priv, expr, 'planted-kept', MiB, path.join(scratch, 'kept-root'));
    assert.ok(existsSync(priv.hostPath(garbage)) && existsSync(priv.hostPath(kept)));
    nx = await startNixery(
      {
        ...pkgs.env,
        NIXERY_NIX_MIN_FREE: '1P', // far above the free space: a collection is due at every check
        NIXERY_NIX_GC_INTERVAL: '1',
        NIXERY_POPCOUNT_SCHEDULE: 'off',
        NIX_TIMEOUT: '300',
      },
      { wrap: priv.wrap },
    );
  });

  after(async () => {
    await nx?.stop();
    await pkgs?.remove();
    await priv?.remove();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('collects unrooted garbage when free space is below NIXERY_NIX_MIN_FREE, keeps rooted paths, logs and counts it', async () => {
    assert.ok(await waitFor(() => !existsSync(priv.hostPath(garbage)), { timeoutMs: 30_000 }), 'the planted garbage is collected');
    assert.ok(existsSync(priv.hostPath(kept)), 'a rooted path is kept');
    assert.ok((await metric(nx.url, 'nixery_nix_gc_runs_total')) >= 1);
    assert.ok((await metric(nx.url, 'nixery_nix_gc_bytes_freed_total')) >= 2 * MiB, 'at least the planted 2 MiB are counted as freed');
    assert.ok((await metric(nx.url, 'nixery_nix_store_free_bytes')) > 0);
    const collected = (await logLines(nx)).filter((l) => l.msg === 'collected Nix store garbage');
    assert.ok(collected.some((l) => (l.freedBytes as number) >= 2 * MiB && (l.deletedPaths as number) >= 1), 'a log line says what was freed');
  });

  it('a build running meanwhile is not harmed: 200, layers hash to their digests and hold its store paths', async () => {
    const runsBefore = await metric(nx.url, 'nixery_nix_gc_runs_total');
    const started = Date.now();
    const res = await fetch(`${nx.url}/v2/slow/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } });
    const body = await res.text();
    assert.equal(res.status, 200, body);
    const buildMs = Date.now() - started;
    assert.ok(buildMs >= 8000, `the slow package really built (${buildMs} ms)`);
    const runsDuring = (await metric(nx.url, 'nixery_nix_gc_runs_total')) - runsBefore;
    assert.ok(runsDuring >= 2, `collections ran while it built (${runsDuring})`);

    const manifest = JSON.parse(body) as { config: { digest: string }; layers: Array<{ digest: string }> };
    let slowInLayer = false;
    for (const { digest } of [manifest.config, ...manifest.layers]) {
      const blob = Buffer.from(await (await fetch(`${nx.url}/v2/slow/blobs/${digest}`)).arrayBuffer());
      assert.equal(`sha256:${createHash('sha256').update(blob).digest('hex')}`, digest);
      if (digest === manifest.config.digest) continue;
      const listing = execFileSync('tar', ['-tz'], { input: blob, encoding: 'utf8', maxBuffer: 64 * MiB });
      if (/^nix\/store\/[0-9a-z]{32}-slow[^/]*\/$/m.test(listing)) slowInLayer = true;
    }
    assert.ok(slowInLayer, 'a layer holds the slow package');
  });

  it('a broken collection is one error line naming the cause, counted each time; the worker keeps serving and recovers', async () => {
    const stuck = plant(priv, expr, 'planted-immutable', MiB, path.join(scratch, 'stuck-root'));
    execFileSync('chattr', ['+i', priv.hostPath(stuck)]); // the filesystem now refuses to delete it, even to root
    await rm(path.join(scratch, 'stuck-root'));
    const failures = () => metric(nx.url, 'nixery_nix_gc_failures_total', { reason: 'exit' });
    try {
      assert.ok(await waitFor(async () => (await failures()) >= 3, { timeoutMs: 30_000 }), 'failed collections are counted');
      const errors = (await logLines(nx)).filter((l) => l.level >= ERROR && l.msg.startsWith('Nix store garbage collection failed'));
      assert.equal(errors.length, 1, `one error line for ${await failures()} failures`);
      assert.match(String(errors[0]?.cause), /^nix-store --gc failed \(exit 1\): error: cannot unlink .*planted-immutable.*Operation not permitted/, 'it names the cause');
      assert.ok(isAlive(nx.child.pid!), 'the worker is still running');
      const cold = await fetch(`${nx.url}/v2/hello/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } });
      assert.equal(cold.status, 200, 'a cold pull still builds');
      const warm = await fetch(`${nx.url}/v2/slow/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } });
      assert.equal(warm.status, 200, 'a warm pull is still answered');
    } finally {
      execFileSync('chattr', ['-i', priv.hostPath(stuck)]);
    }
    assert.ok(await waitFor(() => !existsSync(priv.hostPath(stuck)), { timeoutMs: 30_000 }), 'the next collection removes it');
    const recovered = async () => (await logLines(nx)).some((l) => l.msg === 'Nix store garbage collection works again');
    assert.ok(await waitFor(recovered, { timeoutMs: 10_000 }), 'an info line says it works again');
  });
});

describe('prepareImage and the collector on their own', () => {
  let priv: PrivateNix;
  let bin: string;

  before(async () => {
    priv = await makePrivateNix();
    bin = await priv.programs(['nix-instantiate', 'nix-build', 'nix', 'nix-store']);
  });
  after(() => priv?.remove());

  it("a collection between evaluation and build does not break the build (the evaluation's .drv files are unrooted then)", async () => {
    const drvsAfterCollection: string[] = [];
    const r = await prepareImage({
      nixDir: path.join(REPO, 'nix'),
      source: { type: 'path', path: path.join(REPO, 'nix/pkgs') },
      system: 'x86_64-linux',
      packages: ['hello'],
      timeoutMs: 120_000,
      extraNixOptions: ['--option', 'substitute', 'false'],
      env: NIX_ENV,
      commands: { nixInstantiate: path.join(bin, 'nix-instantiate'), nixBuild: path.join(bin, 'nix-build'), nix: path.join(bin, 'nix') },
      onStage: (stage) => {
        if (stage !== 'building') return;
        // Synchronous: nothing else runs before the collection has ended.
        priv.sh('nix-store --gc >/dev/null 2>&1');
        drvsAfterCollection.push(...priv.sh('ls /nix/store').split('\n').filter((n) => n.endsWith('.drv')));
      },
    });
    assert.deepEqual(drvsAfterCollection, [], 'the collection deleted the evaluated derivations');
    assert.equal(r.kind, 'ok', JSON.stringify(r));
  });

  it('a collection that hangs (the collector lock held elsewhere) is killed at its timeout and reported, not waited for', async () => {
    priv.sh('nix-store --gc >/dev/null 2>&1'); // the store's state directory exists
    const holder = spawn('flock', [path.join(priv.dir, 'var/nix/gc.lock'), 'sleep', '60'], { stdio: 'ignore', detached: true });
    try {
      await waitFor(() => execFileSync('sh', ['-c', `flock -n ${path.join(priv.dir, 'var/nix/gc.lock')} true || echo held`], { encoding: 'utf8' }) === 'held\n');
      const started = Date.now();
      const o = await checkStoreSpace(
        { options: [], env: NIX_ENV },
        { minFreeBytes: 2 ** 50, intervalMs: 1000, timeoutMs: 2000, storeDir: path.join(priv.dir, 'store'), nixStore: path.join(bin, 'nix-store') },
      );
      assert.equal(o.kind, 'failed', JSON.stringify(o));
      assert.equal(o.kind === 'failed' && o.reason, 'timeout');
      assert.match(o.kind === 'failed' ? o.cause : '', /timed out after 2000 ms/);
      assert.ok(Date.now() - started < 10_000, 'answered within the timeout and the kill grace');
    } finally {
      process.kill(-holder.pid!, 'SIGKILL'); // flock and its sleep
    }
  });
});
