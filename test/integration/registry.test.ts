/**
 * The registry protocol, table-driven, against a real single-node Nixery
 * (real Nix, real embedded Redis, filesystem storage, bundled package set).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MANIFEST_ACCEPT, type NixeryInstance, metric, startNixery } from '../helpers/nixery';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function get(url: string, init: RequestInit = {}) {
  const res = await fetch(url, { ...init, headers: { Accept: MANIFEST_ACCEPT, ...(init.headers ?? {}) }, redirect: 'manual' });
  const body = Buffer.from(await res.arrayBuffer());
  return { res, body, json: () => JSON.parse(body.toString('utf8')) };
}

/** Sends a path verbatim (fetch would normalise dot segments away). */
function rawGet(base: string, p: string, method = 'GET'): Promise<{ status: number; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: p, method }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

interface Manifest {
  config: { digest: string; size: number };
  layers: { digest: string; size: number; mediaType: string }[];
}

describe('registry protocol', () => {
  let nx: NixeryInstance;
  let helloManifest: Buffer;
  let helloDigest: string;

  before(async () => {
    nx = await startNixery();
  });
  after(async () => {
    await nx?.stop();
  });

  it('GET and HEAD /v2/ answer 200 with the API version header', async () => {
    for (const method of ['GET', 'HEAD']) {
      const { res } = await get(`${nx.url}/v2/`, { method });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
    }
  });

  it('HEAD by tag builds the image and answers exactly the headers GET gives', async () => {
    const head = await get(`${nx.url}/v2/shell/hello/manifests/latest`, { method: 'HEAD' });
    assert.equal(head.res.status, 200, head.body.toString());
    assert.equal(head.body.length, 0);
    const g = await get(`${nx.url}/v2/shell/hello/manifests/latest`);
    assert.equal(g.res.status, 200);
    helloManifest = g.body;
    helloDigest = sha(g.body);
    for (const h of ['content-type', 'content-length', 'docker-content-digest']) {
      assert.equal(head.res.headers.get(h), g.res.headers.get(h), h);
    }
    assert.equal(g.res.headers.get('content-type'), 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal(g.res.headers.get('docker-content-digest'), helloDigest);
    assert.equal(Number(g.res.headers.get('content-length')), g.body.length);
    const m = g.json();
    assert.equal(m.schemaVersion, 2);
    assert.equal(m.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  });

  it('GET and HEAD by digest serve the same manifest', async () => {
    for (const method of ['GET', 'HEAD']) {
      const r = await get(`${nx.url}/v2/shell/hello/manifests/${helloDigest}`, { method });
      assert.equal(r.res.status, 200);
      assert.equal(r.res.headers.get('docker-content-digest'), helloDigest);
      assert.equal(Number(r.res.headers.get('content-length')), helloManifest.length);
      if (method === 'GET') assert.deepEqual(r.body, helloManifest);
    }
  });

  it('serves every blob with its digest, and a correct image config', async () => {
    const m = JSON.parse(helloManifest.toString()) as Manifest;
    const cfg = await get(`${nx.url}/v2/shell/hello/blobs/${m.config.digest}`);
    assert.equal(cfg.res.status, 200);
    assert.equal(sha(cfg.body), m.config.digest);
    assert.equal(cfg.res.headers.get('docker-content-digest'), m.config.digest);
    const config = cfg.json();
    assert.equal(config.architecture, 'amd64');
    assert.equal(config.os, 'linux');
    assert.equal(config.rootfs.diff_ids.length, m.layers.length);
    assert.deepEqual(config.config.Cmd, ['bash']);
    assert.ok(config.config.Env.includes('SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt'));
    for (const l of m.layers) {
      const b = await get(`${nx.url}/v2/shell/hello/blobs/${l.digest}`);
      assert.equal(b.res.status, 200);
      assert.equal(sha(b.body), l.digest);
      assert.equal(b.body.length, l.size);
      assert.equal(Number(b.res.headers.get('content-length')), l.size);
      assert.equal(b.res.headers.get('docker-content-digest'), l.digest);
      assert.equal(l.mediaType, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
    }
  });

  it('honours Range on blobs (206, and 416 when unsatisfiable)', async () => {
    const m = JSON.parse(helloManifest.toString()) as Manifest;
    const l = m.layers[0]!;
    const whole = (await get(`${nx.url}/v2/x/blobs/${l.digest}`)).body;
    const part = await get(`${nx.url}/v2/x/blobs/${l.digest}`, { headers: { Range: 'bytes=10-19' } });
    assert.equal(part.res.status, 206);
    assert.equal(part.res.headers.get('content-range'), `bytes 10-19/${l.size}`);
    assert.equal(part.res.headers.get('content-length'), '10');
    assert.deepEqual(part.body, whole.subarray(10, 20));
    const tail = await get(`${nx.url}/v2/x/blobs/${l.digest}`, { headers: { Range: 'bytes=-5' } });
    assert.deepEqual(tail.body, whole.subarray(whole.length - 5));
    const bad = await get(`${nx.url}/v2/x/blobs/${l.digest}`, { headers: { Range: `bytes=${l.size}-` } });
    assert.equal(bad.res.status, 416);
    assert.equal(bad.res.headers.get('content-range'), `bytes */${l.size}`);
  });

  const errorCases: { what: string; method?: string; path: string; status: number; code: string }[] = [
    { what: 'unknown blob', path: `/v2/hello/blobs/sha256:${'0'.repeat(64)}`, status: 404, code: 'BLOB_UNKNOWN' },
    { what: 'unknown manifest digest', path: `/v2/hello/manifests/sha256:${'0'.repeat(64)}`, status: 404, code: 'MANIFEST_UNKNOWN' },
    { what: 'malformed digest', path: '/v2/hello/blobs/sha256:zz', status: 400, code: 'DIGEST_INVALID' },
    { what: 'digest with traversal', path: '/v2/hello/blobs/sha256:..%2F..%2Fetc%2Fpasswd', status: 400, code: 'DIGEST_INVALID' },
    { what: 'bad algorithm', path: '/v2/hello/manifests/md5:d41d8cd98f00b204e9800998ecf8427e', status: 404, code: 'MANIFEST_UNKNOWN' },
    { what: 'malformed manifest digest', path: '/v2/hello/manifests/sha256:zz', status: 404, code: 'MANIFEST_UNKNOWN' },
    { what: 'name with quote', path: '/v2/hel%22lo/manifests/latest', status: 400, code: 'NAME_INVALID' },
    { what: 'empty component', path: '/v2/a//b/manifests/latest', status: 400, code: 'NAME_INVALID' },
    { what: 'bad tag', path: '/v2/hello/manifests/-x', status: 404, code: 'MANIFEST_UNKNOWN' },
    { what: 'no such endpoint', path: '/v2/hello/nothing/here', status: 404, code: 'NOT_FOUND' },
    { what: 'no such endpoint, POST', method: 'POST', path: '/v2/hello/nothing/here', status: 404, code: 'NOT_FOUND' },
    { what: 'push: start upload', method: 'POST', path: '/v2/hello/blobs/uploads/', status: 405, code: 'UNSUPPORTED' },
    { what: 'push: put manifest', method: 'PUT', path: '/v2/hello/manifests/latest', status: 405, code: 'UNSUPPORTED' },
    { what: 'delete blob', method: 'DELETE', path: `/v2/hello/blobs/sha256:${'0'.repeat(64)}`, status: 405, code: 'UNSUPPORTED' },
  ];
  for (const c of errorCases) {
    it(`${c.what} -> ${c.status} ${c.code}`, async () => {
      const r = await get(nx.url + c.path, { method: c.method ?? 'GET' });
      assert.equal(r.res.status, c.status, r.body.toString());
      assert.match(r.res.headers.get('content-type') ?? '', /^application\/json/);
      const e = r.json();
      assert.equal(e.errors[0].code, c.code);
      assert.equal(typeof e.errors[0].message, 'string');
    });
  }

  it('dot-dot segments in a name or digest are rejected, never resolved', async () => {
    for (const p of ['/v2/a/../b/manifests/latest', '/v2/../../etc/manifests/latest', '/v2/x/blobs/../../../etc/passwd']) {
      const r = await rawGet(nx.url, p);
      assert.ok(r.status >= 400 && r.status < 500, `${p} -> ${r.status}`);
      assert.ok(['NAME_INVALID', 'DIGEST_INVALID', 'MANIFEST_UNKNOWN', 'NOT_FOUND'].includes(JSON.parse(r.body).errors[0].code), r.body);
    }
  });

  it('unknown packages -> 404 MANIFEST_UNKNOWN naming exactly them', async () => {
    const r = await get(`${nx.url}/v2/hello/doesnotexist/alsonot/manifests/latest`);
    assert.equal(r.res.status, 404);
    const e = r.json().errors[0];
    assert.equal(e.code, 'MANIFEST_UNKNOWN');
    assert.deepEqual([...e.detail.unknownPackages].sort(), ['alsonot', 'doesnotexist']);
    assert.match(e.message, /doesnotexist/);
  });

  it('a name that looks like Nix code is only ever a package name', async () => {
    const r = await get(`${nx.url}/v2/hello/builtins.abort/manifests/latest`);
    assert.equal(r.res.status, 404);
    assert.deepEqual(r.json().errors[0].detail.unknownPackages, ['builtins.abort']);
  });

  it('Nixery name rules reach the package set: nested, case-insensitive, leading digit', async () => {
    const r = await get(`${nx.url}/v2/xorg.xev/bashinteractive/7zz/manifests/latest`);
    assert.equal(r.res.status, 200, r.body.toString());
    const m = r.json() as Manifest;
    const cfg = (await get(`${nx.url}/v2/x/blobs/${m.config.digest}`)).json();
    assert.deepEqual(cfg.config.Cmd, ['bash'], 'bashinteractive resolved to bashInteractive');
    const same = await get(`${nx.url}/v2/7zz/bashinteractive/xorg.xev/7zz/manifests/latest`, { method: 'HEAD' });
    assert.equal(same.res.headers.get('docker-content-digest'), r.res.headers.get('docker-content-digest'), 'order and duplicates do not matter');
  });

  it('hostile and malformed paths never produce a 5xx', async () => {
    const paths = [
      '/v2/%00/manifests/latest', '/v2/a%2fb/manifests/latest', '/v2/' + 'a/'.repeat(200) + 'manifests/latest',
      '/v2/x/manifests/' + 'a'.repeat(5000), '/v2/x/blobs/sha256:' + 'f'.repeat(65), '/v2/x/blobs/', '/v2/x/tags/list?n=abc',
      '/v2/x/tags/list?n=-5', '/v2/x/manifests/', '/v2//manifests/latest', '/v2/%E2%82%AC/manifests/latest',
      '/v2/x/manifests/latest%00', '/v2/x/blobs/sha256:%2e%2e', '/image/%00', '/image/' + 'x'.repeat(3000), '/api/status?x=%ff',
      '/v2/x/referrers/sha256:' + 'a'.repeat(64), '/v2/_catalog', '/v2/x/manifests/latest?digest=../../../etc',
    ];
    for (let i = 0; i < 60; i++) {
      const bytes = Array.from({ length: 1 + (i % 40) }, (_, j) => (i * 31 + j * 7) % 256);
      paths.push(`/v2/${bytes.map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')}/manifests/latest`);
    }
    for (const p of paths) {
      for (const method of ['GET', 'HEAD']) {
        const r = await rawGet(nx.url, p, method);
        assert.ok(r.status < 500, `${method} ${p.slice(0, 80)} -> ${r.status} ${r.body.slice(0, 200)}`);
      }
    }
  });

  it('20 concurrent first requests for a new image: all 200, one digest, one build', async () => {
    const before = await metric(nx.url, 'nixery_builds_started_total');
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => get(`${nx.url}/v2/jq/manifests/latest`, { method: i % 2 ? 'HEAD' : 'GET' })),
    );
    for (const r of results) assert.equal(r.res.status, 200);
    const digests = new Set(results.map((r) => r.res.headers.get('docker-content-digest')));
    assert.equal(digests.size, 1);
    const afterBuilds = await metric(nx.url, 'nixery_builds_started_total');
    assert.equal(afterBuilds - before, 1);
    const again = await get(`${nx.url}/v2/jq/manifests/latest`);
    assert.equal(again.res.headers.get('docker-content-digest'), [...digests][0]);
    assert.equal(await metric(nx.url, 'nixery_builds_started_total'), afterBuilds, 'a warm pull runs no build');
    assert.ok((await metric(nx.url, 'nixery_manifest_cache_hits_total')) >= 1);
  });

  it('two images sharing packages share layer blobs; the second packs only what it lacks', async () => {
    const a = JSON.parse((await get(`${nx.url}/v2/curl/manifests/latest`)).body.toString()) as Manifest;
    const stored = new Set((await readdir(path.join(nx.storagePath, 'layers'))).map((f) => `sha256:${f}`));
    const packedBefore = await metric(nx.url, 'nixery_layers_packed_total');
    const b = JSON.parse((await get(`${nx.url}/v2/curl/python3/manifests/latest`)).body.toString()) as Manifest;
    const packed = (await metric(nx.url, 'nixery_layers_packed_total')) - packedBefore;
    const aDigests = new Set(a.layers.map((l) => l.digest));
    const shared = b.layers.filter((l) => aDigests.has(l.digest));
    assert.ok(shared.length >= 1, 'some layers are shared');
    const lacking = b.layers.filter((l) => !stored.has(l.digest));
    assert.ok(lacking.length >= 1, 'the second image has layers of its own');
    assert.equal(packed, lacking.length, 'exactly the layers storage lacked were packed');
    assert.ok(shared.every((l) => stored.has(l.digest)));
  });
});
