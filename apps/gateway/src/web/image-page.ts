import {
  type BuildStatusStore,
  type ImageSpec,
  type ManifestLookup,
  type SourceResolver,
  buildKey,
  parseImage,
  withTimeout,
} from '@nixery/shared';
import { formatAgo, formatBytes, imageRef, storePathName } from './format';
import { type SafeHtml, html } from './html';
import { layout } from './layout';

/** What the image page needs. */
export interface ImagePageDeps {
  resolver: SourceResolver;
  manifests: ManifestLookup;
  store: BuildStatusStore;
}

/** One layer as drawn: its bytes, its packages and which other images use it. */
export interface LayerView {
  digest: string;
  size: number;
  /** Package (store path) names; null when the worker did not record them. */
  packages: string[] | null;
  symlinks: boolean;
  /** Other images known to use this layer (count and a few names). */
  others: { count: number; images: string[] };
}

/** The image page's data, as a tagged union (every case renders; none is a 500). */
export type ImageView =
  | { kind: 'invalid'; name: string; message: string }
  | { kind: 'unavailable'; spec: ImageSpec; message: string }
  | { kind: 'not_built'; spec: ImageSpec; revision: string }
  | { kind: 'built'; spec: ImageSpec; digest: string; revision: string; builtAt: number | null; layers: LayerView[]; sbom: string | null };

/** Looks an image up the way a pull would (same source pin, same build key), without building it. */
export async function loadImageView(deps: ImagePageDeps, name: string, tag: string): Promise<ImageView> {
  const parsed = parseImage(name, tag);
  if (!parsed.ok) return { kind: 'invalid', name, message: parsed.error.reason };
  const spec = parsed.spec;
  let source;
  try {
    source = await withTimeout(deps.resolver.resolve(spec.tag), 5000, 'resolving the package source');
  } catch (err) {
    return { kind: 'unavailable', spec, message: err instanceof Error ? err.message : String(err) };
  }
  const manifest = await withTimeout(deps.manifests.byBuildKey(buildKey(spec, source)), 3000, 'reading the manifest cache');
  if (!manifest) return { kind: 'not_built', spec, revision: source.revision };

  const record = await withTimeout(deps.store.image(manifest.digest), 3000, 'reading image facts');
  let layers: { digest: string; size: number; paths: string[] | null }[];
  if (record) {
    layers = record.layers;
  } else {
    // Built before layer facts were recorded: the manifest still gives digests and sizes.
    const m = JSON.parse(manifest.body) as { layers?: { digest: string; size: number }[] };
    layers = (m.layers ?? []).map((l) => ({ digest: l.digest, size: l.size, paths: null }));
  }
  const users = await withTimeout(deps.store.layerUsers(layers.map((l) => l.digest), spec.name), 3000, 'reading layer users');
  return {
    kind: 'built',
    spec,
    digest: manifest.digest,
    revision: manifest.revision || source.revision,
    builtAt: record?.builtAt ?? null,
    sbom: record?.sbom ?? null,
    layers: layers.map((l, i) => {
      const others = users.get(l.digest) ?? { count: 0, images: [] };
      return {
        digest: l.digest,
        size: l.size,
        packages: l.paths ? l.paths.map(storePathName).sort() : null,
        symlinks: l.paths !== null && l.paths.length === 0 && i === layers.length - 1,
        others,
      };
    }),
  };
}

/** Links to the image's SPDX SBOM (the blob) and to its referrers (the OCI referrers API). */
function renderSbom(name: string, digest: string, sbom: string | null): SafeHtml {
  if (!sbom) return html`<p class="muted">No SBOM recorded for this image.</p>`;
  return html`<p>What is inside: <a class="sbom" href="/v2/${name}/blobs/${sbom}">SPDX SBOM</a> (from the Nix closure) ·
<a class="referrers" href="/v2/${name}/referrers/${digest}">referrers</a></p>`;
}

function renderLayers(layers: LayerView[]): SafeHtml {
  const total = layers.reduce((n, l) => n + l.size, 0) || 1;
  const max = Math.max(1, ...layers.map((l) => l.size));
  const pct = (n: number, of: number) => (Math.max(0.4, (100 * n) / of)).toFixed(2);
  const stack = html`<div class="stack" title="all layers, sized by compressed bytes">${layers.map(
    (l, i) => html`<div class="segment${l.others.count > 0 ? ' shared' : ''}" style="width:${pct(l.size, total)}%" title="layer ${i + 1}: ${formatBytes(l.size)}"></div>`,
  )}</div>`;
  const label = (l: LayerView): SafeHtml => {
    if (l.symlinks) return html`<span class="muted">symlinks of the top-level packages into /</span>`;
    if (l.packages === null) return html`<span class="muted">packages not recorded</span>`;
    const shown = l.packages.slice(0, 12);
    return html`${shown.join(', ')}${l.packages.length > shown.length ? html` <span class="muted">and ${l.packages.length - shown.length} more</span>` : ''}`;
  };
  const items = layers.map(
    (l, i) => html`<div class="layer" data-digest="${l.digest}" data-size="${l.size}">
<div class="bar-row"><span class="muted">${i + 1}</span><div class="track"><div class="layer-bar${l.others.count > 0 ? ' shared' : ''}" style="width:${pct(l.size, max)}%"></div></div><span class="size">${formatBytes(l.size)}</span></div>
<div class="pkgs">${label(l)}</div>
<div class="muted"><code>${l.digest.slice(0, 19)}…</code>${l.others.count > 0
      ? html` · <span class="shared-note">shared with ${l.others.count} other image${l.others.count === 1 ? '' : 's'}${l.others.images.length ? html`: ${l.others.images.slice(0, 5).join(', ')}` : ''}</span>`
      : ''}</div>
</div>`,
  );
  return html`${stack}<p class="legend muted"><span class="swatch"></span>only in this image<span class="swatch shared"></span>shared with other images</p>
<div class="layers">${items}</div>`;
}

/** The HTTP status for a view: 400 for a bad name, 404 when not built, 503 when the source cannot be pinned. */
export function imageViewStatus(v: ImageView): number {
  return v.kind === 'invalid' ? 400 : v.kind === 'not_built' ? 404 : v.kind === 'unavailable' ? 503 : 200;
}

/** Renders the image page for any view. */
export function renderImagePage(opts: { host: string; view: ImageView; nonce: string }): SafeHtml {
  const { host, view: v } = opts;
  if (v.kind === 'invalid') {
    return layout({
      title: 'Invalid image name',
      nonce: opts.nonce,
      body: html`<h1>Invalid image name</h1><p><code class="bad-name">${v.name}</code> is not an image name: ${v.message}.</p>
<p>Image names are package names separated by <code>/</code>, e.g. <a href="/image/shell/git/htop"><code>shell/git/htop</code></a>.</p>`,
    });
  }
  const ref = `${host}/${imageRef(v.spec.name, v.spec.tag)}`;
  const heading = html`<h1>Image <code class="image-name">${v.spec.name}</code>${v.spec.tag !== 'latest' ? html`<code>:${v.spec.tag}</code>` : ''}</h1>
<p class="muted">packages: ${v.spec.packages.join(', ')} · ${v.spec.system}</p>`;
  if (v.kind === 'unavailable') {
    return layout({ title: `${v.spec.name}`, nonce: opts.nonce, body: html`${heading}<p>The package source cannot be pinned right now: ${v.message}</p>` });
  }
  if (v.kind === 'not_built') {
    return layout({
      title: `${v.spec.name}`,
      nonce: opts.nonce,
      body: html`${heading}<p class="not-built">This image has not been built yet for revision <code>${v.revision}</code>.
Pulling it builds it; then this page shows its layers.</p>
<pre class="example">docker pull ${ref}</pre>`,
    });
  }
  const total = v.layers.reduce((n, l) => n + l.size, 0);
  return layout({
    title: `${v.spec.name}`,
    nonce: opts.nonce,
    body: html`${heading}
<p>Manifest digest <code class="manifest-digest">${v.digest}</code><br>
revision <code>${v.revision}</code>${v.builtAt ? html` · built ${formatAgo(v.builtAt)}` : ''} · ${v.layers.length} layers, ${formatBytes(total)} compressed</p>
<pre class="example">docker pull ${ref}
docker pull ${host}/${v.spec.name}@${v.digest}</pre>
${renderSbom(v.spec.name, v.digest, v.sbom)}
<h2>Layers</h2>
${renderLayers(v.layers)}`,
  });
}
