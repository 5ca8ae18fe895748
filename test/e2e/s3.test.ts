/**
 * Issue 16 end to end: `npm start` (src/single-node.ts) with
 * NIXERY_STORAGE_BACKEND=s3 against a real S3 server (s3rver on loopback,
 * behind a recording proxy so the test sees what reaches the bucket):
 * - skopeo and a Docker engine pull shell/hello, every blob by a 307 to a
 *   presigned GET URL that the client then fetched from the bucket itself;
 * - with S3_REDIRECT=false the gateway streams blobs, Range included;
 * - an unreachable endpoint and an unknown access key give `503 UNAVAILABLE`
 *   naming the storage and its cause, never 500 or 404, and the process
 *   stays healthy.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { skopeoCopyToOci, verifyOciLayout } from '../helpers/clients';
import { startDockerd } from '../helpers/dockerd';
import { MANIFEST_ACCEPT, type NixeryInstance, freePort, startNixery } from '../helpers/nixery';
import { makeScratchDir, removeScratchDir } from '../helpers/proc';
import { startRedisServer } from '../helpers/redis';
import { type RecordingProxy, type S3Server, startRecordingProxy, startS3Server } from '../helpers/s3-server';

/** Blob digests of an image's manifest (config and layers). */
async function blobDigests(nx: NixeryInstance, image: string): Promise<string[]> {
  const res = await fetch(`${nx.url}/v2/${image}/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } });
  assert.equal(res.status, 200, await res.clone().text());
  const m = (await res.json()) as { config: { digest: string }; layers: { digest: string }[] };
  return [m.config.digest, ...m.layers.map((l) => l.digest)];
}

/**
 * Starts `npm start` with `env` and a redis-server of its own (with S3 storage
 * the embedded Redis would live under ./data, shared by every instance).
 */
async function startOn(scratch: string, env: Record<string, string>): Promise<NixeryInstance> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(scratch, 'redis-'));
  const redis = await startRedisServer(port, dir, { logName: 'redis-s3-e2e' });
  const nx = await startNixery({ ...env, REDIS_URL: `redis://127.0.0.1:${port}` }).catch(async (err: unknown) => {
    await redis.stop();
    throw err;
  });
  return {
    ...nx,
    stop: async () => {
      await nx.stop();
      await redis.stop();
    },
  };
}

const signedGets = (p: RecordingProxy) => p.requests.filter((r) => /^GET \/nixery\/layers\/[0-9a-f]{64}\?.*X-Amz-Signature=/.test(r));

describe('s3 storage end to end', () => {
  let server: S3Server;
  let proxy: RecordingProxy;
  let scratch: string;
  before(async () => {
    server = await startS3Server(['nixery']);
    proxy = await startRecordingProxy(server.endpoint);
    scratch = await makeScratchDir('nixery-s3-e2e-');
  });
  after(async () => {
    await proxy?.close();
    await server?.stop();
    if (scratch) await removeScratchDir(scratch);
  });

  describe('blobs by presigned redirect', () => {
    let nx: NixeryInstance;
    before(async () => {
      nx = await startOn(scratch, { ...server.nixeryEnv('nixery'), S3_ENDPOINT: proxy.endpoint, S3_SIGNED_URL_TTL: '120' });
    });
    after(async () => {
      await nx?.stop();
    });

    it('skopeo copies shell/hello; every blob came by a 307 to a presigned URL on the bucket', { timeout: 600_000 }, async () => {
      const oci = path.join(scratch, 'oci');
      await skopeoCopyToOci(`${nx.host}/shell/hello:latest`, oci);
      const report = await verifyOciLayout(oci);
      assert.deepEqual(report.problems, []);
      const digests = await blobDigests(nx, 'shell/hello');
      for (const d of digests) {
        const res = await fetch(`${nx.url}/v2/shell/hello/blobs/${d}`, { redirect: 'manual' });
        assert.equal(res.status, 307, d);
        const loc = new URL(res.headers.get('location')!);
        assert.equal(loc.origin, proxy.endpoint);
        assert.equal(loc.pathname, `/nixery/layers/${d.slice('sha256:'.length)}`);
        assert.equal(loc.searchParams.get('X-Amz-Expires'), '120');
      }
      const fetched = new Set(signedGets(proxy).map((r) => r.split('?')[0]));
      for (const d of digests) assert.ok(fetched.has(`GET /nixery/layers/${d.slice('sha256:'.length)}`), `skopeo fetched ${d} from the bucket`);
    });

    it('a Docker engine pulls shell/hello through the redirects and runs it', { timeout: 600_000 }, async () => {
      const before = signedGets(proxy).length;
      const d = await startDockerd();
      try {
        const pull = await d.docker(['pull', `${nx.host}/shell/hello`], { timeoutMs: 300_000 });
        assert.equal(pull.code, 0, pull.stderr);
        const run = await d.docker(['run', '--rm', '--network', 'none', `${nx.host}/shell/hello`, 'hello']);
        assert.equal(run.code, 0, run.stderr);
        assert.equal(run.stdout.trim(), 'Hello, world!');
      } finally {
        await d.stop();
      }
      const layers = (await blobDigests(nx, 'shell/hello')).length - 1;
      assert.ok(signedGets(proxy).length - before >= layers, `docker fetched ${signedGets(proxy).length - before} blobs from the bucket, ${layers} layers`);
    });
  });

  it('S3_REDIRECT=false: the gateway streams blobs itself, Range included', { timeout: 600_000 }, async () => {
    const nx = await startOn(scratch, { ...server.nixeryEnv('nixery'), S3_REDIRECT: 'false' });
    try {
      const [, layer] = await blobDigests(nx, 'shell/hello');
      const whole = await fetch(`${nx.url}/v2/shell/hello/blobs/${layer}`, { redirect: 'manual' });
      assert.equal(whole.status, 200);
      const bytes = Buffer.from(await whole.arrayBuffer());
      const ranged = await fetch(`${nx.url}/v2/shell/hello/blobs/${layer}`, { redirect: 'manual', headers: { Range: 'bytes=10-109' } });
      assert.equal(ranged.status, 206);
      assert.equal(ranged.headers.get('content-range'), `bytes 10-109/${bytes.length}`);
      assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), bytes.subarray(10, 110));
    } finally {
      await nx.stop();
    }
  });

  for (const [what, env, cause] of [
    ['an unreachable endpoint', async () => ({ S3_ENDPOINT: `http://127.0.0.1:${await freePort()}` }), /ECONNREFUSED/],
    ['an unknown access key', async () => ({ AWS_ACCESS_KEY_ID: 'NOT-A-KEY' }), /^HTTP 403/],
  ] as const) {
    it(`${what}: a pull gets 503 UNAVAILABLE naming the storage, the process stays healthy`, { timeout: 600_000 }, async () => {
      const nx = await startOn(scratch, { ...server.nixeryEnv('nixery'), ...(await env()) });
      try {
        for (let i = 0; i < 2; i++) {
          const res = await fetch(`${nx.url}/v2/shell/hello/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } });
          const body = (await res.json()) as { errors: { code: string; detail?: { backend?: string; cause?: string } }[] };
          assert.equal(res.status, 503, JSON.stringify(body));
          assert.equal(body.errors[0]?.code, 'UNAVAILABLE');
          assert.equal(body.errors[0]?.detail?.backend, 's3');
          assert.match(body.errors[0]?.detail?.cause ?? '', cause);
        }
        const blob = await fetch(`${nx.url}/v2/shell/hello/blobs/sha256:${'a'.repeat(64)}`);
        assert.equal(blob.status, 503, 'a blob lookup says the storage failed, not BLOB_UNKNOWN');
        assert.equal((await fetch(`${nx.url}/healthz`)).status, 200);
        assert.equal((await fetch(`${nx.url}/readyz`)).status, 503, 'not ready while the storage fails');
        assert.equal(nx.child.exitCode, null, 'still running');
        assert.ok(!(await readFile(nx.logFile, 'utf8')).includes('"level":60'), 'no fatal log line');
      } finally {
        await nx.stop();
      }
    });
  }
});
