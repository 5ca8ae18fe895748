/**
 * Logs that cost little (issue 15), against a real Nixery (single node, real
 * Nix, the bundled package set) at LOG_LEVEL=info:
 * - a cold pull writes one `manifest` line naming image, tag, build key and
 *   job id (= the build key) and digest, and the build's own lines carry
 *   the same build key;
 * - warm pulls write one short line (at most 200 bytes) in
 *   NIXERY_LOG_WARM_EVERY (3 here), naming image, tag and the build key's
 *   first 16 hex digits;
 * - no per-request `request` line at info level.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { type LogLine, MANIFEST_ACCEPT, type NixeryInstance, readLogLines, startNixery } from '../helpers/nixery';

const pull = (base: string, name: string) => fetch(`${base}/v2/${name}/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } });

describe('request log lines (issue 15)', () => {
  let nx: NixeryInstance;

  before(async () => {
    nx = await startNixery({ LOG_LEVEL: 'info', NIXERY_LOG_WARM_EVERY: '3' });
  });

  after(async () => {
    await nx?.stop();
  });

  it('a cold pull names its build key and job id; warm pulls log one short line in N', { timeout: 600_000 }, async () => {
    const cold = await pull(nx.url, 'hello');
    assert.equal(cold.status, 200, await cold.clone().text());
    const digest = cold.headers.get('docker-content-digest');
    for (let i = 0; i < 6; i++) {
      const warm = await pull(nx.url, 'hello');
      assert.equal(warm.status, 200);
      await warm.arrayBuffer();
    }
    // pino writes synchronously: every line is in the file once the answers are in.
    const raw = (await readFile(nx.logFile, 'utf8')).split('\n').filter((l) => l.startsWith('{'));
    const lines = await readLogLines<LogLine>(nx.logFile);
    const manifestLines = lines.filter((l) => l.msg === 'manifest' && l.image === 'hello');
    assert.equal(manifestLines.length, 3, `one cold line and 2 of 6 warm ones, got ${JSON.stringify(manifestLines)}`);
    const [coldLine, ...warmLines] = manifestLines as [LogLine, ...LogLine[]];

    assert.match(String(coldLine.buildKey), /^[0-9a-f]{64}$/);
    assert.equal(coldLine.jobId, coldLine.buildKey);
    assert.equal(coldLine.digest, digest);
    assert.equal(coldLine.tag, 'latest');
    const started = lines.find((l) => l.msg === 'build started' && l.image === 'hello');
    assert.ok(started, 'no "build started" line');
    assert.equal(started.buildKey, coldLine.buildKey, 'the cold pull and its build share the build key');

    for (const w of warmLines) {
      assert.equal(w.tag, 'latest');
      assert.equal(w.build, String(coldLine.buildKey).slice(0, 16));
      assert.equal(w.buildKey, undefined);
      assert.equal(typeof w.ms, 'number');
    }
    const warmRaw = raw.filter((l) => l.includes('"msg":"manifest"') && !l.includes('"buildKey"'));
    assert.equal(warmRaw.length, 2);
    for (const l of warmRaw) assert.ok(Buffer.byteLength(l) <= 200, `${Buffer.byteLength(l)} bytes: ${l}`);
    assert.equal(lines.filter((l) => l.msg === 'request').length, 0, 'no per-request line at info level');
  });
});
