import { timingSafeEqual, createHash } from 'node:crypto';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { KoaAdapter } from '@bull-board/koa';
import type { Queue } from 'bullmq';
import type { Context, Middleware, Next } from 'koa';

/** Where the queue dashboard lives. */
const ADMIN_QUEUES_PATH = '/admin/queues';

/** Settings of the admin dashboard. */
export interface AdminOptions {
  user: string;
  password: string;
  queues: readonly Queue[];
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Whether `header` is HTTP basic auth for user:password (compared in constant time). */
export function basicAuthMatches(header: string | undefined, user: string, password: string): boolean {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!m?.[1]) return false;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i < 0) return false;
  const okUser = timingSafeEqual(digest(decoded.slice(0, i)), digest(user));
  const okPass = timingSafeEqual(digest(decoded.slice(i + 1)), digest(password));
  return okUser && okPass;
}

/**
 * The BullMQ dashboard (@bull-board/koa) behind HTTP basic auth, as one Koa
 * middleware that handles only paths under ADMIN_QUEUES_PATH. The caller mounts it
 * only when an admin password is configured, so without one the path is a 404.
 */
export function adminDashboard(opts: AdminOptions): Middleware {
  const base = ADMIN_QUEUES_PATH;
  const serverAdapter = new KoaAdapter();
  serverAdapter.setBasePath(base);
  createBullBoard({
    // bull-board types its adapter against its own copy of bullmq's Queue type.
    queues: opts.queues.map((q) => new BullMQAdapter(q as never)),
    // @bull-board/koa pins its own @bull-board/api patch version; the adapter contract is the same.
    serverAdapter: serverAdapter as never,
    options: { uiConfig: { boardTitle: 'Nixery queues' } },
  });
  const board = serverAdapter.registerPlugin() as unknown as Middleware;
  return async (ctx: Context, next: Next) => {
    if (ctx.path !== base && !ctx.path.startsWith(`${base}/`)) return next();
    ctx.state.route = 'admin';
    if (!basicAuthMatches(ctx.get('Authorization') || undefined, opts.user, opts.password)) {
      ctx.status = 401;
      ctx.set('WWW-Authenticate', 'Basic realm="Nixery admin", charset="UTF-8"');
      ctx.type = 'text/plain';
      ctx.body = 'authentication required\n';
      return;
    }
    return board(ctx, next);
  };
}
