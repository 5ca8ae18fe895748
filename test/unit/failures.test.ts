/**
 * Failures as data: every kind crosses the queue by its code and comes back
 * equal; the gateway's one table gives every kind a registry error and
 * never shows an internal message; storage's one wrapper checks keys for
 * every driver and turns a full disk into `storage_full`.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { registryErrorFor } from '../../apps/gateway/src/failures';
import { Failed, type Failure, failureOf, withTimeout } from '../../libs/shared/src/core';
import { ReplyError } from 'ioredis';
import { redisRefusal } from '../../libs/shared/src/infra/redis';
import { FAILURE_CODES, decodeFailure, encodeFailure } from '../../libs/shared/src/jobs/failure-codec';
import { InvalidStorageKeyError, type StorageDriver, type StorageKey, checkedDriver, stagingKey, storageFailure } from '../../libs/shared/src/storage';

/** One example of every failure kind. */
const EXAMPLES: Failure[] = [
  { kind: 'source_unavailable', source: 'git repository https://example.invalid/pkgs', error: 'ls-remote failed' },
  { kind: 'unknown_ref', ref: 'no-such-branch' },
  { kind: 'unknown_packages', packages: ['nope'] },
  { kind: 'nix_failed', message: 'builder failed', transient: false },
  { kind: 'nix_failed', message: 'unable to download', transient: true },
  { kind: 'nix_unavailable', cause: 'build users missing', hint: 'run as root' },
  { kind: 'storage_full', message: 'ENOSPC /data/layers' },
  { kind: 'storage_unavailable', backend: 'gcs', cause: 'HTTP 503: Service Unavailable' },
  { kind: 'state_unavailable', what: 'its Redis' },
  { kind: 'state_unavailable', what: 'its Redis', refusal: 'MISCONF' },
  { kind: 'timeout', what: 'the image build', ms: 300_000 },
  { kind: 'no_worker', system: 'aarch64-linux' },
  { kind: 'shutting_down' },
  { kind: 'rate_limited', retryAfterSeconds: 7 },
  { kind: 'queue_full', limit: 1000 },
  { kind: 'client_gone' },
  { kind: 'internal', message: 'TypeError at /secret/path/file.ts:12' },
];

describe('failures as data', () => {
  it('has an example of every kind', () => {
    assert.deepEqual([...new Set(EXAMPLES.map((f) => f.kind))].sort(), Object.keys(FAILURE_CODES).sort());
  });

  it('every kind crosses the queue as its code and comes back equal', () => {
    for (const f of EXAMPLES) {
      const wire = JSON.parse(JSON.stringify(encodeFailure(f)));
      assert.equal(wire.code, FAILURE_CODES[f.kind]);
      assert.ok(!('kind' in wire.data), 'the kind travels as the code only');
      assert.deepEqual(decodeFailure(wire), f);
    }
  });

  it('the table gives every kind a registry error; 404 only for what the package set or repository lacks', () => {
    for (const f of EXAMPLES) {
      const e = registryErrorFor(f);
      const notFound = f.kind === 'unknown_packages' || f.kind === 'unknown_ref';
      const limited = f.kind === 'rate_limited';
      assert.equal(e.status, notFound ? 404 : limited ? 429 : 503, f.kind);
      assert.equal(e.code, notFound ? 'MANIFEST_UNKNOWN' : limited ? 'TOOMANYREQUESTS' : 'UNAVAILABLE', f.kind);
      if (limited) assert.equal(e.headers['Retry-After'], String(f.retryAfterSeconds));
      // Nobody reads the answer to a client that went away: nothing to wait for.
      const retryable = !notFound && !(f.kind === 'nix_failed' && !f.transient) && f.kind !== 'client_gone';
      assert.equal(Boolean(e.headers['Retry-After']), retryable, `${f.kind}: Retry-After only where waiting helps`);
    }
    assert.ok(!JSON.stringify(registryErrorFor(EXAMPLES.at(-1)!).toBody()).includes('/secret/path'));
  });

  it('Redis refusing writes is state_unavailable naming the refusal: 503 with Retry-After, recognised by the reply class and its code', () => {
    const cases: [unknown, string | null][] = [
      [new ReplyError("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk."), 'MISCONF'],
      [new ReplyError("OOM command not allowed when used memory > 'maxmemory'."), 'OOM'],
      [new ReplyError("OOM command not allowed when used memory > 'maxmemory'. script: 3f2a, on @user_script:12."), 'OOM'],
      [new ReplyError("READONLY You can't write against a read only replica."), 'READONLY'],
      [new ReplyError('ERR wrong number of arguments'), null],
      [new ReplyError('WRONGTYPE Operation against a key holding the wrong kind of value'), null],
      [new Error('MISCONF in a plain Error is not a reply'), null],
      ['MISCONF', null],
      // A MULTI whose queued commands Redis refused: the refusal is in ioredis' previousErrors.
      [Object.assign(new ReplyError('EXECABORT Transaction discarded because of previous errors.'), { previousErrors: [new ReplyError('MISCONF Errors writing to the AOF file')] }), 'MISCONF'],
      [Object.assign(new ReplyError('EXECABORT Transaction discarded because of previous errors.'), { previousErrors: [new ReplyError('ERR syntax error')] }), null],
    ];
    for (const [err, code] of cases) {
      const f = redisRefusal(err);
      if (code === null) {
        assert.equal(f, null, String(err));
        continue;
      }
      assert.deepEqual(f, { kind: 'state_unavailable', what: 'its Redis', refusal: code });
      const e = registryErrorFor(f!);
      assert.equal(e.status, 503);
      assert.equal(e.code, 'UNAVAILABLE');
      assert.match(e.message, new RegExp(code));
      assert.deepEqual(e.detail, { refusal: code });
      assert.ok(e.headers['Retry-After']);
    }
  });

  it('withTimeout rejects with a timeout failure, recognised by its kind', async () => {
    // withTimeout's timer does not hold the process open: this one does, until the test is done.
    const hold = setTimeout(() => undefined, 5000);
    const err = await withTimeout(new Promise(() => undefined), 10, 'waiting for nothing').catch((e: unknown) => e);
    clearTimeout(hold);
    assert.deepEqual(failureOf(err), { kind: 'timeout', what: 'waiting for nothing', ms: 10 });
    assert.ok(err instanceof Failed);
  });
});

describe('storage: one wrapper for every driver', () => {
  /** A driver that records what reaches it and fails writes as a full disk would. */
  const inner = (): StorageDriver & { seen: string[] } => {
    const seen: string[] = [];
    const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    return {
      seen,
      name: 'fake',
      write: async (key) => (seen.push(`write ${key}`), Promise.reject(enospc)),
      read: async (key) => (seen.push(`read ${key}`), null),
      stat: async (key) => (seen.push(`stat ${key}`), null),
      move: async (from, to) => void seen.push(`move ${from} ${to}`),
      delete: async (key) => void seen.push(`delete ${key}`),
      ping: async () => undefined,
      removeStaging: async () => ({ removed: 0 }),
      list: async function* () {},
    };
  };

  it('refuses keys of any other shape before the driver sees them', async () => {
    const d = inner();
    const checked = checkedDriver(d);
    for (const bad of ['../etc/passwd', 'layers/ABC', 'staging/x', '', 'manifests/../../x']) {
      const key = bad as StorageKey;
      await assert.rejects(checked.read(key), InvalidStorageKeyError);
      await assert.rejects(checked.stat(key), InvalidStorageKeyError);
      await assert.rejects(checked.delete(key), InvalidStorageKeyError);
      await assert.rejects(checked.move(key, stagingKey()), InvalidStorageKeyError);
      await assert.rejects(checked.write(key, Readable.from([])), InvalidStorageKeyError);
    }
    assert.deepEqual(d.seen, []);
  });

  it('a full disk is a storage_full failure (503), not an unknown error', async () => {
    const key = stagingKey();
    const err = await checkedDriver(inner()).write(key, Readable.from([Buffer.from('x')])).catch((e: unknown) => e);
    const f = failureOf(err);
    assert.equal(f?.kind, 'storage_full');
    assert.equal(registryErrorFor(f!).status, 503);
  });

  it('a backend error is the failure it means, with its cause and no path: errno codes and cloud HTTP statuses', () => {
    const errno = (code: string, message: string) => Object.assign(new Error(message), { code });
    const status = (code: number, message: string) => Object.assign(new Error(message), { code });
    const cases: [unknown, Failure | null][] = [
      [errno('ENOSPC', "ENOSPC: no space left on device, open '/data/layers/x.partial-1'"), { kind: 'storage_full', message: 'ENOSPC: no space left on device' }],
      [errno('EDQUOT', 'EDQUOT: disk quota exceeded, write'), { kind: 'storage_full', message: 'EDQUOT: disk quota exceeded' }],
      [errno('EIO', "EIO: i/o error, write"), { kind: 'storage_unavailable', backend: 'filesystem', cause: 'EIO: i/o error' }],
      [errno('EROFS', "EROFS: read-only file system, open '/secret/staging/x'"), { kind: 'storage_unavailable', backend: 'filesystem', cause: 'EROFS: read-only file system' }],
      [errno('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:4443'), { kind: 'storage_unavailable', backend: 'filesystem', cause: 'ECONNREFUSED' }],
      [status(503, 'Service Unavailable'), { kind: 'storage_unavailable', backend: 'filesystem', cause: 'HTTP 503: Service Unavailable' }],
      [status(429, 'rate limit'), { kind: 'storage_unavailable', backend: 'filesystem', cause: 'HTTP 429: rate limit' }],
      [status(403, 'forbidden'), { kind: 'storage_unavailable', backend: 'filesystem', cause: 'HTTP 403: forbidden' }],
      [errno('ERR_STREAM_PREMATURE_CLOSE', 'Premature close'), null],
      [new Error('short write'), null],
      [new InvalidStorageKeyError('../x'), null],
    ];
    for (const [err, want] of cases) {
      const f = storageFailure(err, 'filesystem');
      assert.deepEqual(f, want, String(err));
      if (f) {
        const e = registryErrorFor(f);
        assert.equal(e.status, 503);
        assert.ok(!JSON.stringify(e.toBody()).includes('/secret'), 'no path reaches a client');
        assert.match(JSON.stringify(e.detail), new RegExp(f.kind === 'storage_full' ? f.message : (f as { cause: string }).cause));
      }
    }
  });
});
