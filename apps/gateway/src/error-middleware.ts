import { RegistryError, type Logger } from '@nixery/shared';
import type { Context, Next } from 'koa';

/**
 * Registered first: turns thrown RegistryErrors into the spec's JSON body with
 * its status and Content-Type; anything else is logged and answered as a 500
 * that shows no internals.
 */
export function errorMiddleware(log: Logger) {
  return async (ctx: Context, next: Next): Promise<void> => {
    try {
      await next();
    } catch (err) {
      const e = err instanceof RegistryError ? err : new RegistryError('UNKNOWN');
      if (!(err instanceof RegistryError)) log.error({ err, path: ctx.path }, 'unhandled error');
      ctx.status = e.status;
      for (const [k, v] of Object.entries(e.headers)) ctx.set(k, v);
      ctx.set('Docker-Distribution-API-Version', 'registry/2.0');
      ctx.set('Content-Type', 'application/json');
      ctx.body = Buffer.from(JSON.stringify(e.toBody()));
    }
  };
}
