/**
 * The web pages in headless Chromium (Debian chromium + playwright-core)
 * against a real single-node Nixery building from a copy of the bundled
 * package set with a slow package (fresh derivation, 6 s) and a package whose
 * build fails printing markup:
 * - the front page works without JavaScript and fills the host into examples;
 * - a running build appears in "Building now" with its stage, then in "Recent
 *   builds", by live updates without a reload;
 * - failed builds show their error (unknown package, Nix's text) escaped;
 * - the image page draws one bar per layer, labelled with packages, marks shared layers;
 * - hostile text in image names, Host headers and Nix errors does not inject markup or script.
 * Screenshots go to test-artifacts/.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, type BrowserContext, type Page, chromium } from 'playwright-core';
import { MANIFEST_ACCEPT, type NixeryInstance, REPO, startNixery } from '../helpers/nixery';
import { type PackageSetCopy, busyboxPackage, copyPackageSet } from '../helpers/pkgset';
import { waitFor } from '../helpers/proc';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const HOSTILE_IMG = '<img src=x onerror=alert(1)>';
const HOSTILE_SCRIPT = '</pre><script>alert(2)</script>';
const EVIL_ATTRS = busyboxPackage('evil', 'evil-1.0', `echo '${HOSTILE_IMG}' >&2; echo '${HOSTILE_SCRIPT}' >&2; exit 1`);

const shot = (page: Page, name: string) =>
  page.screenshot({ path: path.join(REPO, 'test-artifacts', `web-${name}.png`), fullPage: true });

describe('web pages in headless Chromium', () => {
  let pkgs: PackageSetCopy;
  let nx: NixeryInstance;
  let browser: Browser;
  let ctx: BrowserContext;
  const dialogs: string[] = [];

  const pull = (name: string) => fetch(`${nx.url}/v2/${name}/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } });
  const newPage = async (c: BrowserContext = ctx) => {
    const page = await c.newPage();
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    return page;
  };

  before(async () => {
    pkgs = await copyPackageSet({ slowSeconds: 6, extraAttrs: EVIL_ATTRS });
    // The popularity count at start-up would build every package of the set, the slow one too, and a
    // running build the page should show would then take no time: count without building.
    nx = await startNixery({ ...pkgs.env, NIXERY_POPCOUNT_REALISE: 'false' });
    // playwright-core starts Chromium with a fresh temporary --user-data-dir of its own.
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
    ctx = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  });

  after(async () => {
    await browser?.close();
    await nx?.stop();
    await pkgs?.remove();
  });

  it('the front page works without JavaScript and fills in the host it was reached by', async () => {
    const noJs = await browser.newContext({ javaScriptEnabled: false });
    try {
      const page = await newPage(noJs);
      const res = await page.goto(`${nx.url}/`);
      assert.equal(res?.status(), 200);
      assert.equal(await page.locator('h1 .host').textContent(), nx.host);
      const example = await page.locator('pre.example').first().textContent();
      assert.match(example ?? '', new RegExp(`docker pull ${nx.host.replace(/\./g, '\\.')}/shell/git/htop`));
      const body = (await page.locator('main').textContent()) ?? '';
      assert.match(body, new RegExp(`${nx.host.replace(/\./g, '\\.')}/arm64/shell/htop`));
      assert.match(body, /meta-package/);
      // The source is described, never by its filesystem path (issue 12).
      assert.match(body, /local package set/);
      assert.ok(!body.includes(pkgs.dir), 'the page shows the package set path');
      assert.match((await page.locator('.revision').textContent()) ?? '', /^[0-9a-f]{16}$/);
      assert.equal(await page.locator('#progress').textContent(), 'Nothing is building right now.');
      await shot(page, 'front-nojs');
    } finally {
      await noJs.close();
    }
  });

  it('a running build shows in progress with its stage, then in recent builds, without a reload', async () => {
    const page = await newPage();
    await page.goto(`${nx.url}/`);
    await page.evaluate('window.marker = 42');
    const t0 = Date.now();
    const building = pull('slow/hello');
    const row = page.locator('#progress tr.build', { hasText: 'slow/hello' });
    await row.waitFor({ timeout: 20_000 });
    const stage = (await row.locator('.stage').textContent()) ?? '';
    assert.match(stage, /waiting for a worker|evaluating packages|building store paths|grouping|packing layer \d+ of \d+|writing/);
    // Elapsed time ticks on the page.
    const elapsed = row.locator('.elapsed');
    const ticked = await waitFor(async () => {
      const t = (await elapsed.textContent({ timeout: 1000 })) ?? '';
      return /^\d+(\.\d)? s$/.test(t) && parseFloat(t) >= 1;
    }, { timeoutMs: 10_000, intervalMs: 200 });
    assert.ok(ticked, 'elapsed time never reached 1 s');
    await shot(page, 'front-building');
    const res = await building;
    assert.equal(res.status, 200, await res.clone().text());
    const buildMs = Date.now() - t0;
    assert.ok(buildMs >= 5000, `the slow build took only ${buildMs} ms: not a fresh build`);
    const recent = page.locator('#recent tr.recent-build', { hasText: 'slow/hello' });
    await recent.waitFor({ timeout: 15_000 });
    await page.locator('#progress tr.build', { hasText: 'slow/hello' }).waitFor({ state: 'detached', timeout: 15_000 });
    const cells = await recent.locator('td').allTextContents();
    assert.match(cells[2] ?? '', /^\d+(\.\d)? s$/, 'duration');
    assert.ok(parseFloat(cells[2] ?? '0') >= 5, `recorded duration ${cells[2]}`);
    assert.match(cells[3] ?? '', /^\d+ \(\d+\)$/, 'layers');
    assert.match(cells[4] ?? '', /(KiB|MiB)$/, 'size');
    assert.equal(await page.evaluate('window.marker'), 42, 'the page was reloaded');
    await shot(page, 'front-built');
  });

  it('failed builds show their error, escaped: an unknown package and Nix text with markup', async () => {
    const page = await newPage();
    await page.goto(`${nx.url}/`);
    assert.equal((await pull('no-such-package-web')).status, 404);
    const evil = await pull('evil');
    assert.equal(evil.status, 503, 'a package whose build fails is the server failing, not an unknown name');
    assert.match(await evil.text(), /onerror/);
    // Live update brings both failures in (inserted through the JSON endpoint's pre-escaped sections).
    const unknown = page.locator('#failures .failure', { hasText: 'unknown packages: no-such-package-web' });
    await unknown.waitFor({ timeout: 15_000 });
    const nixError = page.locator('#failures .failure', { hasText: 'Nix failed' }).first();
    await nixError.waitFor({ timeout: 15_000 });
    const check = async () => {
      const text = (await page.locator('#failures pre.nix-error').first().textContent()) ?? '';
      assert.ok(text.includes(HOSTILE_IMG), `error text shown: ${text.slice(-300)}`);
      assert.ok(text.includes(HOSTILE_SCRIPT));
      assert.equal(await page.locator('#failures img').count(), 0);
      assert.equal(await page.locator('#failures script').count(), 0);
      assert.equal(await page.locator('img[src="x"]').count(), 0);
    };
    await check();
    await shot(page, 'front-failures');
    // The same after a server-side render.
    await page.reload();
    await check();
    await page.waitForTimeout(1500);
    assert.deepEqual(dialogs, []);
  });

  it('the image page draws one bar per layer, labelled with its packages, and marks shared layers', async () => {
    assert.equal((await pull('hello')).status, 200); // shares glibc with slow/hello
    const res = await pull('slow/hello');
    const digest = res.headers.get('docker-content-digest');
    const manifest = (await res.json()) as { layers: { digest: string; size: number }[] };
    const page = await newPage();
    const nav = await page.goto(`${nx.url}/image/slow/hello`);
    assert.equal(nav?.status(), 200);
    const bars = page.locator('.layers .layer .layer-bar');
    assert.equal(await bars.count(), manifest.layers.length);
    const layerDigests = await page.locator('.layers .layer').evaluateAll((els) => els.map((e) => e.getAttribute('data-digest')));
    assert.deepEqual(layerDigests, manifest.layers.map((l) => l.digest));
    // Bars are sized by bytes: the biggest layer has the widest bar.
    const widths = await bars.evaluateAll((els) => els.map((e) => e.getBoundingClientRect().width));
    const biggest = manifest.layers.reduce((b, l, i) => (l.size > manifest.layers[b]!.size ? i : b), 0);
    assert.equal(Math.max(...widths), widths[biggest]);
    const labels = (await page.locator('.layers .layer .pkgs').allTextContents()).join('\n');
    assert.match(labels, /slow-1\.0/);
    assert.match(labels, /hello-/);
    assert.match(labels, /glibc-/);
    assert.ok((await page.locator('.layers .layer-bar.shared').count()) >= 1, 'no layer marked as shared');
    assert.match((await page.locator('.shared-note').first().textContent()) ?? '', /shared with \d+ other image/);
    assert.equal(await page.locator('.manifest-digest').textContent(), digest);
    assert.match((await page.locator('pre.example').textContent()) ?? '', new RegExp(`docker pull ${nx.host.replace(/\./g, '\\.')}/slow/hello@${digest}`));
    await shot(page, 'image');
  });

  it('the image page of an image not built yet says so (no 500)', async () => {
    const page = await newPage();
    const nav = await page.goto(`${nx.url}/image/curl/jq`);
    assert.equal(nav?.status(), 404);
    assert.match((await page.locator('.not-built').textContent()) ?? '', /not been built yet/);
    assert.match((await page.locator('pre.example').textContent()) ?? '', new RegExp(`docker pull ${nx.host.replace(/\./g, '\\.')}/curl/jq`));
  });

  it('hostile image names and Host headers do not inject markup or script', async () => {
    const page = await newPage();
    const nav = await page.goto(`${nx.url}/image/${encodeURIComponent(HOSTILE_IMG)}/${encodeURIComponent('"><script>alert(4)</script>')}`);
    assert.equal(nav?.status(), 400);
    assert.equal(await page.locator('.bad-name').textContent(), `${HOSTILE_IMG}/"><script>alert(4)</script>`);
    assert.equal(await page.locator('main img').count(), 0);
    assert.equal(await page.locator('main script').count(), 0);
    // The most a valid name can carry (the spec's grammar): lowercase letters, digits and . _ __ -
    const odd = await page.goto(`${nx.url}/image/x--y/a_b.c__d?tag=${encodeURIComponent('v1.0_rc-1')}`);
    assert.equal(odd?.status(), 404);
    assert.equal(await page.locator('.image-name').textContent(), 'x--y/a_b.c__d');
    const plus = await page.goto(`${nx.url}/image/x+y/a_b.c-d`);
    assert.equal(plus?.status(), 400, 'a + is outside the name grammar');
    assert.equal(await page.locator('.bad-name').textContent(), 'x+y/a_b.c-d');
    const badTag = await page.goto(`${nx.url}/image/hello?tag=${encodeURIComponent('<b>x</b>')}`);
    assert.equal(badTag?.status(), 400);
    assert.equal(await page.locator('main b').count(), 0);

    const hostile = await browser.newContext({ extraHTTPHeaders: { 'X-Forwarded-Host': `"><img src=x onerror=alert(3)>` } });
    try {
      const p = await newPage(hostile);
      await p.goto(`${nx.url}/`);
      assert.equal(await p.locator('img').count(), 0);
      const h = (await p.locator('h1 .host').textContent()) ?? '';
      assert.ok(!h.includes('<'), `host shown as ${h}`);
      await p.waitForTimeout(1500); // a live update too
      assert.equal(await p.locator('img').count(), 0);
    } finally {
      await hostile.close();
    }
    assert.deepEqual(dialogs, []);
  });
});
