import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildImageDocuments } from '../../libs/shared/src/protocol/image-documents';
import { sha256Digest } from '../../libs/shared/src/core/digest';
import { registryErrorFor } from '../../apps/gateway/src/failures';
import { decodeFailure, encodeFailure } from '../../libs/shared/src/jobs/failure-codec';

describe('image documents', () => {
  const layers = [
    { digest: sha256Digest('a'), size: 10, diffId: sha256Digest('A') },
    { digest: sha256Digest('b'), size: 20, diffId: sha256Digest('B') },
  ];
  it('builds a schema 2 manifest whose config digest matches the config bytes', () => {
    const d = buildImageDocuments({ architecture: 'amd64', layers, hasBash: true, labels: { 'org.opencontainers.image.revision': 'abc' } });
    const m = JSON.parse(d.manifest.body);
    assert.equal(m.schemaVersion, 2);
    assert.equal(m.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal(m.config.digest, sha256Digest(d.config.body));
    assert.equal(m.config.size, Buffer.byteLength(d.config.body));
    assert.deepEqual(m.layers.map((l: { digest: string }) => l.digest), layers.map((l) => l.digest));
    assert.equal(d.manifest.digest, sha256Digest(d.manifest.body));
    const c = JSON.parse(d.config.body);
    assert.equal(c.architecture, 'amd64');
    assert.equal(c.os, 'linux');
    assert.deepEqual(c.rootfs, { type: 'layers', diff_ids: layers.map((l) => l.diffId) });
    assert.deepEqual(c.config.Cmd, ['bash']);
    assert.ok(c.config.Env.includes('SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt'));
    assert.equal(c.config.Labels['org.opencontainers.image.revision'], 'abc');
  });
  it('is deterministic and has no Cmd without bash', () => {
    const a = buildImageDocuments({ architecture: 'arm64', layers, hasBash: false, labels: { b: '1', a: '2' } });
    const b = buildImageDocuments({ architecture: 'arm64', layers, hasBash: false, labels: { a: '2', b: '1' } });
    assert.equal(a.manifest.digest, b.manifest.digest);
    assert.equal(JSON.parse(a.config.body).config.Cmd, undefined);
  });
});

describe('build failures as data', () => {
  it('round-trips through a job result as a code and its fields', () => {
    const f = { kind: 'unknown_packages' as const, packages: ['nope', 'zilch'] };
    const encoded = encodeFailure(f);
    assert.equal(encoded.code, 'UNKNOWN_PACKAGES');
    assert.deepEqual(decodeFailure(JSON.parse(JSON.stringify(encoded))), f);
    const e = registryErrorFor(f);
    assert.equal(e.code, 'MANIFEST_UNKNOWN');
    assert.equal(e.status, 404);
    assert.deepEqual(e.toBody().errors[0]?.detail, { unknownPackages: ['nope', 'zilch'] });
  });
  it('treats foreign values as internal, never as a 500 with internals', () => {
    for (const foreign of ['ECONNRESET at /secret/path', { code: 'NOPE', data: {} }, { code: 'UNKNOWN_PACKAGES', data: { packages: 'x' } }, null]) {
      const f = decodeFailure(foreign);
      assert.equal(f.kind, 'internal');
      const e = registryErrorFor(f);
      assert.equal(e.status, 503);
      assert.ok(!JSON.stringify(e.toBody()).includes('/secret/path'));
    }
  });
  it('a Nix environment that does not work is 503 UNAVAILABLE with its cause', () => {
    const f = { kind: 'nix_unavailable' as const, cause: 'build-users-group nixbld does not exist', hint: 'run as root' };
    const e = registryErrorFor(decodeFailure(encodeFailure(f)));
    assert.equal(e.status, 503);
    assert.equal(e.code, 'UNAVAILABLE');
    assert.deepEqual(e.detail, { cause: f.cause, hint: f.hint });
  });
});
