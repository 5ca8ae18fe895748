/**
 * Issue 16: a killed upload leaves nothing under a digest key, on a real S3
 * server (s3rver). A child process stages a 40 MiB layer through the S3
 * driver as a worker does (`putStaged`) and is SIGKILLed:
 * - mid multipart upload (parts already sent): no object under the digest
 *   key, none under `layers/`, and no staging object either (an incomplete
 *   multipart upload is not an object); the sweep runs clean. s3rver has no
 *   ListMultipartUploads, so the sweep cannot abort the orphaned upload
 *   there; on AWS and MinIO it does (see s3.ts).
 * - after the staging object is complete, before the copy to the digest key:
 *   the digest key stays empty and the staging sweep removes the leftover.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Digest } from '../../libs/shared/src/core/digest';
import { blobKey, createS3Driver, type StorageDriver, type StoredObject } from '../../libs/shared/src/storage';
import { waitFor } from '../helpers/proc';
import { type RecordingProxy, S3_TEST_CREDENTIALS, type S3Server, startRecordingProxy, startS3Server } from '../helpers/s3-server';

const REPO = path.resolve(__dirname, '../..');
const CHILD = path.join(REPO, 'test/helpers/s3-upload-child.ts');
const BUCKET = 'killed';

async function all(it: AsyncIterable<StoredObject>): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of it) keys.push(o.key);
  return keys;
}

describe('s3: a killed upload leaves nothing under a digest key', () => {
  let server: S3Server;
  let proxy: RecordingProxy;
  let driver: StorageDriver;
  let tmp: string;
  let file: string;
  let digest: Digest;
  const children: ChildProcess[] = [];

  before(async () => {
    server = await startS3Server([BUCKET]);
    proxy = await startRecordingProxy(server.endpoint);
    driver = createS3Driver({ bucket: BUCKET, region: 'us-east-1', endpoint: server.endpoint, forcePathStyle: true, redirect: true, signedUrlTtlSeconds: 60, credentials: { ...S3_TEST_CREDENTIALS } });
    tmp = await mkdtemp(path.join(os.tmpdir(), 's3-killed-'));
    file = path.join(tmp, 'layer');
    const data = randomBytes(40 * 1024 * 1024);
    await writeFile(file, data);
    digest = `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await proxy?.close();
    await server?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  function upload(extra: Record<string, string> = {}): { child: ChildProcess; out: () => string; exited: Promise<unknown> } {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
      cwd: REPO,
      env: { ...process.env, TSX_TSCONFIG_PATH: path.join(REPO, 'test/tsconfig.json'), S3_ENDPOINT: proxy.endpoint, S3_BUCKET: BUCKET, FILE: file, ...extra },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
    return { child, out: () => out, exited: new Promise((r) => child.once('exit', r)) };
  }

  const parts = () => proxy.requests.filter((r) => /^PUT \/killed\/staging\/[0-9a-f-]+\?.*partNumber=/.test(r)).length;

  test('SIGKILL mid multipart upload: no digest object, no staging object, the sweep runs clean', { timeout: 120_000 }, async () => {
    const before = parts();
    const u = upload();
    assert.ok(await waitFor(() => parts() >= before + 1, { timeoutMs: 60_000, intervalMs: 50 }), `no part went up: ${u.out()}`);
    u.child.kill('SIGKILL');
    await u.exited;
    assert.ok(!u.out().includes('stored'), 'the upload had not finished');
    assert.equal(await driver.stat(blobKey(digest)), null, 'nothing under the digest key');
    assert.deepEqual(await all(driver.list('layers/')), []);
    assert.deepEqual(await all(driver.list('staging/')), [], 'an incomplete multipart upload is no object');
    assert.deepEqual(await driver.removeStaging(new Date(Date.now() + 1000)), { removed: 0 });
    console.log(`# killed after ${parts() - before} part(s) of 8 MiB had gone up`);
  });

  test('SIGKILL between the staged upload and the copy: no digest object; the sweep removes the staging object', { timeout: 120_000 }, async () => {
    const u = upload({ HANG_BEFORE_MOVE: '1' });
    assert.ok(await waitFor(() => u.out().includes('staged'), { timeoutMs: 90_000, intervalMs: 100 }), `never staged: ${u.out()}`);
    u.child.kill('SIGKILL');
    await u.exited;
    assert.equal(await driver.stat(blobKey(digest)), null, 'nothing under the digest key');
    const staging = await all(driver.list('staging/'));
    assert.equal(staging.length, 1, 'the complete staging object is left');
    assert.equal((await driver.stat(staging[0] as never))?.size, 40 * 1024 * 1024);
    assert.deepEqual(await driver.removeStaging(new Date(Date.now() - 600_000)), { removed: 0 }, 'a fresh leftover stays');
    assert.deepEqual(await driver.removeStaging(new Date(Date.now() + 1000)), { removed: 1 });
    assert.deepEqual(await all(driver.list('staging/')), []);
    assert.deepEqual(await all(driver.list('layers/')), []);
  });
});
