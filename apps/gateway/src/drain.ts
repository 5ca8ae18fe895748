import type { Context, Next } from 'koa';

/**
 * The gateway's side of a graceful stop: counts requests in flight, tells
 * them to close their connections once draining began, and gives the waits
 * that would outlast the grace a signal to give up on (their clients then
 * get `503 UNAVAILABLE` with `Retry-After`, the `shutting_down` failure).
 */
export class RequestDrain {
  private inFlight = 0;
  private draining = false;
  private readonly giveUp = new AbortController();

  /** Aborts when the grace is over: requests still waiting answer `shutting_down`. */
  get signal(): AbortSignal {
    return this.giveUp.signal;
  }

  /** Requests being handled right now. */
  get active(): number {
    return this.inFlight;
  }

  /** Koa middleware (registered first): counts the request; while draining its answer closes the connection. */
  middleware() {
    return async (ctx: Context, next: Next): Promise<void> => {
      this.inFlight++;
      try {
        await next();
      } finally {
        this.inFlight--;
        // Koa writes the response after the middleware: the header still goes out with it.
        if (this.draining) ctx.set('Connection', 'close');
      }
    };
  }

  /** From now on every answer closes its connection. */
  start(): void {
    this.draining = true;
  }

  /** The grace is over: every request still waiting stops waiting. */
  abort(): void {
    this.giveUp.abort();
  }
}
