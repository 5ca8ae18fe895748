import { RegistryError, type Logger, failureOf } from '@nixery/shared';
import type { Context, Next } from 'koa';
import { registryErrorFor } from './failures';

/**
 * Registered first: turns thrown RegistryErrors, and domain failures through
 * the failure table, into the spec's JSON body with its status and
 * Content-Type; anything else is logged and answered as a 500 that shows no
 * internals.
 */
export function errorMiddleware(log: Logger) {
  return async (ctx: Context, next: Next): Promise<void> => {
    try {
      await next();
    } catch (err) {
      const failure = failureOf(err);
      const e = err instanceof RegistryError ? err : failure ? registryErrorFor(failure) : new RegistryError('UNKNOWN');
      if (!(err instanceof RegistryError) && !failure) log.error({ err, path: ctx.path }, 'unhandled error');
      ctx.status = e.status;
      for (const [k, v] of Object.entries(e.headers)) ctx.set(k, v);
      ctx.set('Docker-Distribution-API-Version', 'registry/2.0');
      ctx.set('Content-Type', 'application/json');
      ctx.body = Buffer.from(JSON.stringify(e.toBody()));
    }
  };
}
