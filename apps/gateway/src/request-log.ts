import { randomUUID } from 'node:crypto';
import type { ImageSpec, Logger, Metrics } from '@nixery/shared';
import type { Context, Next } from 'koa';

/**
 * What a manifest handler tells the request logger about the pull it
 * answered (`ctx.state.pull`): the image, the build key (= the job id of its
 * build) and whether it waited for a build (cold) or came from the cache (warm).
 */
export interface PullRecord {
  image: string;
  tag: string;
  buildKey: string;
  cold: boolean;
  digest?: string;
  revision?: string;
}

/** Hex digits of the build key a warm pull's line keeps: enough to find the build's lines. */
const WARM_KEY_CHARS = 16;

/**
 * The gateway's request middleware (issue 15: logs that cost little):
 * counts every request in the HTTP metrics and writes at most one info line
 * per request.
 *
 * - A cold manifest pull (it waited for a build): always, `manifest` with
 *   the request logger's fields (reqId, method, path, image, tag, buildKey,
 *   jobId) plus digest, revision, status and ms.
 * - A warm manifest pull: one in `warmEvery` (0 = none), a short `manifest`
 *   line of at most ~200 bytes: image, tag, `build` (the first 16 hex digits
 *   of the build key, which the build's own lines carry in full) and ms.
 * - Every request at debug level: `request` with status and ms.
 *
 * The request's own logger (reqId, method, path, and what later handlers
 * add) is made on first use, by {@link requestLogger}: a warm pull never
 * logs through it, and making a pino child per request cost a tenth of
 * the warm path. (A property getter on `ctx.state` was measured to halve
 * warm req/s: V8 de-optimises the object; a plain function does not.)
 */
export function requestLog(log: Logger, metrics: Metrics, warmEvery: number) {
  let warm = 0;
  const debug = () => log.isLevelEnabled('debug');
  return async (ctx: Context, next: Next): Promise<void> => {
    const start = process.hrtime.bigint();
    ctx.state.logRoot = log;
    try {
      await next();
    } finally {
      const route = (ctx.state.route as string | undefined) ?? (ctx.status === 404 ? 'other' : ctx.path.split('/')[1] || 'root');
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      metrics.http.record(ctx.method, route, ctx.status, seconds);
      const ms = Math.round(seconds * 1000);
      const pull = ctx.state.pull as PullRecord | undefined;
      if (pull?.cold) {
        requestLogger(ctx)?.info({ digest: pull.digest, revision: pull.revision, status: ctx.status, ms }, 'manifest');
      } else if (pull && warmEvery > 0 && ++warm % warmEvery === 0) {
        let line = warmLines.get(pull);
        if (!line) warmLines.set(pull, (line = log.child({ image: pull.image, tag: pull.tag, build: pull.buildKey.slice(0, WARM_KEY_CHARS) })));
        line.info({ ms }, 'manifest');
      }
      if (debug()) requestLogger(ctx)?.debug({ status: ctx.status, ms }, 'request');
    }
  };
}

/**
 * The record of a warm pull of `image` built under `buildKey`: one object
 * per image and key, never changed, so its log line's fields are serialised
 * once (a child logger per record) instead of on every pull.
 */
export function warmPull(image: ImageSpec, buildKey: string): PullRecord {
  const kept = warmRecords.get(image);
  if (kept?.buildKey === buildKey) return kept;
  const record: PullRecord = Object.freeze({ image: image.name, tag: image.tag, buildKey, cold: false });
  warmRecords.set(image, record);
  return record;
}

/** Specs are immutable and handed out once per name (parseImage), so they key the records; records key their lines. */
const warmRecords = new WeakMap<ImageSpec, PullRecord>();
const warmLines = new WeakMap<PullRecord, Logger>();

/**
 * The request's logger: a child of the root logger with reqId, method and
 * path, plus the fields given to {@link addLogFields}; made on first use and
 * kept. Undefined outside {@link requestLog} (in-process tests without it).
 */
export function requestLogger(ctx: Context): Logger | undefined {
  const made = ctx.state.log as Logger | undefined;
  if (made) return made;
  const root = ctx.state.logRoot as Logger | undefined;
  if (!root) return undefined;
  const fields = ctx.state.logFields as Record<string, unknown> | undefined;
  const child = root.child({ reqId: randomUUID().slice(0, 8), method: ctx.method, path: ctx.path.slice(0, 300), ...fields });
  ctx.state.log = child;
  return child;
}

/** Adds fields to the request's later lines (the user; the image and build key of a cold pull), without making its logger. */
export function addLogFields(ctx: Context, fields: Record<string, unknown>): void {
  const made = ctx.state.log as Logger | undefined;
  if (made) ctx.state.log = made.child(fields);
  else ctx.state.logFields = { ...(ctx.state.logFields as Record<string, unknown> | undefined), ...fields };
}
