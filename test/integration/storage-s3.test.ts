/**
 * The S3 driver against a real S3-compatible server (s3rver, on loopback):
 * the shared storage conformance suite with presigned redirects and with
 * proxying (S3_REDIRECT=false), and what is particular to S3: multipart
 * uploads of large objects, presigned URL shape and lifetime, and the
 * failures of a bad key id or an unreachable endpoint.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { failureOf } from '../../libs/shared/src/core';
import { sha256Digest } from '../../libs/shared/src/core/digest';
import { blobKey, createS3Driver, createStorage, putStaged, type S3DriverOptions } from '../../libs/shared/src/storage';
import { S3_TEST_CREDENTIALS, type S3Server, startRecordingProxy, startS3Server } from '../helpers/s3-server';
import { storageConformance } from '../storage-conformance';

function options(server: S3Server, bucket: string, extra: Partial<S3DriverOptions> = {}): S3DriverOptions {
  return {
    bucket,
    region: 'us-east-1',
    endpoint: server.endpoint,
    forcePathStyle: true,
    redirect: true,
    signedUrlTtlSeconds: 300,
    credentials: { ...S3_TEST_CREDENTIALS },
    ...extra,
  };
}

storageConformance('s3 (s3rver, presigned redirects)', async () => {
  const server = await startS3Server(['nixery-redirect']);
  return { driver: createS3Driver(options(server, 'nixery-redirect')), cleanup: () => server.stop() };
});

storageConformance('s3 (s3rver, proxied: S3_REDIRECT=false)', async () => {
  const server = await startS3Server(['nixery-proxied']);
  const driver = createS3Driver(options(server, 'nixery-proxied', { redirect: false }));
  assert.equal(driver.redirectUrl, undefined, 'no redirect capability when proxying');
  return { driver, cleanup: () => server.stop() };
});

describe('s3 driver specifics', () => {
  let server: S3Server;
  before(async () => {
    server = await startS3Server(['b']);
  });
  after(async () => {
    await server?.stop();
  });

  test('presigned URL: path style on the endpoint, SigV4 in the query, TTL as configured; public endpoint when given', async () => {
    const key = blobKey(sha256Digest('k'));
    const url = new URL((await createS3Driver(options(server, 'b', { signedUrlTtlSeconds: 123 })).redirectUrl!(key))!);
    assert.equal(url.origin, server.endpoint);
    assert.equal(url.pathname, `/b/${key}`);
    assert.equal(url.searchParams.get('X-Amz-Algorithm'), 'AWS4-HMAC-SHA256');
    assert.equal(url.searchParams.get('X-Amz-Expires'), '123');
    assert.match(url.searchParams.get('X-Amz-Credential') ?? '', /^S3RVER\/\d{8}\/us-east-1\/s3\/aws4_request$/);
    assert.match(url.searchParams.get('X-Amz-Signature') ?? '', /^[0-9a-f]{64}$/);
    const pub = new URL((await createS3Driver(options(server, 'b', { publicEndpoint: 'http://localhost:4569' })).redirectUrl!(key))!);
    assert.equal(pub.origin, 'http://localhost:4569');
    assert.equal(pub.pathname, `/b/${key}`);
  });

  test('a 20 MiB layer goes up in parts through putStaged and lands whole under its digest, staging gone', { timeout: 180_000 }, async (t) => {
    const proxy = await startRecordingProxy(server.endpoint);
    t.after(() => proxy.close());
    const d = createS3Driver(options(server, 'b', { endpoint: proxy.endpoint }));
    const data = randomBytes(20 * 1024 * 1024);
    const chunks = Array.from({ length: 320 }, (_, i) => data.subarray(i * 65536, (i + 1) * 65536));
    const stored = await putStaged(d, Readable.from(chunks), blobKey, 'application/octet-stream');
    assert.equal(stored.digest, sha256Digest(data));
    assert.equal((await d.stat(blobKey(stored.digest)))?.size, data.length);
    const staging = [];
    for await (const o of d.list('staging/')) staging.push(o.key);
    assert.deepEqual(staging, []);
    // What the server was sent: 20 MiB in 8 MiB parts is 3 parts, a completion, then the server-side copy.
    const log = proxy.requests.join('\n');
    assert.equal((log.match(/^PUT \/b\/staging\/[0-9a-f-]+\?.*partNumber=\d+/gm) ?? []).length, 3, log);
    assert.match(log, /^POST \/b\/staging\/[0-9a-f-]+\?.*uploadId=/m, 'the upload was completed');
    assert.match(log, new RegExp(`^PUT /b/${blobKey(stored.digest)}`, 'm'), 'the copy to the digest key');
    assert.ok(!new RegExp(`^(PUT|POST) /b/${blobKey(stored.digest)}\\?.*(uploads|uploadId|partNumber)`, 'm').test(log), 'no upload ever went to the digest key');
  });

  test('an unknown access key is storage_unavailable naming the 403, on write, stat, list and ping', async () => {
    const d = createS3Driver(options(server, 'b', { credentials: { accessKeyId: 'WRONG', secretAccessKey: 'nope' } }));
    const key = blobKey(sha256Digest('denied'));
    const calls: [string, () => Promise<unknown>][] = [
      ['write', () => d.write(key, Readable.from([Buffer.from('x')]))],
      ['stat', () => d.stat(key)],
      ['read', () => d.read(key)],
      ['list', async () => { for await (const _ of d.list('layers/')) void _; }],
      ['ping', () => d.ping()],
    ];
    for (const [what, call] of calls) {
      const f = failureOf(await call().then(() => null, (e: unknown) => e));
      assert.equal(f?.kind, 'storage_unavailable', what);
      assert.match((f as { cause: string }).cause, what === 'stat' ? /^HTTP 403/ : /^HTTP 403 InvalidAccessKeyId/, what);
    }
  });

  test('an unreachable endpoint is storage_unavailable naming ECONNREFUSED, and ping fails fast', async () => {
    const d = createS3Driver({ ...options(server, 'b'), endpoint: 'http://127.0.0.1:1' });
    const f = failureOf(await d.stat(blobKey(sha256Digest('x'))).then(() => null, (e: unknown) => e));
    assert.deepEqual(f, { kind: 'storage_unavailable', backend: 's3', cause: 'ECONNREFUSED' });
    const t0 = Date.now();
    await assert.rejects(d.ping());
    assert.ok(Date.now() - t0 < 5000, `ping took ${Date.now() - t0} ms`);
  });

  test('createStorage makes the S3 driver the configuration names', () => {
    const d = createStorage({ backend: 's3', bucket: 'b', region: 'us-east-1', endpoint: server.endpoint, forcePathStyle: true, redirect: true, signedUrlTtlSeconds: 60 });
    assert.equal(d.name, 's3');
    assert.equal(typeof d.redirectUrl, 'function');
    const proxied = createStorage({ backend: 's3', bucket: 'b', region: 'us-east-1', forcePathStyle: false, redirect: false, signedUrlTtlSeconds: 60 });
    assert.equal(proxied.redirectUrl, undefined);
  });
});
