/**
 * Storage errors other than a full disk are honest failures (issue 11,
 * point 3), through the staged write every layer, config and manifest takes
 * (`putStaged`), on real backends:
 * - the filesystem driver on a tmpfs remounted read-only mid-test: `EROFS`
 *   is `storage_unavailable` naming it (503 with the cause in `detail`), no
 *   object appears under the digest key, and writes work again once the
 *   filesystem is writable;
 * - the GCS driver with its emulator stopped mid-test: the refused
 *   connection is `storage_unavailable` too, not an unknown error.
 * Before, both reached the client as `internal` ("image build failed").
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { registryErrorFor } from '../../apps/gateway/src/failures';
import { failureOf } from '../../libs/shared/src/core';
import { type StorageDriver, blobKey, createFilesystemDriver, createGcsDriver, putStaged } from '../../libs/shared/src/storage';
import { type GcsEmulator, startGcsEmulator } from '../helpers/gcs-emulator';
import { makeScratchDir, removeScratchDir, run } from '../helpers/proc';
import { type Tmpfs, mountTmpfs, tmpfsUnavailable } from '../helpers/tmpfs';

/** A blob of `n` random bytes and its digest. */
function blob(n: number): { bytes: Buffer; digest: string } {
  const bytes = randomBytes(n);
  return { bytes, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` };
}

/** Writes `bytes` the way the pipeline does; the failure it rejects with, or null. */
async function stagedWrite(driver: StorageDriver, bytes: Buffer) {
  // Several chunks, so the write is under way when it fails.
  const chunks = Array.from({ length: 16 }, (_, i) => bytes.subarray((i * bytes.length) / 16, ((i + 1) * bytes.length) / 16));
  return putStaged(driver, Readable.from(chunks), blobKey, 'application/octet-stream').then(
    (stored) => ({ stored, failure: null, err: undefined as unknown }),
    (err: unknown) => ({ stored: null, failure: failureOf(err), err }),
  );
}

describe('storage errors: a read-only filesystem', { skip: tmpfsUnavailable() ?? false }, () => {
  let scratch: string;
  let disk: Tmpfs;
  let driver: StorageDriver;

  before(async () => {
    scratch = await makeScratchDir('nixery-erofs-');
    disk = await mountTmpfs(path.join(scratch, 'storage'), '8m');
    driver = createFilesystemDriver(disk.dir);
  });
  after(async () => {
    await disk?.unmount();
    if (scratch) await removeScratchDir(scratch);
  });

  it('EROFS is storage_unavailable naming it; nothing under the digest; writes work again when writable', async () => {
    const ok = await stagedWrite(driver, blob(64 * 1024).bytes);
    assert.ok(ok.stored, 'writable at first');
    const r = await run('mount', ['-o', 'remount,ro', disk.dir]);
    assert.equal(r.code, 0, r.stderr);
    try {
      const b = blob(1024 * 1024);
      const res = await stagedWrite(driver, b.bytes);
      assert.deepEqual(res.failure, { kind: 'storage_unavailable', backend: 'filesystem', cause: 'EROFS: read-only file system' }, String(res.err));
      const e = registryErrorFor(res.failure!);
      assert.equal(e.status, 503);
      assert.equal(e.code, 'UNAVAILABLE');
      assert.deepEqual(e.detail, { backend: 'filesystem', cause: 'EROFS: read-only file system' });
      assert.ok(!JSON.stringify(e.toBody()).includes(disk.dir), 'no path in what a client sees');
      assert.equal(await driver.stat(blobKey(b.digest as never)), null);
    } finally {
      assert.equal((await run('mount', ['-o', 'remount,rw', disk.dir])).code, 0);
    }
    const again = await stagedWrite(driver, blob(256 * 1024).bytes);
    assert.ok(again.stored, String(again.err));
    assert.deepEqual(await readdir(path.join(disk.dir, 'staging')), []);
  });
});

describe('storage errors: GCS gone mid-test', () => {
  let emu: GcsEmulator | undefined;
  let driver: StorageDriver;
  const saved = { host: process.env.STORAGE_EMULATOR_HOST, meta: process.env.METADATA_SERVER_DETECTION };

  before(async () => {
    emu = await startGcsEmulator();
    process.env.STORAGE_EMULATOR_HOST = emu.host;
    process.env.METADATA_SERVER_DETECTION = 'none';
    driver = createGcsDriver({ bucket: 'nixery-errors', signedUrls: false, signedUrlTtlSeconds: 60 });
  });
  after(async () => {
    await emu?.stop();
    process.env.STORAGE_EMULATOR_HOST = saved.host;
    process.env.METADATA_SERVER_DETECTION = saved.meta;
  });

  it('a refused connection on write is storage_unavailable, and stat says so too', async () => {
    const ok = await stagedWrite(driver, blob(64 * 1024).bytes);
    assert.ok(ok.stored, String(ok.err));
    await emu!.stop();
    emu = undefined;
    const t0 = Date.now();
    const res = await stagedWrite(driver, blob(512 * 1024).bytes);
    assert.deepEqual(res.failure, { kind: 'storage_unavailable', backend: 'gcs', cause: 'ECONNREFUSED' }, String(res.err));
    assert.equal(registryErrorFor(res.failure!).status, 503);
    const statErr = await driver.stat(blobKey(ok.stored!.digest)).catch((e: unknown) => e);
    assert.equal(failureOf(statErr)?.kind, 'storage_unavailable');
    console.log(`# GCS write failed as storage_unavailable after ${Date.now() - t0} ms`);
  });
});
