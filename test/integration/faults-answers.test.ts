/**
 * Faults a client or Redis causes, against a real Nixery on a real
 * redis-server this test starts (issue 11, points 3 and 5):
 * - a client that disconnects mid-blob is one debug line, never an error-level line;
 * - Redis refusing writes (OOM under noeviction, MISCONF after a failed
 *   background save) is a `503 UNAVAILABLE` naming the refusal, with
 *   Retry-After, never `500 UNKNOWN`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { startEmbeddedRedis } from '../../libs/shared/src/runtime/embedded-redis';
import { MANIFEST_ACCEPT, type NixeryInstance, type LogLine, readLogLines, startNixery } from '../helpers/nixery';
import { startRedisServer } from '../helpers/redis';
import { type LongProcess, freePort, makeScratchDir, removeScratchDir, sleep, waitFor } from '../helpers/proc';


async function logLines(nx: NixeryInstance): Promise<LogLine[]> {
  return readLogLines(nx.logFile);
}

describe('faults: client aborts and Redis refusing writes', () => {
  let scratch: string;
  let redisPort: number;
  let dataDir: string;
  let redisProc: LongProcess | undefined;
  let redis: Redis;
  let nx: NixeryInstance;

  before(async () => {
    scratch = await makeScratchDir('nixery-faults-');
    redisPort = await freePort();
    dataDir = path.join(scratch, 'redis-data');
    await mkdir(dataDir);
    redisProc = await startRedisServer(redisPort, dataDir, { logName: 'faults-redis' });
    redis = new Redis({ port: redisPort, host: '127.0.0.1' });
    nx = await startNixery({ REDIS_URL: `redis://127.0.0.1:${redisPort}` });
  });

  after(async () => {
    await nx?.stop();
    redis?.disconnect();
    await redisProc?.stop();
    if (scratch) await removeScratchDir(scratch);
  });

  it('a client that disconnects mid-blob: one debug line, no error-level line', async () => {
    const blob = randomBytes(64 * 1024 * 1024);
    const hex = createHash('sha256').update(blob).digest('hex');
    await mkdir(path.join(nx.storagePath, 'layers'), { recursive: true });
    await writeFile(path.join(nx.storagePath, 'layers', hex), blob);
    const before = (await logLines(nx)).length;
    await new Promise<void>((resolve, reject) => {
      const s = net.connect(nx.port, '127.0.0.1');
      let got = 0;
      s.on('connect', () => s.write(`GET /v2/x/blobs/sha256:${hex} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`));
      s.on('data', (d) => {
        got += d.length;
        if (got > 4096) {
          s.destroy();
          resolve();
        }
      });
      s.on('error', reject);
    });
    assert.ok(await waitFor(async () => (await logLines(nx)).slice(before).some((l) => l.msg === 'client went away'), { timeoutMs: 10_000 }), 'a debug line for the abort');
    await sleep(500);
    const lines = (await logLines(nx)).slice(before);
    const text = (await readFile(nx.logFile, 'utf8')).split('\n');
    assert.deepEqual(lines.filter((l) => l.level >= 50), [], 'no error-level line');
    assert.ok(!text.some((l) => /ECONNRESET|premature close|aborted/i.test(l) && !l.startsWith('{')), 'no stack trace outside the JSON log');
    const abort = lines.filter((l) => l.msg === 'client went away');
    assert.equal(abort.length, 1);
    assert.equal(abort[0]!.level, 20);
  });

  const refusals: { what: string; code: string; refuse: () => Promise<void>; restore: () => Promise<void> }[] = [
    {
      what: 'maxmemory reached under noeviction',
      code: 'OOM',
      refuse: async () => {
        await redis.config('SET', 'maxmemory-policy', 'noeviction');
        await redis.config('SET', 'maxmemory', '1');
      },
      restore: async () => {
        await redis.config('SET', 'maxmemory', '0');
      },
    },
    {
      what: 'a failed background save',
      code: 'MISCONF',
      refuse: async () => {
        // Its data directory goes away (CONFIG SET dir is protected), so the background save fails;
        // Redis stops writes after a failed save only while it has save points.
        await redis.config('SET', 'save', '3600 1');
        await redis.config('SET', 'stop-writes-on-bgsave-error', 'yes');
        await rm(dataDir, { recursive: true });
        await redis.bgsave();
        assert.ok(
          await waitFor(async () => (await redis.info('persistence')).includes('rdb_last_bgsave_status:err'), { timeoutMs: 10_000 }),
          'the background save fails',
        );
      },
      restore: async () => {
        // Without save points a failed save no longer stops writes (and the shutdown saves nothing).
        await redis.config('SET', 'save', '');
      },
    },
  ];
  for (const r of refusals) {
    it(`Redis refusing writes (${r.what}): a cold pull is 503 UNAVAILABLE naming ${r.code}`, async () => {
      await r.refuse();
      try {
        const res = await fetch(`${nx.url}/v2/hello-${r.code.toLowerCase()}/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } });
        const body = await res.text();
        assert.equal(res.status, 503, body);
        assert.ok(res.headers.get('retry-after'), 'Retry-After');
        const e = (JSON.parse(body) as { errors: { code: string; message: string; detail?: { refusal?: string } }[] }).errors[0]!;
        assert.equal(e.code, 'UNAVAILABLE');
        assert.equal(e.detail?.refusal, r.code);
        assert.match(e.message, new RegExp(r.code));
      } finally {
        await r.restore();
      }
    });
  }
});

describe('the embedded redis-server: a failed snapshot does not stop the queue', () => {
  it('runs with the append-only file, no stop-writes on a failed background save, never evicts', async () => {
    const dir = await makeScratchDir('nixery-embedded-redis-');
    const embedded = await startEmbeddedRedis(dir);
    const r = new Redis({ path: embedded.socket });
    try {
      assert.deepEqual(await r.config('GET', 'appendonly'), ['appendonly', 'yes']);
      assert.deepEqual(await r.config('GET', 'stop-writes-on-bgsave-error'), ['stop-writes-on-bgsave-error', 'no']);
      assert.deepEqual(await r.config('GET', 'maxmemory-policy'), ['maxmemory-policy', 'noeviction']);
      assert.equal(await r.set('k', '1'), 'OK');
    } finally {
      r.disconnect();
      await embedded.stop();
      await removeScratchDir(dir);
    }
  });

  it('a data directory of snapshots only (from before the append-only file) keeps its data, then appends', async () => {
    const dir = await makeScratchDir('nixery-embedded-redis-');
    const socket = path.join(dir, 'old.sock');
    const old = spawn('redis-server', ['--port', '0', '--unixsocket', socket, '--dir', dir, '--save', '60 1', '--appendonly', 'no'], { stdio: 'ignore' });
    let r = new Redis({ path: socket, retryStrategy: () => 50 });
    r.on('error', () => undefined); // until the server is listening
    await r.set('queued', 'job');
    await r.save();
    r.disconnect();
    const gone = new Promise((res) => old.once('exit', res));
    old.kill('SIGTERM');
    await gone;
    const embedded = await startEmbeddedRedis(dir);
    r = new Redis({ path: embedded.socket });
    try {
      assert.ok(existsSync(path.join(dir, 'appendonlydir', 'appendonly.aof.manifest')), 'its append-only file is written before it is in use');
      assert.equal(await r.get('queued'), 'job');
      assert.deepEqual(await r.config('GET', 'appendonly'), ['appendonly', 'yes']);
    } finally {
      r.disconnect();
      await embedded.stop();
    }
    // The next start loads the append-only file, with the data.
    const again = await startEmbeddedRedis(dir);
    r = new Redis({ path: again.socket });
    try {
      assert.equal(await r.get('queued'), 'job');
    } finally {
      r.disconnect();
      await again.stop();
      await removeScratchDir(dir);
    }
  });
});
