/**
 * SIGTERM drains (issue 11, point 2). A real `npm start` Nixery with a slow
 * package gets 10 cold pulls of distinct images at once (one worker builds
 * one at a time), then SIGTERM. Every client must get an HTTP answer: the
 * build already running finishes within the grace and is answered 200; the
 * others, still waiting when the gateway's grace (here the default, the
 * worker's) is over, get `503 UNAVAILABLE` with `Retry-After`, not before.
 * The process exits 0 within the grace plus a few seconds. Before the drain,
 * the process exited at once and those clients got no answer at all.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { MANIFEST_ACCEPT, type NixeryInstance, metric, startNixery } from '../helpers/nixery';
import { type PackageSetCopy, copyPackageSet } from '../helpers/pkgset';

const GRACE_S = 10;
const EXTRAS = ['hello', 'jq', 'nano', 'zlib', 'ncurses', 'htop', 'cacert', 'iana-etc', 'busybox', 'moreutils'];

/** One client's outcome: an HTTP answer, or the error of a connection that ended without one. */
type Outcome = { status: number; retryAfter: string | null; code?: string; atMs: number } | { error: string; atMs: number };

describe('SIGTERM with pulls in flight', () => {
  let pkgs: PackageSetCopy;
  let nx: NixeryInstance;
  before(async () => {
    pkgs = await copyPackageSet({ slowSeconds: 4 });
    nx = await startNixery({ ...pkgs.env, NIXERY_WORKER_GRACE: String(GRACE_S), NIXERY_POPCOUNT_SCHEDULE: 'off', NIXERY_BUILD_WAIT: '120' });
  });
  after(async () => {
    await nx?.stop();
    await pkgs?.remove();
  });

  it('answers all 10 clients (200 within the grace, 503 with Retry-After after it) and exits 0 in time', async () => {
    let signalledAt = 0;
    const pulls = EXTRAS.map(async (extra): Promise<Outcome> => {
      try {
        const r = await fetch(`${nx.url}/v2/slow/${extra}/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } });
        const body = (await r.json().catch(() => ({}))) as { errors?: { code: string }[] };
        const code = body.errors?.[0]?.code;
        return { status: r.status, retryAfter: r.headers.get('retry-after'), ...(code ? { code } : {}), atMs: Date.now() - signalledAt };
      } catch (err) {
        return { error: String((err as Error).cause ?? err), atMs: Date.now() - signalledAt };
      }
    });
    // Wait until a build is running (the others queue behind it), then stop the process.
    const deadline = Date.now() + 60_000;
    while ((await metric(nx.url, 'nixery_queue_active_jobs', { queue: 'build-x86_64-linux' })) < 1) {
      assert.ok(Date.now() < deadline, 'no build started');
      await sleep(200);
    }
    await sleep(500);
    const exited = new Promise<number | null>((resolve) => nx.child.once('exit', (code) => resolve(code)));
    signalledAt = Date.now();
    nx.child.kill('SIGTERM');
    const code = await exited;
    const exitMs = Date.now() - signalledAt;
    const outcomes = await Promise.all(pulls);

    const noAnswer = outcomes.filter((o) => 'error' in o);
    assert.deepEqual(noAnswer, [], 'every client gets an HTTP response');
    const answers = outcomes.filter((o): o is Extract<Outcome, { status: number }> => 'status' in o);
    const ok = answers.filter((a) => a.status === 200);
    const unavailable = answers.filter((a) => a.status === 503);
    assert.equal(ok.length + unavailable.length, 10, JSON.stringify(answers));
    assert.ok(ok.length >= 1, `the running build finishes within the grace and is answered: ${JSON.stringify(answers)}`);
    assert.ok(unavailable.length >= 1, `builds still queued at the end of the grace are answered 503: ${JSON.stringify(answers)}`);
    for (const a of unavailable) {
      assert.equal(a.code, 'UNAVAILABLE');
      assert.ok(Number(a.retryAfter) > 0, `Retry-After on every 503: ${JSON.stringify(a)}`);
      assert.ok(a.atMs >= (GRACE_S - 1) * 1000, `a waiting client is held until the grace is over, not cut early: ${a.atMs} ms`);
    }
    assert.equal(code, 0, 'exit 0');
    assert.ok(exitMs < (GRACE_S + 6) * 1000, `exits within the grace plus a few seconds (${exitMs} ms)`);
  });
});
