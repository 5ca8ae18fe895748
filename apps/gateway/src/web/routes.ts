import { randomBytes } from 'node:crypto';
import type Router from '@koa/router';
import type { BuildStatusStore, Logger, ManifestLookup, QueueReader, SourceResolver } from '@nixery/shared';
import type { Context } from 'koa';
import { pageHost } from './format';
import { renderFrontPage, renderLiveSections } from './front-page';
import { html } from './html';
import { imageViewStatus, loadImageView, renderImagePage } from './image-page';
import { contentSecurityPolicy, layout } from './layout';
import { readStatus } from './status';
import { redactJson } from '../redact';

/** What the web pages read. */
export interface WebDeps {
  /** host[:port] used in examples when the request's Host header is missing or not a host name. */
  fallbackHost: string;
  /** host[:port] of NIXERY_PUBLIC_URL: when set, the pages' pull commands always use it (issue 12). */
  publicHost?: string;
  resolver: SourceResolver;
  manifests: ManifestLookup;
  queues: QueueReader;
  store: BuildStatusStore;
  log: Logger;
  /** Removes the server's own paths from what the pages and /api/status show (redact.ts; issue 12). */
  redact?: (text: string) => string;
}

function startPage(ctx: Context, route: string): string {
  ctx.state.route = route;
  const nonce = randomBytes(16).toString('base64');
  ctx.set('Content-Security-Policy', contentSecurityPolicy(nonce));
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('Referrer-Policy', 'same-origin');
  ctx.set('Cache-Control', 'no-store');
  ctx.type = 'text/html; charset=utf-8';
  return nonce;
}

/**
 * Registers the web pages: `/` (start page with live build status),
 * `/api/status` (the same as JSON, with the live sections pre-rendered and
 * escaped), `/image/<name>[?tag=]` (an image's layers).
 */
export function registerWebRoutes(router: Router, deps: WebDeps): void {
  // The request's Host, or a trusted proxy's X-Forwarded-Host (ctx.state.client, client-address.ts); NIXERY_PUBLIC_URL wins.
  const host = (ctx: Context) => deps.publicHost ?? pageHost((ctx.state.client as { host?: string } | undefined)?.host ?? ctx.host, deps.fallbackHost);

  router.get('/', async (ctx) => {
    const nonce = startPage(ctx, 'web');
    const snapshot = redactJson(await readStatus(deps), deps.redact ?? ((t) => t));
    ctx.body = renderFrontPage({ host: host(ctx), snapshot, gitTags: deps.resolver.tagsAreGitRefs, nonce }).value;
  });

  router.get('/api/status', async (ctx) => {
    ctx.state.route = 'api_status';
    ctx.set('Cache-Control', 'no-store');
    const snapshot = redactJson(await readStatus(deps), deps.redact ?? ((t) => t));
    ctx.body = { ...snapshot, html: renderLiveSections(snapshot) };
  });

  const imagePage = async (ctx: Context) => {
    const nonce = startPage(ctx, 'web_image');
    const name = String((ctx.params as Record<string, unknown>).name ?? '');
    const tagParam = ctx.query.tag;
    const tag = typeof tagParam === 'string' && tagParam !== '' ? tagParam : 'latest';
    try {
      const view = await loadImageView(deps, name, tag);
      ctx.status = imageViewStatus(view);
      ctx.body = renderImagePage({ host: host(ctx), view, nonce }).value;
    } catch (err) {
      deps.log.warn({ err: err instanceof Error ? err.message : String(err), image: name.slice(0, 300) }, 'image page unavailable');
      ctx.status = 503;
      ctx.body = layout({
        title: 'Unavailable',
        nonce,
        body: html`<h1>Unavailable</h1><p>The image's records cannot be read right now; try again shortly.</p>`,
      }).value;
    }
  };
  router.get('/image/{*name}', imagePage);
  router.get('/image', imagePage);
}
