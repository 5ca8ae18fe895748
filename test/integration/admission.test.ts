/**
 * Admission of cold builds and trusted proxies (issue 12, points 1, 5 and
 * part of 2), against real `npm start` Nixery processes (embedded Redis,
 * real Nix builds from a copied package set with a `slow` package), with
 * clients on distinct loopback addresses (127.0.0.2, 127.0.0.3, ...):
 * - a flood from 127.0.0.2 gets 429 TOOMANYREQUESTS with Retry-After while a
 *   cold pull from 127.0.0.3 succeeds; warm pulls and blobs from 127.0.0.2
 *   are still 200;
 * - X-Forwarded-For counts only from a trusted proxy; X-Forwarded-Host too,
 *   and NIXERY_PUBLIC_URL wins on the page; no filesystem path in the page
 *   or /api/status;
 * - too many packages is 400 NAME_INVALID; NIXERY_MAX_QUEUED_BUILDS is 503
 *   with Retry-After;
 * - an arm64 job (no aarch64 worker) is gone once its client was answered;
 *   an unstarted build whose client hung up is removed from the queue.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Answer, errorCode, getFrom } from '../helpers/from-address';
import { type NixeryInstance, REPO, metric, startNixery } from '../helpers/nixery';
import { type PackageSetCopy, copyPackageSet } from '../helpers/pkgset';
import { sleep, waitFor } from '../helpers/proc';

const X86 = { queue: 'build-x86_64-linux' };
const nonce = Date.now().toString(36);

function assertTooMany(a: Answer): void {
  assert.equal(a.status, 429, a.body);
  assert.equal(errorCode(a), 'TOOMANYREQUESTS');
  assert.ok(Number(a.headers['retry-after']) >= 1, `Retry-After: ${a.headers['retry-after']}`);
}

/**
 * A Nixery on its own copy of the package set (`slow` sleeping `slowSeconds`),
 * popularity off, for the suite it is called in; `nx` is it once started.
 */
function nixeryForSuite(slowSeconds: number, env: Record<string, string>, extraAttrs?: string): { readonly nx: NixeryInstance; readonly pkgsDir: string; manifest(name: string): string } {
  let pkgs: PackageSetCopy | undefined;
  let nx: NixeryInstance | undefined;
  before(async () => {
    pkgs = await copyPackageSet({ slowSeconds, ...(extraAttrs ? { extraAttrs } : {}) });
    nx = await startNixery({ ...pkgs.env, NIXERY_POPCOUNT_SCHEDULE: 'off', ...env });
  });
  after(async () => {
    await nx?.stop();
    await pkgs?.remove();
  });
  return {
    get nx() {
      return nx!;
    },
    get pkgsDir() {
      return pkgs!.dir;
    },
    manifest: (name) => `${nx!.url}/v2/${name}/manifests/latest`,
  };
}

describe('admission: rate per client, trusted proxies, package cap, arm64 and abandoned jobs', () => {
  const suite = nixeryForSuite(5, {
    NIXERY_BUILD_RATE: '3/60s',
    NIXERY_TRUSTED_PROXIES: '127.0.0.5/32,::1',
    NIXERY_ABANDON_AFTER: '1',
    NIXERY_BUILD_WAIT: '15',
  }, '  badpkg = 1 + "x";');

  it('a flood from 127.0.0.2 gets 429s with Retry-After while a cold pull from 127.0.0.3 succeeds; warm pulls and blobs stay 200', async () => {
    const warm = await getFrom(suite.manifest('hello'), '127.0.0.9');
    assert.equal(warm.status, 200, warm.body);
    const layer = (JSON.parse(warm.body) as { layers: { digest: string }[] }).layers[0]!.digest;

    const flood = Array.from({ length: 8 }, (_, i) => getFrom(suite.manifest(`flood${nonce}x${i}`), '127.0.0.2'));
    await sleep(200);
    const victim = await getFrom(suite.manifest('jq'), '127.0.0.3');
    assert.equal(victim.status, 200, `the other client's cold pull: ${victim.body}`);
    const answers = await Promise.all(flood);
    const limited = answers.filter((a) => a.status === 429);
    assert.equal(limited.length, 5, `3 tokens, 8 cold pulls: ${answers.map((a) => a.status).join(' ')}`);
    for (const a of limited) assertTooMany(a);
    for (const a of answers.filter((x) => x.status !== 429)) assert.equal(errorCode(a), 'MANIFEST_UNKNOWN');

    // The same client is still served warm pulls and blobs.
    assert.equal((await getFrom(suite.manifest('hello'), '127.0.0.2')).status, 200);
    assert.equal((await getFrom(`${suite.nx.url}/v2/hello/blobs/${layer}`, '127.0.0.2')).status, 200);
    assert.equal((await getFrom(`${suite.nx.url}/v2/hello/blobs/${layer}`, '127.0.0.2', { method: 'HEAD' })).status, 200);
    assert.ok((await metric(suite.nx.url, 'nixery_admission_refused_total', { reason: 'rate_limited' })) >= 5);
  });

  it('X-Forwarded-For from an untrusted peer is ignored, from a trusted proxy honoured (walked from the right)', async () => {
    // 127.0.0.2 claiming to forward for someone else is still 127.0.0.2, and has no tokens left.
    assertTooMany(await getFrom(suite.manifest(`xff${nonce}a`), '127.0.0.2', { headers: { 'X-Forwarded-For': '127.0.0.77' } }));
    // The trusted proxy (127.0.0.5) forwarding for 127.0.0.2: limited as 127.0.0.2.
    assertTooMany(await getFrom(suite.manifest(`xff${nonce}b`), '127.0.0.5', { headers: { 'X-Forwarded-For': '127.0.0.2' } }));
    // Forwarding for a fresh client (the proxy itself as the last hop is skipped): admitted (unknown package, 404).
    const fresh = await getFrom(suite.manifest(`xff${nonce}c`), '127.0.0.5', { headers: { 'X-Forwarded-For': '127.0.0.2, 127.0.0.78, 127.0.0.5' } });
    assert.equal(fresh.status, 404, fresh.body);
  });

  it('the page uses X-Forwarded-Host only from a trusted proxy, and neither page, /api/status nor an error shows a filesystem path', async () => {
    // Nix's error for a package that fails to evaluate names the package set's file: redacted.
    const bad = await getFrom(suite.manifest('badpkg'), '127.0.0.12');
    assert.equal(bad.status, 503, bad.body);
    assert.match(bad.body, /<package set>\/default\.nix/);
    const untrusted = await getFrom(`${suite.nx.url}/`, '127.0.0.2', { headers: { 'X-Forwarded-Host': 'evil.example.com' } });
    assert.equal(untrusted.status, 200);
    assert.ok(!untrusted.body.includes('evil.example.com'), 'an untrusted X-Forwarded-Host is on the page');
    assert.ok(untrusted.body.includes(`docker pull ${suite.nx.host}/`), 'pull commands use the Host header');
    const trusted = await getFrom(`${suite.nx.url}/`, '127.0.0.5', { headers: { 'X-Forwarded-Host': 'registry.example.org' } });
    assert.ok(trusted.body.includes('docker pull registry.example.org/'), 'a trusted proxy names the host');
    const status = await getFrom(`${suite.nx.url}/api/status`, '127.0.0.2');
    assert.equal(status.status, 200);
    assert.match(status.body, /<package set>\/default\.nix/, 'the recent failure is shown, redacted');
    for (const [what, text] of [['page', untrusted.body], ['/api/status', status.body], ['error', bad.body]] as const) {
      for (const p of [suite.pkgsDir, suite.nx.storagePath, REPO]) assert.ok(!text.includes(p), `${what} shows the path ${p}`);
    }
    for (const text of [untrusted.body, status.body]) assert.match(text, /local package set/);
  });

  it('too many packages in a name: 400 NAME_INVALID saying so, before any build', async () => {
    // 63 components (well under 255 characters) + cacert and iana-etc = 65 packages.
    const name = Array.from({ length: 63 }, (_, i) => `p${i.toString(36)}`).join('/');
    assert.ok(name.length < 255);
    const a = await getFrom(suite.manifest(name), '127.0.0.11');
    assert.equal(a.status, 400, a.body);
    assert.equal(errorCode(a), 'NAME_INVALID');
    assert.match(a.body, /65 packages.*at most 64/);
  });

  it('an arm64 pull with no aarch64 worker is answered 503 and leaves no job queued', async () => {
    const a = await getFrom(suite.manifest('arm64/hello'), '127.0.0.10');
    assert.equal(a.status, 503, a.body);
    assert.equal(errorCode(a), 'UNAVAILABLE');
    assert.match(a.body, /aarch64-linux/);
    const gone = await waitFor(async () => (await metric(suite.nx.url, 'nixery_queue_depth', { queue: 'build-aarch64-linux' })) === 0, { timeoutMs: 3000 });
    assert.ok(gone, 'the arm64 job is still queued after its client was answered');
  });

  it('an unstarted build whose client hung up is removed from the queue; a build still waited for is not', async () => {
    const kept = getFrom(suite.manifest('slow'), '127.0.0.4');
    assert.ok(await waitFor(async () => (await metric(suite.nx.url, 'nixery_queue_active_jobs', X86)) === 1, { timeoutMs: 20_000 }), 'slow did not start');
    // Joining a build that is already queued or running takes no token: 127.0.0.2 has none left.
    const joiner = getFrom(suite.manifest('slow'), '127.0.0.2');
    const before = await metric(suite.nx.url, 'nixery_builds_abandoned_total');
    await Promise.all(['slow/hello', 'slow/jq'].map((n) => getFrom(suite.manifest(n), '127.0.0.6', { hangUpAfterMs: 300 })));
    assert.equal(await metric(suite.nx.url, 'nixery_queue_depth', X86), 2, 'both queued behind slow');
    assert.ok(await waitFor(async () => (await metric(suite.nx.url, 'nixery_queue_depth', X86)) === 0, { timeoutMs: 4000 }), 'abandoned builds still queued');
    assert.equal(await metric(suite.nx.url, 'nixery_builds_abandoned_total'), before + 2);
    assert.equal(await metric(suite.nx.url, 'nixery_queue_active_jobs', X86), 1, 'the waited-for build still runs');
    for (const k of await Promise.all([kept, joiner])) assert.equal(k.status, 200, k.body);
  });
});

describe('admission: cluster queue cap and NIXERY_PUBLIC_URL', () => {
  const suite = nixeryForSuite(6, {
    NIXERY_BUILD_RATE: 'off',
    NIXERY_MAX_QUEUED_BUILDS: '2',
    NIXERY_PUBLIC_URL: 'https://nixery.example.net',
    NIXERY_BUILD_WAIT: '30',
  });

  it('the page pulls from NIXERY_PUBLIC_URL, whatever the Host', async () => {
    const page = await getFrom(`${suite.nx.url}/`, '127.0.0.2', { headers: { 'X-Forwarded-Host': 'evil.example.com' } });
    assert.ok(page.body.includes('docker pull nixery.example.net/'), 'NIXERY_PUBLIC_URL on the page');
    assert.ok(!page.body.includes(`docker pull ${suite.nx.host}/`));
  });

  it('past NIXERY_MAX_QUEUED_BUILDS waiting builds a new cold pull is 503 with Retry-After; joining a queued one is not refused', async () => {
    const running = getFrom(suite.manifest('slow'), '127.0.0.2');
    assert.ok(await waitFor(async () => (await metric(suite.nx.url, 'nixery_queue_active_jobs', X86)) === 1, { timeoutMs: 20_000 }), 'slow did not start');
    const queued = ['slow/hello', 'slow/jq'].map((n) => getFrom(suite.manifest(n), '127.0.0.3'));
    assert.ok(await waitFor(async () => (await metric(suite.nx.url, 'nixery_queue_depth', X86)) === 2, { timeoutMs: 5000 }));
    const refused = await getFrom(suite.manifest('slow/curl'), '127.0.0.4');
    assert.equal(refused.status, 503, refused.body);
    assert.equal(errorCode(refused), 'UNAVAILABLE');
    assert.match(refused.body, /queue is full/);
    assert.ok(Number(refused.headers['retry-after']) >= 1);
    const joined = getFrom(suite.manifest('slow/jq'), '127.0.0.4');
    const all = await Promise.all([running, ...queued, joined]);
    assert.deepEqual(all.map((a) => a.status), [200, 200, 200, 200]);
  });
});
