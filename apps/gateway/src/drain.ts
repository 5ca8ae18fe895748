import type { ServerResponse } from 'node:http';
import type { Context, Next } from 'koa';

/**
 * The gateway's side of a graceful stop: counts requests in flight, tells
 * them to close their connections once draining began, and gives the waits
 * that would outlast the grace a signal to give up on (their clients then
 * get `503 UNAVAILABLE` with `Retry-After`, the `shutting_down` failure).
 */
export class RequestDrain {
  private readonly inFlight = new Set<ServerResponse>();
  private draining = false;
  private readonly giveUp = new AbortController();

  /** Aborts when the grace is over: requests still waiting answer `shutting_down`. */
  get signal(): AbortSignal {
    return this.giveUp.signal;
  }

  /** Requests being handled right now. */
  get active(): number {
    return this.inFlight.size;
  }

  /**
   * Koa middleware (registered first): counts the request; while draining
   * its answer closes the connection. The header is put on the Node
   * response, not Koa's, so it goes out with answers written by their
   * handlers too (manifests, blobs).
   */
  middleware() {
    return async (ctx: Context, next: Next): Promise<void> => {
      const res = ctx.res;
      this.inFlight.add(res);
      if (this.draining) res.setHeader('Connection', 'close');
      try {
        await next();
      } finally {
        this.inFlight.delete(res);
      }
    };
  }

  /** From now on every answer closes its connection, those of requests in flight too. */
  start(): void {
    this.draining = true;
    for (const res of this.inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
  }

  /** The grace is over: every request still waiting stops waiting. */
  abort(): void {
    this.giveUp.abort();
  }
}
