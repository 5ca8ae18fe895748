import {
  type BuildRecord,
  type BuildStatusStore,
  type FailureRecord,
  type InProgressBuild,
  type QueueReader,
  type SourceResolver,
  listInProgress,
  withTimeout,
} from '@nixery/shared';

/** Everything the front page shows that changes over time. Plain JSON (served at /api/status). */
export interface StatusSnapshot {
  /** Server time (epoch ms) the snapshot was taken, for elapsed-time display. */
  now: number;
  source: { description: string; revision: string | null; error?: string };
  /** null when the queues could not be read (Redis away). */
  inProgress: InProgressBuild[] | null;
  recent: BuildRecord[] | null;
  failures: FailureRecord[] | null;
}

/** Where the snapshot comes from. */
export interface StatusDeps {
  resolver: SourceResolver;
  queues: QueueReader;
  store: BuildStatusStore;
}

const TIMEOUT_MS = 2000;

/** Reads the source revision, builds in progress and the recent lists, each bounded in time; a part that fails is null. */
export async function readStatus(deps: StatusDeps, opts: { recent?: number; failures?: number } = {}): Promise<StatusSnapshot> {
  const [rev, inProgress, recent, failures] = await Promise.allSettled([
    withTimeout(deps.resolver.resolve('latest'), 3000, 'resolving the package source'),
    listInProgress(deps.queues.builds, { timeoutMs: TIMEOUT_MS }),
    withTimeout(deps.store.recentBuilds(opts.recent ?? 20), TIMEOUT_MS, 'reading recent builds'),
    withTimeout(deps.store.recentFailures(opts.failures ?? 10), TIMEOUT_MS, 'reading recent failures'),
  ]);
  const source: StatusSnapshot['source'] = { description: deps.resolver.describe(), revision: null };
  if (rev.status === 'fulfilled') source.revision = rev.value.revision;
  else source.error = rev.reason instanceof Error ? rev.reason.message : String(rev.reason);
  return {
    now: Date.now(),
    source,
    inProgress: inProgress.status === 'fulfilled' ? inProgress.value : null,
    recent: recent.status === 'fulfilled' ? recent.value : null,
    failures: failures.status === 'fulfilled' ? failures.value : null,
  };
}
