/** The S3 settings of the one config object (issue 16): defaults, validation, what the driver gets. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../libs/shared/src/config/config';

const base = { NIXERY_WORKER_SYSTEMS: 'x86_64-linux' };

describe('config: S3 storage', () => {
  it('NIXERY_STORAGE_BACKEND=s3 needs S3_BUCKET', () => {
    assert.throws(() => loadConfig({ ...base, NIXERY_STORAGE_BACKEND: 's3' }), ConfigError);
  });

  it('defaults: us-east-1, virtual-host style, presigned redirects valid 300 s, AWS endpoint', () => {
    assert.deepEqual(loadConfig({ ...base, NIXERY_STORAGE_BACKEND: 's3', S3_BUCKET: 'layers' }).storage, {
      backend: 's3',
      bucket: 'layers',
      region: 'us-east-1',
      forcePathStyle: false,
      redirect: true,
      signedUrlTtlSeconds: 300,
    });
  });

  it('every variable is read; trailing slashes of endpoints dropped', () => {
    const cfg = loadConfig({
      ...base,
      NIXERY_STORAGE_BACKEND: 's3',
      S3_BUCKET: 'layers',
      S3_REGION: 'eu-west-1',
      S3_ENDPOINT: 'http://127.0.0.1:9000/',
      S3_FORCE_PATH_STYLE: 'true',
      S3_REDIRECT: 'false',
      S3_SIGNED_URL_TTL: '60',
      S3_PUBLIC_ENDPOINT: 'http://localhost:9000/',
    });
    assert.deepEqual(cfg.storage, {
      backend: 's3',
      bucket: 'layers',
      region: 'eu-west-1',
      endpoint: 'http://127.0.0.1:9000',
      publicEndpoint: 'http://localhost:9000',
      forcePathStyle: true,
      redirect: false,
      signedUrlTtlSeconds: 60,
    });
  });

  it('rejects bad values', () => {
    const s3 = { ...base, NIXERY_STORAGE_BACKEND: 's3', S3_BUCKET: 'layers' };
    for (const bad of [
      { S3_SIGNED_URL_TTL: '0' },
      { S3_SIGNED_URL_TTL: String(8 * 24 * 3600) },
      { S3_ENDPOINT: 'not a url' },
      { S3_REDIRECT: 'maybe' },
      { S3_REGION: 'eu west' },
    ]) {
      assert.throws(() => loadConfig({ ...s3, ...bad }), `${JSON.stringify(bad)} is refused`);
    }
  });
});
