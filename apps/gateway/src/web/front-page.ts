import { type Failure, type FailureRecord, type InProgressBuild, describeFailure } from '@nixery/shared';
import { describeStage, formatAgo, formatBytes, formatDuration, imageRef } from './format';
import { type SafeHtml, html, raw } from './html';
import { layout } from './layout';
import type { StatusSnapshot } from './status';

/** Link to an image's page (name and tag are validated image text, escaped like everything else). */
export function imageHref(image: string, tag: string): string {
  const path = image.split('/').map(encodeURIComponent).join('/');
  return tag === 'latest' ? `/image/${path}` : `/image/${path}?tag=${encodeURIComponent(tag)}`;
}


/** Builds running or waiting. */
export function renderProgress(s: StatusSnapshot): SafeHtml {
  if (s.inProgress === null) return html`<p class="muted">The build queues cannot be read right now.</p>`;
  if (s.inProgress.length === 0) return html`<p class="muted">Nothing is building right now.</p>`;
  const row = (b: InProgressBuild) => html`<tr class="build" data-build-key="${b.buildKey}">
<td><code>${imageRef(b.image, b.tag)}</code></td>
<td>${b.system}</td>
<td class="stage">${describeStage(b.stage, b.packed, b.total)}${b.attempt > 1 ? html` <span class="pill">attempt ${b.attempt}</span>` : ''}${b.state === 'delayed' ? html` <span class="pill">retrying soon</span>` : ''}</td>
<td class="num"><span class="elapsed" data-since="${b.since}">${formatDuration(s.now - b.since)}</span></td>
</tr>`;
  return html`<table><thead><tr><th>image</th><th>system</th><th>stage</th><th class="num">elapsed</th></tr></thead>
<tbody>${s.inProgress.map(row)}</tbody></table>`;
}

/** Finished builds, newest first. */
export function renderRecent(s: StatusSnapshot): SafeHtml {
  if (s.recent === null) return html`<p class="muted">Recent builds cannot be read right now.</p>`;
  if (s.recent.length === 0) return html`<p class="muted">No image has been built yet.</p>`;
  return html`<table><thead><tr><th>image</th><th>finished</th><th class="num">duration</th><th class="num">layers (new)</th><th class="num">size</th></tr></thead>
<tbody>${s.recent.map(
    (b) => html`<tr class="recent-build">
<td><a href="${imageHref(b.image, b.tag)}"><code>${imageRef(b.image, b.tag)}</code></a>${b.system !== 'x86_64-linux' ? html` <span class="pill">${b.system}</span>` : ''}</td>
<td>${formatAgo(b.finishedAt, s.now)}</td>
<td class="num">${formatDuration(b.durationMs)}</td>
<td class="num">${b.layers} (${b.packedLayers})</td>
<td class="num">${formatBytes(b.size)}</td>
</tr>`,
  )}</tbody></table>`;
}

function failureText(f: Failure): { what: string; detail?: string } {
  switch (f.kind) {
    case 'nix_failed':
      return { what: 'Nix failed', detail: f.message };
    case 'nix_unavailable':
      return { what: 'Nix cannot build on the worker', detail: `${f.cause}\n${f.hint}` };
    case 'internal':
      return { what: 'internal error', detail: f.message };
    default:
      return { what: describeFailure(f) };
  }
}

/** Failed builds with their Nix error text (escaped; trimmed by the worker). */
export function renderFailures(s: StatusSnapshot): SafeHtml {
  if (s.failures === null) return html`<p class="muted">Recent failures cannot be read right now.</p>`;
  if (s.failures.length === 0) return html`<p class="muted">No build has failed recently.</p>`;
  const item = (f: FailureRecord) => {
    const t = failureText(f.failure);
    return html`<div class="failure">
<div><code>${imageRef(f.image, f.tag)}</code> <span class="what">${t.what}</span>
<span class="muted">· ${formatAgo(f.finishedAt, s.now)} · attempt ${f.attempt}${f.willRetry ? ', will retry' : ''}</span></div>
${t.detail ? html`<pre class="nix-error">${t.detail}</pre>` : ''}
</div>`;
  };
  return html`${s.failures.map(item)}`;
}

/** The three live sections, as served to the page's script by /api/status. */
export function renderLiveSections(s: StatusSnapshot): { progress: string; recent: string; failures: string } {
  return { progress: renderProgress(s).value, recent: renderRecent(s).value, failures: renderFailures(s).value };
}

/**
 * Polls /api/status and swaps in the server-rendered sections (already
 * escaped there); ticks the elapsed times between polls. Fixed text.
 */
const LIVE_SCRIPT = raw(`(function () {
  var ids = ['progress', 'recent', 'failures'];
  var offset = 0;
  function fmt(ms) {
    if (ms < 1000) return Math.round(ms) + ' ms';
    var s = ms / 1000;
    if (s < 60) return s.toFixed(1) + ' s';
    var m = Math.floor(s / 60), r = Math.floor(s % 60);
    return m + ' min ' + (r < 10 ? '0' : '') + r + ' s';
  }
  function tickElapsed() {
    var els = document.querySelectorAll('.elapsed[data-since]');
    for (var i = 0; i < els.length; i++) {
      var since = Number(els[i].getAttribute('data-since'));
      if (since) els[i].textContent = fmt(Math.max(0, Date.now() + offset - since));
    }
  }
  function poll() {
    fetch('/api/status', { headers: { Accept: 'application/json' }, cache: 'no-store' })
      .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); })
      .then(function (s) {
        offset = s.now - Date.now();
        for (var i = 0; i < ids.length; i++) {
          var el = document.getElementById(ids[i]);
          if (el && s.html && typeof s.html[ids[i]] === 'string') el.innerHTML = s.html[ids[i]];
        }
        document.documentElement.setAttribute('data-live', String(s.now));
        setTimeout(poll, s.inProgress && s.inProgress.length ? 1000 : 2500);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setInterval(tickElapsed, 1000);
  setTimeout(poll, 1000);
})();`);

/** The front page: what this is, how to pull from `host`, the package source, and the live sections. */
export function renderFrontPage(opts: { host: string; snapshot: StatusSnapshot; gitTags: boolean; nonce: string }): SafeHtml {
  const { host, snapshot: s } = opts;
  const src = s.source;
  const body = html`<h1>Nixery at <code class="host">${host}</code></h1>
<p>A container registry that builds images on demand with Nix. Every path component of an image name is a package;
the image holds those packages and their runtime dependencies, grouped into layers shared between images.</p>

<h2>How to pull</h2>
<pre class="example">docker pull ${host}/shell/git/htop
docker run --rm -ti ${host}/shell/git/htop bash</pre>
<ul>
<li><code>${host}/git/htop</code>: each path component is a top-level package (<code>cacert</code> and <code>iana-etc</code> are always added; order and duplicates do not matter).</li>
<li><code>${host}/shell/jq</code>: <code>shell</code> is a meta-package adding bash, coreutils, moreutils and nano.</li>
<li><code>${host}/arm64/shell/htop</code>: a leading <code>arm64</code> builds for aarch64-linux.</li>
<li><code>${host}/shell/htop:${opts.gitTags ? 'main' : 'latest'}</code>: ${opts.gitTags ? 'the tag is a branch, tag or commit of the package repository' : 'the tag is always latest for this package source'}.</li>
<li><code>skopeo copy --src-tls-verify=false docker://${host}/curl/jq:latest oci:/tmp/img:latest</code></li>
<li>See an image's layers: <a href="/image/shell/git/htop"><code>/image/shell/git/htop</code></a>.</li>
</ul>

<h2>Package source</h2>
<p><span class="source">${src.description}</span>, pinned to revision
${src.revision ? html`<code class="revision">${src.revision}</code>` : html`<span class="muted">unknown (${src.error ?? 'not resolved'})</span>`}.</p>

<h2>Building now</h2>
<div id="progress">${renderProgress(s)}</div>

<h2>Recent builds</h2>
<div id="recent">${renderRecent(s)}</div>

<h2>Recent failures</h2>
<div id="failures">${renderFailures(s)}</div>`;
  return layout({ title: `Nixery at ${host}`, body, nonce: opts.nonce, script: LIVE_SCRIPT });
}
