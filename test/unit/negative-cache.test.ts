/**
 * The negative cache never holds a pull up: with its Redis unreachable a
 * read is a miss and a write is skipped, without a command queued (issue 12). Its hits and
 * misses against a real Redis are in test/integration/one-image.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { loadConfig } from '../../libs/shared/src/config/config';
import { redisKeys } from '../../libs/shared/src/infra/redis';
import { NegativeCache } from '../../libs/shared/src/records/negative-cache';

describe('negative cache without Redis', () => {
  // A client that never connects (nothing listens on port 1): status stays 'wait'.
  const redis = new Redis({ host: '127.0.0.1', port: 1, lazyConnect: true, maxRetriesPerRequest: null });
  const cache = new NegativeCache(redis, redisKeys('t'), 600_000);

  it('a read is a miss and a write is skipped, without queueing a command', async () => {
    assert.equal(await cache.unknownPackages('k'), null);
    await cache.remember('k', ['nosuch']);
    // A command would have made the lazy client connect (and wait in its offline queue): none was sent.
    assert.equal(redis.status, 'wait', 'no command was sent to Redis');
  });

  it('off (TTL 0) reads and writes nothing', async () => {
    const off = new NegativeCache(redis, redisKeys('t'), 0);
    assert.equal(await off.unknownPackages('k'), null);
    await off.remember('k', ['nosuch']);
    assert.equal(redis.status, 'wait');
  });
});

describe('NIXERY_NEGATIVE_TTL', () => {
  it('defaults to 600 s, 0 turns it off, a negative or non-number value is refused', () => {
    assert.equal(loadConfig({}).negativeTtlSeconds, 600);
    assert.equal(loadConfig({ NIXERY_NEGATIVE_TTL: '0' }).negativeTtlSeconds, 0);
    assert.equal(loadConfig({ NIXERY_NEGATIVE_TTL: '30' }).negativeTtlSeconds, 30);
    assert.throws(() => loadConfig({ NIXERY_NEGATIVE_TTL: '-1' }), /NIXERY_NEGATIVE_TTL/);
    assert.throws(() => loadConfig({ NIXERY_NEGATIVE_TTL: 'soon' }), /NIXERY_NEGATIVE_TTL/);
  });
});
