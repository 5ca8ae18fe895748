/**
 * Package sources pinned to immutable revisions (issue 5), against a real
 * single-node Nixery with real Nix and Redis:
 * - a local bare git repository (file:// URL) holding a copy of the bundled
 *   package set: `latest` follows the default branch after the resolve TTL,
 *   an old commit keeps its image, a tag builds from that tag;
 *   tags/list lists branches and tags with pagination; skopeo inspect works
 *   without --no-tags;
 * - a local path: only content edits change the image; warm pulls run no Nix;
 * - a nixpkgs-style channel on a loopback channel server: the channel's
 *   revision is pinned (config label), its tarball is what Nix builds, and a
 *   channel that stops answering falls back to the last revision for a bounded time.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cp, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { type ChannelServer, randomRevision, startChannelServer } from '../helpers/channel-server';
import { MANIFEST_ACCEPT, type NixeryInstance, REPO, metric, startNixery } from '../helpers/nixery';
import { makeScratchDir, removeScratchDir, runChecked, sleep } from '../helpers/proc';

const NO_SUBSTITUTERS = { NIXERY_NIX_OPTIONS: "--option substituters ''" };
const BUNDLED = join(REPO, 'nix/pkgs');

interface Pulled {
  status: number;
  digest: string;
  revisionHeader: string | null;
  manifest: { config: { digest: string }; layers: { digest: string }[] };
  body: string;
}

async function pull(nx: NixeryInstance, name: string, ref: string): Promise<Pulled> {
  const res = await fetch(`${nx.url}/v2/${name}/manifests/${ref}`, { headers: { Accept: MANIFEST_ACCEPT } });
  const body = await res.text();
  return {
    status: res.status,
    digest: res.headers.get('docker-content-digest') ?? '',
    revisionHeader: res.headers.get('nixery-revision'),
    manifest: res.status === 200 ? JSON.parse(body) : { config: { digest: '' }, layers: [] },
    body,
  };
}

async function pullOk(nx: NixeryInstance, name: string, ref: string): Promise<Pulled> {
  const p = await pull(nx, name, ref);
  assert.equal(p.status, 200, `pull ${name}:${ref}: ${p.body}`);
  return p;
}

/** The image config's org.opencontainers.image.revision label. */
async function revisionLabel(nx: NixeryInstance, name: string, p: Pulled): Promise<string> {
  const res = await fetch(`${nx.url}/v2/${name}/blobs/${p.manifest.config.digest}`);
  assert.equal(res.status, 200);
  const config = (await res.json()) as { config?: { Labels?: Record<string, string> } };
  return config.config?.Labels?.['org.opencontainers.image.revision'] ?? '';
}

/** Whether any layer of the image contains `text` (e.g. a store path name). */
async function layersContain(nx: NixeryInstance, name: string, p: Pulled, text: string): Promise<boolean> {
  for (const l of p.manifest.layers) {
    const res = await fetch(`${nx.url}/v2/${name}/blobs/${l.digest}`);
    if (gunzipSync(Buffer.from(await res.arrayBuffer())).includes(text)) return true;
  }
  return false;
}

const builds = (nx: NixeryInstance) => metric(nx.url, 'nixery_builds_started_total');

/** Rewrites hello's version in a copy of the bundled set's default.nix (still builds offline). */
async function setHelloVersion(dir: string, version: string): Promise<void> {
  const file = join(dir, 'default.nix');
  const text = await readFile(file, 'utf8');
  const re = /pname = "hello";( version = "[^"]*";)?/;
  assert.match(text, re);
  await writeFile(file, text.replace(re, `pname = "hello"; version = "${version}";`));
}

const GIT_ENV = {
  GIT_AUTHOR_NAME: 'test',
  GIT_AUTHOR_EMAIL: 'test@example.invalid',
  GIT_COMMITTER_NAME: 'test',
  GIT_COMMITTER_EMAIL: 'test@example.invalid',
};
const git = async (cwd: string, ...args: string[]) =>
  (await runChecked('git', args, { cwd, env: GIT_ENV })).stdout.trim();

describe('git package source', () => {
  let dir: string;
  let work: string;
  let bare: string;
  let nx: NixeryInstance;
  const nonce = randomBytes(4).toString('hex');

  before(async () => {
    dir = await makeScratchDir('nixery-git-src-');
    work = join(dir, 'work');
    bare = join(dir, 'pkgs.git');
    await cp(BUNDLED, work, { recursive: true });
    await git(dir, 'init', '-q', '-b', 'main', work);
    await git(work, 'add', '-A');
    await git(work, 'commit', '-q', '-m', 'package set');
    await git(dir, 'init', '-q', '--bare', '-b', 'main', bare);
    await git(work, 'push', '-q', bare, 'main');
    nx = await startNixery({ NIXERY_PKGS_REPO: `file://${bare}`, NIXERY_RESOLVE_TTL: '1', ...NO_SUBSTITUTERS });
  });
  after(async () => {
    await nx?.stop();
    if (dir) await removeScratchDir(dir);
  });

  it('latest follows the default branch after the TTL; an old commit keeps its image; a tag builds from the tag', async () => {
    const c1 = await git(work, 'rev-parse', 'HEAD');
    const first = await pullOk(nx, 'hello', 'latest');
    assert.equal(await revisionLabel(nx, 'hello', first), c1);
    assert.equal(first.revisionHeader, c1);
    assert.equal(await builds(nx), 1);

    // A warm pull, by tag and by digest: no Nix.
    assert.equal((await pullOk(nx, 'hello', 'latest')).digest, first.digest);
    assert.equal((await pullOk(nx, 'hello', first.digest)).digest, first.digest);
    assert.equal(await builds(nx), 1);

    // A commit on main that changes hello, and a tag on a commit off main.
    await setHelloVersion(work, `main-${nonce}`);
    await git(work, 'commit', '-q', '-am', 'hello: new version');
    const c2 = await git(work, 'rev-parse', 'HEAD');
    await setHelloVersion(work, `tag-${nonce}`);
    await git(work, 'commit', '-q', '-am', 'hello: release version');
    await git(work, 'tag', '-a', '-m', 'release v2', 'release-v2');
    const c3 = await git(work, 'rev-parse', 'HEAD');
    await git(work, 'reset', '-q', '--hard', c2);
    await git(work, 'push', '-q', bare, 'main', 'release-v2');

    await sleep(1200); // the resolve TTL
    const second = await pullOk(nx, 'hello', 'latest');
    assert.notEqual(second.digest, first.digest);
    assert.equal(await revisionLabel(nx, 'hello', second), c2);
    assert.ok(await layersContain(nx, 'hello', second, `hello-main-${nonce}`), 'built from the new commit');

    const old = await pullOk(nx, 'hello', c1);
    assert.equal(old.digest, first.digest, 'the old commit still gives the old image');
    assert.equal(await builds(nx), 2, 'the old commit was a cache hit');

    const tagged = await pullOk(nx, 'hello', 'release-v2');
    assert.equal(await revisionLabel(nx, 'hello', tagged), c3);
    assert.ok(await layersContain(nx, 'hello', tagged, `hello-tag-${nonce}`), 'built from the tag');
    assert.ok(!(await layersContain(nx, 'hello', tagged, `hello-main-${nonce}`)));
    assert.equal((await pullOk(nx, 'hello', 'main')).digest, second.digest, 'a branch name is the same commit as latest');

    const unknown = await pull(nx, 'hello', 'no-such-branch');
    assert.equal(unknown.status, 404);
    assert.equal(JSON.parse(unknown.body).errors[0].code, 'MANIFEST_UNKNOWN');
  });

  it('tags/list lists latest, branches and tags, with n/last pagination and a Link header', async () => {
    await git(work, 'push', '-q', bare, 'main:feature-x');
    await sleep(1200);
    const all = await fetch(`${nx.url}/v2/hello/tags/list`);
    assert.equal(all.status, 200);
    assert.deepEqual(await all.json(), { name: 'hello', tags: ['feature-x', 'latest', 'main', 'release-v2'] });

    const p1 = await fetch(`${nx.url}/v2/hello/tags/list?n=2`);
    assert.deepEqual(((await p1.json()) as { tags: string[] }).tags, ['feature-x', 'latest']);
    assert.equal(p1.headers.get('link'), '</v2/hello/tags/list?n=2&last=latest>; rel="next"');
    const p2 = await fetch(`${nx.url}/v2/hello/tags/list?n=2&last=latest`);
    assert.deepEqual(((await p2.json()) as { tags: string[] }).tags, ['main', 'release-v2']);
    assert.equal(p2.headers.get('link'), null);
    assert.equal((await fetch(`${nx.url}/v2/hello/tags/list?n=-1`)).status, 400);

    // skopeo lists tags (following Link pages) unless told --no-tags.
    const out = await runChecked('skopeo', ['--insecure-policy', 'inspect', '--tls-verify=false', `docker://${nx.host}/hello:release-v2`]);
    const info = JSON.parse(out.stdout) as { RepoTags: string[]; Labels: Record<string, string> };
    assert.deepEqual(info.RepoTags, ['feature-x', 'latest', 'main', 'release-v2']);
    assert.equal(info.Labels['org.opencontainers.image.revision'], await git(work, 'rev-parse', 'release-v2^{}'));
  });
});

describe('local path package source', () => {
  let dir: string;
  let nx: NixeryInstance;

  before(async () => {
    dir = await makeScratchDir('nixery-path-src-');
    await cp(BUNDLED, join(dir, 'pkgs'), { recursive: true });
    nx = await startNixery({ NIXERY_PKGS_PATH: join(dir, 'pkgs'), ...NO_SUBSTITUTERS });
  });
  after(async () => {
    await nx?.stop();
    if (dir) await removeScratchDir(dir);
  });

  it('runs Nix once for repeated pulls, ignores touches, and rebuilds after an edit', async () => {
    const first = await pullOk(nx, 'hello', 'latest');
    assert.equal(await builds(nx), 1);
    assert.equal((await pullOk(nx, 'hello', 'latest')).digest, first.digest);
    await sleep(1100);
    assert.equal((await pullOk(nx, 'hello', 'latest')).digest, first.digest);
    assert.equal(await builds(nx), 1, 'a second pull without an edit runs no Nix');

    const now = new Date();
    await utimes(join(dir, 'pkgs/default.nix'), now, now); // touched, same content
    await sleep(1100);
    assert.equal((await pullOk(nx, 'hello', 'latest')).digest, first.digest);
    assert.equal(await builds(nx), 1, 'a touch changes nothing');

    const version = `edited-${randomBytes(4).toString('hex')}`;
    await setHelloVersion(join(dir, 'pkgs'), version);
    await sleep(1100);
    const edited = await pullOk(nx, 'hello', 'latest');
    assert.notEqual(edited.digest, first.digest);
    assert.ok(await layersContain(nx, 'hello', edited, `hello-${version}`));
    assert.equal(await builds(nx), 2);
    const label = await revisionLabel(nx, 'hello', edited);
    assert.match(label, /^[0-9a-f]{16}$/);
    assert.equal(edited.revisionHeader, label);
  });
});

describe('nixpkgs channel package source', () => {
  let dir: string;
  let channel: ChannelServer;
  let nx: NixeryInstance;
  const rev1 = randomRevision();
  const rev2 = randomRevision();

  before(async () => {
    dir = await makeScratchDir('nixery-channel-src-');
    channel = await startChannelServer();
    await cp(BUNDLED, join(dir, 'set1'), { recursive: true });
    await cp(BUNDLED, join(dir, 'set2'), { recursive: true });
    await setHelloVersion(join(dir, 'set2'), `channel-${rev2.slice(0, 8)}`);
    await channel.addTarball(rev1, join(dir, 'set1'));
    await channel.addTarball(rev2, join(dir, 'set2'));
    channel.setChannel('nixos-test', rev1);
    nx = await startNixery({
      NIXERY_CHANNEL: 'nixos-test',
      NIXERY_CHANNEL_URL: channel.url,
      NIXERY_TARBALL_URL: channel.url,
      NIXERY_RESOLVE_TTL: '1',
      NIXERY_RESOLVE_FALLBACK_TTL: '4',
      ...NO_SUBSTITUTERS,
    });
  });
  after(async () => {
    await nx?.stop();
    await channel?.stop();
    if (dir) await removeScratchDir(dir);
  });

  it('builds from the served tarball, pins its revision, follows the channel and falls back for a bounded time', async () => {
    const first = await pullOk(nx, 'hello', 'latest');
    assert.equal(await revisionLabel(nx, 'hello', first), rev1);
    assert.equal(first.revisionHeader, rev1);
    assert.ok(channel.requests.includes(`/${rev1}.tar.gz`), 'Nix fetched the pinned tarball');
    assert.equal((await pullOk(nx, 'hello', 'latest')).digest, first.digest);
    assert.equal(await builds(nx), 1);

    // The channel moves.
    channel.setChannel('nixos-test', rev2);
    await sleep(1100);
    const moved = await pullOk(nx, 'hello', 'latest');
    assert.notEqual(moved.digest, first.digest);
    assert.equal(await revisionLabel(nx, 'hello', moved), rev2);
    assert.ok(await layersContain(nx, 'hello', moved, `hello-channel-${rev2.slice(0, 8)}`));

    // The channel server fails: the last revision is used, within the fallback TTL (4 s) only.
    await sleep(1100);
    await pullOk(nx, 'hello', 'latest'); // the revision is confirmed now
    const confirmedAt = Date.now();
    channel.failing = true;
    await sleep(1100);
    const fallback = await pullOk(nx, 'hello', 'latest');
    assert.equal(fallback.digest, moved.digest);
    await sleep(Math.max(0, confirmedAt + 6000 - Date.now()));
    const down = await pull(nx, 'hello', 'latest');
    assert.equal(down.status, 503, down.body);
    const err = JSON.parse(down.body).errors[0];
    assert.equal(err.code, 'UNAVAILABLE');
    assert.match(err.detail.error, /git-revision answered 503/);
    const log = await readFile(nx.logFile, 'utf8');
    assert.match(log, /using the last known revision/);

    channel.failing = false;
    await sleep(1100);
    assert.equal((await pullOk(nx, 'hello', 'latest')).digest, moved.digest);
  });
});
