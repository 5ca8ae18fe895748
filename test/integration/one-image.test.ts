/**
 * Failures are cached, and one name is one image (issue 12, points 2 and 3),
 * against a real Nixery (`npm start`: embedded redis-server, real Nix) on a
 * copy of the bundled package set:
 * - an image with unknown packages runs Nix once, however often it is pulled
 *   (ten pulls one after another, ten at once), and every answer is the same
 *   `404 MANIFEST_UNKNOWN` naming the packages;
 * - a new source revision (the copied set edited: its fingerprint changes)
 *   forgets it, and the package added meanwhile builds;
 * - a build that fails (503) is not remembered: the next pull runs Nix again;
 * - an uppercase name is `400 NAME_INVALID` with a registry error body;
 * - order and duplicates give one build key (one build, one digest), and a
 *   spelling found through the lookup's case-insensitive fallback
 *   (`bashinteractive` for `shell`'s `bashInteractive`) the same digest.
 * Nix runs are counted by `nixery_builds_started_total` (one process, one registry).
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MANIFEST_ACCEPT, type NixeryInstance, metric, startNixery } from '../helpers/nixery';
import { type PackageSetCopy, busyboxPackage, copyPackageSet } from '../helpers/pkgset';
import { waitFor } from '../helpers/proc';

type RegistryBody = { errors: { code: string; message: string; detail?: { unknownPackages?: string[] } & Record<string, unknown> }[] };

const BROKEN = busyboxPackage('broken', 'broken-1.0', 'echo this package does not build >&2; exit 1');
const ADDED = busyboxPackage('addedlater', 'addedlater-1.0', '/bin/busybox mkdir -p $out/share && echo added > $out/share/added; :');

describe('negative cache and one name, one image', () => {
  let pkgs: PackageSetCopy;
  let nx: NixeryInstance;

  before(async () => {
    pkgs = await copyPackageSet({ extraAttrs: BROKEN });
    nx = await startNixery({ ...pkgs.env, NIXERY_NEGATIVE_TTL: '600' });
  });

  after(async () => {
    await nx?.stop();
    await pkgs?.remove();
  });

  const pull = async (name: string) => {
    const res = await fetch(`${nx.url}/v2/${name}/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } });
    const text = await res.text();
    return { status: res.status, digest: res.headers.get('docker-content-digest'), type: res.headers.get('content-type') ?? '', text };
  };
  const builds = () => metric(nx.url, 'nixery_builds_started_total');

  /** A pull answered 404 MANIFEST_UNKNOWN naming exactly `unknown`. */
  const assertUnknown = (r: Awaited<ReturnType<typeof pull>>, unknown: string[]) => {
    assert.equal(r.status, 404, r.text);
    const e = (JSON.parse(r.text) as RegistryBody).errors[0]!;
    assert.equal(e.code, 'MANIFEST_UNKNOWN');
    assert.deepEqual(e.detail?.unknownPackages, unknown);
  };

  it('ten pulls of one unknown package one after another run Nix once, each answered 404 naming it', async () => {
    const before = await builds();
    for (let i = 0; i < 10; i++) assertUnknown(await pull('hello/nosuchpackage'), ['nosuchpackage']);
    assert.equal((await builds()) - before, 1, 'one Nix run for ten pulls');
    assert.equal(await metric(nx.url, 'nixery_negative_cache_hits_total'), 9);
  });

  it('ten pulls of one unknown package at once run Nix once', async () => {
    const before = await builds();
    const answers = await Promise.all(Array.from({ length: 10 }, () => pull('jq/notapackage')));
    for (const r of answers) assertUnknown(r, ['notapackage']);
    // and the next ten, now remembered
    for (const r of await Promise.all(Array.from({ length: 10 }, () => pull('jq/notapackage')))) assertUnknown(r, ['notapackage']);
    assert.equal((await builds()) - before, 1, 'one Nix run for twenty pulls');
  });

  it('a build that fails (503) is not remembered: every pull runs Nix again', async () => {
    const before = await builds();
    for (let i = 0; i < 2; i++) {
      const r = await pull('broken');
      assert.equal(r.status, 503, r.text);
      assert.equal((JSON.parse(r.text) as RegistryBody).errors[0]!.code, 'UNAVAILABLE');
    }
    assert.equal((await builds()) - before, 2, 'a machine or build failure is never sticky');
  });

  it('a new source revision forgets the cached failure, and the package added meanwhile builds', async () => {
    assertUnknown(await pull('addedlater'), ['addedlater']);
    const remembered = await builds();
    assertUnknown(await pull('addedlater'), ['addedlater']);
    assert.equal(await builds(), remembered, 'remembered for this revision');
    // Edit the copied set: the package appears, the tree's fingerprint (the source revision) changes.
    const file = path.join(pkgs.dir, 'default.nix');
    const text = await readFile(file, 'utf8');
    await writeFile(file, `${text.slice(0, text.lastIndexOf('}'))}${ADDED}\n}\n`);
    let last: Awaited<ReturnType<typeof pull>> | undefined;
    assert.ok(await waitFor(async () => (last = await pull('addedlater')).status === 200, { timeoutMs: 60_000 }), last?.text);
    assert.ok((await builds()) > remembered, 'built under the new revision');
  });

  it('an uppercase name is 400 NAME_INVALID with a registry error body, and builds nothing', async () => {
    const before = await builds();
    for (const name of ['Hello', 'shell/Hello', 'HELLO/jq', 'shell/bashInteractive']) {
      const r = await pull(name);
      assert.equal(r.status, 400, `${name}: ${r.text}`);
      assert.match(r.type, /^application\/json/);
      const e = (JSON.parse(r.text) as RegistryBody).errors[0]!;
      assert.equal(e.code, 'NAME_INVALID');
      assert.match(e.message, /lowercase/);
    }
    assert.equal(await builds(), before);
  });

  it('order and duplicates: shell/hello/jq and shell/jq/hello/jq are one image, built once', async () => {
    const before = await builds();
    const a = await pull('shell/hello/jq');
    assert.equal(a.status, 200, a.text);
    const b = await pull('shell/jq/hello/jq');
    assert.equal(b.status, 200, b.text);
    assert.equal(b.digest, a.digest);
    assert.equal((await builds()) - before, 1, 'built once');
  });

  it('a case-insensitive fallback spelling gives the digest of its canonical spelling, packing nothing', async () => {
    const canonical = await pull('shell/hello/jq'); // bashInteractive, from the shell meta-package
    assert.equal(canonical.status, 200, canonical.text);
    const packed = await metric(nx.url, 'nixery_layers_packed_total');
    const fallback = await pull('shell/bashinteractive/jq/hello'); // bashinteractive -> bashInteractive
    assert.equal(fallback.status, 200, fallback.text);
    assert.equal(fallback.digest, canonical.digest, 'one package set, one digest');
    assert.equal(fallback.text, canonical.text);
    assert.equal(await metric(nx.url, 'nixery_layers_packed_total'), packed, 'no layer packed for the second spelling');
    assert.equal(await metric(nx.url, 'nixery_images_shared_total'), 1);
    // and from now on the fallback spelling is a manifest cache hit: no Nix at all
    const before = await builds();
    assert.equal((await pull('shell/bashinteractive/jq/hello')).digest, canonical.digest);
    assert.equal(await builds(), before);
  });
});
