import {
  type BuildJobData,
  type BuildJobResult,
  Failed,
  type NixSystem,
  type PublishedImage,
  type Redis,
  buildQueueName,
  decodeFailure,
  redisStep,
  requireRedis,
  unlessRedisGone,
} from '@nixery/shared';
import { type Job, Queue, QueueEvents } from 'bullmq';

/** What the registry needs from the build queue (a fake in in-process tests). */
export interface Builds {
  /** Requests a build and waits for it; throws `Failed` (the build's failure, `timeout`, `no_worker`). */
  build(data: BuildJobData): Promise<PublishedImage>;
  /** Makes sure the queue for `system` is live before the first request. */
  warm(system: NixSystem): Promise<void>;
  close(): Promise<void>;
}

/** Bound of each Redis step of a request besides the wait itself (adding the job, reading its state). */
const STEP_MS = 3000;

/** How long a close waits for BullMQ once Redis is unreachable (its close would wait for Redis forever). */
const CLOSE_PATIENCE_MS = 1000;

/** Job states in which a build is still to come (the wait ran out, not the build). */
const PENDING = new Set(['waiting', 'prioritized', 'delayed', 'active', 'waiting-children']);

/**
 * The gateway's side of the build queue: adds one job per build key (the job
 * id, so concurrent identical requests on any gateway share one job) and waits
 * for its result with a bounded wait. The job's return value is the published
 * image or its encoded failure; a failed result is removed at once (failed
 * builds are not kept), and one kept from an earlier request is built again.
 *
 * Nothing here waits for Redis unbounded: with Redis unreachable a request
 * fails at once (`state_unavailable`, 503 with Retry-After) instead of
 * queueing commands; a request already waiting gets its answer when its
 * wait (`waitMs`) ends, every later Redis step bounded by {@link STEP_MS};
 * `close` gives up on BullMQ once Redis has been away for a second.
 */
export class BuildClient implements Builds {
  private readonly queues = new Map<NixSystem, { queue: Queue<BuildJobData, BuildJobResult>; events: QueueEvents; conn: Redis; connected?: true }>();

  constructor(
    private readonly opts: {
      connect: () => Redis;
      prefix: string;
      waitMs: number;
      attempts?: number;
      /** Errors of the queue and its event stream (Redis away, mostly); without it they go to stderr. */
      onError?: (err: Error) => void;
    },
  ) {}

  private forSystem(system: NixSystem) {
    let q = this.queues.get(system);
    if (!q) {
      const name = buildQueueName(system);
      const conn = this.opts.connect();
      q = {
        queue: new Queue<BuildJobData, BuildJobResult>(name, { connection: conn, prefix: this.opts.prefix }),
        events: new QueueEvents(name, { connection: this.opts.connect(), prefix: this.opts.prefix }),
        conn,
      };
      const onError = this.opts.onError ?? (() => undefined);
      q.queue.on('error', onError);
      q.events.on('error', onError);
      this.queues.set(system, q);
    }
    return q;
  }

  async warm(system: NixSystem): Promise<void> {
    await this.forSystem(system).events.waitUntilReady();
  }

  async build(data: BuildJobData): Promise<PublishedImage> {
    const q = this.forSystem(data.image.system);
    const { queue, events, conn } = q;
    if (!q.connected) {
      // The first request for a system makes its connections: they get a moment to come up.
      await redisStep(Promise.all([queue.waitUntilReady(), events.waitUntilReady()]), STEP_MS, 'connecting to the build queue');
      q.connected = true;
    }
    const asked = Date.now();
    for (let again = true; ; again = false) {
      requireRedis(conn);
      const job = await redisStep(
        queue.add('build', data, {
          jobId: data.buildKey,
          attempts: this.opts.attempts ?? 3,
          backoff: { type: 'exponential', delay: 2000 },
          removeOnComplete: { age: 3600, count: 1000 },
          removeOnFail: true,
        }),
        STEP_MS,
        'adding the build job',
      );
      const result = await this.wait(queue, events, conn, job, data);
      if (result.ok) return result.image;
      const finishedOn = (await redisStep(queue.getJob(data.buildKey), STEP_MS, 'reading the build job').catch(() => undefined))?.finishedOn;
      await redisStep(queue.remove(data.buildKey), STEP_MS, 'removing the failed build job').catch(() => undefined);
      if (again && finishedOn !== undefined && finishedOn < asked) continue;
      throw new Failed(decodeFailure(result.failure));
    }
  }

  /**
   * The job's result; a wait that runs out (the job is still pending) is `timeout` or `no_worker`,
   * a job that failed outright `internal`, and one whose state cannot be read then (Redis away) `state_unavailable`.
   */
  private async wait(
    queue: Queue<BuildJobData, BuildJobResult>,
    events: QueueEvents,
    conn: Redis,
    job: Job<BuildJobData, BuildJobResult>,
    data: BuildJobData,
  ): Promise<BuildJobResult> {
    try {
      return await job.waitUntilFinished(events, this.opts.waitMs);
    } catch {
      requireRedis(conn);
      const state = await redisStep(queue.getJobState(data.buildKey), STEP_MS, 'reading the build job state');
      if (!PENDING.has(state)) throw new Failed({ kind: 'internal', message: `build job ended in state ${state}` });
      const workers = await redisStep(queue.getWorkersCount(), STEP_MS, 'counting workers').catch(() => 0);
      if ((state === 'waiting' || state === 'prioritized') && workers === 0) throw new Failed({ kind: 'no_worker', system: data.image.system });
      throw new Failed({ kind: 'timeout', what: 'the image build', ms: this.opts.waitMs });
    }
  }

  async close(): Promise<void> {
    await Promise.all(
      [...this.queues.values()].map((q) => unlessRedisGone(q.conn, Promise.all([q.events.close(), q.queue.close()]), { patienceMs: CLOSE_PATIENCE_MS })),
    );
  }
}
