/**
 * Reading the build queues for people and for Prometheus: builds in progress
 * (BullMQ jobs that are active or waiting, with the progress the worker
 * reports) and queue gauges collected at scrape time. Every call is bounded by
 * a timeout, so a page or a scrape answers even while Redis is away.
 */
import { type Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { Gauge, type Registry } from 'prom-client';
import { NIX_SYSTEMS, type NixSystem } from '../protocol/image-spec';
import { withTimeout } from '../core/timeout';
import { type BuildJobData, type BuildJobResult, type BuildProgress, POPCOUNT_QUEUE, buildQueueName } from './types';


/** A build queue as the status readers use it. */
export type BuildQueue = Queue<BuildJobData, BuildJobResult>;

/** A build that is running or waiting for a worker. */
export interface InProgressBuild {
  image: string;
  tag: string;
  system: string;
  buildKey: string;
  /** BullMQ state: active (a worker has it), waiting, prioritized or delayed (waiting to retry). */
  state: 'active' | 'waiting' | 'prioritized' | 'delayed';
  stage: BuildProgress['stage'];
  /** Layers packed so far and in all, while packing. */
  packed?: number;
  total?: number;
  /** Epoch ms the current attempt started (active) or the job was added (waiting). */
  since: number;
  /** Attempt number (1-based). */
  attempt: number;
}

const STATES = ['active', 'waiting', 'prioritized', 'delayed'] as const;

function toInProgress(job: Job<BuildJobData, BuildJobResult>, state: InProgressBuild['state']): InProgressBuild | null {
  const d = job.data;
  if (!d?.image || typeof d.buildKey !== 'string') return null;
  const p = (typeof job.progress === 'object' && job.progress ? job.progress : {}) as Partial<BuildProgress> & { startedAt?: number };
  const active = state === 'active';
  const b: InProgressBuild = {
    image: d.image.name,
    tag: d.image.tag,
    system: d.image.system,
    buildKey: d.buildKey,
    state,
    stage: active ? (p.stage ?? 'queued') : 'queued',
    since: active ? (p.startedAt ?? job.processedOn ?? job.timestamp) : job.timestamp,
    attempt: job.attemptsMade + 1,
  };
  if (active && typeof p.packed === 'number') b.packed = p.packed;
  if (active && typeof p.total === 'number') b.total = p.total;
  return b;
}

/** Builds running or waiting in `queues` (active first, then oldest first), at most `limit` per state and queue. */
export async function listInProgress(queues: readonly BuildQueue[], opts: { limit?: number; timeoutMs?: number } = {}): Promise<InProgressBuild[]> {
  const limit = opts.limit ?? 50;
  const lists = await withTimeout(
    Promise.all(
      queues.flatMap((q) =>
        STATES.map(async (state) => {
          const jobs = await q.getJobs([state], 0, limit - 1, true);
          return jobs.map((j) => (j ? toInProgress(j, state) : null));
        }),
      ),
    ),
    opts.timeoutMs ?? 2000,
    'reading build queues',
  );
  const all = lists.flat().filter((b): b is InProgressBuild => b !== null);
  const rank = (b: InProgressBuild) => (b.state === 'active' ? 0 : 1);
  return all.sort((a, b) => rank(a) - rank(b) || a.since - b.since);
}

/**
 * Read-only handles on the build queues of every system (and the popularity
 * queue), sharing one Redis connection. For pages, gauges and the admin dashboard.
 */
export class QueueReader {
  readonly builds: BuildQueue[];
  readonly popcount: Queue;
  private readonly connection: Redis;

  constructor(connect: () => Redis, prefix: string, onError: (err: Error) => void = () => undefined) {
    this.connection = connect();
    this.builds = NIX_SYSTEMS.map(
      (s) => new Queue<BuildJobData, BuildJobResult>(buildQueueName(s), { connection: this.connection, prefix }) as BuildQueue,
    );
    this.popcount = new Queue(POPCOUNT_QUEUE, { connection: this.connection, prefix });
    for (const q of this.all()) q.on('error', onError);
  }

  /** Every queue, build queues first. */
  all(): Queue[] {
    return [...this.builds, this.popcount];
  }

  async close(): Promise<void> {
    await Promise.all(this.all().map((q) => q.close().catch(() => undefined)));
    await this.connection.quit().catch(() => this.connection.disconnect());
  }
}

/** Names of the queue gauges (for tests and docs). */
export const QUEUE_GAUGES = {
  jobs: 'nixery_queue_jobs',
  depth: 'nixery_queue_depth',
  active: 'nixery_queue_active_jobs',
  workers: 'nixery_queue_workers',
} as const;

interface QueueSnapshot {
  name: string;
  counts: Record<string, number>;
  workers: number;
}

/**
 * Registers gauges read from BullMQ at scrape time: jobs by state, depth
 * (waiting + prioritized + delayed), active jobs and connected workers per
 * queue. A scrape while Redis is away leaves the gauges empty instead of
 * hanging. Registering twice on one registry is a no-op.
 */
export function registerQueueGauges(registry: Registry, queues: () => readonly Queue[], timeoutMs = 1500): void {
  if (registry.getSingleMetric(QUEUE_GAUGES.depth)) return;
  let pending: { at: number; p: Promise<QueueSnapshot[]> } | undefined;
  const snapshot = (): Promise<QueueSnapshot[]> => {
    if (pending && Date.now() - pending.at < 250) return pending.p;
    const p = withTimeout(
      Promise.all(
        queues().map(async (q) => ({
          name: q.name,
          counts: await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed'),
          workers: await q.getWorkersCount(),
        })),
      ),
      timeoutMs,
      'reading queue counts',
    ).catch(() => [] as QueueSnapshot[]);
    pending = { at: Date.now(), p };
    return p;
  };
  const jobs = new Gauge({
    name: QUEUE_GAUGES.jobs,
    help: 'Jobs in each BullMQ queue by state (read at scrape time)',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const s of await snapshot()) for (const [state, n] of Object.entries(s.counts)) this.set({ queue: s.name, state }, n);
    },
  });
  const depth = new Gauge({
    name: QUEUE_GAUGES.depth,
    help: 'Jobs waiting for a worker (waiting + prioritized + delayed) per queue',
    labelNames: ['queue'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const s of await snapshot()) {
        const c = s.counts;
        this.set({ queue: s.name }, (c.waiting ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0));
      }
    },
  });
  const active = new Gauge({
    name: QUEUE_GAUGES.active,
    help: 'Jobs a worker is running now, per queue',
    labelNames: ['queue'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const s of await snapshot()) this.set({ queue: s.name }, s.counts.active ?? 0);
    },
  });
  const workers = new Gauge({
    name: QUEUE_GAUGES.workers,
    help: 'Workers connected to each queue',
    labelNames: ['queue'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const s of await snapshot()) this.set({ queue: s.name }, s.workers);
    },
  });
  void [jobs, depth, active, workers];
}
