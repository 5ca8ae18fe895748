import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRange } from '../../apps/gateway/src/range';
import { parseRegistryPath } from '../../apps/gateway/src/registry-path';
import { RegistryError } from '../../libs/shared/src/protocol/errors';

const D = `sha256:${'a'.repeat(64)}`;

describe('registry paths', () => {
  const ok: [string, unknown][] = [
    ['/v2/', { kind: 'base' }],
    ['/v2/shell/hello/manifests/latest', { kind: 'manifest', name: 'shell/hello', reference: { tag: 'latest' } }],
    [`/v2/shell/hello/manifests/${D}`, { kind: 'manifest', name: 'shell/hello', reference: { digest: D } }],
    [`/v2/hello/blobs/${D}`, { kind: 'blob', name: 'hello', digest: D }],
    ['/v2/a/b/c/tags/list', { kind: 'tags', name: 'a/b/c' }],
    ['/v2/hello/blobs/uploads/', { kind: 'upload', name: 'hello' }],
  ];
  for (const [p, want] of ok) it(`parses ${p}`, () => assert.deepEqual(parseRegistryPath(p), want));

  const bad: [string, string][] = [
    ['/v2/hello/blobs/sha256:xyz', 'DIGEST_INVALID'],
    [`/v2/hello/blobs/sha256:${'A'.repeat(64)}`, 'DIGEST_INVALID'],
    ['/v2/hello/blobs/../../etc/passwd', 'DIGEST_INVALID'],
    ['/v2/hello/manifests/md5:abc', 'MANIFEST_UNKNOWN'],
    ['/v2/hello/manifests/sha256:abc', 'MANIFEST_UNKNOWN'],
    ['/v2/../x/manifests/latest', 'NAME_INVALID'],
    ['/v2/a%2F/manifests/latest', 'NAME_INVALID'],
    // Uppercase is not the spec's grammar: one image, one spelling (issue 12), for every route.
    ['/v2/Hello/manifests/latest', 'NAME_INVALID'],
    ['/v2/shell/bashInteractive/manifests/latest', 'NAME_INVALID'],
    [`/v2/Hello/blobs/${D}`, 'NAME_INVALID'],
    ['/v2/Hello/tags/list', 'NAME_INVALID'],
  ];
  for (const [p, code] of bad) {
    it(`rejects ${p} with ${code}`, () => {
      assert.throws(() => parseRegistryPath(p), (e: unknown) => e instanceof RegistryError && e.code === code);
    });
  }
  it('ignores non-registry paths', () => assert.equal(parseRegistryPath('/v2/x/other/y'), null));
});

describe('Range header', () => {
  const cases: [string | undefined, number, unknown][] = [
    [undefined, 10, undefined],
    ['bytes=0-0', 10, { start: 0, end: 0 }],
    ['bytes=2-5', 10, { start: 2, end: 5 }],
    ['bytes=5-', 10, { start: 5, end: 9 }],
    ['bytes=-3', 10, { start: 7, end: 9 }],
    ['bytes=0-100', 10, { start: 0, end: 9 }],
    ['bytes=0-1,3-4', 10, undefined],
  ];
  for (const [h, size, want] of cases) it(`${h} of ${size}`, () => assert.deepEqual(parseRange(h, size), want));
  for (const h of ['bytes=10-', 'bytes=5-2', 'bytes=-0', 'items=0-1', 'bytes=-']) {
    it(`${h} is unsatisfiable (416)`, () => {
      assert.throws(() => parseRange(h, 10), (e: unknown) => e instanceof RegistryError && e.status === 416 && e.headers['Content-Range'] === 'bytes */10');
    });
  }
});
