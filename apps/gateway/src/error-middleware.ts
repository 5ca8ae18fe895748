import { RegistryError, type Logger, describeFailure, failureOf, logThrottle, redisRefusal } from '@nixery/shared';
import type { Context, Next } from 'koa';
import { registryErrorFor } from './failures';
import { requestLogger } from './request-log';

/**
 * Registered first: turns thrown RegistryErrors, and domain failures through
 * the failure table (also Redis refusing writes: `redisRefusal`), into the spec's JSON body with its status and
 * Content-Type; anything else is logged and answered as a 500 that shows no
 * internals. A failure of the machine (a 503: storage, Redis, Nix, ...) is a
 * warning naming its cause; both go through a throttle, so a cause that fails
 * every request is one line per `repeatMs` (default 60 s) with a count.
 * `redact` removes the server's own paths from the body (redact.ts).
 */
export function errorMiddleware(log: Logger, repeatMs?: number, redact: (text: string) => string = (t) => t) {
  const lines = logThrottle(log, repeatMs);
  return async (ctx: Context, next: Next): Promise<void> => {
    try {
      await next();
    } catch (err) {
      const failure = failureOf(err) ?? redisRefusal(err);
      const e = err instanceof RegistryError ? err : failure ? registryErrorFor(failure) : new RegistryError('UNKNOWN');
      const reqLog = requestLogger(ctx) ?? log;
      if (!(err instanceof RegistryError) && !failure) lines.log('error', `unhandled ${String(err)}`, { err, path: ctx.path }, 'unhandled error', reqLog);
      else if (failure && e.status >= 500 && failure.kind !== 'client_gone') {
        const cause = describeFailure(failure);
        lines.log('warn', `${failure.kind} ${cause}`, { failure: failure.kind, cause, status: e.status }, 'request failed', reqLog);
      }
      ctx.status = e.status;
      for (const [k, v] of Object.entries(e.headers)) ctx.set(k, v);
      ctx.set('Docker-Distribution-API-Version', 'registry/2.0');
      ctx.set('Content-Type', 'application/json');
      // No server path in a client's answer (issue 12; Nix errors name the package set's files).
      ctx.body = Buffer.from(redact(JSON.stringify(e.toBody())));
    }
  };
}

/**
 * Koa's 'error' event: errors after the response has started (a body stream
 * that breaks), which the middleware above cannot answer. A client that went
 * away before its response finished (its socket is closed: a pull cancelled
 * mid-blob or mid-manifest) is normal, one debug line; anything else is an
 * error.
 */
export function appErrorHandler(log: Logger) {
  return (err: Error, ctx?: Context): void => {
    const reqLog = (ctx && requestLogger(ctx)) ?? log;
    if (ctx && !ctx.res.writableFinished && (ctx.req.socket?.destroyed ?? true)) {
      // Koa reports one abort twice (the response's close, then the body's pipeline): one line.
      if (!ctx.state.clientGone) reqLog.debug({ status: ctx.status, code: (err as NodeJS.ErrnoException).code }, 'client went away');
      ctx.state.clientGone = true;
      return;
    }
    reqLog.error({ err }, 'error while sending a response');
  };
}
