/**
 * A child process for test/integration/s3-killed-upload.test.ts: stages FILE
 * into an S3 bucket through the S3 driver exactly as a worker does
 * (`putStaged`), reading it slowly (20 ms per 64 KiB), so the test can
 * SIGKILL it mid-upload. With HANG_BEFORE_MOVE=1 it prints "staged" once the
 * staging object is complete and then waits forever before the move (a
 * process killed between the upload and the copy to the digest key).
 * Settings: S3_ENDPOINT, S3_BUCKET, FILE.
 */
import { createReadStream } from 'node:fs';
import { Transform } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { blobKey, createS3Driver, putStaged } from '../../libs/shared/src/storage';
import { S3_TEST_CREDENTIALS } from './s3-server';

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

const driver = createS3Driver({
  bucket: env('S3_BUCKET'),
  region: 'us-east-1',
  endpoint: env('S3_ENDPOINT'),
  forcePathStyle: true,
  redirect: true,
  signedUrlTtlSeconds: 60,
  credentials: { ...S3_TEST_CREDENTIALS },
});

const slow = new Transform({
  transform(chunk: Buffer, _enc, cb) {
    setTimeout(() => cb(null, chunk), 20);
  },
});

const hang = process.env.HANG_BEFORE_MOVE === '1';
void putStaged(driver, createReadStream(env('FILE'), { highWaterMark: 64 * 1024 }).pipe(slow), blobKey, 'application/octet-stream', {
  beforeMove: hang
    ? async () => {
        console.log('staged');
        for (;;) await sleep(60_000);
      }
    : undefined,
}).then((stored) => console.log(`stored ${stored.digest}`));
