/**
 * Source pinning pieces: ls-remote parsing and tag resolution, the
 * refresh-with-fallback cache (fake clock), the tree fingerprint (real
 * files, real inotify), a channel server round trip, and tags/list pagination.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { nextPageLink, paginateTags, parseTagsQuery } from '../../apps/gateway/src/tags-list';
import { registryErrorFor } from '../../apps/gateway/src/failures';
import { Failed } from '../../libs/shared/src/core/failure';
import { RegistryError } from '../../libs/shared/src/protocol/errors';
import { fetchChannelRevision } from '../../libs/shared/src/sources/channel';
import { TreeFingerprinter } from '../../libs/shared/src/sources/fingerprint';
import { parseLsRemote, resolveTag, tagNames } from '../../libs/shared/src/sources/git';
import { type LoadOutcome, RefreshingValue, redactUrl } from '../../libs/shared/src/sources/refresh';
import { SourceResolver } from '../../libs/shared/src/sources/resolver';
import { type ChannelServer, randomRevision, startChannelServer } from '../helpers/channel-server';
import { makeScratchDir, removeScratchDir, sleep } from '../helpers/proc';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = 'c'.repeat(40);
const D = 'd'.repeat(40);

describe('git refs', () => {
  const refs = parseLsRemote(
    [
      'ref: refs/heads/main\tHEAD',
      `${A}\tHEAD`,
      `${A}\trefs/heads/main`,
      `${B}\trefs/heads/feat/x`,
      `${B}\trefs/heads/dev`,
      `${C}\trefs/tags/v1`,
      `${D}\trefs/tags/v1^{}`,
      `${B}\trefs/tags/dev`,
      '',
    ].join('\n'),
  );

  it('reads the default branch, branches and peeled tags', () => {
    assert.deepEqual(refs.head, { commit: A, ref: 'refs/heads/main' });
    assert.equal(refs.tags.get('v1'), D, 'annotated tag peeled to its commit');
  });

  it('resolves latest, branches before tags, tags, full commits; unknown is null', () => {
    assert.deepEqual(resolveTag(refs, 'latest'), { commit: A, ref: 'refs/heads/main' });
    assert.deepEqual(resolveTag(refs, 'dev'), { commit: B, ref: 'refs/heads/dev' });
    assert.deepEqual(resolveTag(refs, 'v1'), { commit: D, ref: 'refs/tags/v1' });
    assert.deepEqual(resolveTag(refs, C), { commit: C });
    assert.equal(resolveTag(refs, 'nope'), null);
  });

  it('lists names that are valid image tags, sorted, with latest', () => {
    assert.deepEqual(tagNames(refs), ['dev', 'latest', 'main', 'v1']);
  });

  it('redacts credentials in URLs', () => {
    assert.equal(redactUrl('https://user:tok@example.com/x.git'), 'https://***@example.com/x.git');
    assert.equal(redactUrl('file:///srv/x.git'), 'file:///srv/x.git');
    assert.equal(redactUrl("fatal: unable to access 'https://u:p@h/x/': 403"), "fatal: unable to access 'https://***@h/x/': 403");
  });
});

describe('RefreshingValue', () => {
  function setup(ttlMs = 1000, fallbackMs = 5000) {
    let now = 0;
    let calls = 0;
    let next: LoadOutcome<string> = { ok: true, value: 'r1' };
    const fallbacks: string[] = [];
    const v = new RefreshingValue<string>(
      async () => {
        calls++;
        await sleep(5);
        return next;
      },
      { ttlMs, fallbackMs, what: 'test source', now: () => now, onFallback: (i) => fallbacks.push(i.error) },
    );
    return {
      v,
      set: (o: LoadOutcome<string>) => (next = o),
      tick: (ms: number) => (now += ms),
      calls: () => calls,
      fallbacks,
    };
  }

  it('reuses a value for the TTL and shares one load between concurrent callers', async () => {
    const t = setup();
    assert.deepEqual(await Promise.all([t.v.get(), t.v.get(), t.v.get()]), ['r1', 'r1', 'r1']);
    assert.equal(t.calls(), 1);
    t.tick(999);
    await t.v.get();
    assert.equal(t.calls(), 1);
    t.set({ ok: true, value: 'r2' });
    t.tick(1);
    assert.equal(await t.v.get(), 'r2');
    assert.equal(t.calls(), 2);
  });

  it('falls back to the last value for the fallback time, then fails with UNAVAILABLE', async () => {
    const t = setup();
    await t.v.get();
    t.set({ ok: false, error: 'down' });
    t.tick(1000);
    assert.equal(await t.v.get(), 'r1');
    assert.deepEqual(t.fallbacks, ['down']);
    t.tick(500);
    await t.v.get();
    assert.equal(t.calls(), 2, 'no retry before the TTL');
    t.tick(4000); // 5.5 s after the last success
    await assert.rejects(t.v.get(), (e: unknown) => {
      assert.ok(e instanceof Failed);
      assert.deepEqual(e.failure, { kind: 'source_unavailable', source: 'test source', error: 'down' });
      const r = registryErrorFor(e.failure);
      assert.equal(r.code, 'UNAVAILABLE');
      assert.deepEqual(r.detail, { source: 'test source', error: 'down' });
      return true;
    });
    const calls = t.calls();
    await assert.rejects(t.v.get());
    assert.equal(t.calls(), calls, 'failures are retried at most once a second');
    t.set({ ok: true, value: 'r3' });
    t.tick(1000);
    assert.equal(await t.v.get(), 'r3');
  });
});

describe('TreeFingerprinter', () => {
  let dir: string;
  before(async () => {
    dir = await makeScratchDir('nixery-fp-');
  });
  after(async () => removeScratchDir(dir));

  it('changes with content, names and the executable bit only', async () => {
    const root = join(dir, 'a');
    await mkdir(join(root, 'sub'), { recursive: true });
    await writeFile(join(root, 'default.nix'), '{ }: { }');
    await writeFile(join(root, 'sub/x.sh'), 'echo');
    const fp = new TreeFingerprinter(root, { watch: false });
    const f1 = await fp.fingerprint();
    const t = new Date(Date.now() + 5000);
    await utimes(join(root, 'default.nix'), t, t);
    await mkdir(join(root, '.git'));
    await writeFile(join(root, '.git/HEAD'), 'x');
    await mkdir(join(root, 'empty'));
    assert.equal(await fp.fingerprint(), f1, 'touch, .git and an empty directory change nothing');
    await chmod(join(root, 'sub/x.sh'), 0o755);
    const f2 = await fp.fingerprint();
    assert.notEqual(f2, f1);
    await writeFile(join(root, 'default.nix'), '{ }: { a = 1; }');
    const f3 = await fp.fingerprint();
    assert.notEqual(f3, f2);
    // The same tree elsewhere has the same fingerprint.
    const copy = join(dir, 'b');
    await mkdir(join(copy, 'sub'), { recursive: true });
    await writeFile(join(copy, 'default.nix'), '{ }: { a = 1; }');
    await writeFile(join(copy, 'sub/x.sh'), 'echo');
    await chmod(join(copy, 'sub/x.sh'), 0o755);
    assert.equal(await new TreeFingerprinter(copy, { watch: false }).fingerprint(), f3);
  });

  it('answers from memory until a watcher sees a change', async () => {
    const root = join(dir, 'w');
    await mkdir(join(root, 'deep/er'), { recursive: true });
    await writeFile(join(root, 'deep/er/f'), '1');
    const fp = new TreeFingerprinter(root, { safetyRecheckMs: 60_000 });
    try {
      const f1 = await fp.current();
      assert.ok(fp.isWatching);
      assert.equal(await fp.current(), f1);
      await writeFile(join(root, 'deep/er/f'), '2');
      await sleep(100);
      assert.notEqual(await fp.current(), f1, 'an edit deep in the tree is seen');
    } finally {
      fp.close();
    }
  });
});

describe('channel resolution', () => {
  let server: ChannelServer;
  before(async () => {
    server = await startChannelServer();
  });
  after(async () => server?.stop());

  it('reads <channel>/git-revision, reports failures as data, and the resolver pins the revision', async () => {
    const rev = randomRevision();
    server.setChannel('nixos-unit', rev);
    assert.deepEqual(await fetchChannelRevision(server.url, 'nixos-unit', 5000), { ok: true, value: rev });
    const missing = await fetchChannelRevision(server.url, 'nope', 5000);
    assert.equal(missing.ok, false);

    const resolver = new SourceResolver(
      { type: 'channel', channel: 'nixos-unit', channelBaseUrl: server.url, tarballBaseUrl: 'http://tarballs.invalid' },
      { ttlSeconds: 60, fallbackSeconds: 60, timeoutMs: 5000 },
    );
    const r = await resolver.resolve('latest');
    assert.deepEqual(r, { identity: `nixpkgs:${rev}`, revision: rev, nix: { type: 'nixpkgs', url: `http://tarballs.invalid/${rev}.tar.gz` } });
    const before = server.requests.length;
    assert.equal(await resolver.resolve('anything'), r, 'cached: same object, no request');
    assert.equal(server.requests.length, before);
    assert.deepEqual(await resolver.tags(), ['latest']);
  });
});

describe('tags/list pagination', () => {
  const all = ['main', 'latest', 'a', 'release-v2', 'latest'];
  it('sorts, pages with n and last, and links the next page', () => {
    assert.deepEqual(paginateTags(all, {}), { tags: ['a', 'latest', 'main', 'release-v2'] });
    assert.deepEqual(paginateTags(all, { n: 2 }), { tags: ['a', 'latest'], nextLast: 'latest' });
    assert.deepEqual(paginateTags(all, { n: 2, last: 'latest' }), { tags: ['main', 'release-v2'] });
    assert.deepEqual(paginateTags(all, { n: 0 }), { tags: [] });
    assert.deepEqual(paginateTags(all, { last: 'zzz' }), { tags: [] });
    assert.equal(nextPageLink('shell/git', 2, 'a b'), '</v2/shell/git/tags/list?n=2&last=a%20b>; rel="next"');
  });
  it('rejects a malformed n with PAGINATION_NUMBER_INVALID', () => {
    assert.deepEqual(parseTagsQuery({ n: '5', last: 'x' }), { n: 5, last: 'x' });
    assert.deepEqual(parseTagsQuery({}), {});
    for (const n of ['-1', 'abc', '1.5', '99999999']) {
      assert.throws(() => parseTagsQuery({ n }), (e: unknown) => e instanceof RegistryError && e.code === 'PAGINATION_NUMBER_INVALID' && e.status === 400);
    }
  });
});
