import type { Runtime } from '@nixery/shared';

/** The popularity scheduler (filled in by the popularity issue). */
export interface PopcountScheduler {
  close(): Promise<void>;
}

/** Starts the popularity scheduler. */
export async function startPopcountScheduler(_rt: Runtime): Promise<PopcountScheduler> {
  return { close: async () => undefined };
}
